"""Locks against the standard library: the targets of the synchronization issue (issue 6).

Run ``python benchmarks/bench_sync.py --help`` for the options and see ``benchmarks/README.md``
for how to read the tables. Process contenders use the ``forkserver`` start method; a contender
whose class does not exist yet (``concurrency_kit.sync.process``) is skipped.

Benchmarks (``--only NAME``):

* ``thread_uncontended``: ``lock.acquire(); lock.release()`` in a loop, one thread, never
  contended: the cost of one pair (latency), ``ThreadLock`` against :class:`threading.Lock`.
  The ``loop only`` row is the same loop with an empty body: its cost is in every other row.
  Target (issue 16): ``ThreadLock`` at least 0.8x the speed of :class:`threading.Lock`, i.e. a
  latency ratio <= 1.25x.
* ``thread_uncontended_rlock``: the same for ``ThreadRLock`` and :class:`threading.RLock`.
* ``thread_with``: ``with lock: pass`` in a loop (latency).
* ``process_uncontended``, ``process_uncontended_rlock``: acquire/release pairs per second
  (throughput), one process, never contended, ``ProcessLock`` against ``multiprocessing.Lock``
  (and the RLocks). Target (issue 16): ``ProcessLock`` >= 1.0x ``multiprocessing.Lock``.
* ``process_contended``, ``process_contended_work``, ``process_contended_4``: contention, not
  hand-off: 2 processes (4 for ``_4``) each run ``acquire(); <critical section>; release()`` in
  a loop on one lock at the same time; acquire/release pairs per second of all of them
  together, from the first one's start to the last one's end (workers started once, lined up
  on a barrier each round). The critical section is empty, or (``_work``) a small amount of
  work: ``+= 1`` on an int in shared memory (a ``ctypes`` ``RawValue``, not atomic), whose
  total is checked after each round, outside the timing, so a lock that lets two holders in
  fails the run. The total number of pairs per round is the same whatever the number of
  processes. ``ProcessLock`` against ``multiprocessing.Lock``; target (issue 16, the two
  2-process cells): >= 1.0x.
* ``thread_contended``, ``thread_contended_work``, ``thread_contended_4``: the same with 2 (4)
  threads of one process hammering one lock: :class:`threading.Lock` (the reference),
  ``ThreadLock``, ``ProcessLock`` and ``multiprocessing.Lock``. Target (issue 16, the two
  2-thread cells): ``ProcessLock`` >= 0.5x :class:`threading.Lock`.
* ``thread_pingpong``, ``process_pingpong``: two threads (two processes) pass ownership back
  and forth; the time of one round trip (two hand-offs, latency).
* ``thread_semaphore``, ``process_semaphore``: ``acquire(); release()`` of a free
  ``Semaphore(1)`` and ``BoundedSemaphore(1)`` (latency for threads, throughput for
  processes), against :mod:`threading` and :mod:`multiprocessing`.
* ``thread_event_pingpong``, ``process_event_pingpong``: two events, ``ping`` and ``pong``;
  side A sets ``ping`` and waits for ``pong``, side B waits for ``ping`` and sets ``pong`` (each
  clears what it waited for); the time of one round trip.
* ``thread_condition_pingpong``, ``process_condition_pingpong``: a shared turn flag under one
  condition; each side waits for its turn, hands the turn over and notifies; one round trip.
* ``thread_rwlock``, ``process_rwlock``: 8 readers and 1 writer, each making the same number of
  acquire/release pairs around the same critical section (hashing 16 KiB, which releases the
  GIL); operations per second. ``RWLock`` lets the readers in together; the plain-lock rows
  use one ``Lock`` for readers and writer alike, the design ``RWLock`` replaces.

The ping-pong uses three locks and only ever releases a lock its releaser holds, so it runs
unchanged on owner-checked locks. Invariant at the start of step ``k``: A holds ``L[k]`` and
``L[k+1]``, B holds ``L[k+2]`` (indices mod 3)::

    A: release L[k]  ────────────>  B: acquire L[k]      (hand-off A -> B)
       acquire L[k+2]  <──────────     release L[k+2]    (hand-off B -> A)

B cannot run ahead: its next acquire (``L[k+1]``) waits for A's next release.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from itertools import repeat
from multiprocessing.connection import Connection
from typing import Any, Final

from _runner import (
    Benchmark,
    Config,
    Contender,
    Measure,
    Target,
    loop_only,
    main,
    stop_workers,
)

from concurrency_kit.sync.thread import (
    ThreadBoundedSemaphore,
    ThreadCondition,
    ThreadEvent,
    ThreadLock,
    ThreadRLock,
    ThreadRWLock,
    ThreadSemaphore,
)

START_METHOD: Final = "forkserver"
PROCESS_MODULE: Final = "concurrency_kit.sync.process"
OURS_PROCESS = (PROCESS_MODULE,)
PACKAGES = ("concurrency_kit",)
DEADLOCK: Final = 60.0
"""Seconds before a peer that never answers counts as hung (only catches deadlocks)."""


def mp_context() -> Any:
    return multiprocessing.get_context(START_METHOD)


def process_lock() -> Any:
    from concurrency_kit.sync.process import ProcessLock  # type: ignore[import-not-found]

    return ProcessLock()


def process_rlock() -> Any:
    from concurrency_kit.sync.process import ProcessRLock  # type: ignore[import-not-found]

    return ProcessRLock()


def process_semaphore() -> Any:
    from concurrency_kit.sync.process import ProcessSemaphore  # type: ignore[import-not-found]

    return ProcessSemaphore()


def process_bounded_semaphore() -> Any:
    from concurrency_kit.sync.process import (  # type: ignore[import-not-found]
        ProcessBoundedSemaphore,
    )

    return ProcessBoundedSemaphore()


def process_event() -> Any:
    from concurrency_kit.sync.process import ProcessEvent  # type: ignore[import-not-found]

    return ProcessEvent()


def process_condition() -> Any:
    from concurrency_kit.sync.process import ProcessCondition  # type: ignore[import-not-found]

    return ProcessCondition()


def process_rwlock() -> Any:
    from concurrency_kit.sync.process import ProcessRWLock  # type: ignore[import-not-found]

    return ProcessRWLock()


def mp_lock() -> Any:
    return mp_context().Lock()


def mp_rlock() -> Any:
    return mp_context().RLock()


def mp_semaphore() -> Any:
    return mp_context().Semaphore()


def mp_bounded_semaphore() -> Any:
    return mp_context().BoundedSemaphore()


def mp_event() -> Any:
    return mp_context().Event()


def mp_condition() -> Any:
    return mp_context().Condition()


def close_lock(lock: Any) -> None:
    """Release what a lock holds in this process (process locks); nothing for the others."""
    close = getattr(lock, "close", None)
    if close is not None:
        close()


# -- uncontended ------------------------------------------------------------------------------


@contextmanager
def pairs_contender(make: Callable[[], Any], n: int, per_pair: bool) -> Iterator[Measure]:
    """Time ``n`` uncontended ``acquire(); release()`` pairs on one lock.

    Args:
        make: creates the lock.
        n: pairs per round.
        per_pair: return the seconds of one pair (latency) rather than of the whole round.
    """
    lock = make()

    def measure() -> float:
        start = time.perf_counter()
        for _ in repeat(None, n):
            lock.acquire()
            lock.release()
        elapsed = time.perf_counter() - start
        if lock.acquire(False) is not True:  # checked outside the timed loop
            raise AssertionError("the lock was left held")
        lock.release()
        return elapsed / n if per_pair else elapsed

    try:
        yield measure
    finally:
        close_lock(lock)


@contextmanager
def with_contender(make: Callable[[], Any], n: int) -> Iterator[Measure]:
    """Time ``n`` uncontended ``with lock: pass`` blocks; the seconds of one block."""
    lock = make()

    def measure() -> float:
        start = time.perf_counter()
        for _ in repeat(None, n):
            with lock:
                pass
        return (time.perf_counter() - start) / n

    try:
        yield measure
    finally:
        close_lock(lock)


# -- ping-pong --------------------------------------------------------------------------------


def pingpong_b(locks: Sequence[Any], n: int, conn: Connection) -> None:
    """Side B of the ping-pong (a thread, or the body of a child process)."""
    try:
        locks[2].acquire()
        conn.send("ready")
        for k in range(n):
            locks[k % 3].acquire()
            locks[(k + 2) % 3].release()
        locks[(n + 2) % 3].release()
    finally:
        conn.close()


def run_with_peer(
    peer: Callable[..., None],
    args: tuple[Any, ...],
    closables: Sequence[Any],
    in_process: bool,
    side_a: Callable[[], float],
) -> float:
    """Start side B, ``peer(*args, conn)``, in a thread or a child process; run side A here.

    Side B sends ``"ready"`` on ``conn`` once it is set up; then ``side_a()`` runs (timed by
    itself) and its result is returned. A child process closes ``closables`` (the process
    primitives it attached to) before it exits.
    """
    conn, child_conn = multiprocessing.Pipe(duplex=False)
    runner: Any
    if in_process:
        runner = mp_context().Process(
            target=peer_process, args=(peer, args, closables, child_conn), name="bench-peer"
        )
    else:
        runner = threading.Thread(target=peer, args=(*args, child_conn))
    runner.start()
    try:
        if in_process:
            child_conn.close()
        if not conn.poll(DEADLOCK) or conn.recv() != "ready":
            raise AssertionError("side B never started")
        return side_a()
    finally:
        runner.join(DEADLOCK)
        if in_process:
            if runner.exitcode is None:
                runner.kill()
                runner.join()
            runner.close()
        else:
            child_conn.close()
        conn.close()


def peer_process(
    peer: Callable[..., None], args: tuple[Any, ...], closables: Sequence[Any], conn: Connection
) -> None:
    """The body of a child process running side B."""
    try:
        peer(*args, conn)
    finally:
        for primitive in closables:
            close_lock(primitive)


def run_pingpong(locks: Sequence[Any], n: int, in_process: bool) -> float:
    """Side A, in this thread: one round of ``n`` round trips; the seconds of one."""

    def side_a() -> float:
        start = time.perf_counter()
        for k in range(n):
            locks[k % 3].release()
            locks[(k + 2) % 3].acquire()
        elapsed = time.perf_counter() - start
        locks[n % 3].release()
        locks[(n + 1) % 3].release()
        return elapsed / n

    locks[0].acquire()
    locks[1].acquire()
    return run_with_peer(pingpong_b, (locks, n), locks, in_process, side_a)


@contextmanager
def pingpong_contender(make: Callable[[], Any], n: int, in_process: bool) -> Iterator[Measure]:
    locks = [make() for _ in range(3)]
    try:
        yield partial(run_pingpong, locks, n, in_process)
    finally:
        for lock in locks:
            close_lock(lock)


def check(waited: bool, what: str) -> None:
    """Fail (rather than hang) when a wait that only guards against deadlocks expires."""
    if not waited:
        raise AssertionError(f"{what}: no answer within {DEADLOCK:g} s (deadlock?)")


def event_b(ping: Any, pong: Any, n: int, conn: Connection) -> None:
    """Side B of the event ping-pong: wait for ``ping``, clear it, set ``pong``."""
    try:
        conn.send("ready")
        for _ in repeat(None, n):
            check(ping.wait(DEADLOCK), "event ping")
            ping.clear()
            pong.set()
    finally:
        conn.close()


def run_event_pingpong(ping: Any, pong: Any, n: int, in_process: bool) -> float:
    """Side A: set ``ping``, wait for ``pong``, clear it; the seconds of one round trip."""

    def side_a() -> float:
        start = time.perf_counter()
        for _ in repeat(None, n):
            ping.set()
            check(pong.wait(DEADLOCK), "event pong")
            pong.clear()
        return (time.perf_counter() - start) / n

    return run_with_peer(event_b, (ping, pong, n), (ping, pong), in_process, side_a)


@contextmanager
def event_pingpong_contender(
    make: Callable[[], Any], n: int, in_process: bool
) -> Iterator[Measure]:
    ping, pong = make(), make()
    try:
        yield partial(run_event_pingpong, ping, pong, n, in_process)
    finally:
        close_lock(ping)
        close_lock(pong)


def take_turns(cond: Any, turn: Any, me: int, n: int) -> None:
    """``n`` times: wait under ``cond`` until ``turn`` is ``me``, give the turn away, notify."""
    for _ in repeat(None, n):
        with cond:
            while turn.value != me:
                check(cond.wait(DEADLOCK), "condition turn")
            turn.value = 1 - me
            cond.notify()


def condition_b(cond: Any, turn: Any, n: int, conn: Connection) -> None:
    try:
        conn.send("ready")
        take_turns(cond, turn, 1, n)
    finally:
        conn.close()


def run_condition_pingpong(cond: Any, turn: Any, n: int, in_process: bool) -> float:
    """Side A takes turn 0, side B turn 1; the seconds of one round trip (two hand-offs)."""

    def side_a() -> float:
        start = time.perf_counter()
        take_turns(cond, turn, 0, n)
        with cond:  # B's last turn ends the last round trip
            while turn.value != 0:
                check(cond.wait(DEADLOCK), "condition last turn")
        return (time.perf_counter() - start) / n

    turn.value = 0
    return run_with_peer(condition_b, (cond, turn, n), (cond,), in_process, side_a)


@contextmanager
def condition_pingpong_contender(
    make: Callable[[], Any], n: int, in_process: bool
) -> Iterator[Measure]:
    cond = make()
    turn = mp_context().RawValue("i", 0)  # shared memory; threads can use it as well
    try:
        yield partial(run_condition_pingpong, cond, turn, n, in_process)
    finally:
        close_lock(cond)


# -- contention -------------------------------------------------------------------------------


def hammer(lock: Any, n: int, shared: Any) -> None:
    """``n`` acquire/release pairs; with ``shared`` (a ``RawValue``), ``+= 1`` under the lock."""
    acquire, release = lock.acquire, lock.release
    if shared is None:
        for _ in repeat(None, n):
            acquire()
            release()
        return
    for _ in repeat(None, n):
        acquire()
        shared.value += 1
        release()


def contend_worker(
    lock: Any, n: int, shared: Any, start: Any, stop: Any, report: Callable[[Any], None]
) -> None:
    """Each round: wait at ``start``, hammer the lock, report ``(began, ended)``.

    The worker times its own span (:func:`time.perf_counter` is the system-wide monotonic
    clock on Linux): the measuring thread may be scheduled late after the barrier opens.
    ``stop`` set when ``start`` opens ends the worker.
    """
    while True:
        start.wait(DEADLOCK)
        if stop.is_set():
            return
        began = time.perf_counter()
        hammer(lock, n, shared)
        report((began, time.perf_counter()))


def contend_process(
    lock: Any, n: int, shared: Any, start: Any, stop: Any, conn: Connection
) -> None:
    """The body of a worker process: :func:`contend_worker` reporting over ``conn``."""
    try:
        contend_worker(lock, n, shared, start, stop, conn.send)
    finally:
        conn.close()
        close_lock(lock)


@contextmanager
def contended_contender(
    make: Callable[[], Any], workers: int, n: int, work: bool, in_process: bool
) -> Iterator[Measure]:
    """``workers`` threads or processes hammering one lock; a round times ``n`` pairs of each.

    Args:
        make: creates the lock.
        workers: how many contend.
        n: acquire/release pairs per worker per round.
        work: the critical section increments an int in shared memory (else it is empty).
        in_process: workers are processes (else threads of this process).
    """
    lock = make()
    ctx = mp_context()
    shared = ctx.RawValue("q", 0) if work else None
    runners: list[Any] = []
    receivers: list[Connection] = []
    spans: queue.SimpleQueue[tuple[float, float]] = queue.SimpleQueue()
    if in_process:
        start, stop = ctx.Barrier(workers + 1), ctx.Event()
        for i in range(workers):
            recv, send = ctx.Pipe(duplex=False)
            receivers.append(recv)
            runners.append(
                ctx.Process(
                    target=contend_process,
                    args=(lock, n, shared, start, stop, send),
                    name=f"bench-contend-{i}",
                )
            )
            runners[-1].start()
            send.close()
    else:
        start, stop = threading.Barrier(workers + 1), threading.Event()
        runners = [
            threading.Thread(target=contend_worker, args=(lock, n, shared, start, stop, spans.put))
            for _ in range(workers)
        ]
        for runner in runners:
            runner.start()

    def collect() -> list[tuple[float, float]]:
        if not in_process:
            try:
                return [spans.get(timeout=DEADLOCK) for _ in range(workers)]
            except queue.Empty:
                raise AssertionError("a worker never finished its round (deadlock?)") from None
        result = []
        for recv in receivers:
            if not recv.poll(DEADLOCK):
                raise AssertionError("a worker never finished its round (deadlock?)")
            result.append(recv.recv())
        return result

    def measure() -> float:
        before = shared.value if shared is not None else 0
        start.wait(DEADLOCK)
        taken = collect()
        if shared is not None and shared.value != before + workers * n:  # outside the timing
            raise AssertionError(
                f"lost increments under the lock: {before} + {workers * n} != {shared.value}"
            )
        if lock.acquire(False) is not True:
            raise AssertionError("the lock was left held")
        lock.release()
        return max(end for _, end in taken) - min(began for began, _ in taken)

    try:
        yield measure
    finally:
        stop_workers(stop, start, runners, DEADLOCK)
        for recv in receivers:
            recv.close()
        close_lock(lock)


# -- readers and writers ----------------------------------------------------------------------

READERS: Final = 8
BLOCK: Final = bytes(16 * 1024)


def critical_section() -> None:
    """The work done under the lock: hashing 16 KiB, which runs with the GIL released."""
    hashlib.sha256(BLOCK).digest()


def rw_worker(lock: Any, rw: bool, writer: bool, n: int, start: Any, done: Any, stop: Any) -> None:
    """A reader or the writer: ``n`` acquire/release pairs around the critical section per round.

    Rounds are framed by two barriers shared with the measuring thread (``start``, ``done``);
    ``stop`` set when ``start`` opens ends the worker.
    """
    if not rw:
        acquire, release = lock.acquire, lock.release
    elif writer:
        acquire, release = lock.acquire_write, lock.release_write
    else:
        acquire, release = lock.acquire_read, lock.release_read
    while True:
        start.wait(DEADLOCK)
        if stop.is_set():
            return
        for _ in repeat(None, n):
            acquire()
            try:
                critical_section()
            finally:
                release()
        done.wait(DEADLOCK)


def rw_worker_process(
    lock: Any, rw: bool, writer: bool, n: int, start: Any, done: Any, stop: Any
) -> None:
    try:
        rw_worker(lock, rw, writer, n, start, done, stop)
    finally:
        close_lock(lock)


@contextmanager
def rw_contender(make: Callable[[], Any], rw: bool, n: int, in_process: bool) -> Iterator[Measure]:
    """8 readers and 1 writer, started once; each round times ``n`` operations of each.

    Args:
        make: creates the lock.
        rw: whether it is a reader-writer lock (else readers and writer share one plain lock).
        n: acquire/release pairs per worker per round.
        in_process: workers are processes (else threads).
    """
    lock = make()
    ctx = mp_context()
    parties = READERS + 2  # the workers and the measuring thread
    if in_process:
        start, done, stop = ctx.Barrier(parties), ctx.Barrier(parties), ctx.Event()
        workers: list[Any] = [
            ctx.Process(
                target=rw_worker_process,
                args=(lock, rw, i == READERS, n, start, done, stop),
                name=f"bench-rw-{i}",
            )
            for i in range(READERS + 1)
        ]
    else:
        start, done = threading.Barrier(parties), threading.Barrier(parties)
        stop = threading.Event()
        workers = [
            threading.Thread(target=rw_worker, args=(lock, rw, i == READERS, n, start, done, stop))
            for i in range(READERS + 1)
        ]
    for worker in workers:
        worker.start()

    def measure() -> float:
        start.wait(DEADLOCK)
        began = time.perf_counter()
        done.wait(DEADLOCK)
        return time.perf_counter() - began

    try:
        yield measure
    finally:
        stop_workers(stop, start, workers, DEADLOCK)
        close_lock(lock)


# -- the benchmarks ---------------------------------------------------------------------------


def thread_benchmarks(config: Config) -> list[Benchmark]:
    n = config.size(300_000, 30_000, 3_000)
    loop_note = "the loop's own cost, included in every row (not subtracted)"
    return [
        Benchmark(
            name="thread_uncontended",
            title=f"acquire(); release() of a free lock, one thread, {n} pairs per round",
            kind="latency",
            unit="ns",
            reference="threading.Lock",
            contenders=(
                Contender("loop only", partial(loop_only, n), note=loop_note),
                Contender("threading.Lock", partial(pairs_contender, threading.Lock, n, True)),
                Contender("ThreadLock", partial(pairs_contender, ThreadLock, n, True)),
            ),
            targets=(Target("ThreadLock", "threading.Lock", 1.25),),  # >= 0.8x its speed
        ),
        Benchmark(
            name="thread_uncontended_rlock",
            title=f"acquire(); release() of a free RLock, one thread, {n} pairs per round",
            kind="latency",
            unit="ns",
            reference="threading.RLock",
            contenders=(
                Contender("threading.RLock", partial(pairs_contender, threading.RLock, n, True)),
                Contender("ThreadRLock", partial(pairs_contender, ThreadRLock, n, True)),
            ),
        ),
        Benchmark(
            name="thread_with",
            title=f"with lock: pass, a free lock, one thread, {n} blocks per round",
            kind="latency",
            unit="ns",
            reference="threading.Lock",
            contenders=(
                Contender("threading.Lock", partial(with_contender, threading.Lock, n)),
                Contender("ThreadLock", partial(with_contender, ThreadLock, n)),
                Contender("threading.RLock", partial(with_contender, threading.RLock, n)),
                Contender("ThreadRLock", partial(with_contender, ThreadRLock, n)),
            ),
        ),
    ]


def process_benchmarks(config: Config) -> list[Benchmark]:
    n = config.size(200_000, 20_000, 2_000)
    return [
        Benchmark(
            name="process_uncontended",
            title=f"acquire(); release() of a free process lock, one process, {n} pairs per round",
            kind="throughput",
            unit="pairs",
            reference="multiprocessing.Lock",
            contenders=(
                Contender(
                    "multiprocessing.Lock", partial(pairs_contender, mp_lock, n, False), items=n
                ),
                Contender(
                    "ProcessLock",
                    partial(pairs_contender, process_lock, n, False),
                    items=n,
                    requires=OURS_PROCESS,
                ),
            ),
            targets=(Target("ProcessLock", "multiprocessing.Lock", 1.0),),
        ),
        Benchmark(
            name="process_uncontended_rlock",
            title=f"acquire(); release() of a free process RLock, {n} pairs per round",
            kind="throughput",
            unit="pairs",
            reference="multiprocessing.RLock",
            contenders=(
                Contender(
                    "multiprocessing.RLock", partial(pairs_contender, mp_rlock, n, False), items=n
                ),
                Contender(
                    "ProcessRLock",
                    partial(pairs_contender, process_rlock, n, False),
                    items=n,
                    requires=OURS_PROCESS,
                ),
            ),
        ),
    ]


def pingpong_benchmarks(config: Config) -> list[Benchmark]:
    n = config.size(5_000, 500, 50)
    return [
        Benchmark(
            name="thread_pingpong",
            title=f"two threads pass ownership back and forth, {n} round trips per round",
            kind="latency",
            unit="us",
            reference="threading.Lock",
            contenders=(
                Contender("threading.Lock", partial(pingpong_contender, threading.Lock, n, False)),
                Contender("ThreadLock", partial(pingpong_contender, ThreadLock, n, False)),
                Contender(
                    "threading.RLock", partial(pingpong_contender, threading.RLock, n, False)
                ),
                Contender("ThreadRLock", partial(pingpong_contender, ThreadRLock, n, False)),
            ),
        ),
        Benchmark(
            name="process_pingpong",
            title=f"two processes pass ownership back and forth, {n} round trips per round",
            kind="latency",
            unit="us",
            reference="multiprocessing.Lock",
            contenders=(
                Contender("multiprocessing.Lock", partial(pingpong_contender, mp_lock, n, True)),
                Contender(
                    "ProcessLock",
                    partial(pingpong_contender, process_lock, n, True),
                    requires=OURS_PROCESS,
                ),
            ),
        ),
    ]


def semaphore_benchmarks(config: Config) -> list[Benchmark]:
    n_thread = config.size(300_000, 30_000, 3_000)
    n_process = config.size(200_000, 20_000, 2_000)
    return [
        Benchmark(
            name="thread_semaphore",
            title=f"acquire(); release() of a free Semaphore(1), one thread, {n_thread} pairs "
            "per round",
            kind="latency",
            unit="ns",
            reference="threading.Semaphore",
            contenders=(
                Contender(
                    "threading.Semaphore",
                    partial(pairs_contender, threading.Semaphore, n_thread, True),
                ),
                Contender(
                    "ThreadSemaphore", partial(pairs_contender, ThreadSemaphore, n_thread, True)
                ),
                Contender(
                    "threading.BoundedSemaphore",
                    partial(pairs_contender, threading.BoundedSemaphore, n_thread, True),
                ),
                Contender(
                    "ThreadBoundedSemaphore",
                    partial(pairs_contender, ThreadBoundedSemaphore, n_thread, True),
                ),
            ),
        ),
        Benchmark(
            name="process_semaphore",
            title=f"acquire(); release() of a free process Semaphore(1), {n_process} pairs per "
            "round",
            kind="throughput",
            unit="pairs",
            reference="multiprocessing.Semaphore",
            contenders=(
                Contender(
                    "multiprocessing.Semaphore",
                    partial(pairs_contender, mp_semaphore, n_process, False),
                    items=n_process,
                ),
                Contender(
                    "ProcessSemaphore",
                    partial(pairs_contender, process_semaphore, n_process, False),
                    items=n_process,
                    requires=OURS_PROCESS,
                ),
                Contender(
                    "multiprocessing.BoundedSemaphore",
                    partial(pairs_contender, mp_bounded_semaphore, n_process, False),
                    items=n_process,
                ),
                Contender(
                    "ProcessBoundedSemaphore",
                    partial(pairs_contender, process_bounded_semaphore, n_process, False),
                    items=n_process,
                    requires=OURS_PROCESS,
                ),
            ),
        ),
    ]


def signalling_benchmarks(config: Config) -> list[Benchmark]:
    n = config.size(5_000, 500, 50)
    return [
        Benchmark(
            name="thread_event_pingpong",
            title=f"two threads signal each other with two events, {n} round trips per round",
            kind="latency",
            unit="us",
            reference="threading.Event",
            contenders=(
                Contender(
                    "threading.Event",
                    partial(event_pingpong_contender, threading.Event, n, False),
                ),
                Contender("ThreadEvent", partial(event_pingpong_contender, ThreadEvent, n, False)),
            ),
        ),
        Benchmark(
            name="process_event_pingpong",
            title=f"two processes signal each other with two events, {n} round trips per round",
            kind="latency",
            unit="us",
            reference="multiprocessing.Event",
            contenders=(
                Contender(
                    "multiprocessing.Event", partial(event_pingpong_contender, mp_event, n, True)
                ),
                Contender(
                    "ProcessEvent",
                    partial(event_pingpong_contender, process_event, n, True),
                    requires=OURS_PROCESS,
                ),
            ),
        ),
        Benchmark(
            name="thread_condition_pingpong",
            title=f"two threads take turns under one condition, {n} round trips per round",
            kind="latency",
            unit="us",
            reference="threading.Condition",
            contenders=(
                Contender(
                    "threading.Condition",
                    partial(condition_pingpong_contender, threading.Condition, n, False),
                ),
                Contender(
                    "ThreadCondition",
                    partial(condition_pingpong_contender, ThreadCondition, n, False),
                ),
            ),
        ),
        Benchmark(
            name="process_condition_pingpong",
            title=f"two processes take turns under one condition, {n} round trips per round",
            kind="latency",
            unit="us",
            reference="multiprocessing.Condition",
            contenders=(
                Contender(
                    "multiprocessing.Condition",
                    partial(condition_pingpong_contender, mp_condition, n, True),
                ),
                Contender(
                    "ProcessCondition",
                    partial(condition_pingpong_contender, process_condition, n, True),
                    requires=OURS_PROCESS,
                ),
            ),
        ),
    ]


def rwlock_benchmarks(config: Config) -> list[Benchmark]:
    n = config.size(2_000, 300, 10)
    items = (READERS + 1) * n
    title = (
        f"{READERS} readers and 1 writer, {n} acquire/release pairs each per round around "
        "a 16 KiB hash"
    )
    plain_note = "one plain lock for readers and writer alike"
    return [
        Benchmark(
            name="thread_rwlock",
            title=f"{title}, threads",
            kind="throughput",
            unit="ops",
            reference="threading.Lock",
            contenders=(
                Contender(
                    "threading.Lock",
                    partial(rw_contender, threading.Lock, False, n, False),
                    items=items,
                    note=plain_note,
                ),
                Contender(
                    "ThreadLock",
                    partial(rw_contender, ThreadLock, False, n, False),
                    items=items,
                    note=plain_note,
                ),
                Contender(
                    "ThreadRWLock",
                    partial(rw_contender, ThreadRWLock, True, n, False),
                    items=items,
                ),
            ),
        ),
        Benchmark(
            name="process_rwlock",
            title=f"{title}, processes",
            kind="throughput",
            unit="ops",
            reference="multiprocessing.Lock",
            contenders=(
                Contender(
                    "multiprocessing.Lock",
                    partial(rw_contender, mp_lock, False, n, True),
                    items=items,
                    note=plain_note,
                ),
                Contender(
                    "ProcessLock",
                    partial(rw_contender, process_lock, False, n, True),
                    items=items,
                    requires=OURS_PROCESS,
                    note=plain_note,
                ),
                Contender(
                    "ProcessRWLock",
                    partial(rw_contender, process_rwlock, True, n, True),
                    items=items,
                    requires=OURS_PROCESS,
                ),
            ),
        ),
    ]


CONTENTION: Final = (
    # (name suffix, workers, critical section does work, the target applies)
    ("", 2, False, True),
    ("_work", 2, True, True),
    ("_4", 4, False, False),
)
WORK_NOTE: Final = "critical section: += 1 on a shared-memory int (RawValue), total checked"


def contention_benchmarks(config: Config) -> list[Benchmark]:
    """Process and thread contention, swept over the critical section and the contenders."""
    total = config.size(2_000_000, 400_000, 400)  # pairs per round, all workers together
    result = []
    for suffix, workers, work, targeted in CONTENTION:
        n = total // workers
        section = "a += 1 on a shared-memory int" if work else "an empty critical section"
        for in_process in (True, False):
            who = "processes" if in_process else "threads of one process"
            if in_process:
                rows = (
                    ("multiprocessing.Lock", mp_lock, ()),
                    ("ProcessLock", process_lock, OURS_PROCESS),
                )
                reference, bound = "multiprocessing.Lock", 1.0
            else:
                rows = (
                    ("threading.Lock", threading.Lock, ()),
                    ("ThreadLock", ThreadLock, ()),
                    ("ProcessLock", process_lock, OURS_PROCESS),
                    ("multiprocessing.Lock", mp_lock, ()),
                )
                reference, bound = "threading.Lock", 0.5
            result.append(
                Benchmark(
                    name=f"{'process' if in_process else 'thread'}_contended{suffix}",
                    title=f"{workers} {who} hammer one lock at once, {section}, {n} "
                    "acquire/release pairs each per round",
                    kind="throughput",
                    unit="pairs",
                    reference=reference,
                    contenders=tuple(
                        Contender(
                            name,
                            partial(contended_contender, make, workers, n, work, in_process),
                            items=workers * n,
                            requires=requires,
                            note=WORK_NOTE if work and name == reference else "",
                        )
                        for name, make, requires in rows
                    ),
                    targets=(Target("ProcessLock", reference, bound),) if targeted else (),
                )
            )
    return result


def build(config: Config) -> list[Benchmark]:
    """Every benchmark of this script, sized for ``config``."""
    return [
        *thread_benchmarks(config),
        *process_benchmarks(config),
        *pingpong_benchmarks(config),
        *contention_benchmarks(config),
        *semaphore_benchmarks(config),
        *signalling_benchmarks(config),
        *rwlock_benchmarks(config),
    ]


if __name__ == "__main__":
    sys.exit(main(build, description=__doc__ or "", packages=PACKAGES))

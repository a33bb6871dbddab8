"""Locks against the standard library: the targets of the synchronization issue (issue 6).

Run ``python benchmarks/bench_sync.py --help`` for the options and see ``benchmarks/README.md``
for how to read the tables. Process contenders use the ``forkserver`` start method; a contender
whose class does not exist yet (``concurrency_kit.sync.process``) is skipped.

Benchmarks (``--only NAME``):

* ``thread_uncontended``: ``lock.acquire(); lock.release()`` in a loop, one thread, never
  contended: the cost of one pair (latency), ``ThreadLock`` against :class:`threading.Lock`.
  The ``loop only`` row is the same loop with an empty body: its cost is in every other row.
* ``thread_uncontended_rlock``: the same for ``ThreadRLock`` and :class:`threading.RLock`.
* ``thread_with``: ``with lock: pass`` in a loop (latency).
* ``process_uncontended``, ``process_uncontended_rlock``: acquire/release pairs per second
  (throughput), ``ProcessLock`` against ``multiprocessing.Lock`` (and the RLocks).
* ``thread_pingpong``, ``process_pingpong``: two threads (two processes) pass ownership back
  and forth; the time of one round trip (two hand-offs, latency).

The ping-pong uses three locks and only ever releases a lock its releaser holds, so it runs
unchanged on owner-checked locks. Invariant at the start of step ``k``: A holds ``L[k]`` and
``L[k+1]``, B holds ``L[k+2]`` (indices mod 3)::

    A: release L[k]  ────────────>  B: acquire L[k]      (hand-off A -> B)
       acquire L[k+2]  <──────────     release L[k+2]    (hand-off B -> A)

B cannot run ahead: its next acquire (``L[k+1]``) waits for A's next release.
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from itertools import repeat
from multiprocessing.connection import Connection
from typing import Any, Final

from _runner import Benchmark, Config, Contender, Measure, Target, main

from concurrency_kit.sync.thread import ThreadLock, ThreadRLock

START_METHOD: Final = "forkserver"
PROCESS_MODULE: Final = "concurrency_kit.sync.process"
OURS_PROCESS = (PROCESS_MODULE,)
PACKAGES = ("concurrency_kit",)


def mp_context() -> Any:
    return multiprocessing.get_context(START_METHOD)


def process_lock() -> Any:
    from concurrency_kit.sync.process import ProcessLock  # type: ignore[import-not-found]

    return ProcessLock()


def process_rlock() -> Any:
    from concurrency_kit.sync.process import ProcessRLock  # type: ignore[import-not-found]

    return ProcessRLock()


def mp_lock() -> Any:
    return mp_context().Lock()


def mp_rlock() -> Any:
    return mp_context().RLock()


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
def loop_only(n: int) -> Iterator[Measure]:
    """The loop of the other rows with an empty body: its cost is in each of them."""

    def measure() -> float:
        start = time.perf_counter()
        for _ in repeat(None, n):
            pass
        return (time.perf_counter() - start) / n

    yield measure


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


def pingpong_b_process(locks: Sequence[Any], n: int, conn: Connection) -> None:
    try:
        pingpong_b(locks, n, conn)
    finally:
        for lock in locks:
            close_lock(lock)


def run_pingpong(locks: Sequence[Any], n: int, in_process: bool) -> float:
    """Side A, in this thread: one round of ``n`` round trips; the seconds of one."""
    locks[0].acquire()
    locks[1].acquire()
    conn, child_conn = multiprocessing.Pipe(duplex=False)
    runner: Any
    if in_process:
        runner = mp_context().Process(
            target=pingpong_b_process, args=(locks, n, child_conn), name="bench-pingpong"
        )
    else:
        runner = threading.Thread(target=pingpong_b, args=(locks, n, child_conn))
    runner.start()
    try:
        if in_process:
            child_conn.close()
        if not conn.poll(60) or conn.recv() != "ready":
            raise AssertionError("side B never started")
        start = time.perf_counter()
        for k in range(n):
            locks[k % 3].release()
            locks[(k + 2) % 3].acquire()
        elapsed = time.perf_counter() - start
        locks[n % 3].release()
        locks[(n + 1) % 3].release()
    finally:
        runner.join(60)
        if in_process:
            if runner.exitcode is None:
                runner.kill()
                runner.join()
            runner.close()
        else:
            child_conn.close()
        conn.close()
    return elapsed / n


@contextmanager
def pingpong_contender(make: Callable[[], Any], n: int, in_process: bool) -> Iterator[Measure]:
    locks = [make() for _ in range(3)]
    try:
        yield partial(run_pingpong, locks, n, in_process)
    finally:
        for lock in locks:
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
            targets=(Target("ThreadLock", "threading.Lock", 3.0),),
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
            title=f"acquire(); release() of a free process lock, {n} pairs per round",
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


def build(config: Config) -> list[Benchmark]:
    """Every benchmark of this script, sized for ``config``."""
    return [
        *thread_benchmarks(config),
        *process_benchmarks(config),
        *pingpong_benchmarks(config),
    ]


if __name__ == "__main__":
    sys.exit(main(build, description=__doc__ or "", packages=PACKAGES))

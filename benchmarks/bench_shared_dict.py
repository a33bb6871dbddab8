"""Shared dicts across processes: the targets of the shared-state issue (issue 5) and issue 16.

Run ``python benchmarks/bench_shared_dict.py --help`` for the options and see
``benchmarks/README.md`` for how to read the tables. These contenders do the same work on a
dict of ``str`` keys and ``int`` values:

* ``ProcessSharedDict`` (``from concurrency_kit import ProcessSharedDict``): a hash table in
  shared memory; keys and values pickled with the C pickler (protocol 5), ``str`` keys stored
  as UTF-8.
* ``Manager().dict()``: :mod:`multiprocessing`'s proxy; every operation is a round trip to
  the manager's server process (``forkserver`` start method, as every process here).
* ``shared-memory-dict`` (PyPI, optional): the whole dict pickled into one shared-memory
  block; every get unpickles all of it, every set re-pickles all of it. It takes no lock by
  default, and its optional lock (``SHARED_MEMORY_USE_LOCK=1``) does not make concurrent writes
  safe (0.7.2 releases it before the read-modify-write runs: two writers corrupt the block, the
  next read fails to unpickle), so where both processes write (``set``) every write is made
  under a :mod:`multiprocessing` lock the two processes share, as a careful user would.
* ``UltraDict(shared_lock=True)`` (PyPI ``UltraDict``, optional; its ``shared_lock`` needs the
  ``atomics`` package): a local ``dict`` in each process kept up to date from a stream of
  changes in shared memory; writes take its lock, and, as its documentation says to for
  consistent reads, every read is made under its lock too (``with d.lock: d[key]``, written
  inline); a second row reads without the lock. Only in the ``get_while_set`` benchmarks,
  the issue's comparison.

Benchmarks (``--only NAME``); "two processes" means the measuring process works while a peer
process runs the same kind of operation on the same dict in a loop (started before the timed
part, stopped after it):

* ``get``, ``set``: two processes, a dict of 16 keys (the size that suits
  shared-memory-dict best). The targets of the issue: get >= 20x and set >= 10x
  ``Manager().dict()``, both >= 1.0x shared-memory-dict.
* ``get_1proc``, ``set_1proc``: the same, one process alone.
* ``get_while_set``, ``get_while_set_1000``: two processes, the measuring one gets while the
  peer sets, on a dict of 16 (1000) keys, so reads see a table that keeps changing. The peer
  writes tagged values (pass ``g`` writes ``g * len(keys) + j`` to the ``j``-th key), and after
  each timed part, outside the timing and while the peer still writes, the measuring process
  reads every key a few times more the same way and checks each value is one that was set for
  that key and that no key goes back in time: "still correct". Contenders:
  ``ProcessSharedDict``, ``Manager().dict()`` and ``UltraDict(shared_lock=True)`` with locked
  reads, and ``UltraDict(shared_lock=True)`` read without its lock (``d[key]``; its writes
  still take it), the configuration the issue's "today: 0.19x" matches. Targets (issue 16,
  both sizes): ours >= 1.0x each UltraDict row. shared-memory-dict is left out: its reads
  take no lock and would unpickle half-written data.
* ``get_1000``: two processes reading a dict of 1000 keys.
* ``thread_get``, ``thread_set``: ``ThreadSharedDict`` against a plain ``dict`` guarded by a
  ``threading.Lock`` (``with lock: d[key]`` written inline, no method call around it), one
  thread. The issue's target: within 1.5x of its cost, i.e. a throughput ratio >= 0.67x.

How reads are fast: each handle of the table remembers what it read, and a read is served
from there while the table's version word (bumped by every change, read without the lock)
is unchanged; otherwise the read takes the table's robust mutex. ``get_while_set`` shows the
second path.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from multiprocessing.connection import Connection
from typing import Any, Final

from _runner import Benchmark, Config, Contender, Measure, Target, main

from concurrency_kit import ProcessSharedDict, ThreadSharedDict

START_METHOD: Final = "forkserver"
PACKAGES = ("concurrency_kit", "shared-memory-dict", "UltraDict", "atomics")
DEADLOCK: Final = 60.0
"""Seconds before a peer that never answers counts as hung (only catches deadlocks)."""

OURS: Final = "ProcessSharedDict"
MANAGER: Final = "Manager().dict()"
SMD: Final = "shared-memory-dict"
SMD_MODULE: Final = ("shared_memory_dict",)
ULTRA: Final = "UltraDict(shared_lock=True)"
ULTRA_UNLOCKED: Final = "UltraDict(shared_lock=True), reads unlocked"
ULTRA_MODULES: Final = ("UltraDict", "atomics")
VERIFY_PASSES: Final = 8
"""Passes over every key the correctness check reads after each timed part."""
SMALL: Final = 16
LARGE: Final = 1000


def mp_context() -> Any:
    return multiprocessing.get_context(START_METHOD)


# -- the contenders' dicts -------------------------------------------------------------------


class SmdDict:
    """shared-memory-dict, opened by name in each process; writes under ``lock`` if given."""

    def __init__(self, name: str, size: int, lock: Any) -> None:
        from shared_memory_dict import SharedMemoryDict

        self.args = (name, size, lock)
        self.lock = lock
        self.d = SharedMemoryDict(name=name, size=size)

    def __getitem__(self, key: object) -> Any:
        return self.d[key]

    def __setitem__(self, key: object, value: object) -> None:
        lock = self.lock
        if lock is None:
            self.d[key] = value
        else:
            with lock:
                self.d[key] = value

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return SmdDict, self.args

    def close(self) -> None:
        self.d.shm.close()


@contextmanager
def ours(keys: list[str]) -> Iterator[Any]:
    with ProcessSharedDict() as d:
        for i, key in enumerate(keys):
            d[key] = i
        yield d


@contextmanager
def manager(keys: list[str]) -> Iterator[Any]:
    with mp_context().Manager() as m:
        d = m.dict()
        for i, key in enumerate(keys):
            d[key] = i
        yield d


@contextmanager
def smd(keys: list[str], locked: bool) -> Iterator[Any]:
    import pickle

    # The smallest block that holds the dict with room to spare: every get copies it whole.
    size = 1024
    while size < 2 * len(pickle.dumps(dict.fromkeys(keys, 10**9))):
        size *= 2
    name = f"ckbench_{os.getpid()}_{time.monotonic_ns()}"
    d = SmdDict(name, size, mp_context().Lock() if locked else None)
    try:
        for i, key in enumerate(keys):
            d[key] = i
        yield d
    finally:
        d.d.shm.close()
        d.d.shm.unlink()


@contextmanager
def ultra(keys: list[str]) -> Iterator[Any]:
    """An ``UltraDict`` with its shared lock; others open it by name (its pickle does)."""
    from UltraDict import UltraDict

    d = UltraDict(shared_lock=True, auto_unlink=False)
    try:
        for i, key in enumerate(keys):
            d[key] = i
        yield d
    finally:
        d.close(unlink=True)


# -- the work ----------------------------------------------------------------------------------


def do_gets(d: Any, keys: Sequence[str], n: int) -> None:
    count = len(keys)
    for _ in range(n // count):
        for key in keys:
            d[key]
    for key in keys[: n - (n // count) * count]:
        d[key]


def do_sets(d: Any, keys: Sequence[str], n: int) -> None:
    count = len(keys)
    for i in range(n // count):
        for key in keys:
            d[key] = i
    for key in keys[: n - (n // count) * count]:
        d[key] = -1


def do_locked_gets(d: Any, keys: Sequence[str], n: int) -> None:
    """Gets under the dict's own lock (UltraDict's way to a consistent read), written inline."""
    lock = d.lock
    count = len(keys)
    for _ in range(n // count):
        for key in keys:
            with lock:
                d[key]
    for key in keys[: n - (n // count) * count]:
        with lock:
            d[key]


def tagged_sets(d: Any, keys: Sequence[str], generation: int) -> None:
    """One pass of tagged writes: the ``j``-th key gets ``generation * len(keys) + j``."""
    base = generation * len(keys)
    for j, key in enumerate(keys):
        d[key] = base + j


WORK: dict[str, Callable[[Any, Sequence[str], int], None]] = {
    "get": do_gets,
    "set": do_sets,
    "get_locked": do_locked_gets,
}
TAGGED: Final = "set_tagged"
"""The peer operation of ``get_while_set``: :func:`tagged_sets`, pass after pass."""


def verify_reads(d: Any, keys: Sequence[str], locked: bool) -> None:
    """Read every key :data:`VERIFY_PASSES` times while the peer writes tagged values.

    Each value must be one that was set for its key (the setup's ``j`` or a tagged write's
    ``g * len(keys) + j``) and no key may go back to an older value.
    """
    count = len(keys)
    last = [-1] * count
    lock = d.lock if locked else None
    for _ in range(VERIFY_PASSES):
        for j, key in enumerate(keys):
            if lock is None:
                value = d[key]
            else:
                with lock:
                    value = d[key]
            if type(value) is not int or value % count != j or value < last[j]:
                raise AssertionError(
                    f"read {value!r} for {key!r}: never set for it, or older than {last[j]}"
                )
            last[j] = value


def peer(d: Any, keys: list[str], op: str, stop: Any, conn: Connection) -> None:
    """The peer process: on each "go", run ``op`` in a loop until ``stop`` is set."""
    generation = 0

    def tagged(d: Any, keys: Sequence[str], n: int) -> None:
        nonlocal generation
        for _ in range(max(1, n // len(keys))):
            generation += 1
            tagged_sets(d, keys, generation)

    work = tagged if op == TAGGED else WORK[op]
    try:
        conn.send("ready")
        while conn.recv() == "go":
            done = 0
            work(d, keys, len(keys))
            conn.send("running")
            while not stop.value:
                work(d, keys, len(keys))
                done += len(keys)
            conn.send(done)
    finally:
        close = getattr(d, "close", None)
        if close is not None:
            close()
        conn.close()


def expect(conn: Connection, what: str) -> Any:
    """The peer's next message; fail (rather than hang) if none comes."""
    if not conn.poll(DEADLOCK):
        raise AssertionError(f"the peer process did not answer ({what}): deadlock?")
    return conn.recv()


@contextmanager
def contender(
    make: Callable[[list[str]], Any],
    keys: list[str],
    op: str,
    n: int,
    peer_op: str | None,
) -> Iterator[Measure]:
    """Time ``n`` operations ``op`` on a dict of ``keys``; with ``peer_op``, with a peer.

    With the peer writing tagged values (:data:`TAGGED`), what this process reads is checked
    after each timed part (:func:`verify_reads`), outside the timing.
    """
    with make(keys) as d:
        work = WORK[op]
        work(d, keys, len(keys))  # warm
        if peer_op is None:

            def measure() -> float:
                start = time.perf_counter()
                work(d, keys, n)
                return time.perf_counter() - start

            yield measure
            return
        ctx = mp_context()
        stop = ctx.RawValue("b", 0)
        conn, child_conn = ctx.Pipe()
        process = ctx.Process(
            target=peer, args=(d, keys, peer_op, stop, child_conn), name="bench-peer"
        )
        process.start()
        child_conn.close()
        try:
            if expect(conn, "start") != "ready":
                raise AssertionError("the peer process did not start")

            def measure_with_peer() -> float:
                stop.value = 0
                conn.send("go")
                if expect(conn, "go") != "running":
                    raise AssertionError("the peer process is not running")
                start = time.perf_counter()
                work(d, keys, n)
                elapsed = time.perf_counter() - start
                if peer_op == TAGGED:
                    verify_reads(d, keys, locked=op == "get_locked")
                stop.value = 1
                expect(conn, "stop")  # the peer's count of operations after "running"
                return elapsed

            yield measure_with_peer
        finally:
            try:
                conn.send("exit")
            except OSError:
                pass
            process.join(DEADLOCK)
            if process.exitcode is None:
                process.kill()
                process.join()
            process.close()
            conn.close()


# -- threads: ThreadSharedDict against a dict under a threading.Lock ----------------------------

THREAD_OURS: Final = "ThreadSharedDict"
THREAD_PLAIN: Final = "dict + threading.Lock"


def locked_gets(d: dict[str, int], lock: Any, keys: Sequence[str], n: int) -> None:
    for _ in range(n // len(keys)):
        for key in keys:
            with lock:
                d[key]


def locked_sets(d: dict[str, int], lock: Any, keys: Sequence[str], n: int) -> None:
    for i in range(n // len(keys)):
        for key in keys:
            with lock:
                d[key] = i


@contextmanager
def thread_contender(op: str, keys: list[str], n: int, plain: bool) -> Iterator[Measure]:
    """Time ``n`` (rounded down to whole passes over ``keys``) gets or sets, one thread."""
    if plain:
        d = dict.fromkeys(keys, 0)
        lock = threading.Lock()
        locked = locked_gets if op == "get" else locked_sets

        def work() -> None:
            locked(d, lock, keys, n)

    else:
        shared = ThreadSharedDict(dict.fromkeys(keys, 0))
        do = WORK[op]

        def work() -> None:
            do(shared, keys, n - n % len(keys))

    def measure() -> float:
        start = time.perf_counter()
        work()
        return time.perf_counter() - start

    yield measure


def thread_benchmark(config: Config, op: str, keys: list[str]) -> Benchmark:
    n = config.size(400_000, 40_000, 4_000) // len(keys) * len(keys)
    return Benchmark(
        name=f"thread_{op}",
        title=f"{'d[key]' if op == 'get' else 'd[key] = value'} on a dict of {len(keys)} keys, "
        "threads: ThreadSharedDict against a dict under a threading.Lock",
        kind="throughput",
        unit=f"{op}s",
        reference=THREAD_PLAIN,
        contenders=(
            Contender(THREAD_OURS, partial(thread_contender, op, keys, n, False), items=n),
            Contender(THREAD_PLAIN, partial(thread_contender, op, keys, n, True), items=n),
        ),
        targets=(Target(THREAD_OURS, THREAD_PLAIN, 1 / 1.5),),
    )


# -- the benchmarks ----------------------------------------------------------------------------


def keys_of(count: int) -> list[str]:
    return [f"key-{i}" for i in range(count)]


def contenders(
    config: Config,
    keys: list[str],
    op: str,
    peer_op: str | None,
    *,
    with_smd: bool = True,
    with_ultra: bool = False,
) -> tuple[Contender, ...]:
    n_ours = config.size(200_000, 20_000, 2_000)
    n_manager = config.size(4_000, 1_000, 100)
    n_smd = config.size(40_000, 4_000, 400)
    n_ultra = config.size(20_000, 2_000, 200)
    locked = peer_op == "set" or (peer_op is not None and op == "set")
    result = [
        Contender(OURS, partial(contender, ours, keys, op, n_ours, peer_op), items=n_ours),
        Contender(
            MANAGER, partial(contender, manager, keys, op, n_manager, peer_op), items=n_manager
        ),
    ]
    if with_ultra:
        result.append(
            Contender(
                ULTRA,
                partial(contender, ultra, keys, "get_locked", n_ultra, peer_op),
                items=n_ultra,
                requires=ULTRA_MODULES,
                note="every read under its shared lock (with d.lock: d[key]), as its docs say "
                "for consistent reads",
            )
        )
        result.append(
            Contender(
                ULTRA_UNLOCKED,
                partial(contender, ultra, keys, op, n_ultra, peer_op),
                items=n_ultra,
                requires=ULTRA_MODULES,
                note="reads without its lock (d[key]), writes under it: the issue's 0.19x",
            )
        )
    if with_smd:
        note = (
            "every write under a multiprocessing lock shared by both processes (its own "
            "lock does not cover its read-modify-write)"
            if locked
            else "no lock (its default)"
        )
        result.append(
            Contender(
                SMD,
                partial(contender, partial(smd, locked=locked), keys, op, n_smd, peer_op),
                items=n_smd,
                requires=SMD_MODULE,
                note=note,
            )
        )
    return tuple(result)


def targets(bound: float) -> tuple[Target, ...]:
    return (Target(OURS, MANAGER, bound), Target(OURS, SMD, 1.0))


def build(config: Config) -> list[Benchmark]:
    """Every benchmark of this script, sized for ``config``."""
    small = keys_of(SMALL)
    large = keys_of(LARGE)
    return [
        Benchmark(
            name="get",
            title=f"d[key] on a dict of {SMALL} keys while another process also reads it",
            kind="throughput",
            unit="gets",
            reference=MANAGER,
            contenders=contenders(config, small, "get", "get"),
            targets=targets(20.0),
        ),
        Benchmark(
            name="set",
            title=f"d[key] = value on a dict of {SMALL} keys while another process also writes",
            kind="throughput",
            unit="sets",
            reference=MANAGER,
            contenders=contenders(config, small, "set", "set"),
            targets=targets(10.0),
        ),
        Benchmark(
            name="get_1proc",
            title=f"d[key] on a dict of {SMALL} keys, one process",
            kind="throughput",
            unit="gets",
            reference=MANAGER,
            contenders=contenders(config, small, "get", None),
        ),
        Benchmark(
            name="set_1proc",
            title=f"d[key] = value on a dict of {SMALL} keys, one process",
            kind="throughput",
            unit="sets",
            reference=MANAGER,
            contenders=contenders(config, small, "set", None),
        ),
        *(
            Benchmark(
                name="get_while_set" + ("" if keys is small else f"_{len(keys)}"),
                title=f"d[key] on a dict of {len(keys)} keys while another process writes to it "
                "(reads checked)",
                kind="throughput",
                unit="gets",
                reference=MANAGER,
                contenders=contenders(config, keys, "get", TAGGED, with_smd=False, with_ultra=True),
                targets=(Target(OURS, ULTRA, 1.0), Target(OURS, ULTRA_UNLOCKED, 1.0)),
            )
            for keys in (small, large)
        ),
        Benchmark(
            name="get_1000",
            title=f"d[key] on a dict of {LARGE} keys while another process also reads it",
            kind="throughput",
            unit="gets",
            reference=MANAGER,
            contenders=contenders(config, large, "get", "get"),
        ),
        thread_benchmark(config, "get", small),
        thread_benchmark(config, "set", small),
    ]


if __name__ == "__main__":
    sys.exit(main(build, description=__doc__ or "", packages=PACKAGES))

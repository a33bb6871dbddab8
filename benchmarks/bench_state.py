"""Shared counters and arrays against the standard library: the targets of the shared-state issue.

Run ``python benchmarks/bench_state.py --help`` for the options and see ``benchmarks/README.md``
for how to read the tables. Process contenders use the ``forkserver`` start method.

Benchmarks (``--only NAME``):

* ``process_counter_add``: ``counter.add(1)`` in a loop in one process (throughput),
  ``ProcessSharedCounter`` against a ``multiprocessing.Value('q')`` incremented under its
  ``get_lock()`` (``with v.get_lock(): v.value += 1``), the standard way to count across
  processes. Target (issue 5): ours >= 1.0x.
* ``process_counter_add_2procs``: the same with two processes adding to one counter at the
  same time (started once, lined up on a barrier each round); adds per second of both
  together, from the first worker's start to the last one's end. The final total is checked
  after each round, outside the timing. Target (issue 16): ours >= 10x the
  ``multiprocessing.Value`` under its lock (one contended lock against an atomic add).
* ``thread_counter_add``: ``counter.add(1)`` in one thread (latency): ``ThreadSharedCounter``
  against an ``int`` incremented under a :class:`threading.Lock`. The ``loop only`` row is
  the loop with an empty body: its cost is in every other row.
* ``array_bulk_write_list``, ``array_bulk_write_buffer``: ``arr[:] = data`` for a whole
  ``'i'`` array, from a list of ints and from an ``array.array('i')`` (items per second):
  ``ProcessSharedArray``, ``ThreadSharedArray`` and ``multiprocessing.Array('i', n)``, whose
  slice assignment also holds its lock.
"""

from __future__ import annotations

import array
import multiprocessing
import sys
import threading
import time
from collections.abc import Callable, Iterator
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

from concurrency_kit.state import (
    ProcessSharedArray,
    ProcessSharedCounter,
    ThreadSharedArray,
    ThreadSharedCounter,
)

START_METHOD: Final = "forkserver"
PACKAGES = ("concurrency_kit", "numpy")
DEADLOCK: Final = 60.0
"""Seconds before a worker that never arrives counts as hung (only catches deadlocks)."""


def mp_context() -> Any:
    return multiprocessing.get_context(START_METHOD)


def close(container: Any) -> None:
    """Release what a container holds in this process (ours); nothing for the stdlib's."""
    closer = getattr(container, "close", None)
    if closer is not None:
        closer()


# -- counters --------------------------------------------------------------------------------


class MpValueCounter:
    """A ``multiprocessing.Value('q')`` used the standard way: ``+=`` under ``get_lock()``."""

    def __init__(self) -> None:
        self.value = mp_context().Value("q", 0)

    def add_n(self, n: int) -> None:
        value = self.value
        lock = value.get_lock()
        for _ in repeat(None, n):
            with lock:
                value.value += 1

    def get(self) -> int:
        return int(self.value.value)


class OursCounter:
    """A ``ProcessSharedCounter`` (or ``ThreadSharedCounter``) driven by the same loop."""

    def __init__(self, counter: Any) -> None:
        self.counter = counter

    def add_n(self, n: int) -> None:
        add = self.counter.add
        for _ in repeat(None, n):
            add()

    def get(self) -> int:
        return int(self.counter.get())

    def close(self) -> None:
        self.counter.close()


class IntUnderLock:
    """An ``int`` incremented under a :class:`threading.Lock`: the thread baseline."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value = 0

    def add_n(self, n: int) -> None:
        lock = self.lock
        for _ in repeat(None, n):
            with lock:
                self.value += 1

    def get(self) -> int:
        return self.value


def mp_value() -> MpValueCounter:
    return MpValueCounter()


def process_counter() -> OursCounter:
    return OursCounter(ProcessSharedCounter())


def thread_counter() -> OursCounter:
    return OursCounter(ThreadSharedCounter())


@contextmanager
def adds_contender(make: Callable[[], Any], n: int, per_add: bool) -> Iterator[Measure]:
    """Time ``n`` adds of 1 in this thread; the seconds of one add (latency) or of all."""
    counter = make()

    def measure() -> float:
        before = counter.get()
        start = time.perf_counter()
        counter.add_n(n)
        elapsed = time.perf_counter() - start
        if counter.get() != before + n:  # checked outside the timed loop
            raise AssertionError(f"lost adds: {before} + {n} != {counter.get()}")
        return elapsed / n if per_add else elapsed

    try:
        yield measure
    finally:
        close(counter)


def adder_process(counter: Any, n: int, start: Any, stop: Any, conn: Connection) -> None:
    """A worker of the two-process benchmark: ``n`` adds per round, after a start barrier.

    It reports when its adds began and ended (:func:`time.perf_counter` is the system-wide
    monotonic clock on Linux): the parent may be scheduled late after the barrier opens, on a
    busy machine, so it cannot time the round itself.
    """
    try:
        while True:
            start.wait(DEADLOCK)
            if stop.is_set():
                return
            began = time.perf_counter()
            counter.add_n(n)
            conn.send((began, time.perf_counter()))
    finally:
        conn.close()
        close(counter)


@contextmanager
def parallel_adds_contender(make: Callable[[], Any], n: int, workers: int) -> Iterator[Measure]:
    """``workers`` processes, started once; each round times ``n`` adds in each of them.

    A round lasts from the first worker's start to the last worker's end.
    """
    counter = make()
    ctx = mp_context()
    start, stop = ctx.Barrier(workers + 1), ctx.Event()
    pipes = [ctx.Pipe(duplex=False) for _ in range(workers)]
    procs = [
        ctx.Process(
            target=adder_process, args=(counter, n, start, stop, send), name=f"bench-adder-{i}"
        )
        for i, (_, send) in enumerate(pipes)
    ]
    for proc in procs:
        proc.start()
    for _, send in pipes:
        send.close()

    def measure() -> float:
        before = counter.get()
        start.wait(DEADLOCK)
        spans = []
        for recv, _ in pipes:
            if not recv.poll(DEADLOCK):
                raise AssertionError("a worker never finished its adds (deadlock?)")
            spans.append(recv.recv())
        if counter.get() != before + workers * n:  # checked outside the timed work
            raise AssertionError(f"lost adds: {before} + {workers * n} != {counter.get()}")
        return max(end for _, end in spans) - min(began for began, _ in spans)

    try:
        yield measure
    finally:
        stop_workers(stop, start, procs, DEADLOCK)
        for recv, _ in pipes:
            recv.close()
        close(counter)


# -- arrays ----------------------------------------------------------------------------------


def mp_array(n: int) -> Any:
    return mp_context().Array("i", n)  # lock=True: slice assignment holds its lock


@contextmanager
def bulk_write_contender(make: Callable[[int], Any], n: int, typed: bool) -> Iterator[Measure]:
    """Time ``arr[:] = data`` for the whole array, from a list or from ``array.array('i')``."""
    arr = make(n)
    data: Any = array.array("i", range(n)) if typed else list(range(n))

    def measure() -> float:
        arr[:] = [0] * n if not typed else array.array("i", bytes(4 * n))
        start = time.perf_counter()
        arr[:] = data
        elapsed = time.perf_counter() - start
        if arr[n - 1] != n - 1:  # checked outside the timed write
            raise AssertionError("the write did not land")
        return elapsed

    try:
        yield measure
    finally:
        close(arr)


# -- the benchmarks ---------------------------------------------------------------------------


def counter_benchmarks(config: Config) -> list[Benchmark]:
    n = config.size(200_000, 20_000, 2_000)
    n_parallel = config.size(1_000_000, 100_000, 1_000)  # rounds long beside start-up skew
    loop_note = "the loop's own cost, included in every row (not subtracted)"
    return [
        Benchmark(
            name="process_counter_add",
            title=f"counter.add(1) in one process, {n} adds per round",
            kind="throughput",
            unit="adds",
            reference="multiprocessing.Value",
            contenders=(
                Contender(
                    "multiprocessing.Value",
                    partial(adds_contender, mp_value, n, False),
                    items=n,
                    note="with v.get_lock(): v.value += 1",
                ),
                Contender(
                    "ProcessSharedCounter",
                    partial(adds_contender, process_counter, n, False),
                    items=n,
                ),
            ),
            targets=(Target("ProcessSharedCounter", "multiprocessing.Value", 1.0),),
        ),
        Benchmark(
            name="process_counter_add_2procs",
            title=f"two processes add 1 to one counter at once, {n_parallel} adds each per round",
            kind="throughput",
            unit="adds",
            reference="multiprocessing.Value",
            contenders=(
                Contender(
                    "multiprocessing.Value",
                    partial(parallel_adds_contender, mp_value, n_parallel, 2),
                    items=2 * n_parallel,
                    note="with v.get_lock(): v.value += 1",
                ),
                Contender(
                    "ProcessSharedCounter",
                    partial(parallel_adds_contender, process_counter, n_parallel, 2),
                    items=2 * n_parallel,
                ),
            ),
            targets=(Target("ProcessSharedCounter", "multiprocessing.Value", 10.0),),
        ),
        Benchmark(
            name="thread_counter_add",
            title=f"counter.add(1) in one thread, {n} adds per round",
            kind="latency",
            unit="ns",
            reference="int + threading.Lock",
            contenders=(
                Contender("loop only", partial(loop_only, n), note=loop_note),
                Contender(
                    "int + threading.Lock",
                    partial(adds_contender, IntUnderLock, n, True),
                    note="with lock: value += 1",
                ),
                Contender("ThreadSharedCounter", partial(adds_contender, thread_counter, n, True)),
            ),
        ),
    ]


def array_benchmarks(config: Config) -> list[Benchmark]:
    n = config.size(1_000_000, 100_000, 1_000)
    rows = (
        ("multiprocessing.Array", mp_array),
        ("ProcessSharedArray", partial(ProcessSharedArray, "i")),
        ("ThreadSharedArray", partial(ThreadSharedArray, "i")),
    )
    return [
        Benchmark(
            name=f"array_bulk_write_{source}",
            title=f"arr[:] = data for {n} 'i' items, data {what}",
            kind="throughput",
            unit="items",
            reference="multiprocessing.Array",
            contenders=tuple(
                Contender(name, partial(bulk_write_contender, make, n, source == "buffer"), items=n)
                for name, make in rows
            ),
        )
        for source, what in (("list", "a list of ints"), ("buffer", "an array.array('i')"))
    ]


def build(config: Config) -> list[Benchmark]:
    """Every benchmark of this script, sized for ``config``."""
    return [*counter_benchmarks(config), *array_benchmarks(config)]


if __name__ == "__main__":
    sys.exit(main(build, description=__doc__ or "", packages=PACKAGES))

"""advise(): run the user's function under both pools, and serially, and say which model wins.

The table's rows say what tends to matter; this measures it for one workload::

    serial:   [fn(x) for x in inputs]         (also its CPU time: CPU-bound or waiting?)
    threads:  ThreadPool(workers).map(fn, inputs)    warm pool, best of ROUNDS
    processes: ProcessPool(workers).map(fn, inputs)  warm pool, best of ROUNDS; start-up apart

The pool runs alternate, so that a burst of other load on the machine slows one run of each
model rather than all the runs of one.

Processes are advised only when they beat threads clearly (by :data:`PROCESS_MARGIN`): a
thread is cheaper to start, to feed and to keep (the Creation Time, Communication and
Overhead rows), so a tie goes to threads.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from concurrency_kit.models import PROCESS, THREAD, Model
from concurrency_kit.pools.process import ProcessPool
from concurrency_kit.pools.thread import ThreadPool

__all__ = ["PROCESS_MARGIN", "ROUNDS", "Advice", "advise"]

PROCESS_MARGIN = 0.8
"""Processes are advised when their time is below this fraction of the threads' time."""
ROUNDS = 2
"""Runs of each pool, interleaved; the best of each counts (other load only slows a run)."""


@attrs.frozen
class Advice:
    """What :func:`advise` measured and concluded.

    Attributes:
        model: :data:`~concurrency_kit.PROCESS` or :data:`~concurrency_kit.THREAD`.
        workers: the number of workers of each pool.
        items: how many inputs were run.
        serial_seconds: the plain loop's wall time.
        serial_cpu_fraction: its CPU time over its wall time (near 1: CPU-bound; near 0: the
            function mostly waits).
        thread_seconds: ``ThreadPool.map`` on a warm pool (the best of two runs).
        process_seconds: ``ProcessPool.map`` on a warm pool (the best of two runs).
        process_startup_seconds: starting the process pool and its workers (paid once).
        reasons: the conclusion in plain words, each naming the table rows it rests on.
        rows: the keys of those rows.
    """

    model: Model
    workers: int
    items: int
    serial_seconds: float
    serial_cpu_fraction: float
    thread_seconds: float
    process_seconds: float
    process_startup_seconds: float
    reasons: tuple[str, ...]
    rows: tuple[str, ...]

    @property
    def thread_speedup(self) -> float:
        """Serial time over the thread pool's time."""
        return self.serial_seconds / self.thread_seconds

    @property
    def process_speedup(self) -> float:
        """Serial time over the process pool's time."""
        return self.serial_seconds / self.process_seconds


def _noop() -> None:
    """A task that warms a pool's workers up."""


def _time_map(
    pool: ThreadPool | ProcessPool, fn: Callable[[Any], object], items: list[Any]
) -> float:
    start = time.perf_counter()
    list(pool.map(fn, items, chunksize=1))
    return time.perf_counter() - start


def advise(
    fn: Callable[[Any], object], inputs: Iterable[Any], *, workers: int | None = None
) -> Advice:
    """Run ``fn`` over ``inputs`` serially, on a :class:`~concurrency_kit.ThreadPool` and on a
    :class:`~concurrency_kit.ProcessPool`, and advise a model.

    ``fn`` must be picklable for the process pool (a module-level function; cloudpickle also
    takes lambdas and functions defined in ``__main__``), and ``inputs`` should take at least a
    few tenths of a second serially for the figures to mean much. Each run calls ``fn`` on every
    input, so ``fn`` runs five times per input in all (once serially, twice in each pool).

    Args:
        fn: the function to run, one call per input.
        inputs: its inputs (read once, into a list).
        workers: workers per pool (default: the number of CPUs).

    Raises:
        ValueError: ``inputs`` is empty, or ``workers`` is not a positive int.
        Exception: whatever ``fn`` raises, from the serial run.
    """
    items = list(inputs)
    if not items:
        raise ValueError("advise() needs at least one input")
    if workers is None:
        workers = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")

    wall, cpu = time.perf_counter(), time.process_time()
    for item in items:
        fn(item)
    serial = time.perf_counter() - wall
    cpu_fraction = min(1.0, (time.process_time() - cpu) / serial) if serial > 0 else 0.0

    start = time.perf_counter()
    with ThreadPool(workers) as threads, ProcessPool(workers) as processes:
        for future in [processes.submit(_noop) for _ in range(workers)]:
            future.result()
        startup = time.perf_counter() - start
        for future in [threads.submit(_noop) for _ in range(workers)]:
            future.result()
        thread_times, process_times = [], []
        for _ in range(ROUNDS):  # interleaved, so that a burst of other load hits both
            thread_times.append(_time_map(threads, fn, items))
            process_times.append(_time_map(processes, fn, items))
    thread_time, process_time = min(thread_times), min(process_times)
    model = PROCESS if process_time < PROCESS_MARGIN * thread_time else THREAD
    reasons, rows = _reasons(model, serial, cpu_fraction, thread_time, process_time, startup)
    return Advice(
        model=model,
        workers=workers,
        items=len(items),
        serial_seconds=serial,
        serial_cpu_fraction=cpu_fraction,
        thread_seconds=thread_time,
        process_seconds=process_time,
        process_startup_seconds=startup,
        reasons=reasons,
        rows=rows,
    )


def _reasons(
    model: Model,
    serial: float,
    cpu_fraction: float,
    thread_time: float,
    process_time: float,
    startup: float,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The conclusion in plain words, and the rows it rests on."""
    reasons = []
    bound = (
        "CPU-bound: it kept a CPU busy" if cpu_fraction >= 0.5 else "mostly waiting: it used a CPU"
    )
    reasons.append(
        f"Run serially the function is {bound} {cpu_fraction:.0%} of its {serial:.3g} s "
        "(Use Cases)."
    )
    reasons.append(
        f"Threads ran it {serial / thread_time:.2g}x as fast as the serial loop, processes "
        f"{serial / process_time:.2g}x (warm pools)."
    )
    if model is PROCESS:
        reasons.append(
            f"Processes beat threads by {thread_time / process_time:.2g}x: pure-Python work runs "
            "one thread at a time under the GIL, while each process has an interpreter of its own "
            "(Definition, Use Cases)."
        )
    else:
        reasons.append(
            "Threads are as fast or faster "
            f"({process_time / thread_time:.2g}x the processes' speed), and a thread is cheaper "
            "to start, to feed and to keep: no pickling, no second interpreter (Creation Time, "
            "Communication, Overhead)."
        )
    reasons.append(f"Starting the process pool took {startup:.3g} s, paid once (Creation Time).")
    if max(serial / thread_time, serial / process_time) < 1.1:
        reasons.append(
            "Neither pool made it faster than the plain loop: the work per call is too small "
            "for the cost of a task, or the inputs too few; try larger pieces of work."
        )
    rows = ("use_cases", "definition", "creation_time", "communication", "overhead")
    return tuple(reasons), rows

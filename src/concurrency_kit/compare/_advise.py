"""advise(): run the user's function under both pools, and serially, and say which model wins.

The table's rows say what tends to matter; this measures it for one workload::

    serial:   [fn(x) for x in inputs]         (also its CPU time: CPU-bound or waiting?)
    threads:  ThreadPool(workers).map(fn, inputs)    warm pool, best of ROUNDS
    processes: ProcessPool(workers).map(fn, inputs)  warm pool, best of ROUNDS; start-up apart

The pool runs alternate, so that a burst of other load on the machine slows one run of each
model rather than all the runs of one. Measuring (:func:`measure`) and concluding
(:func:`decide`, a pure function of the :class:`Timings`) are apart, so that every decision can
be tested on made-up figures, and a loaded machine changes the figures, never the logic.

Processes are advised only when they beat threads clearly (by :data:`PROCESS_MARGIN`): a
thread is cheaper to start, to feed and to keep (the Creation Time, Communication and
Overhead rows), so a tie goes to threads.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from concurrency_kit.models import PROCESS, THREAD, Model
from concurrency_kit.pools import ProcessPool, ThreadPool

__all__ = ["PROCESS_MARGIN", "ROUNDS", "Advice", "Timings", "advise", "decide", "measure"]

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
        """Serial time over the thread pool's time (``inf`` if it took no measurable time)."""
        return _ratio(self.serial_seconds, self.thread_seconds)

    @property
    def process_speedup(self) -> float:
        """Serial time over the process pool's time (``inf`` if it took no measurable time)."""
        return _ratio(self.serial_seconds, self.process_seconds)


@attrs.frozen
class Timings:
    """What :func:`measure` observed: the figures :func:`decide` concludes from.

    Attributes:
        serial_seconds: the plain loop's wall time.
        serial_cpu_seconds: the CPU time the plain loop used.
        thread_seconds: ``ThreadPool.map`` on a warm pool (the best of :data:`ROUNDS` runs).
        process_seconds: ``ProcessPool.map`` on a warm pool (the best of :data:`ROUNDS` runs).
        process_startup_seconds: starting the process pool and its workers.
    """

    serial_seconds: float
    serial_cpu_seconds: float
    thread_seconds: float
    process_seconds: float
    process_startup_seconds: float


def _ratio(a: float, b: float) -> float:
    """``a / b`` for durations; a duration too short for the clock (0) gives ``inf`` (or 1)."""
    if b > 0:
        return a / b
    return 1.0 if a == 0 else math.inf


def _noop() -> None:
    """A task that warms a pool's workers up."""


def _time_map(
    pool: ThreadPool | ProcessPool, fn: Callable[[Any], object], items: list[Any]
) -> float:
    start = time.perf_counter()
    list(pool.map(fn, items, chunksize=1))
    return time.perf_counter() - start


def _check_workers(workers: int | None) -> int:
    if workers is None:
        return os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    return workers


def advise(
    fn: Callable[[Any], object], inputs: Iterable[Any], *, workers: int | None = None
) -> Advice:
    """Run ``fn`` over ``inputs`` serially, on a :class:`~concurrency_kit.ThreadPool` and on a
    :class:`~concurrency_kit.ProcessPool`, and advise a model.

    ``fn`` must be picklable for the process pool (a module-level function; cloudpickle also
    takes lambdas and functions defined in ``__main__``), and ``inputs`` should take at least a
    few tenths of a second serially for the figures to mean much. Each run calls ``fn`` on every
    input, so ``fn`` runs five times per input in all (once serially, twice in each pool).

    The advice is only as good as the figures: other load on the machine while it measures
    can change the verdict of a close call (the reasons give the figures).

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
    workers = _check_workers(workers)
    return decide(measure(fn, items, workers=workers), workers=workers, items=len(items))


def measure(fn: Callable[[Any], object], items: list[Any], *, workers: int) -> Timings:
    """Time ``fn`` over ``items``: serially, then on warm thread and process pools, interleaved.

    Raises:
        Exception: whatever ``fn`` raises, from the serial run.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    for item in items:
        fn(item)
    serial = time.perf_counter() - wall
    serial_cpu = time.process_time() - cpu

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
    return Timings(
        serial_seconds=serial,
        serial_cpu_seconds=serial_cpu,
        thread_seconds=min(thread_times),
        process_seconds=min(process_times),
        process_startup_seconds=startup,
    )


def decide(timings: Timings, *, workers: int, items: int) -> Advice:
    """Conclude from ``timings`` (a pure function: no clock, no pool): the model and why.

    Processes are advised when their time is below :data:`PROCESS_MARGIN` of the threads';
    otherwise (a tie included) threads, which are cheaper to start, feed and keep.

    Args:
        timings: the figures, measured by :func:`measure` or made up.
        workers: the number of workers of each pool, for the record.
        items: the number of inputs, for the record.

    Raises:
        ValueError: a figure is negative or not finite.
    """
    for field in attrs.fields(Timings):
        value = getattr(timings, field.name)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{field.name} must be a finite number >= 0, got {value!r}")
    serial = timings.serial_seconds
    cpu_fraction = min(1.0, timings.serial_cpu_seconds / serial) if serial > 0 else 0.0
    thread_time, process_time = timings.thread_seconds, timings.process_seconds
    model = PROCESS if process_time < PROCESS_MARGIN * thread_time else THREAD
    reasons, rows = _reasons(
        model, serial, cpu_fraction, thread_time, process_time, timings.process_startup_seconds
    )
    return Advice(
        model=model,
        workers=workers,
        items=items,
        serial_seconds=serial,
        serial_cpu_fraction=cpu_fraction,
        thread_seconds=thread_time,
        process_seconds=process_time,
        process_startup_seconds=timings.process_startup_seconds,
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
    thread_speedup, process_speedup = _ratio(serial, thread_time), _ratio(serial, process_time)
    reasons = []
    bound = (
        "CPU-bound: it kept a CPU busy" if cpu_fraction >= 0.5 else "mostly waiting: it used a CPU"
    )
    reasons.append(
        f"Run serially the function is {bound} {cpu_fraction:.0%} of its {serial:.3g} s "
        "(Use Cases)."
    )
    reasons.append(
        f"Threads ran it {thread_speedup:.2g}x as fast as the serial loop, processes "
        f"{process_speedup:.2g}x (warm pools)."
    )
    if model is PROCESS:
        reasons.append(
            f"Processes beat threads by {_ratio(thread_time, process_time):.2g}x: pure-Python "
            "work runs one thread at a time under the GIL, while each process has an interpreter "
            "of its own (Definition, Use Cases)."
        )
    elif process_time < thread_time:
        reasons.append(
            f"Processes were only {_ratio(thread_time, process_time):.2g}x as fast as threads, "
            f"short of the {1 / PROCESS_MARGIN:.2g}x it takes to advise them: a thread is cheaper "
            "to start, to feed and to keep: no pickling, no second interpreter (Creation Time, "
            "Communication, Overhead)."
        )
    else:
        reasons.append(
            "Threads are as fast or faster "
            f"({_ratio(process_time, thread_time):.2g}x the processes' speed), and a thread is "
            "cheaper to start, to feed and to keep: no pickling, no second interpreter (Creation "
            "Time, Communication, Overhead)."
        )
    reasons.append(f"Starting the process pool took {startup:.3g} s, paid once (Creation Time).")
    if max(thread_speedup, process_speedup) < 1.1:
        reasons.append(
            "Neither pool made it faster than the plain loop: the work per call is too small "
            "for the cost of a task, or the inputs too few; try larger pieces of work."
        )
    rows = ("use_cases", "definition", "creation_time", "communication", "overhead")
    return tuple(reasons), rows

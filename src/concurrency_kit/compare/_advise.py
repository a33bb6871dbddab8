"""advise(): run the user's function serially and under each pool, and say what to use.

The table's rows say what tends to matter; this measures it for one workload::

    rounds (interleaved, after a warm-up round; medians count):
        serial:    [fn(x) for x in inputs]              wall time, and the process's CPU time
        threads:   ThreadPool(workers).map(fn, inputs)   wall time, and the process's CPU time
        processes: ProcessPool(workers).map(fn, inputs)  wall time (start-up measured apart)
        interpreters: InterpreterPool(workers).map(...)  wall time (Python 3.14+; start-up apart)

The three run in a rotating order, round after round, so that a burst of other load on the
machine slows one run of each rather than all the runs of one. Measuring (:func:`measure`) and
concluding (:func:`decide`, a pure function of the :class:`Timings`) are apart, so that every
decision is tested on made-up figures, and a loaded machine changes the figures, never the
logic.

The CPU figures tell what kind of work it is. CPU time over wall time is summed over every
thread of the process: serially, near 1 means CPU-bound and near 0 mostly waiting; on the
thread pool, well above 1 means the threads computed *at once*, so the function releases the
GIL (hashlib and zlib over large buffers, most NumPy), and near 1 means they took turns.

What it advises (never a model slower than the plain loop):

* a pool is a candidate only if it beats the loop by :data:`MIN_SPEEDUP` and its speed-up is
  possible (at most ``min(workers, usable cores)`` for CPU-bound work, ``workers`` for waiting;
  above that it is a measurement error, and said so);
* no candidate: "run it serially", or "batch more work per task" when each call is so short
  (under :data:`SHORT_CALL` seconds) that a task's own cost eats the gain;
* both: processes when they beat threads clearly (by :data:`PROCESS_MARGIN`), else threads,
  which are cheaper to start, to feed and to keep (the Creation Time, Communication and
  Overhead rows);
* interpreters (Python 3.14+) take the processes' place when they were faster than processes by
  :data:`INTERPRETER_MARGIN` (a tie goes to processes, which keep a crash to one worker: the
  Crash Impact row). When ``fn`` cannot run in a subinterpreter (a module it needs does not load
  there, as numpy's does not yet), the advice says so, with the error, and leaves them out.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

import attrs

from concurrency_kit.compare._measure import (
    CEILING_TOLERANCE,
    LoadMeter,
    machine_busy,
    usable_cores,
)
from concurrency_kit.compare.probes._shared import interpreters_missing
from concurrency_kit.models import INTERPRETER, PROCESS, THREAD, InterpreterModel, Model
from concurrency_kit.pools import InterpreterPool, ProcessPool, ThreadPool

__all__ = [
    "INTERPRETER_MARGIN",
    "MIN_SPEEDUP",
    "PROCESS_MARGIN",
    "ROUNDS",
    "SHORT_CALL",
    "Advice",
    "Recommendation",
    "Timings",
    "advise",
    "decide",
    "measure",
]

PROCESS_MARGIN = 0.8
"""Processes are advised over threads when their time is below this fraction of the threads'."""
INTERPRETER_MARGIN = 0.9
"""Interpreters are advised over processes when their time is below this fraction of the
processes' (a tie goes to processes: a crash there costs one worker, not the program)."""
MIN_SPEEDUP = 1.2
"""A pool must run the work this many times as fast as the plain loop to be advised at all."""
SHORT_CALL = 2e-3
"""Calls shorter than this (seconds) are too small for a task each: batch them."""
CPU_BOUND = 0.3
"""Serially, a process CPU time over wall time at or above this is CPU-bound work (a loaded
machine lowers it: a CPU-bound call also waits for a core there); below, it mostly waits."""
GIL_RELEASED = 1.3
"""Threads that kept more than this many CPUs busy at once computed in parallel."""
ROUNDS = 5
"""Interleaved rounds of serial, threads and processes (after a warm-up round)."""

Recommendation = Literal["processes", "threads", "interpreters", "serial", "batch"]


@attrs.frozen
class Advice:
    """What :func:`advise` measured and concluded.

    Attributes:
        recommendation: ``"processes"``, ``"threads"``, ``"interpreters"``, ``"serial"`` (no
            pool beat the plain loop) or ``"batch"`` (each call is too short for a task of its
            own: give each task more work, such as ``map(..., chunksize=...)``, and measure
            again).
        model: :data:`~concurrency_kit.PROCESS`, :data:`~concurrency_kit.THREAD` or
            :data:`~concurrency_kit.INTERPRETER` for a pool recommendation; ``None`` for
            ``"serial"`` and ``"batch"``.
        workers: the number of workers of each pool.
        items: how many inputs were run.
        serial_seconds: the plain loop's wall time (median of the rounds).
        serial_cpu_fraction: the process's CPU time over wall time, serially (near 1:
            CPU-bound; near 0: the function mostly waits).
        thread_cpu_cores: the process's CPU time over wall time on the thread pool: how many
            CPUs the threads kept busy at once (above about 1.3: the function releases the GIL);
            ``None`` if not measured.
        thread_seconds: ``ThreadPool.map`` on a warm pool (median of the rounds).
        process_seconds: ``ProcessPool.map`` on a warm pool (median of the rounds).
        process_startup_seconds: starting the process pool and its workers (paid once).
        interpreter_seconds: ``InterpreterPool.map`` on a warm pool (median of the rounds);
            ``None`` when interpreters were not tried (see ``interpreters_left_out``).
        interpreter_startup_seconds: starting the interpreter pool and its workers; ``None``
            when not tried.
        interpreters_left_out: why interpreters were not tried ("" when they were): the
            Python is older than 3.14, or ``fn`` failed in a subinterpreter (the error).
        cores: the cores usable by this process when it measured.
        reasons: the conclusion in plain words, each naming the table rows it rests on.
        warnings: measurement errors and doubts (a speed-up the cores cannot give, ...).
        rows: the keys of those rows.
    """

    recommendation: Literal["processes", "threads", "interpreters", "serial", "batch"]
    model: Model | InterpreterModel | None
    workers: int
    items: int
    serial_seconds: float
    serial_cpu_fraction: float
    thread_cpu_cores: float | None
    thread_seconds: float
    process_seconds: float
    process_startup_seconds: float
    cores: int
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]
    rows: tuple[str, ...]
    interpreter_seconds: float | None = None
    interpreter_startup_seconds: float | None = None
    interpreters_left_out: str = ""

    @property
    def thread_speedup(self) -> float:
        """Serial time over the thread pool's time (``inf`` if it took no measurable time)."""
        return _ratio(self.serial_seconds, self.thread_seconds)

    @property
    def process_speedup(self) -> float:
        """Serial time over the process pool's time (``inf`` if it took no measurable time)."""
        return _ratio(self.serial_seconds, self.process_seconds)

    @property
    def interpreter_speedup(self) -> float | None:
        """Serial time over the interpreter pool's time (``None``: interpreters not tried)."""
        if self.interpreter_seconds is None:
            return None
        return _ratio(self.serial_seconds, self.interpreter_seconds)

    @property
    def headline(self) -> str:
        """The advice as a short phrase, such as ``"use processes"`` or ``"run it serially"``."""
        return {
            "processes": "use processes",
            "threads": "use threads",
            "interpreters": "use interpreters",
            "serial": "run it serially",
            "batch": "batch more work per task",
        }[self.recommendation]


@attrs.frozen
class Timings:
    """What :func:`measure` observed: the figures :func:`decide` concludes from.

    Attributes:
        serial_seconds: the plain loop's wall time.
        serial_cpu_seconds: the CPU time the process used meanwhile.
        thread_seconds: ``ThreadPool.map`` on a warm pool.
        process_seconds: ``ProcessPool.map`` on a warm pool.
        process_startup_seconds: starting the process pool and its workers.
        thread_cpu_seconds: the CPU time the process used during ``thread_seconds`` (all its
            threads); ``None`` if not measured.
        cores: the cores usable by this process (0: unknown, taken as the worker count).
        busy: why the machine was too busy for steady figures while measuring, or ``None``.
        interpreter_seconds: ``InterpreterPool.map`` on a warm pool; ``None``: not tried.
        interpreter_startup_seconds: starting the interpreter pool and its workers.
        interpreters_left_out: why interpreters were not tried ("" when they were).
    """

    serial_seconds: float
    serial_cpu_seconds: float
    thread_seconds: float
    process_seconds: float
    process_startup_seconds: float
    thread_cpu_seconds: float | None = None
    cores: int = 0
    busy: str | None = None
    interpreter_seconds: float | None = None
    interpreter_startup_seconds: float | None = None
    interpreters_left_out: str = ""


def _ratio(a: float, b: float) -> float:
    """``a / b`` for durations; a duration too short for the clock (0) gives ``inf`` (or 1)."""
    if b > 0:
        return a / b
    return 1.0 if a == 0 else math.inf


def _noop() -> None:
    """A task that warms a pool's workers up."""


def _time_map(
    pool: ThreadPool | ProcessPool | InterpreterPool, fn: Callable[[Any], object], items: list[Any]
) -> tuple[float, float]:
    """Wall and process CPU seconds of ``pool.map(fn, items)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    list(pool.map(fn, items, chunksize=1))
    return time.perf_counter() - wall, time.process_time() - cpu


def _time_serial(fn: Callable[[Any], object], items: list[Any]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for item in items:
        fn(item)
    return time.perf_counter() - wall, time.process_time() - cpu


def _check_workers(workers: int | None) -> int:
    if workers is None:
        return os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    return workers


def advise(
    fn: Callable[[Any], object], inputs: Iterable[Any], *, workers: int | None = None
) -> Advice:
    """Run ``fn`` over ``inputs`` serially, on a :class:`~concurrency_kit.ThreadPool`, on a
    :class:`~concurrency_kit.ProcessPool` and (Python 3.14+) on an
    :class:`~concurrency_kit.InterpreterPool`, and advise a model.

    ``fn`` must be picklable for the process pool (a module-level function; cloudpickle also
    takes lambdas and functions defined in ``__main__``), and ``inputs`` should take at least a
    few tenths of a second serially for the figures to mean much. Each run calls ``fn`` on every
    input: a warm-up run serially and on each pool, then five interleaved rounds of all
    of them, so ``fn`` runs eighteen times per input in all (twenty-four with interpreters).
    If ``fn`` fails in a subinterpreter (a module it imports does not load there), interpreters
    are left out and :attr:`Advice.interpreters_left_out` says why.

    The advice never names a pool that was not faster than the plain loop: it says "serial"
    or "batch" instead. Other load on the machine while it measures can change a close call
    (the reasons give the figures); a speed-up that the cores cannot give is reported in
    :attr:`Advice.warnings` as a measurement error and not acted on.

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


def _interpreter_pool(
    workers: int, fn: Callable[[Any], object], items: list[Any]
) -> tuple[InterpreterPool | None, float, str]:
    """A warm interpreter pool that has run ``fn`` over ``items`` once, its start-up time, and
    ``""``; or ``None``, 0 and why interpreters are left out."""
    missing = interpreters_missing()
    if missing:
        return None, 0.0, missing
    start = time.perf_counter()
    pool = InterpreterPool(workers)
    try:
        for future in [pool.submit(_noop) for _ in range(workers)]:
            future.result()
        startup = time.perf_counter() - start
        list(pool.map(fn, items, chunksize=1))  # warm-up: each interpreter imports fn's module
    except Exception as exc:
        pool.shutdown(cancel_futures=True)
        return None, 0.0, f"fn failed in a subinterpreter: {type(exc).__name__}: {exc}"
    return pool, startup, ""


def measure(fn: Callable[[Any], object], items: list[Any], *, workers: int) -> Timings:
    """Time ``fn`` over ``items``: serially and on warm thread, process and (Python 3.14+)
    interpreter pools, interleaved.

    Raises:
        Exception: whatever ``fn`` raises, from the first (serial, warm-up) run.
    """
    _time_serial(fn, items)  # warm-up, and fn's own errors surface here, plainly
    meter = LoadMeter()
    meter.start()
    start = time.perf_counter()
    with ThreadPool(workers) as threads, ProcessPool(workers) as processes:
        for future in [processes.submit(_noop) for _ in range(workers)]:
            future.result()
        startup = time.perf_counter() - start
        for future in [threads.submit(_noop) for _ in range(workers)]:
            future.result()
        interpreters, interpreter_startup, left_out = _interpreter_pool(workers, fn, items)
        runs: dict[str, Callable[[], tuple[float, float]]] = {
            "serial": lambda: _time_serial(fn, items),
            "threads": lambda: _time_map(threads, fn, items),
            "processes": lambda: _time_map(processes, fn, items),
        }
        if interpreters is not None:
            pool = interpreters
            runs["interpreters"] = lambda: _time_map(pool, fn, items)
        try:
            found: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
            names = list(runs)
            runs["processes"]()  # warm-up: the workers import fn's module
            runs["threads"]()
            for index in range(ROUNDS):  # rotating order: a burst of load hits every way
                shift = index % len(names)
                for name in names[shift:] + names[:shift]:
                    found[name].append(runs[name]())
        finally:
            if interpreters is not None:
                interpreters.shutdown()

    cores = usable_cores()
    busy = machine_busy(meter.stop(), cores)

    def median(name: str, which: int) -> float:
        return float(statistics.median(sample[which] for sample in found[name]))

    return Timings(
        serial_seconds=median("serial", 0),
        serial_cpu_seconds=median("serial", 1),
        thread_seconds=median("threads", 0),
        process_seconds=median("processes", 0),
        process_startup_seconds=startup,
        thread_cpu_seconds=median("threads", 1),
        cores=cores,
        busy=busy,
        interpreter_seconds=None if interpreters is None else median("interpreters", 0),
        interpreter_startup_seconds=None if interpreters is None else interpreter_startup,
        interpreters_left_out=left_out,
    )


def decide(timings: Timings, *, workers: int, items: int) -> Advice:
    """Conclude from ``timings`` (a pure function: no clock, no pool): what to use and why.

    Args:
        timings: the figures, measured by :func:`measure` or made up.
        workers: the number of workers of each pool.
        items: the number of inputs.

    Raises:
        ValueError: a figure is negative or not finite.
    """
    for field in attrs.fields(Timings):
        value = getattr(timings, field.name)
        if value is None or isinstance(value, str):
            continue
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{field.name} must be a finite number >= 0, got {value!r}")
    serial = timings.serial_seconds
    cpu_fraction = min(1.0, timings.serial_cpu_seconds / serial) if serial > 0 else 0.0
    thread_time, process_time = timings.thread_seconds, timings.process_seconds
    thread_cores = (
        timings.thread_cpu_seconds / thread_time
        if timings.thread_cpu_seconds is not None and thread_time > 0
        else None
    )
    gil_released = thread_cores is not None and thread_cores >= GIL_RELEASED
    gil_unknown = thread_cores is None
    cores = timings.cores or workers
    speedups = {"threads": _ratio(serial, thread_time), "processes": _ratio(serial, process_time)}
    interpreter_time = timings.interpreter_seconds
    if interpreter_time is not None:
        speedups["interpreters"] = _ratio(serial, interpreter_time)
    cpu_bound = cpu_fraction >= CPU_BOUND
    limit = min(workers, cores) if cpu_bound else workers
    reasons: list[str] = []
    warnings: list[str] = []

    if cpu_bound:
        reasons.append(
            f"Run serially it is CPU-bound: the process used the CPU {cpu_fraction:.0%} of its "
            f"{serial:.3g} s (Use Cases)."
        )
    else:
        reasons.append(
            f"Run serially it mostly waits: the process used the CPU only {cpu_fraction:.0%} of "
            f"its {serial:.3g} s, so pools can overlap the waits (Use Cases)."
        )
    per_call = serial / items if items else 0.0
    if per_call < SHORT_CALL:
        gil_unknown = True  # the pool's own threads, not the function, dominate its CPU time
    elif thread_cores is not None and timings.busy and cpu_bound and not gil_released:
        reasons.append(
            f"On the thread pool the process kept {thread_cores:.1f} CPU busy, but with the "
            "machine busy that does not tell whether the function releases the GIL."
        )
        gil_unknown = True
    elif thread_cores is not None:
        if cpu_bound and gil_released:
            reasons.append(
                f"On the thread pool the process kept {thread_cores:.1f} CPUs busy at once: the "
                "function releases the GIL while it computes (as hashlib, zlib and NumPy do over "
                "large buffers), so threads run it in parallel without pickling (Definition)."
            )
        elif cpu_bound:
            reasons.append(
                f"On the thread pool the process kept only {thread_cores:.1f} CPU busy: the "
                "function holds the GIL (pure Python), so its threads take turns (Definition)."
            )
    interpreters_part = (
        f", interpreters {speedups['interpreters']:.2f}x" if "interpreters" in speedups else ""
    )
    reasons.append(
        f"Threads ran it {speedups['threads']:.2f}x as fast as the plain loop, processes "
        f"{speedups['processes']:.2f}x{interpreters_part} ({workers} workers each, warm pools, "
        f"{cores} usable cores)."
    )
    if timings.interpreters_left_out.startswith("fn failed"):
        reasons.append(
            f"Interpreters were left out: {timings.interpreters_left_out} (a module that does not "
            "load in a subinterpreter, such as numpy today, rules them out; Use Cases)."
        )
    candidates = []
    for name, speedup in speedups.items():
        if speedup > limit * CEILING_TOLERANCE:
            warnings.append(
                f"Measurement error: {name} {speedup:.2f}x is more than {limit} "
                f"{'cores' if cpu_bound else 'workers'} can give; other load probably slowed "
                "the serial runs. Ignored; measure again on a quieter machine."
            )
        elif speedup >= MIN_SPEEDUP:
            candidates.append(name)

    recommendation: Recommendation
    holds_gil = cpu_bound and not gil_released and not gil_unknown
    # The pool with a GIL per worker: processes, or interpreters when they were clearly faster
    # (a tie goes to processes, which keep a crash to one worker).
    isolated: Literal["processes", "interpreters"] = "processes"
    isolated_time = process_time
    if (
        "interpreters" in candidates
        and interpreter_time is not None
        and ("processes" not in candidates or interpreter_time < INTERPRETER_MARGIN * process_time)
    ):
        isolated, isolated_time = "interpreters", interpreter_time
    isolated_candidate = isolated in candidates
    isolated_title = isolated.capitalize()
    if not candidates:
        if per_call < SHORT_CALL:
            recommendation = "batch"
            reasons.append(
                f"Neither pool beat the loop by {MIN_SPEEDUP:g}x: one call takes "
                f"{per_call * 1e6:,.3g} us, less than a task costs to hand to a worker and back; "
                "give each task more work (map's chunksize, or fewer, larger inputs) and "
                "measure again (Overhead, Communication)."
            )
        else:
            recommendation = "serial"
            reasons.append(
                f"Neither pool beat the loop by {MIN_SPEEDUP:g}x, so run it serially"
                + (
                    ": the work holds the GIL for threads, and no free core is left for "
                    "processes on this machine now."
                    if holds_gil
                    else "."
                )
            )
    elif "threads" in candidates and (
        not isolated_candidate or not isolated_time < PROCESS_MARGIN * thread_time
    ):
        recommendation = "threads"
        if isolated_candidate and isolated_time < thread_time:
            reasons.append(
                f"{isolated_title} were {_ratio(thread_time, isolated_time):.2f}x as fast as "
                f"threads, short of the {1 / PROCESS_MARGIN:.2g}x it takes to advise them: a "
                "thread is cheaper to start, to feed and to keep: no pickling, no second "
                "interpreter (Creation Time, Communication, Overhead)."
            )
        elif isolated_candidate:
            reasons.append(
                f"Threads were as fast or faster ({_ratio(isolated_time, thread_time):.2f}x the "
                f"{isolated}' speed), and a thread is cheaper to start, to feed and to keep: no "
                "pickling, no second interpreter (Creation Time, Communication, Overhead)."
            )
        else:
            reasons.append(
                "Only threads beat the loop clearly; a thread is also cheaper to start, to feed "
                "and to keep (Creation Time, Communication, Overhead)."
            )
    else:
        recommendation = isolated
        if "threads" in candidates:
            why = f"{isolated_title} beat threads by {_ratio(thread_time, isolated_time):.2f}x"
        else:
            why = (
                f"Only {isolated} beat the loop clearly "
                f"({_ratio(thread_time, isolated_time):.2f}x as fast as threads)"
            )
        if isolated == "processes":
            gil_own = "each process has an interpreter and a GIL of its own"
            own = "each process has an interpreter of its own"
        else:
            gil_own = own = "each interpreter has a GIL of its own"
        if holds_gil:
            why += (
                f": the work holds the GIL, so one thread runs at a time, while {gil_own} "
                "(Definition, Use Cases)."
            )
        else:
            why += f"; {own} (Definition, Use Cases)."
        reasons.append(why)
        if recommendation == "interpreters" and "processes" in candidates:
            reasons.append(
                f"Interpreters ran it {_ratio(process_time, isolated_time):.2f}x as fast as "
                "processes (they need no process of their own), but a crash in native code in "
                "one ends the whole program (Crash Impact)."
            )
        elif recommendation == "interpreters":
            reasons.append(
                "A crash in native code in an interpreter ends the whole program (Crash Impact)."
            )
        elif "interpreters" in candidates and interpreter_time is not None:
            reasons.append(
                f"Interpreters ran it {_ratio(process_time, interpreter_time):.2f}x the "
                f"processes' speed, short of the {1 / INTERPRETER_MARGIN:.2g}x it takes to "
                "advise them over processes, which keep a crash to one worker (Crash Impact)."
            )
    if recommendation == "interpreters" and timings.interpreter_startup_seconds is not None:
        reasons.append(
            f"Starting the interpreter pool took {timings.interpreter_startup_seconds:.3g} s, "
            "paid once (Creation Time)."
        )
    else:
        reasons.append(
            f"Starting the process pool took {timings.process_startup_seconds:.3g} s, paid once "
            "(Creation Time)."
        )
    if timings.busy:
        warnings.append(
            f"The machine was busy while measuring ({timings.busy}): the figures, and so "
            "the advice, may differ on a quiet machine."
        )
    models: dict[str, Model | InterpreterModel] = {
        "processes": PROCESS,
        "threads": THREAD,
        "interpreters": INTERPRETER,
    }
    model = models.get(recommendation)
    return Advice(
        recommendation=recommendation,
        model=model,
        workers=workers,
        items=items,
        serial_seconds=serial,
        serial_cpu_fraction=cpu_fraction,
        thread_cpu_cores=thread_cores,
        thread_seconds=thread_time,
        process_seconds=process_time,
        process_startup_seconds=timings.process_startup_seconds,
        cores=cores,
        reasons=tuple(reasons),
        warnings=tuple(warnings),
        rows=("use_cases", "definition", "creation_time", "communication", "overhead")
        + (("crash_impact",) if interpreter_time is not None else ()),
        interpreter_seconds=interpreter_time,
        interpreter_startup_seconds=timings.interpreter_startup_seconds,
        interpreters_left_out=timings.interpreters_left_out,
    )

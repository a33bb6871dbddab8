"""Use cases: the speed-up of N = 2 workers over serial, for CPU-bound and I/O-bound work.

:data:`TASKS` calls of a function run serially, on a warm pool of :data:`WORKERS` threads and
on a warm pool of :data:`WORKERS` processes; the speed-up is serial time / pool time.

* CPU-bound (the row's figure): :func:`spin`, a pure-Python loop, sized by calibration so that
  one call takes :data:`CALL_SECONDS` (tens of milliseconds: far above a task's cost of about
  0.1 ms, so that the pool's own cost does not hide what processes buy). On a GIL build only
  one thread runs Python code at a time, so threads give no speed-up; processes, each with its
  own interpreter and GIL, run in parallel on separate cores.
* I/O-bound (second comparison): :func:`nap`, ``time.sleep``, which releases the GIL: both
  models overlap the waits, and threads do it at least as well.

The ways run interleaved, round after round (serial, threads, processes, then another
order), after a warm-up round.

The CPU-bound speed-up is the serial time of the calls over the pool's wall time, with the
serial time taken in the interpreter that ran them. For the thread pool that is this one: the
serial run's wall time. For the process pool it is the workers': each task reads
``time.thread_time()`` around its call, and the calls' CPU time is their serial time there.
Dividing by a serial run of this process instead gave the process pool 1.34x to an impossible
2.49x on a quiet 2-core machine: two interpreters can run the same loop at speeds 25 % apart
(where code and heap land in memory; pyperf spreads its samples over processes for the same
reason). CPU time also leaves out the time a worker spent preempted by other load. Each is
taken round by round; the figure is the median with its spread. A speed-up above
``min(workers, usable cores)`` is impossible, and flagged as a measurement error.

The I/O-bound speed-up is serial wall time over pool wall time (sleep uses no CPU).

On Python 3.14+ an :class:`~concurrency_kit.InterpreterPool` of :data:`WORKERS` runs the same
rounds: each interpreter has its own GIL, so pure-Python work runs in parallel as it does in
processes; its speed-up is taken as the processes' is (CPU time where the calls ran, over the
wall time), since interpreters, too, can run the loop at another speed than this one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from concurrency_kit.compare._measure import (
    CEILING_TOLERANCE,
    MARGIN,
    Comparison,
    Figure,
    Measurement,
    Mode,
    Spread,
    interleave,
    usable_cores,
)
from concurrency_kit.compare.probes._shared import interpreters_missing
from concurrency_kit.models import INTERPRETER, PROCESS, THREAD

__all__ = [
    "CALL_SECONDS",
    "TASKS",
    "WORKERS",
    "calibrate",
    "nap",
    "probe",
    "spin",
    "spin_cpu",
]

WORKERS = 2
TASKS = 4 * WORKERS
"""Calls per sample: several per worker, so that a worker that runs slower than the other
leaves less of the machine idle at the end of a sample."""

CALL_SECONDS: dict[Mode, float] = {"quick": 0.04, "full": 0.08}
"""The wall time of one CPU-bound call, after calibration."""

ROUNDS: dict[Mode, int] = {"quick": 5, "full": 7}
"""Interleaved rounds (after one warm-up round)."""

NAP: dict[Mode, float] = {"quick": 0.03, "full": 0.05}
"""Seconds of one I/O-bound call."""


def spin(n: int) -> int:
    """CPU-bound, pure Python: a loop of ``n`` additions and multiplications."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def nap(seconds: float) -> float:
    """I/O-bound: sleep (the GIL is released while waiting)."""
    time.sleep(seconds)
    return seconds


def calibrate(seconds: float) -> int:
    """The loop count that makes one :func:`spin` call take about ``seconds`` here."""
    n = 20_000
    while True:
        start = time.perf_counter()
        spin(n)
        elapsed = time.perf_counter() - start
        if elapsed >= 0.02:
            return max(1, int(n * seconds / elapsed))
        n *= 4


def _serial(fn: Callable[[Any], object], arg: Any) -> Callable[[], float]:
    def sample() -> float:
        start = time.perf_counter()
        for _ in range(TASKS):
            fn(arg)
        return time.perf_counter() - start

    return sample


def _pooled(pool: Any, fn: Callable[[Any], object], arg: Any) -> Callable[[], float]:
    def sample() -> float:
        start = time.perf_counter()
        for future in [pool.submit(fn, arg) for _ in range(TASKS)]:
            future.result(120.0)
        return time.perf_counter() - start

    return sample


def spin_cpu(n: int) -> float:
    """:func:`spin`, returning the CPU seconds it took in the thread that ran it."""
    start = time.thread_time()
    spin(n)
    return time.thread_time() - start


def _busy_cores(pool: Any, n: int, found: list[float]) -> Callable[[], float]:
    """A sampler: wall seconds of TASKS spin calls on ``pool``; appends their CPU time (read
    where they ran) over that wall time."""

    def sample() -> float:
        start = time.perf_counter()
        cpu = sum(
            future.result(120.0) for future in [pool.submit(spin_cpu, n) for _ in range(TASKS)]
        )
        wall = time.perf_counter() - start
        found.append(cpu / wall)
        return wall

    return sample


def _speedups(serial: list[float], pooled: list[float]) -> Spread:
    return Spread.of([s / p for s, p in zip(serial, pooled, strict=True)])


def probe(mode: Mode) -> Measurement:
    """CPU-bound speed-up (the figure) and I/O-bound speed-up with 2 workers of each model."""
    cores = usable_cores()
    n = calibrate(CALL_SECONDS[mode])
    rounds = ROUNDS[mode]
    missing = interpreters_missing()
    models: dict[str, Any] = {"threads": THREAD, "processes": PROCESS}
    if not missing:
        models["interpreters"] = INTERPRETER
    with ExitStack() as stack:
        pools = {name: stack.enter_context(model.Pool(WORKERS)) for name, model in models.items()}
        for pool in pools.values():  # start every worker; a nap keeps the first busy
            for warming in [pool.submit(nap, 0.05) for _ in range(WORKERS)]:
                warming.result(60.0)
        busy: dict[str, list[float]] = {name: [] for name in pools}
        cpu = interleave(
            {
                "serial": _serial(spin, n),
                **{name: _busy_cores(pool, n, busy[name]) for name, pool in pools.items()},
            },
            rounds,
        )
        for values in busy.values():
            del values[: len(values) - rounds]  # the warm-up round's
        io = interleave(
            {
                "serial": _serial(nap, NAP[mode]),
                **{name: _pooled(pool, nap, NAP[mode]) for name, pool in pools.items()},
            },
            rounds,
        )
    # Threads run in this interpreter, as the serial calls did: wall time over wall time (their
    # CPU time would also count what passing the GIL back and forth costs). Processes run in
    # interpreters of their own: the CPU time their calls took there, over the wall time.
    t_cpu = _speedups(cpu["serial"], cpu["threads"])
    p_cpu = Spread.of(busy["processes"])
    t_io, p_io = _speedups(io["serial"], io["threads"]), _speedups(io["serial"], io["processes"])
    parallel = min(WORKERS, cores)
    comparisons = (
        Comparison(
            "CPU-bound speed-up",
            "x",
            p_cpu,
            t_cpu,
            "higher",
            "process",
            ceiling=parallel * CEILING_TOLERANCE,
            load_hurts="process",
            floor=MARGIN,
        ),
        Comparison(
            "I/O-bound (sleep) speed-up",
            "x",
            p_io,
            t_io,
            "higher",
            "thread",
            ceiling=WORKERS * CEILING_TOLERANCE,
            at_least=True,
        ),
    )
    finding = (
        f"CPU-bound pure Python with {WORKERS} workers on {cores} usable cores: processes "
        f"{p_cpu.median:.2f}x, threads {t_cpu.median:.2f}x the serial speed (the GIL lets one "
        f"thread run Python at a time; each process has its own); I/O-bound (sleep): threads "
        f"{t_io.median:.2f}x, processes {p_io.median:.2f}x"
    )
    serial_ms = median_of_ms(cpu["serial"])
    i_cpu = Spread.of(busy["interpreters"]) if "interpreters" in busy else None
    interpreter_details = {}
    if i_cpu is not None:
        i_io = _speedups(io["serial"], io["interpreters"])
        finding += (
            f"; interpreters (a GIL each, in this process): {i_cpu.median:.2f}x CPU-bound, "
            f"{i_io.median:.2f}x I/O-bound"
        )
        interpreter_details = {
            "CPU-bound, interpreters": f"{median_of_ms(cpu['interpreters']):.0f} ms",
            "I/O-bound speed-up, interpreters": f"{i_io.median:.2f}x",
        }
    return Measurement(
        key="use_cases",
        process=Figure(
            p_cpu.median, "x", f"CPU-bound speed-up over serial, ProcessPool({WORKERS})"
        ),
        thread=Figure(t_cpu.median, "x", f"CPU-bound speed-up over serial, ThreadPool({WORKERS})"),
        better="higher",
        holds=p_cpu.median > t_cpu.median and t_io.median >= p_io.median / 1.1,
        finding=finding,
        comparisons=comparisons,
        explanation=(
            "processes can only run CPU-bound work in parallel on free cores: the CPU-bound "
            f"speed-up is capped by min(workers, usable cores) = {parallel}, and other load "
            "lowers it further"
        ),
        details={
            "CPU-bound, serial": f"{serial_ms:.0f} ms for {TASKS} calls of spin({n:,})",
            "CPU-bound speed-up": (
                "serial time over pool time; for processes, the calls' CPU time in the workers "
                "over the pool's wall time"
            ),
            "CPU-bound, threads": f"{median_of_ms(cpu['threads']):.0f} ms",
            "CPU-bound, processes": f"{median_of_ms(cpu['processes']):.0f} ms",
            "I/O-bound, serial": f"{median_of_ms(io['serial']):.0f} ms for {TASKS} calls",
            "workload": (
                f"{TASKS} calls of spin (calibrated to {CALL_SECONDS[mode] * 1e3:.0f} ms a "
                f"call) and of nap({NAP[mode]}) on {WORKERS} workers, warm pools; {rounds} "
                "interleaved rounds after a warm-up round"
            ),
            **interpreter_details,
        },
        interpreter=None
        if i_cpu is None
        else Figure(
            i_cpu.median, "x", f"CPU-bound speed-up over serial, InterpreterPool({WORKERS})"
        ),
        interpreter_spread=i_cpu,
        interpreter_missing=missing,
    )


def median_of_ms(samples: list[float]) -> float:
    """The median of ``samples`` (seconds), in milliseconds."""
    return Spread.of(samples).median * 1e3

"""Use cases: the speed-up of N = 2 workers over serial, for CPU-bound and I/O-bound work.

:data:`TASKS` calls of a function run serially, then through a warm pool of :data:`WORKERS`
workers of each model; the speed-up is serial time / pool time.

* CPU-bound (the row's figure): :func:`spin`, a pure-Python loop. On a GIL build only one
  thread runs Python code at a time, so threads give no speed-up; processes, each with its
  own interpreter and GIL, run in parallel on separate cores.
* I/O-bound (details): :func:`nap`, ``time.sleep``, which releases the GIL: both models
  overlap the waits, and threads do it with less overhead.

The claim holds when processes win for CPU-bound work and threads are at least as good
(within 10 %) for I/O-bound work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from concurrency_kit.compare._measure import Figure, Measurement, Mode, verdict_for
from concurrency_kit.models import PROCESS, THREAD, Model

__all__ = ["TASKS", "WORKERS", "nap", "probe", "spin"]

WORKERS = 2
TASKS = 4

SPIN: dict[Mode, int] = {"quick": 1_200_000, "full": 5_000_000}
"""Loop iterations of one CPU-bound call (quick: about 70 ms on a 2020s core)."""

NAP: dict[Mode, float] = {"quick": 0.04, "full": 0.2}
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


def _serial(fn: Callable[[Any], object], arg: Any) -> float:
    fn(arg)  # warm up: not timed
    start = time.perf_counter()
    for _ in range(TASKS):
        fn(arg)
    return time.perf_counter() - start


def _pooled(model: Model, jobs: list[tuple[Callable[[Any], object], Any]]) -> list[float]:
    """Wall seconds of TASKS calls of each job through one warm pool of WORKERS workers."""
    times = []
    with model.Pool(WORKERS) as pool:
        # start every worker (a nap keeps the first busy while the second starts)
        for warming in [pool.submit(nap, 0.05) for _ in range(WORKERS)]:
            warming.result(30.0)
        for fn, arg in jobs:
            start = time.perf_counter()
            for future in [pool.submit(fn, arg) for _ in range(TASKS)]:
                future.result(60.0)
            times.append(time.perf_counter() - start)
    return times


def probe(mode: Mode) -> Measurement:
    """CPU-bound speed-up (the figure) and I/O-bound speed-up with 2 workers of each model."""
    jobs: list[tuple[Callable[[Any], object], Any]] = [(spin, SPIN[mode]), (nap, NAP[mode])]
    serial_cpu, serial_io = _serial(spin, SPIN[mode]), _serial(nap, NAP[mode])
    t_cpu_s, t_io_s = _pooled(THREAD, jobs)
    p_cpu_s, p_io_s = _pooled(PROCESS, jobs)
    t_cpu, p_cpu = serial_cpu / t_cpu_s, serial_cpu / p_cpu_s
    t_io, p_io = serial_io / t_io_s, serial_io / p_io_s
    cpu_ok = p_cpu > t_cpu
    io_ok = t_io >= 0.9 * p_io
    holds = cpu_ok and io_ok
    finding = (
        f"CPU-bound pure Python with {WORKERS} workers: processes {p_cpu:.2f}x, threads "
        f"{t_cpu:.2f}x the serial speed (the GIL lets one thread run Python at a time); "
        f"I/O-bound (sleep): threads {t_io:.2f}x, processes {p_io:.2f}x"
    )
    if not cpu_ok:
        finding += "; processes did not beat threads on CPU-bound work here"
    if not io_ok:
        finding += "; threads fell behind processes on I/O-bound work here"
    return Measurement(
        key="use_cases",
        process=Figure(p_cpu, "x", f"CPU-bound speed-up over serial, ProcessPool({WORKERS})"),
        thread=Figure(t_cpu, "x", f"CPU-bound speed-up over serial, ThreadPool({WORKERS})"),
        better="higher",
        holds=holds,
        verdict=verdict_for(holds, finding),
        details={
            "I/O-bound speed-up, threads": f"{t_io:.2f}x",
            "I/O-bound speed-up, processes": f"{p_io:.2f}x",
            "CPU-bound, serial": f"{serial_cpu * 1e3:.0f} ms for {TASKS} calls",
            "CPU-bound, threads": f"{t_cpu_s * 1e3:.0f} ms",
            "CPU-bound, processes": f"{p_cpu_s * 1e3:.0f} ms",
            "I/O-bound, serial": f"{serial_io * 1e3:.0f} ms for {TASKS} calls",
            "workload": (
                f"{TASKS} calls of spin({SPIN[mode]}) and of nap({NAP[mode]}) on {WORKERS} "
                "workers, warm pools"
            ),
        },
    )

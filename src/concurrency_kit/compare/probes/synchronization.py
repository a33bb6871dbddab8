"""Synchronization: the cost of a lock within threads vs across processes.

The row's figure is the *contended* cost: two pool workers (two threads of a
:class:`~concurrency_kit.ThreadPool`, or two processes of a
:class:`~concurrency_kit.ProcessPool`) meet at a barrier, then each acquires and releases one
shared lock (:class:`~concurrency_kit.ThreadLock` / :class:`~concurrency_kit.ProcessLock`)
:data:`CYCLES` times; the figure is the wall time from the first worker's start to the last
worker's end divided by all the acquire+release pairs made, so every hand-off of the lock
between the two workers is in it.
The *uncontended* acquire+release in the calling thread is in the details.

Two threads of one interpreter also contend for the GIL, and a thread that releases a lock
usually keeps running (and takes the lock again) until its switch interval (5 ms) is up: the
threads rarely hand the lock over, and their figure is mostly the lock's own cost. A
ProcessLock is a robust pthread mutex in shared memory: uncontended it stays in user space,
contended it goes through the kernel (futex), and with a core for each process the two
processes really run at once and really contend.
"""

from __future__ import annotations

import time
from typing import Any

from concurrency_kit.compare._measure import (
    Comparison,
    Figure,
    Measurement,
    Mode,
    Spread,
    interleave,
    median_of,
)
from concurrency_kit.compare.probes._shared import cheaper
from concurrency_kit.models import PROCESS, THREAD, Model

__all__ = ["CYCLES", "contend", "probe"]

CYCLES: dict[Mode, int] = {"quick": 50_000, "full": 100_000}
"""Acquire+release pairs per worker in one contended sample."""

ROUNDS: dict[Mode, int] = {"quick": 5, "full": 9}
"""Interleaved contended samples per model (after a warm-up one)."""

UNCONTENDED: dict[Mode, int] = {"quick": 50_000, "full": 500_000}


def contend(lock: Any, barrier: Any, cycles: int) -> tuple[float, float]:
    """Wait for the other worker, then take and release ``lock`` ``cycles`` times.

    Returns the ``time.perf_counter()`` readings at the start and at the end (the system's
    monotonic clock on Linux, so readings from two processes compare).
    """
    barrier.wait(30.0)
    start = time.perf_counter()
    for _ in range(cycles):
        lock.acquire()
        lock.release()
    return start, time.perf_counter()


def _contended(model: Model, pool: Any, lock: Any, barrier: Any, cycles: int) -> float:
    """Seconds per acquire+release with two workers of ``pool`` contending for ``lock``."""
    futures = [pool.submit(contend, lock, barrier, cycles) for _ in range(2)]
    spans: list[tuple[float, float]] = [f.result(60.0) for f in futures]
    elapsed = max(end for _, end in spans) - min(start for start, _ in spans)
    return elapsed / (2 * cycles)


def _uncontended(model: Model, cycles: int) -> float:
    """Seconds per acquire+release of a lock nobody else wants (median of 3 batches)."""
    lock = model.Lock()
    try:
        samples = []
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(cycles):
                lock.acquire()
                lock.release()
            samples.append((time.perf_counter() - start) / cycles)
    finally:
        lock.close()
    return median_of(samples)


def probe(mode: Mode) -> Measurement:
    """Contended lock hand-off cost (the figure) and uncontended cost, threads vs processes."""
    cycles = CYCLES[mode]
    t_lock, t_barrier, p_lock, p_barrier = (
        THREAD.Lock(),
        THREAD.Barrier(2),
        PROCESS.Lock(),
        PROCESS.Barrier(2),
    )
    try:
        with THREAD.Pool(2) as threads, PROCESS.Pool(2) as processes:
            found = interleave(
                {
                    "thread": lambda: _contended(THREAD, threads, t_lock, t_barrier, cycles),
                    "process": lambda: _contended(PROCESS, processes, p_lock, p_barrier, cycles),
                },
                ROUNDS[mode],
            )
    finally:
        for primitive in (t_lock, t_barrier, p_lock, p_barrier):
            primitive.close()
    t_spread, p_spread = (
        Spread.of(found["thread"]).scaled(1e9),
        Spread.of(found["process"]).scaled(1e9),
    )
    t, p = t_spread.median, p_spread.median
    t_un = _uncontended(THREAD, UNCONTENDED[mode]) * 1e9
    p_un = _uncontended(PROCESS, UNCONTENDED[mode]) * 1e9
    finding = (
        f"with two workers contending, an acquire+release costs {t:.0f} ns between "
        f"threads (ThreadLock) and {p:.0f} ns between processes (ProcessLock) "
        f"({cheaper(t, p)}); uncontended {t_un:.0f} vs {p_un:.0f} ns ({cheaper(t_un, p_un)})"
    )
    return Measurement(
        key="synchronization",
        process=Figure(p, "ns", "acquire+release, 2 processes contending, ProcessLock"),
        thread=Figure(t, "ns", "acquire+release, 2 threads contending, ThreadLock"),
        better="lower",
        holds=t < p,
        finding=finding,
        comparisons=(
            Comparison(
                "contended acquire+release",
                "ns",
                p_spread,
                t_spread,
                "lower",
                "thread",
                load_hurts="process",
            ),
        ),
        explanation=(
            "a process-shared mutex stays in user space when it is free, and two processes "
            "run on two cores at once while two threads take turns with the GIL (compare the "
            "uncontended figures in the details)"
        ),
        details={
            "contended, threads": f"{t:.0f} ns per acquire+release",
            "contended, processes": f"{p:.0f} ns per acquire+release",
            "uncontended, ThreadLock": f"{t_un:.0f} ns per acquire+release",
            "uncontended, ProcessLock": f"{p_un:.0f} ns per acquire+release",
            "samples": (
                f"{ROUNDS[mode]} interleaved samples of 2 workers x {cycles} cycles contended, "
                f"per model, after a warm-up one; 3 batches of {UNCONTENDED[mode]} uncontended"
            ),
        },
    )

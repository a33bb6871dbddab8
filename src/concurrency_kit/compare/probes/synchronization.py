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

from concurrency_kit.compare._measure import Figure, Measurement, Mode, median_of, verdict_for
from concurrency_kit.compare.probes._shared import cheaper
from concurrency_kit.models import PROCESS, THREAD, Model

__all__ = ["CYCLES", "contend", "probe"]

CYCLES: dict[Mode, int] = {"quick": 20_000, "full": 200_000}
"""Acquire+release pairs per worker in the contended run."""

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


def _contended(model: Model, cycles: int) -> float:
    """Seconds per acquire+release with two workers contending for one lock."""
    lock, barrier = model.Lock(), model.Barrier(2)
    try:
        with model.Pool(2) as pool:
            futures = [pool.submit(contend, lock, barrier, cycles) for _ in range(2)]
            spans = [f.result(60.0) for f in futures]
    finally:
        lock.close()
        barrier.close()
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
    t, p = _contended(THREAD, cycles), _contended(PROCESS, cycles)
    t_un, p_un = _uncontended(THREAD, UNCONTENDED[mode]), _uncontended(PROCESS, UNCONTENDED[mode])
    holds = t < p
    finding = (
        f"with two workers contending, an acquire+release costs {t * 1e9:.0f} ns between "
        f"threads (ThreadLock) and {p * 1e9:.0f} ns between processes (ProcessLock) "
        f"({cheaper(t, p)}); uncontended {t_un * 1e9:.0f} vs {p_un * 1e9:.0f} ns "
        f"({cheaper(t_un, p_un)})"
    )
    if not holds:
        finding += (
            "; a process-shared mutex stays in user space when it is free, and two processes "
            "run on two cores at once while two threads take turns with the GIL"
        )
    return Measurement(
        key="synchronization",
        process=Figure(p * 1e9, "ns", "acquire+release, 2 processes contending, ProcessLock"),
        thread=Figure(t * 1e9, "ns", "acquire+release, 2 threads contending, ThreadLock"),
        better="lower",
        holds=holds,
        verdict=verdict_for(holds, finding),
        details={
            "contended, threads": f"{t * 1e9:.0f} ns per acquire+release",
            "contended, processes": f"{p * 1e9:.0f} ns per acquire+release",
            "uncontended, ThreadLock": f"{t_un * 1e9:.0f} ns per acquire+release",
            "uncontended, ProcessLock": f"{p_un * 1e9:.0f} ns per acquire+release",
            "samples": (
                f"2 workers x {cycles} cycles contended; 3 batches of "
                f"{UNCONTENDED[mode]} uncontended"
            ),
        },
    )

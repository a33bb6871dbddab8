"""Definition: a process runs on its own (its own interpreter); a thread lives inside ours.

Two workers of each pool are held together at a barrier, so that both are certainly running at
once, and each reports the pid of the interpreter it runs in and its thread's identity. A
:class:`~concurrency_kit.ProcessPool` worker answers from another pid than ours, a
:class:`~concurrency_kit.ThreadPool` worker from ours. A trivial task on each warm pool gives
the price of crossing into that worker (details).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from concurrency_kit.compare._measure import Figure, Measurement, Mode, median_of
from concurrency_kit.models import PROCESS, THREAD, Model

__all__ = ["probe"]

WORKERS = 2


def whereami(barrier: Any) -> tuple[int, int]:
    """Wait until every worker is here, then say which interpreter and thread this is."""
    barrier.wait(10.0)
    return os.getpid(), threading.get_ident()


def _noop() -> None:
    """A task that does nothing: its round trip is the pool's own cost."""


def _observe(model: Model, trivial: int) -> tuple[list[tuple[int, int]], float]:
    """Where :data:`WORKERS` simultaneous workers run, and a trivial task's round trip (s)."""
    barrier = model.Barrier(WORKERS)
    try:
        with model.Pool(WORKERS) as pool:
            futures = [pool.submit(whereami, barrier) for _ in range(WORKERS)]
            seen = [future.result(30.0) for future in futures]
            samples = []
            for _ in range(trivial):
                start = time.perf_counter()
                pool.submit(_noop).result(30.0)
                samples.append(time.perf_counter() - start)
    finally:
        barrier.close()
    return seen, median_of(samples)


def probe(mode: Mode) -> Measurement:
    """Count the workers that run in an interpreter other than ours, per model."""
    trivial = 50 if mode == "quick" else 500
    ours = os.getpid()
    process_seen, process_trip = _observe(PROCESS, trivial)
    thread_seen, thread_trip = _observe(THREAD, trivial)

    def elsewhere(seen: list[tuple[int, int]]) -> int:
        return len({pid for pid, _ in seen if pid != ours})

    process_pids = sorted({pid for pid, _ in process_seen})
    thread_idents = {ident for _, ident in thread_seen}
    p_own, t_own = elsewhere(process_seen), elsewhere(thread_seen)
    finding = (
        f"{WORKERS} process workers ran in {p_own} interpreters of their own "
        f"(pids {', '.join(map(str, process_pids))}, ours {ours}); {WORKERS} thread workers "
        f"ran in {t_own} other interpreters: all in ours (pid {ours}), as "
        f"{len(thread_idents)} distinct threads"
    )
    return Measurement(
        key="definition",
        process=Figure(
            float(p_own), "interpreters", f"of {WORKERS} simultaneous workers, not ours"
        ),
        thread=Figure(float(t_own), "interpreters", f"of {WORKERS} simultaneous workers, not ours"),
        better="higher",
        holds=None,
        finding=finding,
        details={
            "parent pid": str(ours),
            "process worker pids": ", ".join(map(str, process_pids)),
            "thread worker pids": ", ".join(map(str, sorted({p for p, _ in thread_seen}))),
            "distinct threads among thread workers": str(len(thread_idents)),
            "trivial task round trip, process pool": f"{process_trip * 1e6:.0f} us",
            "trivial task round trip, thread pool": f"{thread_trip * 1e6:.0f} us",
        },
    )

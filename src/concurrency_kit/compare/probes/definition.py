"""Definition: a process runs on its own (its own interpreter); a thread lives inside ours.

Two workers of each pool are held together at a barrier, so that both are certainly running at
once, and each reports the pid and the interpreter it runs in and its thread's identity. A
:class:`~concurrency_kit.ProcessPool` worker answers from another pid than ours, a
:class:`~concurrency_kit.ThreadPool` worker from ours and our interpreter, and an
:class:`~concurrency_kit.InterpreterPool` worker (Python 3.14+) from our pid but an interpreter
of its own. The figure counts the interpreters, other than ours, that the workers ran in. A
trivial task on each warm pool gives the price of crossing into that worker (details).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from concurrency_kit.compare._measure import Figure, Measurement, Mode, median_of
from concurrency_kit.compare.probes._shared import interpreter_id, interpreters_missing
from concurrency_kit.models import INTERPRETER, PROCESS, THREAD

__all__ = ["probe"]

WORKERS = 2


Where = tuple[int, int, int]
"""A worker's whereabouts: its pid, its interpreter's id in that process, its thread's ident."""


def whereami(barrier: Any) -> Where:
    """Wait until every worker is here, then say which process, interpreter and thread this is."""
    barrier.wait(10.0)
    return os.getpid(), interpreter_id(), threading.get_ident()


def _noop() -> None:
    """A task that does nothing: its round trip is the pool's own cost."""


def _observe(model: Any, trivial: int) -> tuple[list[Where], float]:
    """Where :data:`WORKERS` simultaneous workers of ``model`` run, and a trivial task's round
    trip (s)."""
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
    """Count the interpreters other than ours that the workers run in, per model."""
    trivial = 50 if mode == "quick" else 500
    ours = (os.getpid(), interpreter_id())
    seen = {"process": _observe(PROCESS, trivial), "thread": _observe(THREAD, trivial)}
    missing = interpreters_missing()
    if not missing:
        seen["interpreter"] = _observe(INTERPRETER, trivial)

    def elsewhere(where: list[Where]) -> int:
        return len({(pid, interp) for pid, interp, _ in where if (pid, interp) != ours})

    def pids(where: list[Where]) -> str:
        return ", ".join(map(str, sorted({pid for pid, _, _ in where})))

    own = {model: elsewhere(where) for model, (where, _) in seen.items()}
    threads = len({ident for _, _, ident in seen["thread"][0]})
    finding = (
        f"{WORKERS} process workers ran in {own['process']} interpreters of their own "
        f"(pids {pids(seen['process'][0])}, ours {ours[0]}); {WORKERS} thread workers ran in "
        f"{own['thread']} other interpreters: all in ours (pid {ours[0]}), as {threads} distinct "
        "threads"
    )
    details = {
        "parent pid": str(ours[0]),
        "process worker pids": pids(seen["process"][0]),
        "thread worker pids": pids(seen["thread"][0]),
        "distinct threads among thread workers": str(threads),
    }
    for model, (_, trip) in seen.items():
        details[f"trivial task round trip, {model} pool"] = f"{trip * 1e6:.0f} us"
    interpreter = None
    if "interpreter" in seen:
        where = seen["interpreter"][0]
        finding += (
            f"; {WORKERS} interpreter workers ran in {own['interpreter']} interpreters of their "
            f"own, in our pid"
        )
        details["interpreter worker pids"] = pids(where)
        details["interpreter worker interpreter ids"] = ", ".join(
            str(i) for i in sorted({interp for _, interp, _ in where})
        )
        interpreter = Figure(
            float(own["interpreter"]),
            "interpreters",
            f"of {WORKERS} simultaneous workers, not ours",
        )
    return Measurement(
        key="definition",
        process=Figure(
            float(own["process"]), "interpreters", f"of {WORKERS} simultaneous workers, not ours"
        ),
        thread=Figure(
            float(own["thread"]), "interpreters", f"of {WORKERS} simultaneous workers, not ours"
        ),
        better="higher",
        holds=None,
        finding=finding,
        details=details,
        interpreter=interpreter,
        interpreter_missing=missing,
    )

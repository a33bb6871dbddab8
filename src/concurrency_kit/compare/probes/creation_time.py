"""Creation time: start-to-running latency of a thread, and of a process per start method.

Each sample starts one bare worker, the stdlib way, whose first act is to signal the parent:

* a thread (``threading.Thread``) sets an event;
* a process (``multiprocessing`` under ``fork``, ``forkserver`` and ``spawn``) sends a byte
  through a pipe (its target is the pipe end's ``send_bytes``, so that the child imports
  nothing of ours).

The clock runs from just before ``start()`` until the parent has the signal, and stops before
the join. The process figure is the library's default start method (``forkserver``, see
:class:`~concurrency_kit.ProcessPool`); the other start methods are in the details. The
forkserver's first sample includes starting the server, if no other code started it before;
the median leaves it out once there are three samples.

On Python 3.14+ an interpreter is timed too: from ``concurrent.interpreters.create()`` until its
first line has run (``exec`` in the calling thread, so no thread start is counted); closing it
is not counted.
"""

from __future__ import annotations

import importlib
import multiprocessing
import threading
import time

from concurrency_kit._core.startmethod import default_start_method
from concurrency_kit.compare._measure import Comparison, Figure, Measurement, Mode, Spread
from concurrency_kit.compare.probes._shared import interpreters_missing

__all__ = ["probe"]

SAMPLES: dict[Mode, dict[str, int]] = {
    "quick": {"thread": 20, "fork": 7, "forkserver": 7, "spawn": 3, "interpreter": 7},
    "full": {"thread": 200, "fork": 30, "forkserver": 30, "spawn": 10, "interpreter": 30},
}


def _thread_start() -> float:
    """Seconds from ``start()`` until a new thread runs its first line."""
    running = threading.Event()
    thread = threading.Thread(target=running.set, name="ck-creation-probe")
    start = time.perf_counter()
    thread.start()
    running.wait()
    elapsed = time.perf_counter() - start
    thread.join()
    return elapsed


def _process_start(method: str) -> float:
    """Seconds from ``start()`` until a new process under ``method`` runs its first line."""
    context = multiprocessing.get_context(method)
    receiver, sender = context.Pipe(duplex=False)
    try:
        # typeshed gives a context chosen by a ``str`` no ``Process``; every real one has it.
        process = context.Process(  # type: ignore[attr-defined]
            target=sender.send_bytes, args=(b"!",), daemon=True
        )
        start = time.perf_counter()
        process.start()
        try:
            if not receiver.poll(60.0):
                raise TimeoutError(f"a {method} process did not start within 60 s")
            receiver.recv_bytes()
            elapsed = time.perf_counter() - start
        finally:
            process.join(60.0)
            if process.is_alive():  # pragma: no cover - only if the child hangs
                process.kill()
                process.join()
            process.close()
    finally:
        receiver.close()
        sender.close()
    return elapsed


def _interpreter_start() -> float:
    """Seconds from creating an interpreter until it has run its first line."""
    interpreters = importlib.import_module("concurrent.interpreters")
    start = time.perf_counter()
    interpreter = interpreters.create()
    try:
        interpreter.exec("pass")
        elapsed = time.perf_counter() - start
    finally:
        interpreter.close()
    return elapsed


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.0f} us"


def probe(mode: Mode) -> Measurement:
    """Median start-to-running time of a thread, and of a process under each start method."""
    counts = SAMPLES[mode]
    thread_samples = [_thread_start() for _ in range(counts["thread"])]
    thread = Spread.of(thread_samples).median
    available = multiprocessing.get_all_start_methods()
    methods = [m for m in ("fork", "forkserver", "spawn") if m in available]
    process: dict[str, float] = {}
    spreads: dict[str, Spread] = {}
    details = {"thread": f"{_ms(thread)} (median of {counts['thread']})"}
    for method in methods:
        samples = [_process_start(method) for _ in range(counts[method])]
        spreads[method] = Spread.of(samples)
        process[method] = spreads[method].median
        details[method] = (
            f"{_ms(process[method])} (median of {len(samples)}; first {_ms(samples[0])}); "
            f"{process[method] / thread:,.0f}x a thread"
        )
    default = default_start_method()
    missing = interpreters_missing()
    interpreter: Spread | None = None
    if not missing:
        interpreter_samples = [_interpreter_start() for _ in range(counts["interpreter"])]
        interpreter = Spread.of(interpreter_samples)
        details["interpreter"] = (
            f"{_ms(interpreter.median)} (median of {len(interpreter_samples)}); "
            f"{interpreter.median / thread:,.0f}x a thread, "
            f"{interpreter.median / process[default]:.2f}x a process ({default})"
        )
    holds = all(thread < value for value in process.values())
    slowest = max(process, key=process.__getitem__)
    fastest = min(process, key=process.__getitem__)
    finding = (
        f"a thread starts in {_ms(thread)}, a process in {_ms(process[default])} ({default}) — "
        f"{process[default] / thread:,.0f}x; from {_ms(process[fastest])} ({fastest}) to "
        f"{_ms(process[slowest])} ({slowest})"
    )
    if interpreter is not None:
        finding += f"; an interpreter in {_ms(interpreter.median)}"
    return Measurement(
        key="creation_time",
        process=Figure(process[default] * 1e6, "us", f"start to running, {default}"),
        thread=Figure(thread * 1e6, "us", "start to running"),
        better="lower",
        holds=holds,
        finding=finding,
        comparisons=(
            Comparison(
                f"start to running ({default})",
                "us",
                spreads[default].scaled(1e6),
                Spread.of(thread_samples).scaled(1e6),
                "lower",
                "thread",
            ),
        ),
        explanation=(
            "a thread needs only a stack and a kernel task, which cannot cost more than a new "
            "process; if this shows otherwise, the machine interfered with the samples"
        ),
        details=details,
        interpreter=None
        if interpreter is None
        else Figure(interpreter.median * 1e6, "us", "create to running its first line"),
        interpreter_spread=None if interpreter is None else interpreter.scaled(1e6),
        interpreter_missing=missing,
    )

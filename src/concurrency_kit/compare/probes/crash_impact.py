"""Crash impact: a segfault in a thread kills its host process; in a pool process it does not.

Both experiments run in a sandboxed child interpreter (``sys.executable -c ...``), never in
the calling process:

* threads: the host starts a :class:`~concurrency_kit.ThreadPool` and submits
  ``ctypes.string_at(0)`` (a read of address 0: SIGSEGV). The fault is the whole process's:
  the host dies with it, and never prints that it survived;
* processes: the host starts a :class:`~concurrency_kit.ProcessPool` and submits the same
  call. Only the worker dies: the task fails with
  :class:`~concurrency_kit.WorkerCrashedError`, the pool replaces the worker, the next task
  runs, and the host prints that it survived and how long recovery took (from the crashed
  task's failure to the next task's result on the fresh worker).

* interpreters (Python 3.14+): the host starts an :class:`~concurrency_kit.InterpreterPool`
  and submits the same call; the worker's interpreter runs in the host's process, so the
  fault is the host's, as a thread's is. A Python exception, by contrast, stays in the task:
  the host first checks that one fails only its task.

The figure is the number of hosts alive after the crash (1 or 0); the recovery time is in the
details.
"""

from __future__ import annotations

import signal
import subprocess
import sys

from concurrency_kit.compare._measure import Figure, Measurement, Mode
from concurrency_kit.compare.probes._shared import interpreters_missing

__all__ = ["INTERPRETER_HOST", "PROCESS_HOST", "THREAD_HOST", "probe", "run_host"]

THREAD_HOST = """
import ctypes
from concurrency_kit import ThreadPool
with ThreadPool(2) as pool:
    pool.submit(ctypes.string_at, 0).result(30)
print("survived")
"""
"""The host of the thread experiment: a thread of its own pool reads address 0."""

PROCESS_HOST = """
import ctypes, time
from concurrency_kit import ProcessPool, WorkerCrashedError
with ProcessPool(1) as pool:
    pool.submit(abs, 0).result(30)
    try:
        pool.submit(ctypes.string_at, 0).result(30)
    except WorkerCrashedError as exc:
        failed = time.perf_counter()
        print("crashed:", type(exc).__name__)
    assert pool.submit(abs, -7).result(30) == 7
    print("recovered_us:", (time.perf_counter() - failed) * 1e6)
print("survived")
"""
"""The host of the process experiment: a worker process of its pool reads address 0."""


INTERPRETER_HOST = """
import ctypes
from concurrency_kit import InterpreterPool
with InterpreterPool(2) as pool:
    try:
        pool.submit(int, "not a number").result(30)
    except ValueError:
        print("exception contained", flush=True)  # before the fault ends the process
    pool.submit(ctypes.string_at, 0).result(30)
print("survived")
"""
"""The host of the interpreter experiment: an interpreter of its pool reads address 0."""


def run_host(script: str) -> tuple[int, str]:
    """Run ``script`` in a fresh interpreter: its exit code (negative: a signal) and output."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout


def _exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def probe(mode: Mode) -> Measurement:
    """Whether the host survives a segfault in a thread worker and in a process worker."""
    t_code, t_out = run_host(THREAD_HOST)
    p_code, p_out = run_host(PROCESS_HOST)
    t_alive = t_code == 0 and "survived" in t_out
    p_alive = p_code == 0 and "survived" in p_out
    recovered = "n/a"
    for line in p_out.splitlines():
        if line.startswith("recovered_us:"):
            recovered = f"{float(line.split()[1]) / 1000:.1f} ms"
    holds = p_alive and not t_alive
    if p_alive:
        process_part = (
            "a segfault in a pool process failed only its task (the pool replaced the worker "
            f"and ran the next task {recovered} later)"
        )
    else:
        process_part = f"a segfault in a pool process took the host down ({_exit(p_code)})"
    if t_alive:
        thread_part = "a segfault in a pool thread left the host running"
    else:
        thread_part = f"a segfault in a pool thread killed the whole host ({_exit(t_code)})"
    finding = f"{process_part}; {thread_part}"
    missing = interpreters_missing()
    interpreter = None
    interpreter_details = {}
    if not missing:
        i_code, i_out = run_host(INTERPRETER_HOST)
        i_alive = i_code == 0 and "survived" in i_out
        contained = "exception contained" in i_out
        fate = "left the host running" if i_alive else f"killed the whole host ({_exit(i_code)})"
        exception = "failed only its task" if contained else "was not contained"
        finding += (
            f"; a segfault in a pool interpreter {fate}, though a Python exception there "
            f"{exception}"
        )
        interpreter = Figure(float(i_alive), "hosts alive", "after a worker interpreter segfaults")
        interpreter_details = {
            "interpreter host": _exit(i_code),
            "interpreter pool, a Python exception": exception,
        }
    return Measurement(
        key="crash_impact",
        process=Figure(float(p_alive), "hosts alive", "after a worker process segfaults"),
        thread=Figure(float(t_alive), "hosts alive", "after a worker thread segfaults"),
        better="higher",
        holds=holds,
        finding=finding,
        details={
            "thread host": _exit(t_code),
            "process host": _exit(p_code),
            "process pool recovery": f"{recovered} from the failed task to the next result",
            "sandbox": "each experiment ran in its own child interpreter (sys.executable -c)",
            **interpreter_details,
        },
        interpreter=interpreter,
        interpreter_missing=missing,
    )

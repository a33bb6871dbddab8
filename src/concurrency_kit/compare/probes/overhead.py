"""Overhead: memory per worker, and the per-task overhead of each pool.

*Memory per worker*, the row's figure, in MiB:

* a process worker: the USS (private pages: ``Private_Clean + Private_Dirty``) of a live,
  idle :class:`~concurrency_kit.ProcessPool` worker, read from ``/proc/<pid>/smaps_rollup``;
  its PSS (private pages plus a fair share of the pages it shares) is in the details;
* a thread worker: the growth of this process's USS when :data:`THREADS` more idle threads
  are started, divided by their number (a thread's stack is reserved, ``threading.stack_size``
  or the system default, but only the pages it touches count).

Elsewhere than Linux there is no ``smaps_rollup``: the probe falls back on the maximum RSS
from :mod:`resource` (``ru_maxrss`` of the children, which counts shared pages too, for the
process; the growth of our own maximum RSS for threads), and says so in the figure; with no
:mod:`resource` either, the figures are ``nan`` ("n/a").

* an interpreter worker (Python 3.14+): the growth of this process's USS when an
  :class:`~concurrency_kit.InterpreterPool` of :data:`INTERPRETERS` workers has them all
  running (each imports its own modules, our worker's included), divided by their number.

*Per-task overhead* (details): the median time of ``submit(abs, 0).result()`` on a warm pool
of one worker, for each pool.
"""

from __future__ import annotations

import os
import threading
import time

from concurrency_kit.compare._measure import (
    Comparison,
    Figure,
    Measurement,
    Mode,
    Spread,
    median_of,
)
from concurrency_kit.compare.probes._shared import interpreters_missing
from concurrency_kit.pools import InterpreterPool, ProcessPool, ThreadPool
from concurrency_kit.sync import ProcessBarrier

__all__ = ["THREADS", "memory_kib", "probe"]

THREADS = 32
"""How many idle threads are started to measure a thread's memory."""

INTERPRETERS = 4
"""How many interpreter workers are started to measure an interpreter's memory."""

TASKS: dict[Mode, int] = {"quick": 300, "full": 3_000}

_SMAPS = "/proc/{pid}/smaps_rollup"


def memory_kib(pid: int) -> dict[str, int] | None:
    """``{"uss": ..., "pss": ..., "rss": ...}`` in KiB for ``pid``, or ``None`` without /proc."""
    try:
        with open(_SMAPS.format(pid=pid)) as f:
            fields = {}
            for line in f:
                name, _, rest = line.partition(":")
                parts = rest.split()
                if len(parts) == 2 and parts[1] == "kB":
                    fields[name] = int(parts[0])
    except OSError:
        return None
    return {
        "uss": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0),
        "pss": fields.get("Pss", 0),
        "rss": fields.get("Rss", 0),
    }


def _maxrss_kib(children: bool) -> float:
    """The maximum RSS in KiB from :mod:`resource` (``nan`` without it)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Linux
        return float("nan")
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    rss = resource.getrusage(who).ru_maxrss
    return float(rss) / 1024 if os.uname().sysname == "Darwin" else float(rss)


def _thread_kib() -> tuple[float, str]:
    """Extra KiB per idle thread, and how it was measured."""
    stop = threading.Event()
    started = threading.Barrier(THREADS + 1)

    def idle() -> None:
        started.wait()
        stop.wait()

    before = memory_kib(os.getpid())
    rss_before = _maxrss_kib(children=False)
    threads = [threading.Thread(target=idle, daemon=True) for _ in range(THREADS)]
    try:
        for t in threads:
            t.start()
        started.wait(30.0)
        after = memory_kib(os.getpid())
        rss_after = _maxrss_kib(children=False)
    finally:
        stop.set()
        for t in threads:
            t.join()
    if before is not None and after is not None:
        return max(after["uss"] - before["uss"], 0) / THREADS, "USS growth"
    return max(rss_after - rss_before, 0.0) / THREADS, "max RSS growth (no /proc)"


def _interpreter_kib(tasks: int) -> tuple[float, float]:
    """Extra KiB per running interpreter worker (``nan`` without /proc), and the per-task
    overhead (s) of the same pool."""
    before = memory_kib(os.getpid())
    barrier = ProcessBarrier(INTERPRETERS)
    try:
        with InterpreterPool(INTERPRETERS) as pool:
            for future in [pool.submit(barrier.wait, 30.0) for _ in range(INTERPRETERS)]:
                future.result(60.0)  # every worker is running, each in its interpreter
            after = memory_kib(os.getpid())
            per_task = _per_task(pool, tasks)
    finally:
        barrier.close()
    if before is None or after is None:
        return float("nan"), per_task
    return max(after["uss"] - before["uss"], 0) / INTERPRETERS, per_task


def _per_task(pool: ProcessPool | ThreadPool | InterpreterPool, count: int) -> float:
    """Median seconds of one trivial ``submit -> result`` round trip."""
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        pool.submit(abs, 0).result(30.0)
        samples.append(time.perf_counter() - start)
    return median_of(samples)


def probe(mode: Mode) -> Measurement:
    """Memory per worker (the figure) and per-task overhead, process vs thread."""
    thread_kib, thread_how = _thread_kib()
    with ProcessPool(1) as pool:
        pid = pool.submit(os.getpid).result(30.0)
        found = memory_kib(pid)
        p_task = _per_task(pool, TASKS[mode])
    with ThreadPool(1) as tpool:
        t_task = _per_task(tpool, TASKS[mode])
    if found is not None:
        process_kib, pss = float(found["uss"]), f"{found['pss'] / 1024:.1f} MiB"
        process_how = "USS of an idle ProcessPool worker"
        rss = f"{found['rss'] / 1024:.1f} MiB"
    else:
        process_kib, pss, rss = _maxrss_kib(children=True), "n/a", "n/a"
        process_how = "max RSS of a ProcessPool worker (no /proc)"
    p_mib, t_mib = process_kib / 1024, thread_kib / 1024
    missing = interpreters_missing()
    interpreter = None
    interpreter_details = {}
    if not missing:
        interpreter_kib, i_task = _interpreter_kib(TASKS[mode])
        interpreter = Figure(
            interpreter_kib / 1024, "MiB", f"USS growth per running interpreter ({INTERPRETERS})"
        )
        interpreter_details = {
            f"per-task overhead, interpreter pool of {INTERPRETERS}": f"{i_task * 1e6:.1f} us"
        }
    holds = t_mib < p_mib
    finding = (
        f"a process worker takes {p_mib:.1f} MiB of its own, one more thread "
        f"{thread_kib:.0f} KiB; a trivial task costs {p_task * 1e6:.0f} us through the process "
        f"pool and {t_task * 1e6:.0f} us through the thread pool"
    )
    if interpreter is not None:
        finding += (
            f"; an interpreter worker {interpreter.value:.1f} MiB, a task "
            f"{i_task * 1e6:.0f} us through the interpreter pool"
        )
    stack = threading.stack_size()
    return Measurement(
        key="overhead",
        process=Figure(p_mib, "MiB", process_how),
        thread=Figure(t_mib, "MiB", f"{thread_how} per idle thread ({THREADS} started)"),
        better="lower",
        holds=holds,
        finding=finding,
        comparisons=(
            Comparison(
                "memory per worker",
                "MiB",
                Spread.exact(p_mib),
                Spread.exact(t_mib),
                "lower",
                "thread",
                timing=False,
            ),
        ),
        details={
            "process worker PSS": pss,
            "process worker RSS": rss,
            "thread stack reserved": (
                f"{stack // 1024} KiB (threading.stack_size)" if stack else "system default"
            ),
            "per-task overhead, process pool": f"{p_task * 1e6:.1f} us",
            "per-task overhead, thread pool": f"{t_task * 1e6:.1f} us",
            "samples": f"median of {TASKS[mode]} submit -> result round trips of abs(0)",
            **interpreter_details,
        },
        interpreter=interpreter,
        interpreter_missing=missing,
    )

"""Memory space: a worker's write to a global is seen by the parent for a thread, not a process.

:data:`TASKS` tasks each add one to a module-level global (:data:`_hits`), first on a
:class:`~concurrency_kit.ThreadPool`, then on a :class:`~concurrency_kit.ProcessPool`, and the
parent reads the global back. Threads increment the parent's own global; each worker process
increments its own copy, which the parent never sees. What it takes to share across processes
is to say so: a :class:`~concurrency_kit.ProcessSharedCounter` and a
:class:`~concurrency_kit.ProcessSharedDict` passed to the same tasks do reach the parent.

On Python 3.14+ the same runs on an :class:`~concurrency_kit.InterpreterPool`: its workers run
in this process, but each interpreter imports its own copy of this module, so the parent sees
none of their writes to the global either; the shared counter reaches it from there too.
"""

from __future__ import annotations

import os
import threading

from concurrency_kit.compare._measure import Figure, Measurement, Mode
from concurrency_kit.compare.probes._shared import interpreters_missing
from concurrency_kit.pools import InterpreterPool, ProcessPool, ThreadPool
from concurrency_kit.protocols import Pool
from concurrency_kit.state import ProcessSharedCounter, ProcessSharedDict

__all__ = ["probe"]

TASKS = 8
WORKERS = 2

_hits = 0
"""The global the workers write to: in the parent, and (a copy) in every worker process."""
_hits_lock = threading.Lock()


def bump_global() -> int:
    """Add one to this interpreter's :data:`_hits`; return the pid that did it."""
    global _hits
    with _hits_lock:
        _hits += 1
    return os.getpid()


def bump_shared(counter: ProcessSharedCounter, table: ProcessSharedDict, task: int) -> int:
    """Add one to a shared counter and record who did it in a shared dict."""
    counter.add(1)
    table[task] = os.getpid()
    return os.getpid()


def _global_seen(pool: Pool) -> int:
    """Run :data:`TASKS` global increments on ``pool``; the value the parent then sees."""
    global _hits
    with _hits_lock:
        _hits = 0
    for future in [pool.submit(bump_global) for _ in range(TASKS)]:
        future.result(30.0)
    with _hits_lock:
        seen, _hits = _hits, 0
    return seen


def _seen_by_parent(pool: ProcessPool | InterpreterPool) -> tuple[int, int, int, int]:
    """On ``pool``: the global's value the parent sees after :data:`TASKS` increments, then
    what a shared counter and dict passed to :data:`TASKS` tasks show it: the count, the dict's
    entries, and how many different pids wrote them."""
    global_seen = _global_seen(pool)
    counter = ProcessSharedCounter()
    table = ProcessSharedDict()
    try:
        for future in [pool.submit(bump_shared, counter, table, t) for t in range(TASKS)]:
            future.result(30.0)
        written = table.to_dict()
        return global_seen, counter.get(), len(written), len(set(written.values()))
    finally:
        counter.close()
        table.close()


def probe(mode: Mode) -> Measurement:
    """The value of a global the parent sees after :data:`TASKS` worker increments, per model."""
    del mode  # a matter of kind: one run tells
    with ThreadPool(WORKERS) as pool:
        thread_seen = _global_seen(pool)
    with ProcessPool(WORKERS) as pool:
        process_seen, shared_count, shared_entries, writers = _seen_by_parent(pool)
    missing = interpreters_missing()
    interpreter = None
    details = {}
    if not missing:
        with InterpreterPool(WORKERS) as ipool:
            interpreter_seen, interpreter_shared, _, _ = _seen_by_parent(ipool)
        interpreter = Figure(
            float(interpreter_seen), "writes", f"of {TASKS} to a global, seen by parent"
        )
        details["ProcessSharedCounter, seen by parent, from interpreters"] = (
            f"{interpreter_shared} of {TASKS}"
        )

    holds = thread_seen == TASKS and process_seen == 0
    finding = (
        f"after {TASKS} worker increments of a global, the parent sees {thread_seen} with "
        f"threads and {process_seen} with processes; through a ProcessSharedCounter it sees "
        f"{shared_count}"
    )
    if interpreter is not None:
        finding += (
            f"; with interpreters (in this process) it sees {interpreter.value:.0f} through the "
            f"global and {interpreter_shared} through the counter"
        )
    return Measurement(
        key="memory_space",
        process=Figure(float(process_seen), "writes", f"of {TASKS} to a global, seen by parent"),
        thread=Figure(float(thread_seen), "writes", f"of {TASKS} to a global, seen by parent"),
        better="higher",
        holds=holds,
        finding=finding,
        details={
            "ProcessSharedCounter, seen by parent": f"{shared_count} of {TASKS}",
            "ProcessSharedDict entries, seen by parent": (
                f"{shared_entries} of {TASKS}, written by {writers} worker processes"
            ),
            **details,
        },
        interpreter=interpreter,
        interpreter_missing=missing,
    )

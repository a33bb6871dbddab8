"""A restart in a fresh interpreter (Python 3.14+): what a crash left behind is gone.

One worker, one supervisor configuration, run under ThreadSupervisor and InterpreterSupervisor.
The worker keeps a cache in a module global (``_job_cache.cache``); a poisoned job crashes it
halfway through an update, leaving the cache half-written. A restarted *thread* runs in the same
interpreter: it finds the half-written cache, refuses to start, and the supervisor gives up
after its restart intensity. A restarted *interpreter child* runs in a new interpreter, where
the module is imported afresh: it starts clean and handles the remaining jobs.

Inside the child's interpreter, ``current_child()`` works as in a thread: the worker names
itself by it and closes its job channel when asked to stop. Jobs and results travel on an
``InterpreterChannel`` (shared memory: it works between threads and interpreters alike).

On an older Python the example says what it needs and exits.
"""

from __future__ import annotations

import sys
from typing import Any

import _job_cache

from concurrency_kit import (
    ChannelClosed,
    ChildSpec,
    InterpreterChannel,
    InterpreterSupervisor,
    SupervisorEvent,
    ThreadSupervisor,
    current_child,
)

JOBS = ["alpha", "poison", "beta", "gamma"]


def worker(jobs: Any, results: Any) -> None:
    me = current_child()
    me.on_stop(jobs.close)  # a stop request ends the loop below
    if _job_cache.cache.get("state") == "half-written":
        raise RuntimeError("the cache was left half-written by a crashed run")
    for job in jobs:
        _job_cache.cache["state"] = "half-written"
        if job == "poison":
            raise ValueError(f"job {job!r} crashed the worker mid-update")
        _job_cache.cache[job] = len(job)
        _job_cache.cache["state"] = "clean"
        results.send(f"{me.id} handled {job!r}")


def run(supervisor_class: Any) -> None:
    print(f"{supervisor_class.__name__}:")
    jobs: Any = InterpreterChannel(None)
    results: Any = InterpreterChannel(None)
    for job in JOBS:
        jobs.send(job)
    child = ChildSpec("worker", worker, (jobs, results), shutdown=10)
    supervisor = supervisor_class([child], intensity=2, period=30)
    with supervisor:

        def end_results_on_give_up(event: SupervisorEvent) -> None:
            if event.kind == "give_up":
                results.close()  # the recv below raises ChannelClosed

        supervisor.subscribe(end_results_on_give_up)
        try:
            for _ in range(len(JOBS) - 1):  # every job but the poisoned one
                print("  " + results.recv(timeout=30))
        except ChannelClosed:
            print("  the supervisor gave up")
    for event in supervisor.events():
        if event.kind == "exit" and not event.normal:
            reason = (event.traceback or "").strip().splitlines()[-1]
            print(f"  crash of {event.child_id!r}: {reason}")
    print(f"  restarts: {supervisor.statistics().restarts}")
    jobs.close()
    results.close()


if __name__ == "__main__":
    if sys.version_info < (3, 14):
        try:
            InterpreterSupervisor([])
        except ImportError as exc:
            print(
                f"this example needs Python 3.14 or newer; here InterpreterSupervisor says:\n{exc}"
            )
        sys.exit(0)
    run(ThreadSupervisor)
    _job_cache.cache.clear()  # the thread children left it half-written, here
    run(InterpreterSupervisor)

"""A flaky worker process is kept alive by a ProcessSupervisor.

The worker handles jobs and, now and then, dies: an exception, a hard ``os._exit``, a segfault
in "C code". Each time the supervisor sees the exit and why, starts a fresh worker process,
and the work goes on where it stopped, because the job counter lives in shared memory, not in
the worker. The main program only waits for the work to be done.
"""

from __future__ import annotations

import ctypes
import os
import signal

from concurrency_kit import (
    ChildSpec,
    ProcessEvent,
    ProcessSharedCounter,
    ProcessSupervisor,
    SupervisorEvent,
    current_child,
)

JOBS = 30


def flaky_worker(next_job: ProcessSharedCounter, all_done: ProcessEvent) -> None:
    """Take jobs until none is left; every seventh job is fatal, in its own way."""
    while not current_child().should_stop():
        job = next_job.add(1)
        if job > JOBS:
            all_done.set()
            current_child().wait_stop()  # idle until the supervisor stops us
            return
        if job % 7 == 0:
            fate = (job // 7) % 3
            if fate == 1:
                raise ConnectionError(f"job {job}: the database hung up")
            if fate == 2:
                os._exit(2)  # a library calling exit() behind our back
            ctypes.string_at(0)  # a bug in C code: segmentation fault


def describe(event: SupervisorEvent) -> str:
    """Why a child exited, from its exit event."""
    if event.exception is not None and event.traceback is not None:
        return f"raised {event.traceback.strip().splitlines()[-1]}"
    if event.signal is not None:
        return f"was killed by {signal.Signals(event.signal).name}"
    return f"exited with code {event.exitcode}"


def main() -> None:
    next_job, all_done = ProcessSharedCounter(), ProcessEvent()
    worker = ChildSpec("worker", flaky_worker, (next_job, all_done))
    # Up to 10 restarts within 5 seconds before giving up (OTP's intensity and period).
    with ProcessSupervisor([worker], intensity=10, period=5.0) as supervisor:
        if not all_done.wait(timeout=30):
            raise SystemExit("the work did not finish")
        for event in supervisor.events():
            if event.kind == "exit":
                print(f"the worker {describe(event)}; the supervisor restarted it")
        stats = supervisor.statistics()
    print(f"all {JOBS} jobs handed out; crashes: {stats.crashes}, restarts: {stats.restarts}")
    next_job.close()
    all_done.close()


if __name__ == "__main__":
    main()

"""The same crash under both supervisors: a process supervisor contains it, a thread one cannot.

One target, one supervisor configuration, written once against a Model: the child segfaults on
its first run (a bug in C code) and returns normally on its second. Under PROCESS the crash
ends the child process only; the supervisor restarts it and carries on. Under THREAD the crash
ends the whole process, supervisor included: nothing is restarted, nothing after it runs. That
is the Crash Impact row of the table, so the thread run happens in a sandbox, a child Python
process, which lets this example survive to tell the tale.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys

from concurrency_kit import (
    ANY_SIGNIFICANT,
    PROCESS,
    THREAD,
    TRANSIENT,
    ChildSpec,
    Model,
    ProcessSharedCounter,
)


def fragile(runs: ProcessSharedCounter) -> None:
    if runs.add(1) == 1:
        ctypes.string_at(0)  # first run: read address 0, SIGSEGV


def run(model: Model) -> None:
    runs = model.SharedCounter()
    child = ChildSpec(
        "fragile",
        fragile,
        (runs,),
        restart=TRANSIENT,  # restarted after a crash, not after returning
        significant=True,  # and once it has returned, the supervisor's work is done
    )
    with model.Supervisor([child], auto_shutdown=ANY_SIGNIFICANT) as supervisor:
        supervisor.wait(timeout=30)
    for event in supervisor.events():
        if event.kind == "exit":
            how = "normal" if event.normal else "CRASH"
            print(f"  exit of {event.child_id!r}: {how} (exit code {event.exitcode})")
    print(f"  the target ran {runs.get()} times; the supervising process is alive")
    runs.close()


def main() -> None:
    print("ProcessSupervisor, in this process:")
    run(PROCESS)

    print("ThreadSupervisor, in a sandbox process:")
    sandbox = subprocess.run(
        [sys.executable, __file__, "--sandbox"], capture_output=True, text=True, timeout=60
    )
    for line in sandbox.stdout.splitlines():
        print(line)
    code = sandbox.returncode
    if code < 0:
        print(f"  the sandbox process died of {signal.Signals(-code).name}, supervisor and all;")
        print("  it printed nothing after the crash and restarted nothing")
    else:
        raise SystemExit(f"unexpected: the sandbox exited with code {code}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--sandbox"]:
        run(THREAD)
    else:
        main()

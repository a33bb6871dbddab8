"""A child that crashes on every start: the supervisor gives up instead of looping for ever.

OTP's restart intensity: more than ``intensity`` restarts within ``period`` seconds means the
fault is not transient, so restarting again is pointless. The supervisor stops its children,
gives up, and ``wait()`` raises SupervisorGaveUp carrying the whole history, which the caller
(or a supervisor above it) can act on. Here the child needs a configuration that is missing.
"""

from __future__ import annotations

import os

from concurrency_kit import ChildSpec, ProcessSupervisor, SupervisorGaveUp


def needs_config() -> None:
    path = os.environ.get("APP_CONFIG", "/nonexistent/app.toml")
    with open(path) as config:  # FileNotFoundError, on every single start
        print(config.read())


def main() -> None:
    supervisor = ProcessSupervisor(
        [ChildSpec("app", needs_config)], intensity=3, period=5.0, name="app-supervisor"
    )
    with supervisor:
        try:
            supervisor.wait(timeout=30)
        except SupervisorGaveUp as exc:
            print(f"gave up: {exc}")
            start = exc.history[0].time
            for event in exc.history:
                what = f"{event.kind:<8} {event.child_id or '(supervisor)'}"
                if event.kind == "exit":
                    what += f"  exit code {event.exitcode}, {event.exception}"
                print(f"  +{(event.time - start) * 1000:6.1f} ms  {what}")
            last = exc.history[-2]  # the last exit, just before "give_up"
            print("the last crash's traceback ends with:")
            print("  " + (last.traceback or "").strip().splitlines()[-1])
    print(f"statistics: {supervisor.statistics()}")


if __name__ == "__main__":
    main()

"""A worker process segfaults; only its task fails and the pool carries on.

In the process model a crash is contained: the dead worker's task fails with
WorkerCrashedError (carrying the signal and the pid), a fresh worker replaces it, and every
other task completes. The same fault in a thread would take the whole interpreter down.

The pool starts the replacement in the background, so the other tasks may all be done (by the
surviving worker) before the new worker is up: the example waits for the pool's statistics to
show the replacement, rather than reading them at once (which could still say 0).
"""

from __future__ import annotations

import ctypes
import time

from concurrency_kit import ProcessPool, WorkerCrashedError


def square(x: int) -> int:
    return x * x


def segfault() -> None:
    ctypes.string_at(0)  # read address 0: SIGSEGV


def wait_for_replacement(pool: ProcessPool, timeout: float = 30.0) -> int:
    """Wait until the pool reports a replaced worker and is back to full strength."""
    deadline = time.monotonic() + timeout
    while True:
        stats = pool.statistics()
        if stats.workers_replaced >= 1 and stats.workers_alive == stats.max_workers:
            return stats.workers_replaced
        if time.monotonic() > deadline:
            raise TimeoutError("the crashed worker was not replaced")
        time.sleep(0.01)


def main() -> None:
    with ProcessPool(2) as pool:
        before = [pool.submit(square, i) for i in range(5)]
        crash = pool.submit(segfault)
        after = [pool.submit(square, i) for i in range(5, 10)]

        try:
            crash.result()
        except WorkerCrashedError as exc:
            print(f"the crashing task failed alone: {exc} (signal {exc.signal}, pid {exc.pid})")

        results = [f.result() for f in before + after]
        print(f"the other ten tasks all succeeded: {results}")
        replaced = wait_for_replacement(pool)
        stats = pool.statistics()
        print(
            f"tasks crashed: {stats.tasks_crashed}, workers replaced: {replaced}, "
            f"workers alive: {stats.workers_alive} of {stats.max_workers}"
        )


if __name__ == "__main__":
    main()

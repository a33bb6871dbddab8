"""A worker process segfaults; only its task fails and the pool carries on.

In the process model a crash is contained: the dead worker's task fails with
WorkerCrashedError (carrying the signal and the pid), a fresh worker replaces it, and every
other task completes. The same fault in a thread would take the whole interpreter down.
"""

from __future__ import annotations

import ctypes

from concurrency_kit import ProcessPool, WorkerCrashedError


def square(x: int) -> int:
    return x * x


def segfault() -> None:
    ctypes.string_at(0)  # read address 0: SIGSEGV


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
        stats = pool.statistics()
        print(f"tasks crashed: {stats.tasks_crashed}, workers replaced: {stats.workers_replaced}")


if __name__ == "__main__":
    main()

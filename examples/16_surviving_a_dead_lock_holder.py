"""A process dies holding a lock; the others take it over instead of waiting for ever.

A ``multiprocessing.Lock`` whose holder is SIGKILLed stays locked for good: every process that
wants it next hangs. A ``ProcessLock`` is a robust mutex: the next ``acquire`` gets it at once,
and says so with a ``LockOwnerDiedWarning`` and in ``statistics().owner_deaths_recovered``.
Whatever the lock protected may be half-updated, since its holder died inside the critical
section: the warning is the moment to check it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import warnings

from concurrency_kit import LockOwnerDiedWarning, ProcessLock


def hold_and_die(lock: ProcessLock) -> None:
    """Take the lock, then die without releasing it: no ``finally``, no ``with``, nothing."""
    lock.acquire()
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    lock = ProcessLock()
    try:
        # The lock travels to the child as a pickled handle (forkserver: nothing is inherited).
        child = multiprocessing.get_context("forkserver").Process(target=hold_and_die, args=(lock,))
        child.start()
        child.join()
        print(f"the child died holding the lock: exit code {child.exitcode}")
        print(f"locked: {lock.locked()}")

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LockOwnerDiedWarning)
            start = time.perf_counter()
            acquired = lock.acquire(timeout=10)  # the timeout is only a safety net
            elapsed = time.perf_counter() - start
        print(f"acquired: {acquired}, in {elapsed * 1e3:.2f} ms")
        for warning in caught:
            print(f"{warning.category.__name__}: {warning.message}")

        stats = lock.statistics()
        print(f"owner now: pid {stats.owner_pid} (this process is {os.getpid()})")
        print(f"owner deaths recovered: {stats.owner_deaths_recovered}")
        print(f"acquisitions: {stats.acquisitions}, contentions: {stats.contentions}")
        lock.release()
        print(f"released; locked: {lock.locked()}")
    finally:
        lock.close()


if __name__ == "__main__":
    main()

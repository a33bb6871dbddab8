"""Creation time: how long from asking for a worker until code runs in it, thread vs process.

Each sample creates a one-worker pool, submits ``time.monotonic`` and takes the clock reading
the worker returns: the time from the pool's constructor to the first line of Python running
in the new worker. ``CLOCK_MONOTONIC`` is one clock for the whole machine, so a reading taken
in another process compares with ours. The pool is then shut down (outside the clock).

A thread only needs a stack; a process needs a whole interpreter, obtained three ways:

* ``fork`` copies this process (cheap: pages are shared copy-on-write), but is unsafe once
  the parent runs threads.
* ``forkserver`` (the default) forks a small server process started once; the first sample
  includes starting that server, later ones are forks of an already-warm interpreter.
* ``spawn`` starts a fresh interpreter, which imports everything again: slowest by far.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial

from concurrency_kit import Pool, ProcessPool, ThreadPool

SAMPLES = 5


def start_to_running(make_pool: Callable[[], Pool]) -> float:
    """Seconds from creating a one-worker pool until its worker runs our first call."""
    asked = time.monotonic()
    with make_pool() as pool:
        running: float = pool.submit(time.monotonic).result()
    return running - asked


def main() -> None:
    kinds: list[tuple[str, Callable[[], Pool]]] = [("thread", lambda: ThreadPool(1))]
    for method in ("fork", "forkserver", "spawn"):
        kinds.append((f"process ({method})", partial(ProcessPool, 1, start_method=method)))

    print(f"start-to-running time of one worker, {SAMPLES} samples each, in ms")
    print(f"{'worker':<22}{'first':>9}{'median':>9}{'fastest':>9}")
    medians = {}
    for label, make_pool in kinds:
        ms = [start_to_running(make_pool) * 1e3 for _ in range(SAMPLES)]
        medians[label] = statistics.median(ms)
        print(f"{label:<22}{ms[0]:>9.2f}{medians[label]:>9.2f}{min(ms):>9.2f}")

    thread = medians["thread"]
    for label, median in medians.items():
        if label != "thread":
            print(f"a {label} took {median / thread:,.0f}x as long as a thread to start")


if __name__ == "__main__":
    main()

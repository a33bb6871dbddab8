"""CPU-bound Python code: processes run in parallel, threads take turns (the GIL).

The same job, the same API, two models: only the pool class changes. On a GIL build of CPython
threads cannot run Python bytecode at the same time, so the thread pool is no faster than one
core, while the process pool uses every core it is given.
"""

from __future__ import annotations

import os
import time

from concurrency_kit import PROCESS, THREAD, Model


def count_primes(limit: int) -> int:
    """Deliberately plain Python: all bytecode, no I/O, no C extension."""
    found = 0
    for n in range(2, limit):
        if all(n % d for d in range(2, int(n**0.5) + 1)):
            found += 1
    return found


def timed_run(model: Model, jobs: list[int], workers: int) -> float:
    with model.Pool(workers) as pool:
        pool.submit(count_primes, 10).result()  # warm up: start the workers first
        start = time.perf_counter()
        total = sum(pool.map(count_primes, jobs, chunksize=1))
        elapsed = time.perf_counter() - start
    print(f"{model.name:>7} pool, {workers} workers: {total} primes in {elapsed:.2f} s")
    return elapsed


if __name__ == "__main__":
    workers = min(4, os.cpu_count() or 1)
    jobs = [60_000] * (2 * workers)
    threads = timed_run(THREAD, jobs, workers)
    processes = timed_run(PROCESS, jobs, workers)
    print(f"processes were {threads / processes:.1f}x as fast as threads on {workers} cores")

"""Overhead: the memory one more worker costs, as a process and as a thread (Linux ``/proc``).

A worker process is a whole interpreter. Its memory is counted three ways, from
``/proc/<pid>/smaps_rollup``:

* RSS, every page it has in RAM, including pages shared with other processes;
* PSS, each shared page divided among the processes that share it;
* USS, the pages that are its alone: what the machine gets back when it exits, the best
  figure for "one more worker".

A forked worker shares most of its pages with the process it was forked from (copy on write),
so its USS is much lower than its RSS; a spawned one imports everything itself.

A thread is a stack and a few structures inside this process. Its cost is the growth of this
process's RSS (``/proc/self/status``) when idle threads start, divided by their number. Each
thread *reserves* much more address space (VmSize: an 8 MiB stack, and glibc may give it a
malloc arena of its own), but only the pages it touches take memory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from concurrency_kit import ProcessPool, ThreadBarrier, ThreadEvent, ThreadPool

THREADS = 20
MiB = 1024 * 1024


def proc_fields(path: str) -> dict[str, int]:
    """The ``Name:  123 kB`` lines of a ``/proc`` file, in bytes."""
    fields = {}
    for line in Path(path).read_text().splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            fields[name] = int(parts[0]) * 1024
    return fields


def process_worker_memory(start_method: str) -> tuple[int, int, int]:
    """RSS, PSS and USS of the one worker of a fresh one-worker pool, in bytes."""
    with ProcessPool(1, start_method=start_method) as pool:
        pid = pool.submit(os.getpid).result()
        rollup = proc_fields(f"/proc/{pid}/smaps_rollup")
    uss = rollup["Private_Clean"] + rollup["Private_Dirty"]
    return rollup["Rss"], rollup["Pss"], uss


def idle(ready: ThreadBarrier, release: ThreadEvent) -> None:
    ready.wait()
    release.wait()


def thread_memory() -> tuple[float, float]:
    """RSS and address space (VmSize) that each of ``THREADS`` idle threads adds, in bytes."""
    ready, release = ThreadBarrier(THREADS + 1), ThreadEvent()
    try:
        with ThreadPool(THREADS) as pool:
            before = proc_fields("/proc/self/status")
            waiting = [pool.submit(idle, ready, release) for _ in range(THREADS)]
            ready.wait()  # every thread is running, and idle
            after = proc_fields("/proc/self/status")
            release.set()
            for done in waiting:
                done.result()
    finally:
        ready.close()
        release.close()
    rss = (after["VmRSS"] - before["VmRSS"]) / THREADS
    reserved = (after["VmSize"] - before["VmSize"]) / THREADS
    return rss, reserved


def main() -> None:
    if not Path(f"/proc/{os.getpid()}/smaps_rollup").exists():
        print(f"this example reads Linux's /proc/<pid>/smaps_rollup, absent on {sys.platform}")
        return

    print("memory of one more worker, in MiB")
    print(f"{'worker':<22}{'RSS':>8}{'PSS':>8}{'USS':>8}")
    uss_of = {}
    for method in ("fork", "forkserver", "spawn"):
        rss, pss, uss = process_worker_memory(method)
        uss_of[method] = uss
        label = f"process ({method})"
        print(f"{label:<22}{rss / MiB:>8.3f}{pss / MiB:>8.3f}{uss / MiB:>8.3f}")

    per_thread, reserved = thread_memory()
    print(f"{'thread':<22}{per_thread / MiB:>8.3f}{'':>8}{'':>8}   (RSS growth per thread)")
    print(f"each thread reserved {reserved / MiB:.1f} MiB of address space, and used the above")
    if per_thread > 0:
        ratio = uss_of["forkserver"] / per_thread
        print(f"one more forkserver worker costs {ratio:,.0f}x the memory of one more thread")


if __name__ == "__main__":
    main()

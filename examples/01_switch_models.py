"""Write the code once against a Model; switch between processes and threads by name.

``PROCESS`` and ``THREAD`` bundle each model's classes (``PROCESS.Pool is ProcessPool``), so a
function that takes a Model runs unchanged under either.
"""

from __future__ import annotations

import os
import threading

from concurrency_kit import PROCESS, THREAD, Model


def where_am_i(task: int) -> str:
    return f"task {task} ran in pid {os.getpid()}, thread {threading.current_thread().name}"


def run(model: Model) -> None:
    with model.Pool(2) as pool:
        for line in pool.map(where_am_i, range(3), chunksize=1):
            print(f"{model.name}: {line}")


if __name__ == "__main__":
    print(f"main program: pid {os.getpid()}")
    run(THREAD)  # same pid as the main program, different threads
    run(PROCESS)  # other pids: each worker is its own process

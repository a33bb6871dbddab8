"""Resource sharing: threads share the process's resources; processes share only what is passed.

The main program holds an open log file and a list. Worker threads write to that very file
object and append to that very list: they live in the same process, so both are theirs too
(under a lock: writes from several threads must not interleave).

A worker process cannot do the same:

1. a forked child inherits a *copy* of the list: its appends change the copy, which is gone
   when it exits, and the main program's list never sees them;
2. the open file object cannot even be sent to a pool worker: it cannot be pickled, and the
   pool says so at ``submit``, naming the argument;
3. what works is passing the data: the worker returns its line as the task's result, and the
   main program writes it to its file and its list.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import IO

from concurrency_kit import ProcessPool, SerializationError, ThreadLock, ThreadPool

TASKS = 4


def log_from_thread(task: int, log: IO[str], lines: list[str], lock: ThreadLock) -> None:
    """Write to the main program's own file object and list."""
    line = f"task {task} in pid {os.getpid()}"
    with lock:
        log.write(line + "\n")
        lines.append(line)


def append_in_child(lines: list[str]) -> None:
    lines.append(f"appended in pid {os.getpid()}")


def write_line(log: IO[str], line: str) -> None:
    log.write(line + "\n")


def line_from_process(task: int) -> str:
    """Make the line and pass it back: the result is all the main program receives."""
    return f"task {task} in pid {os.getpid()}"


def main() -> None:
    path = Path("resource_sharing.log")
    lines: list[str] = []
    print(f"main program: pid {os.getpid()}")
    with open(path, "w") as log:
        print("threads use the main program's file object and list directly:")
        lock = ThreadLock()
        with ThreadPool(2) as pool:
            for done in [pool.submit(log_from_thread, t, log, lines, lock) for t in range(TASKS)]:
                done.result()
        log.flush()
        print(f"  the list now holds {len(lines)} lines: {lines[0]!r}, ...")
        print(f"  the file now holds {len(path.read_text().splitlines())} lines")

        print("processes cannot:")
        # Before any pool exists: fork only a process that runs no other threads.
        child = multiprocessing.get_context("fork").Process(target=append_in_child, args=(lines,))
        child.start()
        child.join()
        print(f"  1. a forked child appended to its copy of the list (exit code {child.exitcode});")
        print(f"     the main program's list still holds {len(lines)} lines")

        with ProcessPool(2) as pool:
            try:
                pool.submit(write_line, log, "from another process")
            except SerializationError as exc:
                print("  2. an open file cannot be passed to a worker process:")
                print(f"     {type(exc).__name__}: {exc}")
            else:
                raise AssertionError("an open file object was sent to another process")

            print("  3. so each worker passes its line back, and the main program writes it:")
            for line in pool.map(line_from_process, range(TASKS, 2 * TASKS)):
                log.write(line + "\n")
                lines.append(line)
        log.flush()
        print(f"     the list now holds {len(lines)} lines, the last {lines[-1]!r}")
        print(f"     the file now holds {len(path.read_text().splitlines())} lines")
    assert len(lines) == len(path.read_text().splitlines()) == 2 * TASKS
    path.unlink()


if __name__ == "__main__":
    main()

"""Resource sharing: an open file and a list, used by thread workers and by process workers.

The parent holds an open file and a list. :data:`TASKS` thread workers write a line each
through that very file object and append to that very list (under a lock): both are theirs
too. Process workers cannot: the file object cannot be sent to a
:class:`~concurrency_kit.ProcessPool` worker at all (it is refused at ``submit``), and a
forked child gets a *copy* of the list (its append never reaches the parent) while inheriting
the file descriptor (its write does reach the file). Sharing across processes is set up
explicitly: workers reopen the file by path, and append to a
:class:`~concurrency_kit.ProcessGuarded` list.

Interpreters (Python 3.14+) stand with processes for objects and with threads for descriptors:
an :class:`~concurrency_kit.InterpreterPool` refuses the file object at ``submit`` too (a call
to an interpreter is pickled), but its workers share this process's descriptor table, so a
write to the file's descriptor *number* reaches the file, with nothing inherited or passed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO

from concurrency_kit.compare._measure import Figure, Measurement, Mode
from concurrency_kit.compare.probes._shared import interpreters_missing
from concurrency_kit.errors import SerializationError
from concurrency_kit.pools import InterpreterPool, ProcessPool, ThreadPool
from concurrency_kit.sync import ProcessGuarded, ThreadLock

__all__ = ["probe"]

TASKS = 4
WORKERS = 2


def write_through(log: IO[str], lines: list[str], lock: ThreadLock, task: int) -> None:
    """Write a line through the parent's own file object and append it to the parent's list."""
    line = f"thread task {task} in pid {os.getpid()}"
    with lock:
        log.write(line + "\n")
        lines.append(line)


def write_line(log: IO[str], line: str) -> None:
    """Write ``line`` through ``log`` (which a process worker cannot be given)."""
    log.write(line + "\n")


def write_to_fd(fd: int, line: str) -> None:
    """Write ``line`` to the descriptor numbered ``fd`` of the process this code runs in."""
    os.write(fd, (line + "\n").encode())


def reopen_and_append(path: str, lines: ProcessGuarded[list[str]], task: int) -> None:
    """Open the file by path and append a line; append it to a shared list too."""
    line = f"process task {task} in pid {os.getpid()}"
    with open(path, "a") as log:  # O_APPEND: whole short lines, never interleaved
        log.write(line + "\n")
    with lines.lock() as value:
        value.append(line)


def _fork_and_write(fd: int, lines: list[str]) -> int:
    """Fork a child that writes a line to the inherited ``fd`` and appends to its copy of
    ``lines``; return its exit status. The child touches nothing else and leaves by
    ``os._exit``, so forking while other threads run is safe here."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            lines.append("appended by a forked child")
            os.write(fd, f"forked child {os.getpid()} via inherited fd {fd}\n".encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _refused(pool: ProcessPool | InterpreterPool, log: IO[str], line: str) -> str:
    """How ``pool`` refused the parent's file object at submit ("" if it took it)."""
    try:
        pool.submit(write_line, log, line).result(30.0)
    except SerializationError as exc:
        cause = exc.__cause__
        why = f"{type(cause).__name__}: {cause}" if cause else str(exc)
        return f"{type(exc).__name__} at submit ({why})"
    return ""


def _count(path: Path, prefix: str) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.startswith(prefix))


def probe(mode: Mode) -> Measurement:
    """How many workers' lines reach the parent's open file through its file object, per model."""
    del mode  # a matter of kind: one run tells
    with tempfile.TemporaryDirectory(prefix="ck-resource-sharing-") as folder:
        path = Path(folder) / "shared.log"
        lines: list[str] = []
        with open(path, "w", buffering=1) as log:
            lock = ThreadLock()
            with ThreadPool(WORKERS) as pool:
                for future in [
                    pool.submit(write_through, log, lines, lock, t) for t in range(TASKS)
                ]:
                    future.result(30.0)
            log.flush()
            thread_lines, thread_list = _count(path, "thread task"), len(lines)

            fork_code = _fork_and_write(log.fileno(), lines)
            fork_lines, list_after_fork = _count(path, "forked child"), len(lines)

            guarded: ProcessGuarded[list[str]] = ProcessGuarded([])
            try:
                with ProcessPool(WORKERS) as ppool:
                    refused = _refused(ppool, log, "from another process")
                    for future in [
                        ppool.submit(reopen_and_append, str(path), guarded, t) for t in range(TASKS)
                    ]:
                        future.result(30.0)
                shared_list = len(guarded.get())
            finally:
                guarded.close()
            process_lines = _count(path, "from another process")
            reopened = _count(path, "process task")
            # Counted first: the writes below go through the parent's descriptor, at its
            # offset (it was not opened for appending), over the lines appended since.
            missing = interpreters_missing()
            if not missing:
                with InterpreterPool(WORKERS) as ipool:
                    interpreter_refused = _refused(ipool, log, "from an interpreter")
                    for future in [
                        ipool.submit(write_to_fd, log.fileno(), f"interpreter fd write {t}")
                        for t in range(TASKS)
                    ]:
                        future.result(30.0)
        interpreter_lines = _count(path, "from an interpreter")
        fd_lines = _count(path, "interpreter fd write")

    finding = (
        f"{thread_lines} of {TASKS} thread workers wrote through the parent's file object and "
        f"{thread_list} appended to its list; process workers: {process_lines} (the file object "
        f"{'was refused at submit' if refused else 'was accepted'}); a forked child's write "
        f"through the inherited fd reached the file ({fork_lines} line) but its append to the "
        f"list did not (still {list_after_fork}); set up explicitly, {reopened} of {TASKS} "
        f"workers wrote by reopening the path and {shared_list} appended to a ProcessGuarded list"
    )
    interpreter = None
    interpreter_details = {}
    if not missing:
        finding += (
            f"; interpreter workers: {interpreter_lines} through the file object (refused at "
            f"submit), but {fd_lines} of {TASKS} through its descriptor number, shared in-process"
        )
        interpreter = Figure(
            float(interpreter_lines), "lines", f"of {TASKS} workers, via the parent's file object"
        )
        interpreter_details = {
            "interpreter pool, parent's file object": interpreter_refused
            or "accepted (unexpected)",
            "interpreter workers, the file's descriptor number": f"{fd_lines} of {TASKS} lines",
        }
    return Measurement(
        key="resource_sharing",
        process=Figure(
            float(process_lines), "lines", f"of {TASKS} workers, via the parent's file object"
        ),
        thread=Figure(
            float(thread_lines), "lines", f"of {TASKS} workers, via the parent's file object"
        ),
        better="higher",
        holds=None,
        finding=finding,
        details={
            "thread workers, parent's list": f"{thread_list} of {TASKS} appends visible",
            "process pool, parent's file object": refused or "accepted (unexpected)",
            "forked child, inherited fd": f"{fork_lines} line written (exit code {fork_code})",
            "forked child, parent's list": f"{list_after_fork - thread_list} of 1 append visible",
            "process workers, reopened by path": f"{reopened} of {TASKS} lines",
            "process workers, ProcessGuarded list": f"{shared_list} of {TASKS} appends visible",
            **interpreter_details,
        },
        interpreter=interpreter,
        interpreter_missing=missing,
    )

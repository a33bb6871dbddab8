"""A child process's lifeline to its parent: exit at once when the parent dies, however it dies.

The parent creates a pipe and keeps its write end; the child inherits (or is passed) the read
end and never writes. A daemon thread of the child blocks reading it: the read returns
end-of-file only when every write end is closed, which happens when the parent exits or is
killed (SIGKILL included), and then the child exits too::

    parent ── holds the write end ────────┐
    child  ── daemon thread: os.read(read end) -> b"" (parent gone) -> os._exit(code)

Used by pool workers and by supervised children (the parent must close its copy of the read
end, and a forked child the parent's write end, or the pipe never reports end-of-file).
"""

from __future__ import annotations

import os
import threading

__all__ = ["watch_parent"]


def _watch(alive_fd: int, exit_code: int) -> None:
    try:
        while os.read(alive_fd, 1):
            pass
    except OSError:
        pass
    os._exit(exit_code)


def watch_parent(alive_fd: int, exit_code: int) -> None:
    """Start the daemon thread that exits the process with ``exit_code`` when the parent dies."""
    threading.Thread(
        target=_watch, args=(alive_fd, exit_code), name="parent-watch", daemon=True
    ).start()

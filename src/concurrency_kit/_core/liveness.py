"""Whether a process, or one thread of it, still runs: how dead owners and waiters are found.

A process primitive records who holds or waits for it as (pid, kernel thread id) pairs; a
caller that finds one blocking it asks here before reclaiming what it held. An unreaped
zombie has exited: it counts as dead.
"""

from __future__ import annotations

import os

__all__ = ["process_alive", "thread_alive"]


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (an unreaped zombie has exited)."""
    if pid == os.getpid():
        return True
    return _task_running(f"/proc/{pid}/stat", pid)


def thread_alive(pid: int, tid: int) -> bool:
    """Whether the thread with kernel id ``tid`` of process ``pid`` is still running."""
    return _task_running(f"/proc/{pid}/task/{tid}/stat", pid)


def _task_running(stat_path: str, pid: int) -> bool:
    if pid <= 0:
        return False  # 0 and negative pids name process groups to os.kill, never a process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    try:
        with open(stat_path, "rb") as f:
            stat = f.read()
    except OSError:
        return False
    # The state letter follows the command name, which is in parentheses and may contain any.
    return stat[stat.rindex(b")") + 2 :][:1] not in (b"Z", b"X")

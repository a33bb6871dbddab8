"""A process that dies by raising while it holds a process lock leaves the lock recoverable.

The kernel marks a robust mutex "owner died" when its holder exits, but only if the mutex is
still mapped in the dying process. From Python 3.13, ``fork`` and ``forkserver`` children run
their atexit handlers before ``os._exit``, and the munmap finalizer of every segment
(``shm._map``) used to be one of them: the lock's segment was unmapped before the exit, the
kernel never marked the mutex, and the next ``acquire(True, 60)`` timed out without a
:class:`LockOwnerDiedWarning` (issue #15).

``test_holder_that_dies_by_raising_is_recovered`` is the report itself; it fails on 3.13+
only. ``test_holder_that_runs_atexit_handlers_then_exits_is_recovered`` makes the 3.13 exit
path explicit (the child runs its atexit handlers, then ``os._exit``), so the same fault shows
on every version. The child reports over a pipe that it holds the lock; the test joins it, then
acquires. :data:`DEADLOCK` only turns a hang into a failure.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import warnings
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

import pytest

from concurrency_kit import LockOwnerDiedWarning, ProcessLock, ProcessRLock

DEADLOCK = 60.0
METHODS = [m for m in ("fork", "forkserver") if m in multiprocessing.get_all_start_methods()]


def hold_then_raise(lock: Any, conn: Connection, depth: int) -> None:
    """Acquire ``lock`` ``depth`` times, say so, then die by an exception (exit code 1)."""
    for _ in range(depth):
        assert lock.acquire(True, DEADLOCK)
    conn.send(os.getpid())
    conn.close()
    raise RuntimeError("dies holding the lock (expected by the test)")


def hold_then_exit_as_313_does(lock: Any, conn: Connection, depth: int) -> None:
    """Acquire ``lock``, say so, then leave as a 3.13+ child does: atexit handlers, _exit."""
    for _ in range(depth):
        assert lock.acquire(True, DEADLOCK)
    conn.send(os.getpid())
    conn.close()
    atexit._run_exitfuncs()
    os._exit(1)


@pytest.fixture(params=[ProcessLock, ProcessRLock], ids=["Lock", "RLock"])
def lock(request: pytest.FixtureRequest) -> Iterator[ProcessLock | ProcessRLock]:
    lk = request.param()
    yield lk
    lk.close()


@contextlib.contextmanager
def fork_allowed(method: str) -> Iterator[None]:
    """Python 3.12+ warns when a process with threads forks; these children do not care."""
    with warnings.catch_warnings():
        if method == "fork":
            warnings.filterwarnings("ignore", ".*fork.*", DeprecationWarning)
        yield


def die_holding(method: str, target: Callable[..., None], lock: ProcessLock | ProcessRLock) -> int:
    """Run ``target`` in a child that dies holding ``lock``; return the child's pid."""
    depth = 2 if isinstance(lock, ProcessRLock) else 1
    ctx = multiprocessing.get_context(method)
    conn, child_conn = ctx.Pipe(duplex=False)
    process = ctx.Process(target=target, args=(lock, child_conn, depth))
    try:
        with fork_allowed(method):
            process.start()
        child_conn.close()
        assert conn.poll(DEADLOCK), "the child did not report (deadlock?)"
        pid: int = conn.recv()
        process.join(DEADLOCK)
        assert process.exitcode == 1, f"the child exited with {process.exitcode}"
        return pid
    finally:
        if process.is_alive():
            process.kill()
            process.join(DEADLOCK)
        process.close()
        conn.close()


def assert_recovered(lock: ProcessLock | ProcessRLock, pid: int) -> None:
    with pytest.warns(LockOwnerDiedWarning, match=f"process {pid}"):
        assert lock.acquire(True, DEADLOCK) is True
    try:
        assert lock.statistics().owner_deaths_recovered == 1
    finally:
        lock.release()
    assert not lock.locked()


@pytest.mark.parametrize("method", METHODS)
def test_holder_that_dies_by_raising_is_recovered(
    method: str, lock: ProcessLock | ProcessRLock
) -> None:
    # Exit code 1 (checked in die_holding): multiprocessing's verdict on an uncaught exception.
    assert_recovered(lock, die_holding(method, hold_then_raise, lock))


@pytest.mark.parametrize("method", METHODS)
def test_holder_that_runs_atexit_handlers_then_exits_is_recovered(
    method: str, lock: ProcessLock | ProcessRLock
) -> None:
    assert_recovered(lock, die_holding(method, hold_then_exit_as_313_does, lock))

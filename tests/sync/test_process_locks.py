"""Process-only behaviour of ProcessLock and ProcessRLock.

The shared contract (stdlib semantics, timeouts, statistics, repr) is in
``tests/contract/test_locks.py``; this file covers what only a process lock does: handles that
cross process boundaries (ProcessPool tasks, ``multiprocessing.Process`` under every start
method), exclusion between processes, recovery when the holder dies (SIGKILL, ``os._exit``, an
exception outside ``with``, a thread that exits), the shared-memory lifecycle (close, garbage
collection, creator death), and the platform check.

Children report over pipes and the test waits on those pipes, on ``join`` or on a lock state
(``statistics().waiters``); nothing sleeps to let something happen. :data:`DEADLOCK` only turns
a hang into a failure.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import re
import signal
import textwrap
import threading
import warnings
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

from _children import creator, wait_until
from concurrency_kit import ProcessPool
from concurrency_kit.errors import LockOwnerDiedWarning
from concurrency_kit.sync.process import ProcessLock, ProcessRLock

DEADLOCK = 60.0
"""Seconds after which a wait that should have ended is a deadlock (a failure, not a pass)."""

START_METHODS = multiprocessing.get_all_start_methods()

LockClass = type[ProcessLock] | type[ProcessRLock]


@pytest.fixture(params=[ProcessLock, ProcessRLock], ids=["Lock", "RLock"])
def lock_class(request: pytest.FixtureRequest) -> LockClass:
    cls: LockClass = request.param
    return cls


@pytest.fixture
def lock(lock_class: LockClass) -> Iterator[ProcessLock | ProcessRLock]:
    lk = lock_class()
    yield lk
    lk.close()


def shm_path(lk: ProcessLock | ProcessRLock) -> Path:
    return Path("/dev/shm") / lk._name


def own_segments() -> set[str]:
    """The segments this process created (``ck_<pid>_...``): other programs, other test runs
    included, may create and remove their own in ``/dev/shm`` meanwhile."""
    return {name for name in os.listdir("/dev/shm") if name.startswith(f"ck_{os.getpid()}_")}


def shm_fds() -> list[str]:
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:  # the descriptor listdir itself used
            pass
    return [t for t in targets if t.startswith("/dev/shm/")]


# -- children: module-level so that every start method can import them ------------------------


def child_hold(lock: Any, conn: Connection, how: str, depth: int) -> None:
    """Acquire ``lock`` ``depth`` times, report, then end as ``how`` says."""
    for _ in range(depth):
        assert lock.acquire(True, DEADLOCK)
    conn.send((os.getpid(), threading.get_native_id()))
    if how == "exit":
        os._exit(3)
    if how == "raise":
        raise KeyError("dies outside with, holding the lock")
    if how == "release":
        conn.recv()
        for _ in range(depth):
            lock.release()
        conn.send("released")
        conn.recv()
        return
    conn.recv()  # "kill": wait to be killed (EOF if the test fails first)


def child_try_then_wait(lock: Any, conn: Connection) -> None:
    """Fail a try while the test holds the lock, then wait for it, hold it, release it."""
    conn.send(("try", lock.acquire(False)))
    conn.send(("got", lock.acquire(True, DEADLOCK), os.getpid()))
    conn.recv()
    lock.release()
    conn.send("released")


def child_count(lock: Any, path: str, rounds: int, start: Any) -> None:
    """Increment the number in ``path`` ``rounds`` times, each read-yield-write under ``lock``."""
    start.wait(DEADLOCK)
    for _ in range(rounds):
        with lock:
            with open(path) as f:
                value = int(f.read())
            os.sched_yield()  # invite another process in: only the lock keeps it out
            with open(path, "w") as f:
                f.write(str(value + 1))


def child_block(lock: Any, conn: Connection) -> None:
    conn.send("blocking")
    lock.acquire(True, DEADLOCK)
    conn.send("got it")  # only if the test failed to kill it first


class Child:
    """A child process running ``target(lock, conn, *args)`` and talking over a pipe."""

    def __init__(self, method: str, target: Callable[..., None], *args: Any) -> None:
        ctx = multiprocessing.get_context(method)
        self.conn, child_conn = ctx.Pipe()
        self.process = ctx.Process(target=target, args=(args[0], child_conn, *args[1:]))
        self.process.start()
        child_conn.close()

    def recv(self) -> Any:
        assert self.conn.poll(DEADLOCK), "the child did not answer (deadlock?)"
        return self.conn.recv()

    def join(self) -> int | None:
        self.process.join(DEADLOCK)
        assert not self.process.is_alive(), "the child did not exit"
        return self.process.exitcode

    def finish(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(DEADLOCK)
        self.process.close()
        self.conn.close()


@pytest.fixture
def children() -> Iterator[Callable[..., Child]]:
    started: list[Child] = []

    def start(method: str, target: Callable[..., None], *args: Any) -> Child:
        child = Child(method, target, *args)
        started.append(child)
        return child

    yield start
    for child in started:
        child.finish()


# -- handles cross process boundaries ----------------------------------------------------------


@pytest.mark.parametrize("method", START_METHODS)
def test_handle_passed_to_process_is_the_same_lock(
    method: str, lock: ProcessLock | ProcessRLock, children: Callable[..., Child]
) -> None:
    assert lock.acquire()
    child = children(method, child_try_then_wait, lock)
    assert child.recv() == ("try", False)  # we hold it: the child's try fails
    wait_until(lambda: lock.statistics().waiters == 1, "the child waits for the lock")
    lock.release()
    status, got, pid = child.recv()
    assert (status, got, pid) == ("got", True, child.process.pid)
    stats = lock.statistics()
    assert (stats.locked, stats.owner_pid, stats.waiters) == (True, pid, 0)
    assert (stats.acquisitions, stats.contentions) == (2, 2)  # a failed try, then a wait
    with pytest.raises(RuntimeError):
        lock.release()  # held by another process
    child.conn.send("release")
    assert child.recv() == "released"
    assert child.join() == 0
    assert not lock.locked()


def test_handle_as_process_pool_task_argument(lock: ProcessLock | ProcessRLock) -> None:
    # Task arguments go through cloudpickle; the lambdas make the functions cloudpickled too.
    with ProcessPool(2) as pool:
        assert lock.acquire()
        assert pool.submit(lambda lk: lk.acquire(False), lock).result(DEADLOCK) is False
        assert pool.submit(lambda lk: lk.locked(), lock).result(DEADLOCK) is True
        lock.release()

        def take_and_release(lk: Any) -> tuple[int, int]:
            with lk:
                stats = lk.statistics()
                return stats.owner_pid, os.getpid()

        for owner, worker in pool.map(take_and_release, [lock] * 4):
            assert owner == worker != os.getpid()
    stats = lock.statistics()
    assert (stats.locked, stats.acquisitions, stats.contentions) == (False, 5, 1)


def test_unpickled_handle_in_the_same_process_shares_the_mapping(
    lock: ProcessLock | ProcessRLock,
) -> None:
    handle = pickle.loads(pickle.dumps(lock))
    try:
        assert type(handle) is type(lock)
        assert handle._place is lock._place  # one address per mutex per process (robust list)
        with lock:
            assert handle.locked()
        lock.close()  # the creator's close removes the name; the other handle still works
        assert not shm_path(lock).exists()
        with handle:
            assert handle.statistics().acquisitions == 2
    finally:
        handle.close()


def test_mutual_exclusion_between_processes(
    lock: ProcessLock | ProcessRLock, tmp_path: Path
) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")
    n, rounds = 3, 100
    ctx = multiprocessing.get_context("forkserver")
    start = ctx.Event()
    procs = [
        ctx.Process(target=child_count, args=(lock, str(counter), rounds, start)) for _ in range(n)
    ]
    for p in procs:
        p.start()
    start.set()
    try:
        for p in procs:
            p.join(DEADLOCK)
            assert p.exitcode == 0
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
            p.close()
    assert int(counter.read_text()) == n * rounds
    assert lock.statistics().acquisitions == n * rounds


# -- a holder that dies ------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["kill", "exit", "raise"])
def test_next_acquire_recovers_from_a_dead_holder(
    how: str, lock: ProcessLock | ProcessRLock, children: Callable[..., Child]
) -> None:
    depth = 2 if isinstance(lock, ProcessRLock) else 1
    child = children("forkserver", child_hold, lock, how, depth)
    pid, tid = child.recv()
    if how == "kill":  # the others may be gone already
        stats = lock.statistics()
        assert (stats.owner_pid, stats.owner_thread, stats.recursion) == (pid, tid, depth)
        child.process.kill()
    exitcode = child.join()
    assert exitcode == {"kill": -signal.SIGKILL, "exit": 3, "raise": 1}[how]
    with pytest.warns(LockOwnerDiedWarning, match=f"process {pid}") as record:
        assert lock.acquire(True, DEADLOCK) is True
    assert record[0].filename == __file__  # points at the caller of acquire
    stats = lock.statistics()
    assert stats.owner_deaths_recovered == 1
    assert (stats.owner_pid, stats.owner_thread) == (os.getpid(), threading.get_native_id())
    assert stats.recursion == 1  # the new holder holds it once, whatever the dead one's depth
    assert stats.acquisitions == depth + 1
    lock.release()
    assert not lock.locked()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with lock:  # recovered for good: no second warning
            pass
    assert lock.statistics().owner_deaths_recovered == 1


def test_blocked_waiter_takes_over_when_holder_is_killed(
    lock: ProcessLock | ProcessRLock, children: Callable[..., Child]
) -> None:
    child = children("forkserver", child_hold, lock, "kill", 1)
    child.recv()

    def kill_when_waiting() -> None:
        wait_until(lambda: lock.statistics().waiters == 1, "the test blocks in acquire")
        child.process.kill()

    killer = threading.Thread(target=kill_when_waiting)
    killer.start()
    try:
        with pytest.warns(LockOwnerDiedWarning):
            assert lock.acquire(True, DEADLOCK) is True
    finally:
        killer.join(DEADLOCK)
    stats = lock.statistics()
    assert (stats.owner_deaths_recovered, stats.waiters, stats.contentions) == (1, 0, 1)
    lock.release()


def test_holder_thread_that_exits_is_recovered(lock: ProcessLock | ProcessRLock) -> None:
    # The kernel releases a robust mutex when its holder *thread* exits: a lock left held by
    # a finished thread (which nobody else may release) is taken over, not lost.
    thread = threading.Thread(target=lock.acquire)
    thread.start()
    thread.join(DEADLOCK)
    with pytest.warns(LockOwnerDiedWarning, match="a thread of this process"):
        assert lock.acquire(timeout=DEADLOCK)
    lock.release()
    assert lock.statistics().owner_deaths_recovered == 1


def test_warning_as_error_leaves_the_lock_free(
    lock: ProcessLock | ProcessRLock, children: Callable[..., Child]
) -> None:
    child = children("forkserver", child_hold, lock, "exit", 1)
    child.recv()
    child.join()
    with warnings.catch_warnings():
        warnings.simplefilter("error", LockOwnerDiedWarning)
        with pytest.raises(LockOwnerDiedWarning), lock:
            pytest.fail("the block must not run: __enter__ raised")
    assert not lock.locked()  # not left held by a caller that saw an exception
    assert lock.acquire(False)
    lock.release()
    assert lock.statistics().owner_deaths_recovered == 1


def test_dead_waiter_is_not_counted(
    lock: ProcessLock | ProcessRLock, children: Callable[..., Child]
) -> None:
    assert lock.acquire()
    child = children("forkserver", child_block, lock)
    assert child.recv() == "blocking"
    wait_until(lambda: lock.statistics().waiters == 1, "the child waits")
    child.process.kill()
    child.join()
    assert lock.statistics().waiters == 0
    lock.release()


# -- statistics and behaviour that only a process lock has -----------------------------------


def test_blocked_acquire_is_interruptible_by_a_signal(lock: ProcessLock | ProcessRLock) -> None:
    # Like threading.Lock in the main thread: a signal handler that raises ends the wait.
    class Interrupted(Exception):
        pass

    def handler(signum: int, frame: object) -> None:
        raise Interrupted

    holder_ready, done = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            holder_ready.set()
            done.wait(DEADLOCK)

    def interrupt_when_waiting() -> None:
        wait_until(lambda: lock.statistics().waiters == 1, "the main thread waits")
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR2)

    previous = signal.signal(signal.SIGUSR2, handler)
    holder = threading.Thread(target=hold)
    interrupter = threading.Thread(target=interrupt_when_waiting)
    try:
        holder.start()
        assert holder_ready.wait(DEADLOCK)
        interrupter.start()
        with pytest.raises(Interrupted):
            lock.acquire(True, DEADLOCK)
        assert lock.statistics().waiters == 0
    finally:
        signal.signal(signal.SIGUSR2, previous)
        done.set()
        holder.join(DEADLOCK)
        if interrupter.ident is not None:
            interrupter.join(DEADLOCK)
    assert not lock.locked()


def test_condition_with_a_held_twice_rlock() -> None:
    lock = ProcessRLock()
    try:
        condition = threading.Condition(lock)
        entered = threading.Event()
        state: list[int] = []

        def notifier() -> None:
            entered.wait(DEADLOCK)
            with condition:  # possible only if wait() dropped both levels
                state.append(1)
                condition.notify()

        thread = threading.Thread(target=notifier)
        thread.start()
        with lock, condition:
            assert lock.statistics().recursion == 2
            entered.set()
            assert condition.wait_for(lambda: state, DEADLOCK)
            assert lock.statistics().recursion == 2
        thread.join(DEADLOCK)
        assert not lock.locked()
    finally:
        lock.close()


def test_repr_names_the_segment(lock: ProcessLock | ProcessRLock) -> None:
    assert lock._name in repr(lock)
    with lock:
        assert f"owner={os.getpid()}/{threading.get_native_id()}" in repr(lock)


# -- the shared-memory lifecycle ---------------------------------------------------------------


def test_segment_is_private_and_costs_no_descriptor(lock_class: LockClass) -> None:
    before = shm_fds()
    lk = lock_class()
    try:
        path = shm_path(lk)
        assert re.fullmatch(rf"ck_{os.getpid()}_[0-9a-f]{{32}}", path.name), path.name
        assert path.stat().st_mode & 0o777 == 0o600
        assert shm_fds() == before
    finally:
        lk.close()


def test_close_removes_segment_and_mapping(lock_class: LockClass) -> None:
    lk = lock_class()
    path = shm_path(lk)
    assert path.exists()
    assert lk._name in Path("/proc/self/maps").read_text()
    lk.close()
    assert not path.exists()
    assert lk._name not in Path("/proc/self/maps").read_text()
    lk.close()  # idempotent
    assert "closed" in repr(lk)


def test_garbage_collection_removes_segment(lock_class: LockClass) -> None:
    lk = lock_class()
    path, name = shm_path(lk), lk._name
    with lk:
        pass
    del lk
    gc.collect()
    assert not path.exists()
    assert name not in Path("/proc/self/maps").read_text()


def test_closed_handle_refuses_everything(lock: ProcessLock | ProcessRLock) -> None:
    data = pickle.dumps(lock)
    lock.close()
    for call in (lock.acquire, lock.release, lock.locked, lock.statistics):
        with pytest.raises(ValueError, match="closed"):
            call()
    with pytest.raises(ValueError, match="closed"), lock:
        pass
    with pytest.raises(ValueError, match="closed"):
        pickle.dumps(lock)
    with pytest.raises(FileNotFoundError, match="no longer exists"):
        pickle.loads(data)


def test_closing_a_lock_this_thread_holds_keeps_the_mapping(lock_class: LockClass) -> None:
    # The thread's robust list points into the mapping: unmapping it would corrupt the next
    # robust-mutex operation. The name goes; the mapping stays for the life of the process.
    lk = lock_class()
    name = lk._name
    lk.acquire()
    lk.close()
    assert not (Path("/dev/shm") / name).exists()
    assert name in Path("/proc/self/maps").read_text()
    other = lock_class()  # robust-list operations go on working
    with other:
        pass
    other.close()


CREATOR = textwrap.dedent(
    """
    import sys
    from multiprocessing import resource_tracker
    from concurrency_kit.sync.process import {cls}

    lock = {cls}()
    lock.acquire()
    print(lock._name, flush=True)
    sys.stdin.read()  # until the test kills us
    """
)


@pytest.mark.parametrize("cls", ["ProcessLock", "ProcessRLock"])
def test_segment_removed_when_creator_is_killed(cls: str) -> None:
    with creator(CREATOR.format(cls=cls)) as process:
        (name,) = process.words
        assert name.startswith("ck_")
        path = Path("/dev/shm") / name
        assert path.exists()
        err = process.kill()
    assert not path.exists()
    assert "leaked shared_memory" in err

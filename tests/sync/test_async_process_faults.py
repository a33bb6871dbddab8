"""Real faults while tasks await process primitives: a party SIGKILLed holding or waiting.

The async face of ``test_process_sync_faults.py`` and ``test_process_locks.py``: a child
process holds a ProcessLock, a ProcessRLock or a side of a ProcessRWLock while a task of the
test's event loop awaits it; the child is killed and the task gets the lock (with
:class:`LockOwnerDiedWarning`, as a blocked thread would). A barrier party killed while tasks
await the barrier breaks it for them. A waiter killed while tasks wait beside it swallows no
release or notification.

The test knows a task waits from the primitive's state (a lock's ``contentions``, the waiter
counts), then kills the child from the loop (``Process.kill`` does not block). :data:`DEADLOCK`
only turns a hang into a failure.
"""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from test_process_locks import DEADLOCK, Child, child_hold
from test_process_sync_faults import child_call, child_condition_wait, child_rw_hold

from _event_loops import run
from concurrency_kit import (
    BrokenBarrierError,
    LockOwnerDiedWarning,
    ProcessBarrier,
    ProcessCondition,
    ProcessEvent,
    ProcessLock,
    ProcessRLock,
    ProcessRWLock,
    ProcessSemaphore,
)


async def until(predicate: Callable[[], object], what: str) -> None:
    """Yield to the loop until ``predicate()`` (a deadlock bound, not a timing)."""
    with anyio.fail_after(DEADLOCK):
        while not predicate():
            await anyio.sleep(0.0005)


# -- a holder killed while a task awaits --------------------------------------------------------


@pytest.mark.parametrize("cls", [ProcessLock, ProcessRLock], ids=["Lock", "RLock"])
def test_task_takes_over_a_lock_whose_holder_is_killed(
    cls: type[Any], backend: str, children: Callable[..., Child], closing: Callable[[Any], Any]
) -> None:
    lock = closing(cls())
    child = children(child_hold, lock, "kill", 1)
    child.recv()

    async def main() -> bool:
        got: list[bool] = []

        async def acquire() -> None:
            got.append(await lock.aacquire(DEADLOCK))

        async with anyio.create_task_group() as tg:
            tg.start_soon(acquire)
            await until(lambda: lock.statistics().contentions == 1, "the task waits")
            assert got == []
            child.process.kill()
        return got[0]

    with pytest.warns(LockOwnerDiedWarning):
        assert run(backend, main) is True
    assert child.join() == -signal.SIGKILL
    stats = lock.statistics()
    assert (stats.owner_deaths_recovered, stats.owner_thread) == (1, threading.get_native_id())
    lock.release()
    assert lock.statistics().locked is False


@pytest.mark.parametrize("next_side", ["write", "read"])
def test_task_takes_over_an_rwlock_whose_writer_is_killed(
    backend: str, children: Callable[..., Child], closing: Callable[[Any], Any], next_side: str
) -> None:
    rw = closing(ProcessRWLock())
    child = children(child_rw_hold, rw, "write", 1)
    pid = child.recv()
    assert rw.statistics().writer_pid == pid
    waiting = "writers_waiting" if next_side == "write" else "readers_waiting"

    async def main() -> bool:
        got: list[bool] = []

        async def acquire() -> None:
            got.append(await getattr(rw, f"aacquire_{next_side}")(DEADLOCK))
            getattr(rw, f"release_{next_side}")()  # from the task that holds it

        async with anyio.create_task_group() as tg:
            tg.start_soon(acquire)
            await until(lambda: getattr(rw.statistics(), waiting) == 1, "the task waits")
            assert got == []
            child.process.kill()
        return got[0]

    with pytest.warns(LockOwnerDiedWarning):
        assert run(backend, main) is True
    assert child.join() == -signal.SIGKILL
    stats = rw.statistics()
    assert stats.owner_deaths_recovered == 1
    assert (stats.readers, stats.writer_pid, stats.readers_waiting, stats.writers_waiting) == (
        0,
        None,
        0,
        0,
    )
    assert rw.acquire_write(False) is True
    rw.release_write()


def test_task_writer_takes_over_from_a_killed_reader(
    backend: str, children: Callable[..., Child], closing: Callable[[Any], Any]
) -> None:
    rw = closing(ProcessRWLock())
    child = children(child_rw_hold, rw, "read", 2)
    child.recv()

    async def main() -> bool:
        async with anyio.create_task_group() as tg:
            got: list[bool] = []

            async def acquire() -> None:
                got.append(await rw.aacquire_write(DEADLOCK))
                rw.release_write()

            tg.start_soon(acquire)
            await until(lambda: rw.statistics().writers_waiting == 1, "the writer waits")
            child.process.kill()
        return got[0]

    with pytest.warns(LockOwnerDiedWarning):
        assert run(backend, main) is True
    assert child.join() == -signal.SIGKILL
    stats = rw.statistics()
    assert (stats.owner_deaths_recovered, stats.readers, stats.writer_pid) == (1, 0, None)


def test_cancelled_task_holds_nothing_after_a_holder_is_killed(
    backend: str, children: Callable[..., Child], closing: Callable[[Any], Any]
) -> None:
    """A task cancelled while it awaits a lock whose holder is then killed holds nothing: the
    next caller takes the dead holder's lock over."""
    lock = closing(ProcessLock())
    child = children(child_hold, lock, "kill", 1)
    child.recv()

    async def main() -> None:
        with anyio.move_on_after(math.inf) as scope:

            async def cancel_when_waiting() -> None:
                await until(lambda: lock.statistics().contentions == 1, "the task waits")
                scope.cancel()

            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel_when_waiting)
                await lock.aacquire(DEADLOCK)
        assert scope.cancelled_caught

    run(backend, main)
    child.process.kill()
    assert child.join() == -signal.SIGKILL
    with pytest.warns(LockOwnerDiedWarning):
        assert lock.acquire(True, DEADLOCK) is True
    lock.release()


# -- barrier: a party killed while tasks await ---------------------------------------------------


def test_barrier_party_killed_while_tasks_await_breaks_it(
    backend: str, children: Callable[..., Child], closing: Callable[[Any], Any]
) -> None:
    barrier = closing(ProcessBarrier(4))  # the child, two tasks, and one that never comes
    doomed = children(child_call, barrier, "wait", DEADLOCK)
    assert doomed.recv() == "calling"

    async def main() -> list[Any]:
        outcomes: list[Any] = []

        async def party() -> None:
            try:
                outcomes.append(await barrier.wait_async(DEADLOCK))
            except BrokenBarrierError as exc:
                outcomes.append(type(exc))

        async with anyio.create_task_group() as tg:
            await until(lambda: barrier.n_waiting == 1, "the child waits")
            tg.start_soon(party)
            tg.start_soon(party)
            await until(lambda: barrier.n_waiting == 3, "the tasks wait")
            doomed.process.kill()
        return outcomes

    assert run(backend, main) == [BrokenBarrierError, BrokenBarrierError]
    assert doomed.join() == -signal.SIGKILL
    stats = barrier.statistics()
    assert (stats.broken, stats.n_waiting, stats.passes) == (True, 0, 0)
    barrier.reset()
    assert (barrier.broken, barrier.n_waiting) == (False, 0)


# -- a waiter killed beside awaiting tasks: nothing is lost to it ----------------------------------


def test_semaphore_release_reaches_a_task_past_a_dead_waiter(
    backend: str, children: Callable[..., Child], closing: Callable[[Any], Any]
) -> None:
    sem = closing(ProcessSemaphore(0))
    doomed = children(child_call, sem, "acquire", True, DEADLOCK)
    assert doomed.recv() == "calling"

    async def main() -> bool:
        await until(lambda: sem.statistics().waiters == 1, "the child waits")
        got: list[bool] = []

        async def acquire() -> None:
            got.append(await sem.aacquire(DEADLOCK))

        async with anyio.create_task_group() as tg:
            tg.start_soon(acquire)
            await until(lambda: sem.statistics().waiters == 2, "the task waits")
            doomed.process.kill()
            await until(lambda: not doomed.process.is_alive(), "the child is dead")
            sem.release()  # first in line is the dead child: the task must get it
        return got[0]

    assert run(backend, main) is True
    stats = sem.statistics()
    assert (stats.value, stats.waiters) == (0, 0)


def test_event_and_condition_wake_tasks_past_a_dead_waiter(
    backend: str, children: Callable[..., Child], closing: Callable[[Any], Any]
) -> None:
    ev = closing(ProcessEvent())
    cond = closing(ProcessCondition())
    ev_child = children(child_call, ev, "wait", DEADLOCK)
    assert ev_child.recv() == "calling"
    cond_child = children(child_condition_wait, cond)
    assert cond_child.recv() == "locked"

    async def main() -> list[bool]:
        results: list[bool] = []

        async def ev_waiter() -> None:
            results.append(await ev.wait_async(DEADLOCK))

        async def cond_waiter() -> None:
            async with cond:
                results.append(await cond.wait_async(DEADLOCK))

        await until(lambda: ev.statistics().waiters == 1, "the child waits on the event")
        await until(lambda: cond.statistics().waiters == 1, "the child waits on the condition")
        async with anyio.create_task_group() as tg:
            tg.start_soon(ev_waiter)
            tg.start_soon(cond_waiter)
            await until(lambda: ev.statistics().waiters == 2, "the task waits on the event")
            await until(lambda: cond.statistics().waiters == 2, "the task waits on the cond")
            ev_child.process.kill()
            cond_child.process.kill()
            await until(lambda: not ev_child.process.is_alive(), "the child is dead")
            await until(lambda: not cond_child.process.is_alive(), "the child is dead")
            ev.set()
            async with cond:
                cond.notify(1)  # the dead child is first in line: the task must get it
        return results

    assert run(backend, main) == [True, True]
    assert ev.statistics().waiters == 0
    assert cond.statistics().waiters == 0

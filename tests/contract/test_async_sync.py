"""The contract of the sync primitives' async face, for both models and both event loops.

Every test takes ``model`` (PROCESS, THREAD) and ``backend`` (asyncio, trio) and runs its body
in that event loop with :func:`run`: ``aacquire``/``async with`` on Lock, RLock, Semaphore and
BoundedSemaphore, ``wait_async`` on Event, Condition (and ``wait_for_async``) and Barrier,
``aacquire_read``/``aacquire_write``/``aread``/``awrite`` on RWLock, and ``alock``, ``aget``,
``aset``, ``aupdate`` on Guarded.

What the other party does is ordered by states, never by sleeps: a task is known to wait once
the primitive says so (``statistics().waiters`` for the monitor-based primitives, which count
awaiting tasks; ``contentions`` for the locks, which a task polls: its first look at a busy
lock counts one). The other party is another task, a thread, or (for PROCESS) a process run by
the peers of ``_sync_peers.py``; the test reads the peer's answers without blocking the loop.

Cancellation is tested where it can land: the stress tests cancel calls at random (asyncio's
own ``wait_for`` and anyio's cancel scopes on asyncio; trio's ``move_on_after``; deadlines of
zero or a few microseconds, which land before, during or after the wait, and inside the
critical section) and then check that the primitive is free and its statistics are back where
they started. Timeouts only catch deadlocks, except the short ones under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import anyio
import anyio.abc
import pytest
from _sync_peers import DEADLOCK, Peer, call, when_waiting

from _event_loops import run
from concurrency_kit import (
    BrokenBarrierError,
    LockTimeoutError,
    Model,
    PoisonedError,
)

SHORT = 0.05
"""The one timeout that expires on purpose in a test."""

CANCELLATIONS = 2_000
BELL = "concurrency_kit bell"

LOCKS = ["Lock", "RLock", "Semaphore", "BoundedSemaphore"]


def is_process(model: Model) -> bool:
    return model.name == "process"


@pytest.fixture
def make(model: Model, closing: Callable[[Any], Any]) -> Callable[..., Any]:
    """``make(kind, *args)``: ``model.<kind>(*args)``, closed at teardown."""

    def build(kind: str, *args: Any) -> Any:
        return closing(getattr(model, kind)(*args))

    return build


@pytest.fixture
def peers(model: Model) -> Iterator[Callable[..., list[Peer]]]:
    """``peers(n, **prims)``: ``n`` other parties sharing ``prims``: threads for THREAD,
    forkserver processes for PROCESS."""
    started: list[Peer] = []

    def start(n: int, **prims: Any) -> list[Peer]:
        kind = "forkserver" if is_process(model) else "thread"
        new = [Peer(kind, prims) for _ in range(n)]
        started.extend(new)
        for p in new:
            p.ready()
        return new

    yield start
    for p in started:
        p.stop()


async def until(predicate: Callable[[], object], what: str) -> None:
    """Yield to the loop until ``predicate()`` (a deadlock bound, not a timing)."""
    with anyio.fail_after(DEADLOCK):
        while not predicate():
            await anyio.sleep(0.0005)


async def answer(peer: Peer) -> Any:
    """The peer's answer, awaited without blocking the event loop."""
    await until(peer.answered, "the peer answers")
    return peer.answer()


def make_lock(make: Callable[..., Any], kind: str) -> Any:
    """A lock of ``kind``; semaphores start at 1, so each kind is a mutual exclusion."""
    return make(kind, 1) if "Semaphore" in kind else make(kind)


def contentions(primitive: Any) -> int:
    return int(primitive.statistics().contentions)


def assert_free(primitive: Any, kind: str, initial: int = 1) -> None:
    """The primitive is back where it started: nobody holds it, nobody waits."""
    stats = primitive.statistics()
    if kind in ("Lock", "RLock"):
        assert (stats.locked, stats.recursion, stats.waiters) == (False, 0, 0), stats
        assert primitive.acquire(False) is True  # and a synchronous caller gets it at once
        primitive.release()
    elif "Semaphore" in kind:
        assert (stats.value, stats.waiters) == (initial, 0), stats
    elif kind == "RWLock":
        assert (stats.readers, stats.writer_pid, stats.writer_thread) == (0, None, None), stats
        assert (stats.readers_waiting, stats.writers_waiting) == (0, 0), stats
        assert primitive.acquire_write(False) is True
        primitive.release_write()
    elif kind == "Condition":
        assert stats.waiters == 0, stats
        assert (stats.lock.locked, stats.lock.recursion) == (False, 0), stats
    elif kind == "Event":
        assert stats.waiters == 0, stats
    elif kind == "Guarded":
        assert stats.lock.locked is False, stats
    else:  # pragma: no cover - a kind this suite does not know
        raise AssertionError(kind)


@contextlib.asynccontextmanager
async def held_by_another_task(primitive: Any, kind: str) -> AsyncIterator[None]:
    """Another task of this loop holds ``primitive`` (the write side of an RWLock, a
    Guarded's block) for the ``async with`` block."""
    holding, leave = anyio.Event(), anyio.Event()

    async def hold() -> None:
        if kind == "RWLock":
            cm: Any = primitive.awrite()
        elif kind == "Guarded":
            cm = primitive.alock()
        else:
            cm = primitive
        async with cm:
            holding.set()
            await leave.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold)
        await holding.wait()
        try:
            yield
        finally:
            leave.set()


# -- Lock, RLock, Semaphore, BoundedSemaphore: aacquire and async with -------------------------


@pytest.mark.parametrize("kind", LOCKS)
def test_aacquire_and_async_with(make: Callable[..., Any], backend: str, kind: str) -> None:
    lock = make_lock(make, kind)

    async def main() -> None:
        assert await lock.aacquire() is True
        # The same task again: an RLock re-enters; the others are taken (a Lock's holder
        # waits for itself, as with asyncio.Lock, so only a timeout ends it).
        assert await lock.aacquire(timeout=0) is (kind == "RLock")
        if kind == "RLock":
            assert lock.statistics().recursion == 2
            lock.release()
        lock.release()
        assert_free(lock, kind)
        async with lock as entered:
            assert entered is True
            assert await lock.aacquire(timeout=0) is (kind == "RLock")
            if kind == "RLock":
                lock.release()
        assert_free(lock, kind)
        with pytest.raises(KeyError):
            async with lock:
                raise KeyError("inside")
        assert_free(lock, kind)
        assert await lock.aacquire(math.inf) is True  # inf: as long as it takes
        lock.release()

    run(backend, main)
    # Four by the task (six with the RLock's re-entries), and a lock's three by assert_free.
    expected = 4 if "Semaphore" in kind else (6 if kind == "RLock" else 4) + 3
    assert lock.statistics().acquisitions == expected


@pytest.mark.parametrize("kind", LOCKS)
def test_a_try_that_gives_up_is_a_contention_as_in_sync(
    make: Callable[..., Any], backend: str, kind: str
) -> None:
    lock = make_lock(make, kind)

    async def main() -> None:
        async with held_by_another_task(lock, kind):
            # (A synchronous try from this thread would re-enter an RLock: the thread holds
            # it, for synchronous callers.)
            if kind != "RLock":
                assert lock.acquire(False) is False
                assert contentions(lock) == 1
            assert await lock.aacquire(0) is False
            assert contentions(lock) == (1 if kind == "RLock" else 2)

    run(backend, main)


@pytest.mark.parametrize("kind", LOCKS)
def test_another_task_waits_until_release(
    make: Callable[..., Any], backend: str, kind: str
) -> None:
    lock = make_lock(make, kind)

    async def main() -> None:
        got = anyio.Event()

        async def acquire() -> None:
            assert await lock.aacquire(timeout=DEADLOCK) is True
            got.set()

        async with anyio.create_task_group() as tg:
            async with lock:
                tg.start_soon(acquire)
                await until(lambda: contentions(lock) == 1, "the task waits")
                assert not got.is_set()
            await got.wait()
            lock.release()
        assert_free(lock, kind)

    run(backend, main)


# -- timeouts ---------------------------------------------------------------------------------


def _calls(kind: str) -> list[str]:
    return {
        "Lock": ["aacquire"],
        "RLock": ["aacquire"],
        "Semaphore": ["aacquire"],
        "BoundedSemaphore": ["aacquire"],
        "Event": ["wait_async"],
        "Condition": ["wait_async", "wait_for_async"],
        "Barrier": ["wait_async"],
        "RWLock": ["aacquire_read", "aacquire_write", "aread", "awrite"],
        "Guarded": ["alock"],
    }[kind]


TIMED = [
    (kind, method)
    for kind in [*LOCKS, "Event", "Condition", "Barrier", "RWLock", "Guarded"]
    for method in _calls(kind)
]


def _build(make: Callable[..., Any], kind: str) -> Any:
    if kind == "Barrier":
        return make("Barrier", 2)
    if kind == "Guarded":
        return make("Guarded", [0])
    return make_lock(make, kind)


async def _timed_call(primitive: Any, kind: str, method: str, timeout: Any) -> Any:
    """Call ``method`` with ``timeout`` the way a user would; returns its result."""
    if method in ("aread", "awrite", "alock"):
        async with getattr(primitive, method)(timeout):
            return True
    if kind == "Condition":
        async with primitive:
            if method == "wait_for_async":
                return await primitive.wait_for_async(lambda: False, timeout)
            return await primitive.wait_async(timeout)
    return await getattr(primitive, method)(timeout)


@pytest.mark.parametrize(("kind", "method"), TIMED)
@pytest.mark.parametrize("timeout", [0, SHORT])
def test_timeout_expires(
    make: Callable[..., Any], backend: str, kind: str, method: str, timeout: float
) -> None:
    primitive = _build(make, kind)

    async def main() -> None:
        async with contextlib.AsyncExitStack() as stack:
            if kind in ("Lock", "RLock", "Semaphore", "BoundedSemaphore", "Guarded"):
                await stack.enter_async_context(held_by_another_task(primitive, kind))
            elif kind == "RWLock" and method in ("aacquire_write", "awrite"):
                # Readers keep a writer out (a writer would keep readers out too).
                assert primitive.acquire_read(False) is True
                stack.callback(primitive.release_read)
            elif kind == "RWLock":
                await stack.enter_async_context(held_by_another_task(primitive, kind))
            start = time.monotonic()
            if kind == "Barrier":
                with pytest.raises(BrokenBarrierError):
                    await _timed_call(primitive, kind, method, timeout)
                assert primitive.broken
                primitive.reset()
            elif method in ("aread", "awrite", "alock"):
                with pytest.raises(LockTimeoutError):
                    await _timed_call(primitive, kind, method, timeout)
            else:
                assert await _timed_call(primitive, kind, method, timeout) is False
            if timeout:
                assert time.monotonic() - start >= timeout * 0.6  # lock_tests' slack
        if kind != "Barrier":
            assert_free(primitive, kind)

    run(backend, main)


@pytest.mark.parametrize(("kind", "method"), TIMED)
@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (math.nan, ValueError),
        (-1, ValueError),
        (-0.5, ValueError),
        ("1", TypeError),
        (True, TypeError),
        (b"1", TypeError),
    ],
    ids=["nan", "minus-one", "negative", "str", "bool", "bytes"],
)
def test_bad_timeouts_are_refused(
    make: Callable[..., Any],
    backend: str,
    kind: str,
    method: str,
    bad: object,
    error: type[Exception],
) -> None:
    primitive = _build(make, kind)

    async def main() -> None:
        with pytest.raises(error, match="timeout"):
            await _timed_call(primitive, kind, method, bad)
        if kind == "Barrier":
            assert not primitive.broken
            assert primitive.n_waiting == 0
        else:
            assert_free(primitive, kind)

    run(backend, main)


# -- mutual exclusion -------------------------------------------------------------------------

EXCLUSIVE = [*LOCKS, "Condition", "RWLock", "Guarded"]


def _async_hold(primitive: Any, kind: str) -> Any:
    if kind == "RWLock":
        return primitive.awrite(DEADLOCK)
    if kind == "Guarded":
        return primitive.alock(DEADLOCK)
    return primitive


def _sync_hold(primitive: Any, kind: str) -> Any:
    if kind == "RWLock":
        return primitive.write(DEADLOCK)
    if kind == "Guarded":
        return primitive.lock(DEADLOCK)
    return primitive


@pytest.mark.parametrize("kind", EXCLUSIVE)
def test_mutual_exclusion_between_tasks_and_a_thread(
    make: Callable[..., Any], backend: str, kind: str
) -> None:
    """Tasks that await inside the critical section, and a thread beside them: no update is
    lost, and nobody is ever inside with someone else."""
    primitive = _build(make, kind)
    tasks, rounds, thread_rounds = 8, 40, 200
    counter = [0]
    inside = [0]
    overlaps: list[int] = []
    start = threading.Event()

    def thread_worker() -> None:
        start.wait(DEADLOCK)
        for _ in range(thread_rounds):
            with _sync_hold(primitive, kind):
                inside[0] += 1
                if inside[0] != 1:
                    overlaps.append(inside[0])
                value = counter[0]
                os.sched_yield()  # invite the loop in: only the primitive keeps it out
                counter[0] = value + 1
                inside[0] -= 1

    async def task_worker() -> None:
        for i in range(rounds):
            async with _async_hold(primitive, kind):
                inside[0] += 1
                if inside[0] != 1:
                    overlaps.append(inside[0])
                value = counter[0]
                await anyio.lowlevel.checkpoint()
                if i % 4 == 0:
                    await anyio.sleep(0)
                counter[0] = value + 1
                inside[0] -= 1

    async def main() -> None:
        with anyio.fail_after(DEADLOCK):
            async with anyio.create_task_group() as tg:
                for _ in range(tasks):
                    tg.start_soon(task_worker)
                start.set()

    thread = threading.Thread(target=thread_worker, name="sync-worker")
    thread.start()
    try:
        run(backend, main)
    finally:
        start.set()
        thread.join(DEADLOCK)
    assert not thread.is_alive()
    assert overlaps == []
    assert counter[0] == tasks * rounds + thread_rounds
    assert_free(primitive, kind)


def test_semaphore_admits_its_value_of_tasks(make: Callable[..., Any], backend: str) -> None:
    sem = make("BoundedSemaphore", 3)
    inside = [0]
    most = [0]

    async def worker() -> None:
        for _ in range(20):
            async with sem:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
                await anyio.sleep(0)
                inside[0] -= 1

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(worker)

    run(backend, main)
    assert 1 <= most[0] <= 3
    assert_free(sem, "BoundedSemaphore", 3)
    assert sem.statistics().acquisitions == 200


# -- RLock: the task owns it ------------------------------------------------------------------


def test_rlock_is_task_owned(make: Callable[..., Any], backend: str) -> None:
    rlock = make("RLock")

    async def main() -> None:
        a_holds, b_tried, a_release = anyio.Event(), anyio.Event(), anyio.Event()
        outcome: dict[str, Any] = {}
        before: list[int] = []

        async def a() -> None:
            async with rlock:
                async with rlock:  # the holding task re-enters
                    assert rlock.statistics().recursion == 2
                    a_holds.set()
                    await a_release.wait()
                assert rlock.statistics().recursion == 1
            outcome["a_done"] = True

        async def b() -> None:
            await a_holds.wait()
            # Same thread, another task: it does not re-enter, it waits.
            outcome["try"] = await rlock.aacquire(timeout=0)
            before.append(contentions(rlock))
            b_tried.set()
            outcome["wait"] = await rlock.aacquire(timeout=DEADLOCK)
            outcome["recursion"] = rlock.statistics().recursion
            rlock.release()

        async with anyio.create_task_group() as tg:
            tg.start_soon(a)
            tg.start_soon(b)
            await b_tried.wait()
            await until(lambda: contentions(rlock) > before[0], "b waits")
            assert "wait" not in outcome
            a_release.set()
        assert outcome == {"try": False, "a_done": True, "wait": True, "recursion": 1}
        assert_free(rlock, "RLock")

    run(backend, main)


def test_rlock_async_owner_is_forgotten_on_release(make: Callable[..., Any], backend: str) -> None:
    """A task that held the RLock and released it does not re-enter the hold of the thread's
    synchronous code (another task's) later."""
    rlock = make("RLock")

    async def main() -> bool:
        b_holds, done = anyio.Event(), anyio.Event()
        result: list[bool] = []

        a_released = anyio.Event()

        async def a() -> None:
            assert await rlock.aacquire() is True
            rlock.release()
            a_released.set()
            await b_holds.wait()
            result.append(await rlock.aacquire(timeout=0))
            if result[0]:
                rlock.release()
            done.set()

        async def b() -> None:
            await a_released.wait()  # trio may start b first
            assert rlock.acquire()  # synchronous code of the loop's thread
            b_holds.set()
            await done.wait()
            rlock.release()

        async with anyio.create_task_group() as tg:
            tg.start_soon(a)
            tg.start_soon(b)
        return result[0]

    assert run(backend, main) is False


# -- Event ------------------------------------------------------------------------------------


def test_event_wait_async(make: Callable[..., Any], backend: str) -> None:
    ev = make("Event")

    async def main() -> None:
        assert await ev.wait_async(0) is False
        results: list[bool] = []

        async def waiter() -> None:
            results.append(await ev.wait_async(DEADLOCK))

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(waiter)
            await until(lambda: ev.statistics().waiters == 5, "5 tasks wait")
            assert results == []
            ev.set()
        assert results == [True] * 5
        assert await ev.wait_async() is True  # set: at once
        assert await ev.wait_async(0) is True
        ev.clear()
        assert await ev.wait_async(SHORT) is False
        assert ev.statistics().waiters == 0

    run(backend, main)


def test_event_set_then_cleared_still_wakes_the_waiters(
    make: Callable[..., Any], backend: str
) -> None:
    # threading.Event: a waiter woken by set() returns True even if clear() came first.
    ev = make("Event")

    async def main() -> None:
        results: list[bool] = []

        async def waiter() -> None:
            results.append(await ev.wait_async(DEADLOCK))

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            tg.start_soon(waiter)
            await until(lambda: ev.statistics().waiters == 2, "2 tasks wait")
            ev.set()
            ev.clear()
        assert results == [True, True]

    run(backend, main)


# -- Condition --------------------------------------------------------------------------------


def test_condition_wait_async_and_notify(make: Callable[..., Any], backend: str) -> None:
    cond = make("Condition")

    async def main() -> None:
        results: list[bool] = []

        async def waiter() -> None:
            async with cond:
                results.append(await cond.wait_async(DEADLOCK))
                assert cond.statistics().lock.locked  # the lock was taken back

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(waiter)
            await until(lambda: cond.statistics().waiters == 3, "3 tasks wait")
            async with cond:
                cond.notify(2)
            await until(lambda: len(results) == 2, "two woken")
            assert cond.statistics().waiters == 1
            async with cond:
                cond.notify_all()
        assert results == [True] * 3
        async with cond:
            assert await cond.wait_async(0) is False
            assert await cond.wait_async(SHORT) is False
        with pytest.raises(RuntimeError):
            await cond.wait_async(0)  # the lock is not held
        assert_free(cond, "Condition")

    run(backend, main)


def test_condition_wait_for_async(make: Callable[..., Any], backend: str) -> None:
    cond = make("Condition")
    state = {"n": 0, "calls": 0}

    def predicate() -> int | None:
        state["calls"] += 1
        return state["n"] if state["n"] >= 3 else None

    async def main() -> None:
        result: list[Any] = []

        async def waiter() -> None:
            async with cond:
                result.append(await cond.wait_for_async(predicate, DEADLOCK))

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            for i in range(1, 4):
                await until(lambda: cond.statistics().waiters == 1, "the task waits")
                async with cond:
                    state["n"] = i
                    cond.notify()
        assert result == [3]  # the predicate's value, not True
        assert state["calls"] == 4  # once at first, once per notification
        async with cond:
            assert await cond.wait_for_async(lambda: 0, 0) == 0
            assert await cond.wait_for_async(lambda: "", SHORT) == ""
        assert_free(cond, "Condition")

    run(backend, main)


def test_condition_over_an_rlock_held_twice(make: Callable[..., Any], backend: str) -> None:
    cond = make("Condition", make("RLock"))

    async def main() -> None:
        depth: list[int] = []

        async def waiter() -> None:
            async with cond, cond:
                assert await cond.wait_async(DEADLOCK) is True
                depth.append(cond.statistics().lock.recursion)

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await until(lambda: cond.statistics().waiters == 1, "the task waits")
            assert cond.statistics().lock.locked is False  # released whole while waiting
            async with cond:
                cond.notify()
        assert depth == [2]
        assert_free(cond, "Condition")

    run(backend, main)


def test_condition_cancelled_waiter_retakes_the_lock_first(
    make: Callable[..., Any], backend: str
) -> None:
    cond = make("Condition")

    async def main() -> None:
        cancelled = anyio.get_cancelled_exc_class()
        other_inside = [False]
        seen: dict[str, Any] = {}

        async def waiter(scope: anyio.CancelScope) -> None:
            with scope:
                async with cond:
                    try:
                        await cond.wait_async()
                    except cancelled:
                        # The lock is ours again before the cancellation goes on, so the
                        # async with releases a lock it holds.
                        seen["other_inside"] = other_inside[0]
                        seen["locked"] = cond.statistics().lock.locked
                        raise

        scope = anyio.CancelScope()
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter, scope)
            await until(lambda: cond.statistics().waiters == 1, "the task waits")
            async with cond:
                other_inside[0] = True
                before = cond.statistics().lock.contentions
                scope.cancel()
                # The waiter finds the lock busy as it takes it back: it waits.
                await until(lambda: cond.statistics().lock.contentions > before, "it waits")
                for _ in range(20):  # the cancelled waiter cannot get in meanwhile
                    await anyio.sleep(0)
                assert "locked" not in seen
                other_inside[0] = False
        assert seen == {"other_inside": False, "locked": True}
        assert scope.cancelled_caught
        assert_free(cond, "Condition")

    run(backend, main)


def test_condition_notification_of_a_cancelled_waiter_is_handed_on(
    make: Callable[..., Any], backend: str, model: Model
) -> None:
    """Two waiters; notify(1) wakes the first, which is cancelled before it runs: the other
    wakes instead of both staying asleep.

    On asyncio the cancellation is asyncio's own ``Task.cancel()``, which reaches a task
    whose wait has just ended. On trio a task already rescheduled by its wake-up cannot be
    cancelled before it runs (the thread model wakes it at once, from the notifying thread):
    there the first may return True, the notification used, not lost; the second is then
    notified again.
    """
    cond = make("Condition")

    async def main() -> dict[str, Any]:
        outcome: dict[str, Any] = {}
        scopes = {"first": anyio.CancelScope(), "second": anyio.CancelScope()}
        tasks: dict[str, Any] = {}

        async def waiter(name: str) -> None:
            if backend == "asyncio":
                tasks[name] = asyncio.current_task()
            try:
                with scopes[name]:
                    async with cond:
                        outcome[name] = await cond.wait_async(DEADLOCK)
            except asyncio.CancelledError:
                outcome[name] = "cancelled"
                uncancel = getattr(tasks[name], "uncancel", None)  # Python 3.11+
                if uncancel is not None:
                    uncancel()
            if scopes[name].cancelled_caught:
                outcome[name] = "cancelled"

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter, "first")
            await until(lambda: cond.statistics().waiters == 1, "the first waits")
            tg.start_soon(waiter, "second")
            await until(lambda: cond.statistics().waiters == 2, "both wait")
            async with cond:
                cond.notify(1)  # the first in line
                if backend == "asyncio":
                    tasks["first"].cancel()  # ... cancelled before it runs
                else:
                    scopes["first"].cancel()
            await until(lambda: True in outcome.values(), "one of them returns True")
            if outcome.get("first") is True:
                assert backend == "trio", outcome
                assert not is_process(model), outcome
                async with cond:
                    cond.notify(1)
        return outcome

    outcome = run(backend, main)
    assert outcome["second"] is True
    assert outcome["first"] in ("cancelled", True)
    assert_free(cond, "Condition")


# -- Barrier ----------------------------------------------------------------------------------


def test_barrier_wait_async(make: Callable[..., Any], backend: str) -> None:
    barrier = make("Barrier", 3)

    async def main() -> None:
        indices: list[int] = []

        async def party() -> None:
            for _ in range(4):
                indices.append(await barrier.wait_async(DEADLOCK))

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(party)
        assert sorted(indices) == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
        stats = barrier.statistics()
        assert (stats.passes, stats.n_waiting, stats.broken) == (4, 0, False)

    run(backend, main)


def test_barrier_wait_async_uses_the_barrier_s_own_timeout(
    make: Callable[..., Any], backend: str
) -> None:
    barrier = make("Barrier", 2, None, SHORT)  # parties, action, timeout: threading's order

    async def main() -> None:
        with pytest.raises(BrokenBarrierError):
            await barrier.wait_async()  # None: the barrier's own timeout, as wait() does
        assert barrier.broken
        barrier.reset()
        indices: list[int] = []

        async def party() -> None:
            indices.append(await barrier.wait_async(DEADLOCK))  # an explicit one wins

        async with anyio.create_task_group() as tg:
            tg.start_soon(party)
            await until(lambda: barrier.n_waiting == 1, "one party waits")
            tg.start_soon(party)
        assert sorted(indices) == [0, 1]

    run(backend, main)


def test_barrier_abort_breaks_it_for_awaiting_tasks(make: Callable[..., Any], backend: str) -> None:
    barrier = make("Barrier", 3)

    async def main() -> None:
        errors: list[type[BaseException]] = []

        async def party() -> None:
            try:
                await barrier.wait_async()
            except BrokenBarrierError as exc:
                errors.append(type(exc))

        async with anyio.create_task_group() as tg:
            tg.start_soon(party)
            tg.start_soon(party)
            await until(lambda: barrier.n_waiting == 2, "two parties wait")
            barrier.abort()
        assert errors == [BrokenBarrierError] * 2
        with pytest.raises(BrokenBarrierError):
            await barrier.wait_async(0)
        barrier.reset()
        assert barrier.n_waiting == 0
        assert not barrier.broken

    run(backend, main)


def test_barrier_party_cancelled_before_it_opens_breaks_it(
    make: Callable[..., Any], backend: str
) -> None:
    barrier = make("Barrier", 3)

    async def main() -> None:
        outcome: dict[str, Any] = {}
        scope = anyio.CancelScope()

        async def cancelled_party() -> None:
            with scope:
                await barrier.wait_async(DEADLOCK)
            outcome["cancelled"] = scope.cancelled_caught

        async def other_party() -> None:
            try:
                outcome["other"] = await barrier.wait_async(DEADLOCK)
            except BrokenBarrierError:
                outcome["other"] = "broken"

        async with anyio.create_task_group() as tg:
            tg.start_soon(cancelled_party)
            tg.start_soon(other_party)
            await until(lambda: barrier.n_waiting == 2, "two parties wait")
            scope.cancel()
        assert outcome == {"cancelled": True, "other": "broken"}
        assert barrier.broken
        assert barrier.n_waiting == 0
        barrier.reset()
        indices: list[int] = []

        async def party() -> None:
            indices.append(await barrier.wait_async(DEADLOCK))

        async with anyio.create_task_group() as tg:  # works again after the reset
            for _ in range(3):
                tg.start_soon(party)
        assert sorted(indices) == [0, 1, 2]

    run(backend, main)


# -- RWLock -----------------------------------------------------------------------------------


def test_rwlock_tasks_are_readers_and_writers(make: Callable[..., Any], backend: str) -> None:
    rw = make("RWLock")

    async def main() -> None:
        two_read, release_reads = anyio.Event(), anyio.Event()
        readers = [0]

        async def reader() -> None:
            async with rw.aread(DEADLOCK):
                readers[0] += 1
                if readers[0] == 2:
                    two_read.set()
                await release_reads.wait()
                readers[0] -= 1

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            tg.start_soon(reader)
            await two_read.wait()  # two tasks of one thread read at once
            assert rw.statistics().readers == 2
            assert await rw.aacquire_write(0) is False
            got_write = anyio.Event()

            async def writer() -> None:
                async with rw.awrite(DEADLOCK):
                    got_write.set()

            tg.start_soon(writer)
            await until(lambda: rw.statistics().writers_waiting == 1, "the writer waits")
            assert await rw.aacquire_read(0) is False  # a waiting writer holds readers back
            release_reads.set()
            await got_write.wait()
        assert_free(rw, "RWLock")

        # A task re-enters its read hold, may not upgrade, and holds its write side alone.
        assert await rw.aacquire_read() is True
        assert await rw.aacquire_read(0) is True
        with pytest.raises(RuntimeError):
            await rw.aacquire_write(0)
        rw.release_read()
        rw.release_read()
        assert await rw.aacquire_write() is True
        assert rw.statistics().writer_pid == os.getpid()
        with pytest.raises(RuntimeError):
            await rw.aacquire_write(0)
        with pytest.raises(RuntimeError):
            await rw.aacquire_read(0)
        rw.release_write()
        assert_free(rw, "RWLock")

    run(backend, main)


def test_rwlock_statistics_name_a_task_writer_s_thread(
    make: Callable[..., Any], backend: str
) -> None:
    """writer_thread is the native id of the thread that runs the writing task, as a thread
    writer's is (both models; a task is not a thread, but its loop's thread is its place)."""
    rw = make("RWLock")

    async def main() -> None:
        async with rw.awrite():
            stats = rw.statistics()
            assert (stats.writer_pid, stats.writer_thread) == (
                os.getpid(),
                threading.get_native_id(),
            )

    run(backend, main)


def test_rwlock_holder_is_the_task(make: Callable[..., Any], backend: str) -> None:
    """Another task of the same thread is another party: it waits for the write holder, and
    the holder's release_write() (from its task) releases the hold."""
    rw = make("RWLock")

    async def main() -> None:
        holds, tried, release = anyio.Event(), anyio.Event(), anyio.Event()
        outcome: dict[str, Any] = {}

        async def holder() -> None:
            assert await rw.aacquire_write() is True
            holds.set()
            await release.wait()
            rw.release_write()

        async def other() -> None:
            await holds.wait()
            outcome["read now"] = await rw.aacquire_read(0)
            outcome["write now"] = await rw.aacquire_write(0)
            tried.set()
            outcome["read"] = await rw.aacquire_read(DEADLOCK)
            rw.release_read()

        async with anyio.create_task_group() as tg:
            tg.start_soon(holder)
            tg.start_soon(other)
            await tried.wait()
            await until(lambda: rw.statistics().readers_waiting == 1, "the reader waits")
            release.set()
        assert outcome == {"read now": False, "write now": False, "read": True}
        assert_free(rw, "RWLock")

    run(backend, main)


# -- Guarded ----------------------------------------------------------------------------------


def test_guarded_async_face(make: Callable[..., Any], backend: str) -> None:
    g = make("Guarded", [1])

    async def main() -> None:
        async with g.alock() as value:
            assert value == [1]
            value.append(2)
            assert await g.aget() == [1, 2]  # inside the task's block: the block's value
            await g.aset([1, 2, 3])
        assert await g.aget() == [1, 2, 3]
        await g.aset([0])
        assert await g.aupdate(lambda v: [*v, 1]) == [0, 1]
        assert g.get() == [0, 1]

        holds, release, tried = anyio.Event(), anyio.Event(), anyio.Event()
        outcome: dict[str, Any] = {}
        before: list[int] = []

        async def holder() -> None:
            async with g.alock() as value:
                holds.set()
                await release.wait()
                value.append("holder")

        async def other() -> None:
            await holds.wait()
            with pytest.raises(LockTimeoutError):
                async with g.alock(0):
                    pass
            before.append(g.statistics().lock.contentions)
            tried.set()
            outcome["get"] = await g.aget()  # waits for the holder's block to end

        async with anyio.create_task_group() as tg:
            tg.start_soon(holder)
            tg.start_soon(other)
            await tried.wait()
            await until(lambda: g.statistics().lock.contentions > before[0], "the getter waits")
            assert "get" not in outcome
            release.set()
        assert outcome == {"get": [0, 1, "holder"]}
        assert_free(g, "Guarded")

    run(backend, main)


@pytest.mark.parametrize("how", ["raise", "cancel"])
def test_guarded_failed_or_cancelled_block_poisons(
    make: Callable[..., Any], backend: str, how: str
) -> None:
    g = make("Guarded", [1])

    async def main() -> None:
        with anyio.CancelScope() as scope:
            with contextlib.suppress(KeyError):
                async with g.alock() as value:
                    value.append(2)
                    if how == "raise":
                        raise KeyError("half-way")
                    scope.cancel()
                    await anyio.sleep(DEADLOCK)  # cancelled here
        assert g.is_poisoned()
        with pytest.raises(PoisonedError):
            await g.aget()
        with pytest.raises(PoisonedError):
            await g.aupdate(lambda v: v)
        async with g.alock(ignore_poison=True) as value:
            assert value == [1, 2]  # what the block left
        g.clear_poison()
        assert await g.aget() == [1, 2]
        assert_free(g, "Guarded")

    run(backend, main)


# -- cancellation at every await point ---------------------------------------------------------

STRESSED = [*LOCKS, "RWLock", "Condition", "Event", "Guarded"]


async def cancel_after(backend: str, seconds: float, fn: Callable[[], Awaitable[Any]]) -> bool:
    """Run ``fn()`` cancelled after ``seconds``; whether the cancellation was delivered.

    On asyncio, asyncio's own ``wait_for`` (a task of its own, cancelled once) and anyio's
    cancel scope (cancelled again at every await until it leaves) take turns.
    """
    if backend == "asyncio" and random.random() < 0.5:
        try:
            await asyncio.wait_for(fn(), seconds)
        except asyncio.TimeoutError:
            return True
        return False
    with anyio.move_on_after(seconds) as scope:
        await fn()
    return scope.cancelled_caught


@pytest.mark.parametrize("kind", STRESSED)
def test_random_cancellations_never_leave_it_held(
    make: Callable[..., Any], backend: str, kind: str
) -> None:
    """Tasks contend for the primitive, every call under a random cancel deadline (before,
    during or after the wait, or inside the critical section), until enough calls have been
    cancelled: then nothing is held, nobody waits, and nobody was ever inside with another."""
    semaphore_value = 2
    if "Semaphore" in kind:
        primitive = make(kind, semaphore_value)
    elif kind == "Guarded":
        primitive = make("Guarded", 0)
    else:
        primitive = make(kind)
    rng = random.Random(1818)
    cancelled = [0]
    completed = [0]
    writers = [0]
    readers = [0]
    violations: list[str] = []

    def deadline() -> float:
        return rng.choice([0.0, 0.0, 1e-6, 1e-5, 1e-4, 5e-4, 1e-3, math.inf])

    def enter_critical(write: bool) -> None:
        if write:
            writers[0] += 1
        else:
            readers[0] += 1
        most = semaphore_value if "Semaphore" in kind else 1
        if writers[0] > most or (writers[0] and readers[0]):
            violations.append(f"writers={writers[0]} readers={readers[0]}")

    def leave_critical(write: bool) -> None:
        if write:
            writers[0] -= 1
        else:
            readers[0] -= 1

    cancelled_inside = [0]

    async def critical(write: bool = True) -> None:
        enter_critical(write)
        try:
            await anyio.lowlevel.checkpoint()
        except BaseException:
            cancelled_inside[0] += 1  # cancelled while holding it: it is released on the way
            raise
        finally:
            leave_critical(write)

    async def one_call(i: int) -> None:
        if kind in LOCKS:
            async with primitive:
                await critical()
        elif kind == "RWLock":
            write = i % 3 == 0
            async with primitive.awrite() if write else primitive.aread():
                await critical(write)
        elif kind == "Guarded":
            async with primitive.alock(ignore_poison=True) as value:
                await critical()
                del value
        elif kind == "Condition":
            async with primitive:
                if i % 2:  # a waiter: the lock is held again when it leaves, however it does
                    try:
                        await primitive.wait_async()
                    finally:
                        if not primitive.statistics().lock.locked:
                            violations.append("left wait_async without the lock")
                else:
                    primitive.notify(2)
                    await critical()
        elif kind == "Event":
            if i % 4 == 0:
                primitive.set()
                await anyio.lowlevel.checkpoint()
                primitive.clear()
            else:
                await primitive.wait_async()

    workers = 6
    working = [workers]

    async def worker(first: int) -> None:
        i = first
        while cancelled[0] < CANCELLATIONS:
            if await cancel_after(backend, deadline(), functools.partial(one_call, i)):
                cancelled[0] += 1
            else:
                completed[0] += 1
            i += 1
        working[0] -= 1

    async def waker() -> None:
        """Keeps Condition and Event waiters from waiting for ever (their deadline may be
        inf): one notification or set per pass, until the last worker is done."""
        while working[0]:
            await anyio.sleep(0.0005)
            if kind == "Condition":
                async with primitive:
                    primitive.notify_all()
            elif kind == "Event":
                primitive.set()
                primitive.clear()

    async def main() -> None:
        with anyio.fail_after(10 * DEADLOCK):
            async with anyio.create_task_group() as tg:
                for w in range(workers):
                    tg.start_soon(worker, w * 1_000_000)
                if kind in ("Condition", "Event"):
                    tg.start_soon(waker)
            if kind == "Event":
                primitive.clear()

    run(backend, main)
    assert violations == []
    assert cancelled[0] >= CANCELLATIONS
    assert completed[0] > 0
    assert_free(primitive, kind, semaphore_value)
    if kind not in ("Event", "Condition"):
        assert cancelled_inside[0] > 0  # some cancellations landed inside the block
        stats = primitive.statistics()
        waited = stats.lock.contentions if kind == "Guarded" else stats.contentions
        assert waited > 0  # ... and some calls had to wait
    if "Semaphore" in kind or kind in ("Lock", "RLock"):
        stats = primitive.statistics()
        assert stats.acquisitions >= completed[0]  # each completed call acquired once


# -- a sync party (thread, or process) wakes awaiting tasks -----------------------------------


@pytest.mark.parametrize("kind", ["Lock", "RLock"])
def test_sync_party_releases_a_lock_a_task_awaits(
    make: Callable[..., Any], backend: str, kind: str, peers: Callable[..., list[Peer]]
) -> None:
    lock = make(kind)
    (peer,) = peers(1, lock=lock)
    assert peer.call(call, "lock", "acquire", True, DEADLOCK) is True

    async def main() -> None:
        got: list[bool] = []

        async def acquire() -> None:
            got.append(await lock.aacquire(DEADLOCK))

        async with anyio.create_task_group() as tg:
            tg.start_soon(acquire)
            await until(lambda: contentions(lock) == 1, "the task waits")
            assert await lock.aacquire(0) is False
            peer.send(call, "lock", "release")
            assert await answer(peer) is None
        assert got == [True]
        stats = lock.statistics()
        assert (stats.owner_pid, stats.owner_thread) == (os.getpid(), threading.get_native_id())
        lock.release()

    run(backend, main)
    assert_free(lock, kind)


def test_sync_party_releases_a_semaphore_tasks_await(
    make: Callable[..., Any], backend: str, peers: Callable[..., list[Peer]]
) -> None:
    sem = make("Semaphore", 0)
    (peer,) = peers(1, sem=sem)

    async def main() -> None:
        got: list[bool] = []

        async def acquire() -> None:
            got.append(await sem.aacquire(DEADLOCK))

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(acquire)
            peer.send(when_waiting, "sem", 3, "sem", "release", 2)
            assert await answer(peer) is None
            await until(lambda: len(got) == 2, "two tasks got it")
            assert sem.statistics().waiters == 1
            peer.send(call, "sem", "release")
            assert await answer(peer) is None
        assert got == [True] * 3
        assert_free(sem, "Semaphore", 0)

    run(backend, main)


def test_sync_party_sets_an_event_tasks_await(
    make: Callable[..., Any], backend: str, peers: Callable[..., list[Peer]]
) -> None:
    ev = make("Event")
    (peer,) = peers(1, ev=ev)

    async def main() -> None:
        results: list[bool] = []

        async def waiter() -> None:
            results.append(await ev.wait_async(DEADLOCK))

        for _ in range(3):  # several rounds: the bell stops and starts again
            ev.clear()
            results.clear()
            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    tg.start_soon(waiter)
                peer.send(when_waiting, "ev", 20, "ev", "set")
                assert await answer(peer) is None
            assert results == [True] * 20
        assert ev.statistics().waiters == 0

    run(backend, main)


def test_sync_party_notifies_a_condition_tasks_await(
    make: Callable[..., Any], backend: str, peers: Callable[..., list[Peer]]
) -> None:
    cond = make("Condition")
    (peer,) = peers(1, cond=cond)

    async def main() -> None:
        results: list[bool] = []

        async def waiter() -> None:
            async with cond:
                results.append(await cond.wait_async(DEADLOCK))

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(waiter)
            peer.send(when_waiting, "cond", 3, "cond", "notify_under_lock", 1)
            assert await answer(peer) is None
            await until(lambda: results == [True], "one woken")
            assert cond.statistics().waiters == 2
            peer.send(call, "cond", "acquire")
            assert await answer(peer) is True
            peer.send(call, "cond", "notify_all")
            assert await answer(peer) is None
            peer.send(call, "cond", "release")
            assert await answer(peer) is None
        assert results == [True] * 3
        assert_free(cond, "Condition")

    run(backend, main)


def test_sync_party_and_tasks_pass_a_barrier(
    make: Callable[..., Any], backend: str, peers: Callable[..., list[Peer]]
) -> None:
    barrier = make("Barrier", 3)
    (peer,) = peers(1, barrier=barrier)

    async def main() -> None:
        indices: list[int] = []

        async def party() -> None:
            indices.append(await barrier.wait_async(DEADLOCK))

        for _ in range(3):
            async with anyio.create_task_group() as tg:
                tg.start_soon(party)
                tg.start_soon(party)
                await until(lambda: barrier.n_waiting == 2, "two tasks wait")
                peer.send(call, "barrier", "wait", DEADLOCK)
                indices.append(await answer(peer))
        assert sorted(indices) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
        assert barrier.statistics().passes == 3

    run(backend, main)


def test_sync_party_and_tasks_share_an_rwlock(
    make: Callable[..., Any], backend: str, peers: Callable[..., list[Peer]]
) -> None:
    rw = make("RWLock")
    (peer,) = peers(1, rw=rw)

    async def main() -> None:
        # The peer writes; a task waits to read, another to write.
        assert peer.call(call, "rw", "acquire_write", True, DEADLOCK) is True
        got: list[str] = []

        async def read() -> None:
            async with rw.aread(DEADLOCK):
                got.append("read")

        async def write() -> None:
            async with rw.awrite(DEADLOCK):
                got.append("write")

        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            await until(lambda: rw.statistics().writers_waiting == 1, "the writer waits")
            tg.start_soon(read)
            await until(lambda: rw.statistics().readers_waiting == 1, "the reader waits")
            peer.send(call, "rw", "release_write")
            assert await answer(peer) is None
        assert sorted(got) == ["read", "write"]
        # A task writes; the peer waits to read until the task's release_write().
        assert await rw.aacquire_write() is True
        peer.send(call, "rw", "acquire_read", True, DEADLOCK)
        await until(lambda: rw.statistics().readers_waiting == 1, "the peer waits")
        rw.release_write()
        assert await answer(peer) is True
        peer.send(call, "rw", "release_read")
        assert await answer(peer) is None
        assert_free(rw, "RWLock")

    run(backend, main)


def test_tasks_wake_a_sync_party(
    make: Callable[..., Any], backend: str, peers: Callable[..., list[Peer]]
) -> None:
    """The other way round: a blocked thread or process is woken by a task's release/set."""
    sem, ev, lock = make("Semaphore", 0), make("Event"), make("Lock")
    (peer,) = peers(1, sem=sem, ev=ev, lock=lock)

    async def main() -> None:
        peer.send(call, "sem", "acquire", True, DEADLOCK)
        await until(lambda: sem.statistics().waiters == 1, "the peer waits")
        sem.release()
        assert await answer(peer) is True
        peer.send(call, "sem", "acquire", True, DEADLOCK)
        await until(lambda: sem.statistics().waiters == 1, "the peer waits")
        sem.release()
        assert await answer(peer) is True
        peer.send(call, "sem", "release")
        assert await answer(peer) is None
        async with sem:  # the task's turn: async with's exit releases for the peer
            peer.send(call, "sem", "acquire", True, DEADLOCK)
            await until(lambda: sem.statistics().waiters == 1, "the peer waits")
        assert await answer(peer) is True
        peer.send(call, "ev", "wait", DEADLOCK)
        await until(lambda: ev.statistics().waiters == 1, "the peer waits")
        ev.set()
        assert await answer(peer) is True
        async with lock:
            peer.send(call, "lock", "acquire", True, DEADLOCK)
            await until(lambda: lock.statistics().waiters == 1, "the peer waits")
        assert await answer(peer) is True
        peer.send(call, "lock", "release")
        assert await answer(peer) is None

    run(backend, main)


# -- no thread per waiter ---------------------------------------------------------------------


def wait_for_no_new_thread(before: set[threading.Thread]) -> None:
    """The bell thread ends once no task waits (a deadlock bound on its exit, not a timing)."""
    deadline = time.monotonic() + DEADLOCK
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.001)
    assert [t.name for t in set(threading.enumerate()) - before] == [], "the bell did not end"


@pytest.mark.parametrize("kind", ["Event", "Semaphore", "Condition"])
@pytest.mark.parametrize("n", [100, 200])
def test_no_thread_per_waiting_task(
    make: Callable[..., Any],
    backend: str,
    model: Model,
    kind: str,
    n: int,
) -> None:
    primitive = make(kind, 0) if kind == "Semaphore" else make(kind)
    before = set(threading.enumerate())

    async def waiter() -> None:
        if kind == "Event":
            assert await primitive.wait_async(DEADLOCK) is True
        elif kind == "Semaphore":
            assert await primitive.aacquire(DEADLOCK) is True
        else:
            async with primitive:
                assert await primitive.wait_async(DEADLOCK) is True

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(n):
                tg.start_soon(waiter)
            await until(lambda: primitive.statistics().waiters == n, f"{n} tasks wait")
            added = [t.name for t in set(threading.enumerate()) - before]
            assert added == ([BELL] if is_process(model) else []), added
            if kind == "Event":
                primitive.set()
            elif kind == "Semaphore":
                primitive.release(n)
            else:
                async with primitive:
                    primitive.notify_all()

    run(backend, main)
    wait_for_no_new_thread(before)


# -- a lock dropped while held ----------------------------------------------------------------

_DROP_HELD = """
import gc, sys
import anyio
import concurrency_kit as ck

cls = getattr(ck, sys.argv[1])


async def main(lock):
    holding, leave = anyio.Event(), anyio.Event()

    async def hold():
        async with lock:
            holding.set()
            await leave.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold)
        await holding.wait()
        assert lock.acquire(False)  # the thread re-enters (sync), and never releases
        leave.set()


for _ in range(5):
    lock = cls()
    anyio.run(main, lock, backend=sys.argv[2])
    assert lock.statistics().locked
    lock.close()
    del lock
    gc.collect()
print("survived")
"""


def test_a_held_rlock_closed_and_collected_does_not_crash(backend: str, model: Model) -> None:
    """A re-entrant lock left held by the loop's thread (a synchronous re-entry never
    released), then closed and collected: the interpreter goes on (it used to crash later, on
    the thread's next robust-mutex call; sync-bugs.md 4). Run in a child interpreter, where a
    crash cannot take the test session with it."""
    cls = "ProcessRLock" if is_process(model) else "ThreadRLock"
    proc = subprocess.run(
        [sys.executable, "-X", "dev", "-c", _DROP_HELD, cls, backend],
        capture_output=True,
        text=True,
        timeout=DEADLOCK,
        check=False,
    )
    assert (proc.returncode, proc.stdout.strip()) == (0, "survived"), proc.stderr

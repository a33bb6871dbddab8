"""The algorithms of the synchronization primitives, written once for both models.

Each primitive is a *core* class here, holding a monitor (``_core/monitor.py``) and a state: a
:mod:`ctypes` structure. The thread classes (``thread.py``) allocate the structure in private
memory and use a :class:`~concurrency_kit._core.monitor.ThreadMonitor`; the process classes
(``process.py``) map it in a shared-memory segment with a
:class:`~concurrency_kit._core.monitor.ProcessMonitor`. Every read or write of the state
happens inside the monitor, never relying on the GIL.

The algorithms follow :mod:`threading` (``Semaphore``, ``Event``, ``Condition`` and ``Barrier``
are close ports of their semantics, so the stdlib's behaviour and error messages carry over),
plus two things only processes need, both in the :meth:`_Core._repair` hook that sleepers call
between slices of their sleep: a barrier party or a lock holder that *died* is found and
reclaimed, so the survivors do not wait for ever.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from threading import get_native_id
from types import TracebackType
from typing import Any, Generic, TypeVar

from concurrency_kit._core.deadline import check_timeout, deadline_after, remaining
from concurrency_kit._core.monitor import Monitor
from concurrency_kit.errors import (
    BrokenBarrierError,
    LockOwnerDiedWarning,
    LockTimeoutError,
    PoisonedError,
)
from concurrency_kit.sync._base import (
    BarrierStatistics,
    EventStatistics,
    GuardedStatistics,
    RWLockStatistics,
    SemaphoreStatistics,
    check_acquire_args,
)

__all__ = [
    "BarrierCore",
    "BarrierState",
    "ConditionCore",
    "ConditionState",
    "EventCore",
    "EventState",
    "GuardedBlock",
    "GuardedCore",
    "GuardedState",
    "RWLockCore",
    "RWLockState",
    "SemaphoreCore",
    "SemaphoreState",
]

T = TypeVar("T")


def _whoami() -> tuple[int, int]:
    """(pid, native thread id) of the caller."""
    return os.getpid(), get_native_id()


def _expired(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _await_slice(m: Monitor, deadline: float | None) -> float | None:
    """How long an awaiting task waits before it looks again: until ``deadline``, and at most
    a slice in the process model (between slices it looks for dead owners)."""
    wait = remaining(deadline)
    if m.slice_seconds is not None:
        wait = m.slice_seconds if wait is None else min(wait, m.slice_seconds)
    return wait


class _TaskSerials:
    """The serial numbers of this process's tasks that hold or await reader-writer locks."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.of_task: dict[object, list[int]] = {}  # task -> [serial, uses]
        self.free = list(range(1023, 0, -1))  # serial 0 would be the thread itself


_serials = _TaskSerials()


def _forget_task_serials() -> None:
    global _serials
    _serials = _TaskSerials()  # the parent's tasks do not run here; its lock may be held


os.register_at_fork(after_in_child=_forget_task_serials)

_tasks_hold_rwlocks = False
"""Whether a task of this process ever acquired a reader-writer lock (``aacquire_read`` ...):
until then, a release does not look for the calling task."""


def _running_task() -> object | None:
    """The asyncio or trio task running in this thread, if any (without importing either)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        try:
            task: object | None = asyncio.current_task()
        except RuntimeError:  # no event loop runs in this thread
            task = None
        if task is not None:
            return task
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            return trio.lowlevel.current_task()  # type: ignore[no-any-return]
        except RuntimeError:
            pass
    return None


class _Core:
    """A monitor and a state; :meth:`_sleep` is the one way the algorithms wait."""

    __slots__ = ("__weakref__", "_m", "_s")
    _m: Monitor
    _s: Any

    def _repair(self) -> bool:
        """Inside the monitor: reclaim what dead processes left; return whether anything was.

        The thread model has nothing to reclaim: a thread cannot die without its process.
        """
        return False

    def _sleep(self, deadline: float | None, queue: int = 0) -> bool:
        """Inside the monitor: wait to be woken, until ``deadline`` at most.

        Returns with the monitor held again: ``True`` if woken (or if :meth:`_repair` changed
        the state), ``False`` at the deadline. Callers re-check their condition either way.
        """
        m = self._m
        ticket = m.prepare(queue)
        m.exit()
        try:
            while not m.sleep(ticket, deadline):
                if _expired(deadline):
                    break
                m.enter()
                try:
                    repaired = self._repair()
                finally:
                    m.exit()
                if repaired:
                    break
        finally:
            m.enter()
            woken = m.finish(ticket)
        return woken or not _expired(deadline)

    async def _asleep(self, deadline: float | None, queue: int = 0) -> None:
        """Inside the monitor: :meth:`_sleep` for an awaiting task, one wake-up or slice long.

        The task waits in the event loop (no thread: see ``Monitor.prepare_async``) and returns
        with the monitor held again; callers re-check their condition, as after ``_sleep``.
        Cancelled after a wake-up it can no longer use, it hands the wake-up on to the next
        waiter of ``queue``, so a cancellation never strands a waiter that could proceed.
        """
        from concurrency_kit._core import aio  # at the first await: asyncio and anyio load late

        m = self._m
        waker = aio.make_waker()
        ticket = m.prepare_async(queue, waker)
        m.exit()
        try:
            await waker.wait(_await_slice(m, deadline))
        except BaseException:
            waker.close()
            m.enter()
            if m.finish(ticket):
                m.wake(1, queue)
            raise
        waker.close()
        m.enter()
        if not m.finish(ticket):
            self._repair()


# -- Semaphore and BoundedSemaphore ------------------------------------------------------------


class SemaphoreState(ctypes.Structure):
    _fields_ = (
        ("value", ctypes.c_int64),
        ("bound", ctypes.c_int64),  # the initial value of a bounded semaphore; -1: unbounded
        ("acquisitions", ctypes.c_uint64),
        ("contentions", ctypes.c_uint64),
    )


class SemaphoreCore(_Core):
    """:class:`threading.Semaphore` and :class:`threading.BoundedSemaphore` semantics."""

    __slots__ = ()

    @staticmethod
    def _initial_state(value: int, bounded: bool) -> SemaphoreState:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"semaphore initial value must be an int, got {value!r}")
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        return SemaphoreState(value=value, bound=value if bounded else -1)

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Decrement the counter, waiting while it is zero.

        Args:
            blocking: wait for the counter to be positive (``True``) or return at once.
            timeout: the most seconds to wait (``None`` or ``math.inf``: for as long as it
                takes). Only with ``blocking=True``.

        Returns:
            Whether the counter was decremented.

        Raises:
            TypeError: ``timeout`` is not a number or ``None``.
            ValueError: a timeout with ``blocking=False``, or a negative or NaN timeout.
        """
        seconds = check_timeout(timeout)
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        m, s = self._m, self._s
        m.enter()
        try:
            if s.value <= 0:
                s.contentions += 1
                if not blocking:
                    return False
                deadline = deadline_after(seconds)
                while s.value <= 0:
                    if _expired(deadline):
                        return False
                    self._sleep(deadline)
            s.value -= 1
            s.acquisitions += 1
            return True
        finally:
            m.exit()

    def __enter__(self) -> bool:
        return self.acquire()

    async def aacquire(self, timeout: float | None = None) -> bool:
        """Await :meth:`acquire`: decrement the counter, awaiting (not blocking) while it is 0.

        Args:
            timeout: the most seconds to wait (``None`` or ``math.inf``: for as long as it
                takes; ``0``: do not wait).

        Returns:
            Whether the counter was decremented. A cancelled call has not decremented it.

        Raises:
            TypeError: ``timeout`` is not a number or ``None``.
            ValueError: ``timeout`` is negative or NaN.
        """
        seconds = check_timeout(timeout)
        m, s = self._m, self._s
        m.enter()
        try:
            if s.value <= 0:
                s.contentions += 1
                deadline = deadline_after(seconds)
                while s.value <= 0:
                    if _expired(deadline):
                        return False
                    await self._asleep(deadline)
            s.value -= 1
            s.acquisitions += 1
            return True
        finally:
            m.exit()

    async def __aenter__(self) -> bool:
        return await self.aacquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def release(self, n: int = 1) -> None:
        """Increment the counter by ``n``, waking up to ``n`` waiters.

        Raises:
            ValueError: ``n`` is less than one, or (bounded semaphore) the counter would go
                above its initial value; the counter is then unchanged.
        """
        if n < 1:
            raise ValueError("n must be one or more")
        m, s = self._m, self._s
        m.enter()
        try:
            if s.bound >= 0 and s.value + n > s.bound:
                raise ValueError("Semaphore released too many times")
            s.value += n
            m.wake(n)
        finally:
            m.exit()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def statistics(self) -> SemaphoreStatistics:
        """Return a snapshot of the counter and the counters of use."""
        m, s = self._m, self._s
        m.enter()
        try:
            return SemaphoreStatistics(
                value=int(s.value),
                waiters=m.waiters(),
                acquisitions=int(s.acquisitions),
                contentions=int(s.contentions),
            )
        finally:
            m.exit()

    def _describe(self) -> str:
        s = self._s
        bound = "" if s.bound < 0 else f"/{s.bound}"
        return f"value={s.value}{bound}"


# -- Event -------------------------------------------------------------------------------------


class EventState(ctypes.Structure):
    _fields_ = (
        ("flag", ctypes.c_int32),
        ("_reserved", ctypes.c_int32),
        ("generation", ctypes.c_uint64),  # how many times the flag went from clear to set
    )


class EventCore(_Core):
    """:class:`threading.Event` semantics."""

    __slots__ = ()

    def is_set(self) -> bool:
        """Return whether the flag is set."""
        return bool(self._s.flag)

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        m, s = self._m, self._s
        m.enter()
        try:
            if not s.flag:
                s.flag = 1
                s.generation += 1
            m.wake_all()
        finally:
            m.exit()

    def clear(self) -> None:
        """Clear the flag: later :meth:`wait` calls block until :meth:`set`."""
        m = self._m
        m.enter()
        try:
            self._s.flag = 0
        finally:
            m.exit()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the flag is set, for up to ``timeout`` seconds (``None``: no limit).

        Returns:
            ``True`` if the flag was set (even if it has been cleared again since), ``False`` if
            the timeout expired first.

        Raises:
            TypeError: ``timeout`` is not a number or ``None``.
            ValueError: ``timeout`` is negative or NaN.
        """
        seconds = check_timeout(timeout)
        m, s = self._m, self._s
        m.enter()
        try:
            if s.flag:
                return True
            generation = s.generation
            deadline = deadline_after(seconds)
            while s.generation == generation:
                if _expired(deadline):
                    return False
                self._sleep(deadline)
            return True
        finally:
            m.exit()

    async def wait_async(self, timeout: float | None = None) -> bool:
        """Await :meth:`wait`: until the flag is set, for up to ``timeout`` seconds.

        (Named ``wait_async``: an ``a`` prefix, the rule for the other awaitable calls, would
        make ``await``.) Results and errors as :meth:`wait`.
        """
        seconds = check_timeout(timeout)
        m, s = self._m, self._s
        m.enter()
        try:
            if s.flag:
                return True
            generation = s.generation
            deadline = deadline_after(seconds)
            while s.generation == generation:
                if _expired(deadline):
                    return False
                await self._asleep(deadline)
            return True
        finally:
            m.exit()

    def statistics(self) -> EventStatistics:
        """Return a snapshot of the flag and the number of waiters."""
        m = self._m
        m.enter()
        try:
            return EventStatistics(is_set=bool(self._s.flag), waiters=m.waiters())
        finally:
            m.exit()

    def _describe(self) -> str:
        return "set" if self._s.flag else "unset"


# -- Condition ---------------------------------------------------------------------------------


class ConditionState(ctypes.Structure):
    _fields_ = (("notifications", ctypes.c_uint64),)


class ConditionCore(_Core):
    """:class:`threading.Condition` semantics over a lock of the same model.

    The monitor only queues the waiters; the caller's lock protects the caller's predicate,
    as in :mod:`threading`.
    """

    __slots__ = ("_acquire_restore", "_is_owned", "_lock", "_release_save", "acquire", "release")

    def _bind(self, lock: Any) -> None:
        """Take the lock's methods, and the hooks of a re-entrant lock, as threading does."""
        self._lock = lock
        self.acquire = lock.acquire
        self.release = lock.release
        self._release_save = getattr(lock, "_release_save", self._release_plain)
        self._acquire_restore = getattr(lock, "_acquire_restore", self._acquire_plain)
        self._is_owned = getattr(lock, "_is_owned", self._is_owned_plain)

    def _release_plain(self) -> None:
        self._lock.release()

    def _acquire_plain(self, saved: object) -> None:
        self._lock.acquire()

    def _is_owned_plain(self) -> bool:
        # A lock without ownership: held by someone if a try fails (what threading assumes).
        if self._lock.acquire(False):
            self._lock.release()
            return False
        return True

    def __enter__(self) -> bool:
        return bool(self._lock.__enter__())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.__exit__(exc_type, exc, tb)

    async def __aenter__(self) -> bool:
        return bool(await self._lock.aacquire())

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._lock.__aexit__(exc_type, exc, tb)

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, wait to be notified or for ``timeout`` seconds, take it back.

        A re-entrant lock is released and restored whatever its depth.

        Returns:
            ``True`` if notified, ``False`` if the timeout expired first.

        Raises:
            TypeError: ``timeout`` is not a number or ``None``.
            ValueError: ``timeout`` is negative or NaN (checked first).
            RuntimeError: the calling thread does not hold the lock.
        """
        seconds = check_timeout(timeout)
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        m = self._m
        m.enter()
        try:
            ticket = m.prepare()
        finally:
            m.exit()
        deadline = deadline_after(seconds)
        saved = self._release_save()
        try:
            while not m.sleep(ticket, deadline) and not _expired(deadline):
                pass
        finally:
            self._acquire_restore(saved)
            m.enter()
            try:
                woken = m.finish(ticket)
            finally:
                m.exit()
        return woken

    async def wait_async(self, timeout: float | None = None) -> bool:
        """Await :meth:`wait`: release the lock, await a notification, take the lock back.

        The lock is taken back with an awaiting acquire, also when the task is cancelled
        (the cancellation is delivered once the lock is held again, as in
        :meth:`asyncio.Condition.wait`), so the ``async with`` block that holds it releases
        it as usual. A notification that reached a task cancelled meanwhile goes to the next
        waiter. Results and errors as :meth:`wait`.
        """
        from concurrency_kit._core import aio

        seconds = check_timeout(timeout)
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        m = self._m
        waker = aio.make_waker()
        m.enter()
        try:
            ticket = m.prepare_async(0, waker)
        finally:
            m.exit()
        deadline = deadline_after(seconds)
        saved = self._release_save()
        cancelled = True
        try:
            while True:
                await waker.wait(_await_slice(m, deadline))
                waker.rearm()  # before looking, so that a wake-up from now on is not missed
                if m.signalled(ticket) or _expired(deadline):
                    break
            cancelled = False
        finally:
            waker.close()
            # Leave the queue first (it needs no lock): however the lock is retaken below,
            # and a cancellation may come again meanwhile, the waiter is gone from the queue.
            m.enter()
            try:
                woken = m.finish(ticket)
                if woken and cancelled:
                    m.wake(1)  # a notification this task cannot use goes to the next waiter
            finally:
                m.exit()
            await aio.uncancelled(lambda: self._aacquire_restore(saved))
        return woken

    async def _aacquire_restore(self, saved: object) -> None:
        """Take the lock back after :meth:`wait_async`, every level of a re-entrant one."""
        await self._lock.aacquire()
        if isinstance(saved, int):  # a re-entrant lock's depth (``_release_save``)
            for _ in range(saved - 1):
                self._lock.acquire(False)  # re-entry by the holder: cannot fail

    async def wait_for_async(self, predicate: Callable[[], T], timeout: float | None = None) -> T:
        """Await :meth:`wait_for`: until ``predicate()`` is true, for up to ``timeout``.

        Results and errors as :meth:`wait_for`.
        """
        deadline = deadline_after(check_timeout(timeout))
        first = True
        result = predicate()
        while not result:
            wait = remaining(deadline)
            if wait == 0 and not first:
                break
            first = False
            await self.wait_async(wait)
            result = predicate()
        return result

    def wait_for(self, predicate: Callable[[], T], timeout: float | None = None) -> T:
        """Wait until ``predicate()`` is true, for up to ``timeout`` seconds.

        Returns:
            The last value of ``predicate()``: false-ish only if the timeout expired.

        Raises:
            TypeError: ``timeout`` is not a number or ``None``.
            ValueError: ``timeout`` is negative or NaN (checked first).
            RuntimeError: the calling thread does not hold the lock.
        """
        # As threading: the first wait happens whatever the timeout, so a caller that does
        # not hold the lock is told so even with no time left to wait.
        deadline = deadline_after(check_timeout(timeout))
        first = True
        result = predicate()
        while not result:
            wait = remaining(deadline)
            if wait == 0 and not first:
                break
            first = False
            self.wait(wait)
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` of the threads waiting on the condition, longest-waiting first.

        Raises:
            RuntimeError: the calling thread does not hold the lock.
        """
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        m = self._m
        m.enter()
        try:
            self._s.notifications += m.wake(n)
        finally:
            m.exit()

    def notify_all(self) -> None:
        """Wake every thread waiting on the condition.

        Raises:
            RuntimeError: the calling thread does not hold the lock.
        """
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        m = self._m
        m.enter()
        try:
            m.wake_all()
        finally:
            m.exit()

    def _waiters(self) -> int:
        m = self._m
        m.enter()
        try:
            return m.waiters()
        finally:
            m.exit()


# -- Barrier -----------------------------------------------------------------------------------

_FILLING = 0
_DRAINING = 1
_ACTING = 2  # the last party runs the action outside the monitor
_RESETTING = -1
_BROKEN = -2

_PARTIES = 0  # queue of the parties of the current generation
_ARRIVING = 1  # queue of callers waiting for the previous generation to drain


class BarrierState(ctypes.Structure):
    _fields_ = (
        ("parties", ctypes.c_int64),
        ("count", ctypes.c_int64),
        ("state", ctypes.c_int32),
        ("actor_pid", ctypes.c_int32),
        ("actor_tid", ctypes.c_int32),
        ("recoveries", ctypes.c_uint32),  # process model: the monitor's mutex recoveries seen
        ("timeout", ctypes.c_double),  # the default timeout; negative: none
        ("passes", ctypes.c_uint64),
    )


class BarrierCore(_Core):
    """:class:`threading.Barrier` semantics; the action runs outside the monitor.

    A generation: parties *arrive* (``count += 1``, inside the monitor) and sleep on the
    ``_PARTIES`` queue while the state is FILLING; the last to arrive *opens* the barrier
    (ACTING while it runs the action, then DRAINING, which wakes them all); the state goes
    back to FILLING once every party of the generation has left (``count == 0``). Callers
    that come while a generation drains (or is being reset) wait on ``_ARRIVING``, uncounted.

    The opening is the one decision point for dead parties (process model, ``_repair``): a
    counted party found dead *before* the barrier opens breaks it (the last party checks
    every counted party just before opening, and again after the action); one found dead
    after it opened has passed, and is only taken off the count.
    """

    __slots__ = ("_action",)
    _action: Callable[[], object] | None

    @staticmethod
    def _initial_state(parties: int, timeout: float | None) -> BarrierState:
        if not isinstance(parties, int) or isinstance(parties, bool):
            raise TypeError(f"parties must be an int, got {parties!r}")
        if parties < 1:
            raise ValueError("parties must be >= 1")
        seconds = check_timeout(timeout)
        return BarrierState(parties=parties, timeout=-1.0 if seconds is None else seconds)

    @property
    def parties(self) -> int:
        """The number of parties that must call :meth:`wait` for the barrier to open."""
        return int(self._s.parties)

    @property
    def n_waiting(self) -> int:
        """The number of parties waiting now."""
        s = self._s
        return int(s.count) if s.state == _FILLING else 0

    @property
    def broken(self) -> bool:
        """Whether the barrier is broken."""
        return bool(self._s.state == _BROKEN)

    def wait(self, timeout: float | None = None) -> int:
        """Wait until every party has called ``wait``; then all return together.

        Args:
            timeout: the most seconds to wait; ``None`` uses the barrier's own timeout
                (``math.inf``: no limit, whatever the barrier's own timeout).

        Returns:
            An index from 0 to ``parties - 1``, different for each party of one opening.

        Raises:
            TypeError: ``timeout`` is not a number or ``None``.
            ValueError: ``timeout`` is negative or NaN (checked before arriving).
            BrokenBarrierError: the barrier was broken, aborted or reset while waiting, the
                timeout expired (which breaks it for every party), the action raised, or
                (processes) a party died before the barrier opened.
        """
        s = self._s
        deadline = self._deadline(timeout)
        m = self._m
        m.enter()
        try:
            while s.state in (_DRAINING, _RESETTING, _ACTING):
                self._sleep(None, _ARRIVING)
            if s.state < 0:
                raise BrokenBarrierError
            index = int(s.count)
            s.count += 1
            try:
                if index + 1 == s.parties:
                    self._open()
                else:
                    self._wait_open(deadline)
                return index
            finally:
                self._leave()
        finally:
            m.exit()

    async def wait_async(self, timeout: float | None = None) -> int:
        """Await :meth:`wait`: until every party has called it; then all return together.

        A party cancelled before the barrier opens breaks it, as a timeout does: the other
        parties get :exc:`~concurrency_kit.BrokenBarrierError` rather than wait for one that
        has gone. Results and errors as :meth:`wait`.
        """
        s = self._s
        deadline = self._deadline(timeout)
        m = self._m
        m.enter()
        try:
            while s.state in (_DRAINING, _RESETTING, _ACTING):
                await self._asleep(None, _ARRIVING)
            if s.state < 0:
                raise BrokenBarrierError
            index = int(s.count)
            s.count += 1
            try:
                if index + 1 == s.parties:
                    self._open()
                    return index
                while s.state in (_FILLING, _ACTING):
                    if _expired(deadline):
                        self._break()
                        raise BrokenBarrierError
                    try:
                        await self._asleep(deadline, _PARTIES)
                    except BaseException:
                        if s.state in (_FILLING, _ACTING):
                            self._break()
                        raise
                if s.state < 0:
                    raise BrokenBarrierError
                return index
            finally:
                self._leave()
        finally:
            m.exit()

    def _deadline(self, timeout: float | None) -> float | None:
        """The deadline of a wait given ``timeout`` (``None``: the barrier's own timeout)."""
        if timeout is None:
            own = self._s.timeout
            return deadline_after(None if own < 0 else float(own))
        return deadline_after(check_timeout(timeout))

    def _leave(self) -> None:
        """Inside the monitor: a party leaves; the last one of a generation refills."""
        s = self._s
        s.count -= 1
        if s.count == 0 and s.state in (_RESETTING, _DRAINING):
            s.state = _FILLING
            self._m.wake_all(_ARRIVING)

    def _check_before_opening(self) -> None:
        """Inside the monitor, the last party: break the barrier if a counted party is dead.

        The thread model has nothing to check: a thread cannot die without its process.
        """

    def _open(self) -> None:
        """The last party: run the action (outside the monitor), then let everyone go."""
        s, m = self._s, self._m
        self._check_before_opening()
        if s.state != _FILLING:  # a party died: broken (the others are woken)
            raise BrokenBarrierError
        if self._action is not None:
            s.state = _ACTING
            s.actor_pid, s.actor_tid = _whoami()
            m.exit()
            try:
                self._action()
            except BaseException:
                m.enter()
                self._break()
                raise
            m.enter()
            if s.state == _ACTING:
                self._check_before_opening()  # a party that died while the action ran
            if s.state != _ACTING:  # broken meanwhile (abort, a dead party, or presumed dead)
                raise BrokenBarrierError
        s.state = _DRAINING
        s.passes += 1
        m.wake_all(_PARTIES)

    def _wait_open(self, deadline: float | None) -> None:
        s = self._s
        while s.state in (_FILLING, _ACTING):
            if _expired(deadline):
                self._break()
                raise BrokenBarrierError
            self._sleep(deadline, _PARTIES)
        if s.state < 0:
            raise BrokenBarrierError

    def _break(self) -> None:
        self._s.state = _BROKEN
        self._m.wake_all(_PARTIES)
        self._m.wake_all(_ARRIVING)

    def reset(self) -> None:
        """Return the barrier to its initial state; parties waiting now get BrokenBarrierError."""
        s, m = self._s, self._m
        m.enter()
        try:
            if s.count > 0:
                if s.state in (_FILLING, _BROKEN, _ACTING):
                    s.state = _RESETTING
            else:
                s.state = _FILLING
            m.wake_all(_PARTIES)
            m.wake_all(_ARRIVING)
        finally:
            m.exit()

    def abort(self) -> None:
        """Break the barrier: waiting and future calls to :meth:`wait` raise, until reset."""
        m = self._m
        m.enter()
        try:
            self._break()
        finally:
            m.exit()

    def statistics(self) -> BarrierStatistics:
        """Return a snapshot of the barrier."""
        s, m = self._s, self._m
        m.enter()
        try:
            return BarrierStatistics(
                parties=int(s.parties),
                n_waiting=int(s.count) if s.state == _FILLING else 0,
                broken=s.state == _BROKEN,
                passes=int(s.passes),
            )
        finally:
            m.exit()

    def _describe(self) -> str:
        s = self._s
        state = "broken" if s.state == _BROKEN else f"waiters={self.n_waiting}/{s.parties}"
        return state


# -- RWLock ------------------------------------------------------------------------------------

_READERS = 0
_WRITERS = 1


class RWLockState(ctypes.Structure):
    _fields_ = (
        ("writer", ctypes.c_uint64),  # the writer's identity (see _whoami), 0: none
        ("readers", ctypes.c_int64),  # holders of the read side
        ("readers_waiting", ctypes.c_int64),
        ("writers_waiting", ctypes.c_int64),
        ("read_acquisitions", ctypes.c_uint64),
        ("write_acquisitions", ctypes.c_uint64),
        ("contentions", ctypes.c_uint64),
        ("owner_deaths", ctypes.c_uint64),
    )


class RWLockCore(_Core):
    """A writer-preferring reader-writer lock with re-entrant reads.

    Rules, checked inside the monitor:

    * a read acquire succeeds at once if the caller already reads (re-entry), or if no
      writer holds the lock *and none waits*; otherwise it waits (writers are preferred);
    * a write acquire succeeds when nobody holds either side;
    * releasing the write side wakes the next writer if one waits, else every reader;
      releasing the last read hold wakes one writer.

    The model provides the per-thread read counts (``_read_count``/``_set_read_count``) and
    the caller's identity (``_me``).
    """

    __slots__ = ()

    def _me(self) -> int:
        raise NotImplementedError

    def _read_count(self, me: int) -> int:
        raise NotImplementedError

    def _set_read_count(self, me: int, count: int) -> None:
        raise NotImplementedError

    def _task_me(self, serial: int) -> int:
        """The identity of the calling thread's task numbered ``serial`` (the model's)."""
        raise NotImplementedError

    def _task_identity(self, task: object, take: bool) -> int | None:
        """The identity of an awaiting ``task``, unlike its thread's: the thread's, with a
        serial number (1 to 1,023) held while the task holds or awaits a reader-writer lock.

        ``take``: one more use of the serial (a hold, or a pending acquire), given back with
        :meth:`_task_release`; without it, ``None`` if the task has no serial now.
        """
        with _serials.lock:
            entry = _serials.of_task.get(task)
            if entry is None:
                if not take:
                    return None
                if not _serials.free:
                    raise RuntimeError(
                        "more than 1023 tasks of one process hold or await reader-writer "
                        "locks at once"
                    )
                entry = _serials.of_task[task] = [_serials.free.pop(), 0]
            if take:
                entry[1] += 1
            serial = entry[0]
        return self._task_me(serial)

    def _task_release(self, task: object) -> None:
        """One use fewer of ``task``'s serial (see :meth:`_task_identity`)."""
        with _serials.lock:
            entry = _serials.of_task.get(task)
            if entry is not None:
                entry[1] -= 1
                if entry[1] <= 0:
                    del _serials.of_task[task]
                    _serials.free.append(entry[0])

    def _releaser(self, holds: Callable[[int], bool]) -> tuple[int, object | None]:
        """Who releases: the calling task, if it acquired through the async face and
        ``holds(its identity)``; else the calling thread. Returns (identity, task or None)."""
        if _tasks_hold_rwlocks:
            task = _running_task()
            if task is not None:
                me = self._task_identity(task, take=False)
                if me is not None and holds(me):
                    return me, task
        return self._me(), None

    def _warn_recovered(self, release: Callable[[], None] | None) -> None:
        """Warn that holders were reclaimed during this call (outside the monitor).

        If the warning is turned into an error, the side just acquired is released first
        (``release``), so a caller that sees an exception does not hold the lock.
        """
        try:
            warnings.warn(
                LockOwnerDiedWarning(
                    f"{type(self).__qualname__}: a holder died or exited holding it and was "
                    "reclaimed; the data it protects may be half-updated"
                ),
                stacklevel=3,
            )
        except BaseException:
            if release is not None:
                release()
            raise

    def acquire_read(self, blocking: bool = True, timeout: float | None = -1) -> bool:
        """Acquire the read side, shared with other readers.

        A thread that already holds the read side acquires it again at once (release it as
        many times). Arguments and results as :meth:`threading.Lock.acquire`.

        Raises:
            RuntimeError: the calling thread holds the write side.
        """
        wait = check_acquire_args(blocking, timeout)
        me = self._me()
        m, s = self._m, self._s
        deaths = s.owner_deaths
        m.enter()
        try:
            if s.writer == me:
                raise RuntimeError("cannot acquire the read side: this thread holds the write side")
            count = self._read_count(me)
            if count or (not s.writer and not s.writers_waiting):
                acquired = self._add_reader(me, count)
            else:
                s.contentions += 1
                # Even without waiting (wait == 0), this first reclaims dead holders, as a
                # ProcessLock's try-acquire takes over a dead owner's lock.
                acquired = self._wait_for_read(deadline_after(wait))
                if acquired:
                    self._add_reader(me, 0)
        finally:
            m.exit()
        if s.owner_deaths != deaths:
            self._warn_recovered(self.release_read if acquired else None)
        return acquired

    def _add_reader(self, me: int, count: int) -> bool:
        s = self._s
        self._set_read_count(me, count + 1)
        if not count:
            s.readers += 1
        s.read_acquisitions += 1
        return True

    def _wait_for_read(self, deadline: float | None) -> bool:
        s = self._s
        s.readers_waiting += 1
        try:
            self._repair()
            while s.writer or s.writers_waiting:
                if _expired(deadline):
                    return False
                self._sleep(deadline, _READERS)
            return True
        finally:
            s.readers_waiting -= 1

    def release_read(self) -> None:
        """Release one read hold of the calling thread.

        Raises:
            RuntimeError: the calling thread does not hold the read side.
        """
        me, task = self._releaser(lambda me: self._read_count(me) > 0)
        m, s = self._m, self._s
        m.enter()
        try:
            count = self._read_count(me)
            if not count:
                raise RuntimeError("cannot release a read lock this thread does not hold")
            self._set_read_count(me, count - 1)
            if count == 1:
                s.readers -= 1
                if not s.readers:
                    m.wake(1, _WRITERS)
                    if m.has_dead():  # dead writers must not hold readers back
                        self._repair()
        finally:
            m.exit()
        if task is not None:
            self._task_release(task)

    def acquire_write(self, blocking: bool = True, timeout: float | None = -1) -> bool:
        """Acquire the write side, exclusive of every reader and writer.

        Arguments and results as :meth:`threading.Lock.acquire`.

        Raises:
            RuntimeError: the calling thread already holds the write side, or holds the read
                side (an upgrade would wait for itself for ever).
        """
        wait = check_acquire_args(blocking, timeout)
        me = self._me()
        m, s = self._m, self._s
        deaths = s.owner_deaths
        m.enter()
        try:
            if s.writer == me:
                raise RuntimeError("the write side is not re-entrant: this thread holds it")
            if self._read_count(me):
                raise RuntimeError(
                    "cannot acquire the write side while holding the read side (it would "
                    "deadlock): release the read side first"
                )
            acquired = True
            if s.writer or s.readers:
                s.contentions += 1
                acquired = self._wait_for_write(deadline_after(wait))  # reclaims, as above
            if acquired:
                s.writer = me
                s.write_acquisitions += 1
        finally:
            m.exit()
        if s.owner_deaths != deaths:
            self._warn_recovered(self.release_write if acquired else None)
        return acquired

    def _wait_for_write(self, deadline: float | None) -> bool:
        s = self._s
        s.writers_waiting += 1
        acquired = False
        try:
            self._repair()
            while s.writer or s.readers:
                if _expired(deadline):
                    return False
                self._sleep(deadline, _WRITERS)
            acquired = True
            return True
        finally:
            s.writers_waiting -= 1
            if not acquired and not s.writers_waiting and not s.writer:
                # Readers held back only for this writer may go now.
                self._m.wake_all(_READERS)

    def release_write(self) -> None:
        """Release the write side.

        Raises:
            RuntimeError: the calling thread does not hold the write side.
        """
        me, task = self._releaser(lambda me: self._s.writer == me)
        m, s = self._m, self._s
        m.enter()
        try:
            if s.writer != me:
                raise RuntimeError("cannot release a write lock this thread does not hold")
            s.writer = 0
            if not (s.writers_waiting and m.wake(1, _WRITERS)):
                m.wake_all(_READERS)
            if m.has_dead():  # dead waiters must not stay counted as waiting
                self._repair()
        finally:
            m.exit()
        if task is not None:
            self._task_release(task)

    async def aacquire_read(self, timeout: float | None = None) -> bool:
        """Await :meth:`acquire_read`: the read side, awaiting (not blocking) while a writer
        holds the lock or waits for it.

        The holder is the calling *task*, not its thread: the tasks of one event loop are
        readers and writers like threads are (a task re-enters its own read hold; another
        task's write hold makes it wait). Release with :meth:`release_read` from the same
        task, or use :meth:`aread`. A cancelled call holds nothing.

        Args:
            timeout: the most seconds to wait (``None`` or ``math.inf``: for as long as it
                takes; ``0``: do not wait).

        Returns:
            Whether the read side was acquired.

        Raises:
            TypeError: ``timeout`` is not a number or ``None``.
            ValueError: ``timeout`` is negative or NaN.
            RuntimeError: the calling task holds the write side.
        """
        deadline = deadline_after(check_timeout(timeout))
        task, me = self._task_start()
        m, s = self._m, self._s
        deaths = s.owner_deaths
        acquired = False
        try:
            m.enter()
            try:
                if s.writer == me:
                    raise RuntimeError(
                        "cannot acquire the read side: this task holds the write side"
                    )
                count = self._read_count(me)
                if count or (not s.writer and not s.writers_waiting):
                    acquired = self._add_reader(me, count)
                else:
                    s.contentions += 1
                    s.readers_waiting += 1
                    try:
                        self._repair()
                        while s.writer or s.writers_waiting:
                            if _expired(deadline):
                                break
                            await self._asleep(deadline, _READERS)
                        else:
                            acquired = self._add_reader(me, 0)
                    finally:
                        s.readers_waiting -= 1
            finally:
                m.exit()
        finally:
            if not acquired:
                self._task_release(task)
        if s.owner_deaths != deaths:
            self._warn_recovered(self.release_read if acquired else None)
        return acquired

    async def aacquire_write(self, timeout: float | None = None) -> bool:
        """Await :meth:`acquire_write`: the write side, awaiting (not blocking) while anyone
        holds the lock.

        The holder is the calling task (see :meth:`aacquire_read`); release with
        :meth:`release_write` from the same task, or use :meth:`awrite`. A cancelled call
        holds nothing.

        Args:
            timeout: the most seconds to wait (``None`` or ``math.inf``: for as long as it
                takes; ``0``: do not wait).

        Returns:
            Whether the write side was acquired.

        Raises:
            TypeError: ``timeout`` is not a number or ``None``.
            ValueError: ``timeout`` is negative or NaN.
            RuntimeError: the calling task already holds the write side, or holds the read
                side (an upgrade would wait for itself for ever).
        """
        deadline = deadline_after(check_timeout(timeout))
        task, me = self._task_start()
        m, s = self._m, self._s
        deaths = s.owner_deaths
        acquired = False
        try:
            m.enter()
            try:
                if s.writer == me:
                    raise RuntimeError("the write side is not re-entrant: this task holds it")
                if self._read_count(me):
                    raise RuntimeError(
                        "cannot acquire the write side while holding the read side (it would "
                        "deadlock): release the read side first"
                    )
                if s.writer or s.readers:
                    s.contentions += 1
                    s.writers_waiting += 1
                    try:
                        self._repair()
                        while s.writer or s.readers:
                            if _expired(deadline):
                                break
                            await self._asleep(deadline, _WRITERS)
                        else:
                            acquired = True
                    finally:
                        s.writers_waiting -= 1
                        if not acquired and not s.writers_waiting and not s.writer:
                            self._m.wake_all(_READERS)  # readers held back for this writer
                else:
                    acquired = True
                if acquired:
                    s.writer = me
                    s.write_acquisitions += 1
            finally:
                m.exit()
        finally:
            if not acquired:
                self._task_release(task)
        if s.owner_deaths != deaths:
            self._warn_recovered(self.release_write if acquired else None)
        return acquired

    def _task_start(self) -> tuple[object, int]:
        """The calling task and its identity, taken for one use (see :meth:`_task_identity`)."""
        from concurrency_kit._core import aio  # at the first await: asyncio and anyio load late

        global _tasks_hold_rwlocks
        _tasks_hold_rwlocks = True
        task = aio.current_task()
        me = self._task_identity(task, take=True)
        assert me is not None
        return task, me

    def aread(self, timeout: float | None = None) -> contextlib.AbstractAsyncContextManager[None]:
        """:meth:`read` for ``async with``: the calling task holds the read side for the block.

        Raises:
            TypeError: ``timeout`` is not a number or ``None`` (at the call).
            ValueError: ``timeout`` is negative or NaN (at the call).
            LockTimeoutError: the read side was not acquired within ``timeout`` seconds.
            RuntimeError: as :meth:`aacquire_read`.
        """
        seconds = check_timeout(timeout)
        return self._aheld("read", self.aacquire_read, self.release_read, seconds)

    def awrite(self, timeout: float | None = None) -> contextlib.AbstractAsyncContextManager[None]:
        """:meth:`write` for ``async with``: the calling task holds the write side for the block.

        Raises:
            TypeError: ``timeout`` is not a number or ``None`` (at the call).
            ValueError: ``timeout`` is negative or NaN (at the call).
            LockTimeoutError: the write side was not acquired within ``timeout`` seconds.
            RuntimeError: as :meth:`aacquire_write`.
        """
        seconds = check_timeout(timeout)
        return self._aheld("write", self.aacquire_write, self.release_write, seconds)

    @staticmethod
    @contextlib.asynccontextmanager
    async def _aheld(
        side: str,
        acquire: Callable[[float | None], Awaitable[bool]],
        release: Callable[[], None],
        timeout: float | None,
    ) -> AsyncIterator[None]:
        if not await acquire(timeout):
            raise LockTimeoutError(f"the {side} side was not acquired within {timeout} seconds")
        try:
            yield
        finally:
            release()

    def read(self, timeout: float | None = None) -> contextlib.AbstractContextManager[None]:
        """A context manager holding the read side for the ``with`` block.

        Args:
            timeout: the most seconds to wait (``None`` or ``math.inf``: no limit).

        Raises:
            TypeError: ``timeout`` is not a number or ``None`` (at the call).
            ValueError: ``timeout`` is negative or NaN (at the call).
            LockTimeoutError: the read side was not acquired within ``timeout`` seconds.
            RuntimeError: as :meth:`acquire_read`.
        """
        seconds = check_timeout(timeout)
        return self._held("read", self.acquire_read, self.release_read, seconds)

    def write(self, timeout: float | None = None) -> contextlib.AbstractContextManager[None]:
        """A context manager holding the write side for the ``with`` block.

        Args:
            timeout: the most seconds to wait (``None`` or ``math.inf``: no limit).

        Raises:
            TypeError: ``timeout`` is not a number or ``None`` (at the call).
            ValueError: ``timeout`` is negative or NaN (at the call).
            LockTimeoutError: the write side was not acquired within ``timeout`` seconds.
            RuntimeError: as :meth:`acquire_write`.
        """
        seconds = check_timeout(timeout)
        return self._held("write", self.acquire_write, self.release_write, seconds)

    @staticmethod
    @contextlib.contextmanager
    def _held(
        side: str,
        acquire: Callable[[bool, float | None], bool],
        release: Callable[[], None],
        timeout: float | None,
    ) -> Iterator[None]:
        if not acquire(True, timeout):  # checked already; None waits for as long as it takes
            raise LockTimeoutError(f"the {side} side was not acquired within {timeout} seconds")
        try:
            yield
        finally:
            release()

    def _writer_thread(self, writer: int) -> tuple[int | None, int | None]:
        """(pid, native thread id) of the writer identity ``writer``."""
        raise NotImplementedError

    def statistics(self) -> RWLockStatistics:
        """Return a snapshot of the lock's state and counters."""
        m, s = self._m, self._s
        m.enter()
        try:
            writer_pid, writer_thread = (
                self._writer_thread(int(s.writer)) if s.writer else (None, None)
            )
            return RWLockStatistics(
                readers=int(s.readers),
                writer_pid=writer_pid,
                writer_thread=writer_thread,
                readers_waiting=int(s.readers_waiting),
                writers_waiting=int(s.writers_waiting),
                read_acquisitions=int(s.read_acquisitions),
                write_acquisitions=int(s.write_acquisitions),
                contentions=int(s.contentions),
                owner_deaths_recovered=int(s.owner_deaths),
            )
        finally:
            m.exit()

    def _describe(self) -> str:
        s = self._s
        if s.writer:
            return "write-locked"
        return f"readers={s.readers}" if s.readers else "unlocked"


# -- Guarded -----------------------------------------------------------------------------------


class GuardedState(ctypes.Structure):
    _fields_ = (
        ("poisoned", ctypes.c_int32),
        ("in_block", ctypes.c_int32),  # a lock() block is running (its holder may have died)
        ("size", ctypes.c_uint64),  # process model: bytes of the pickled value that follow
    )


class GuardedBlock:
    """The block in progress on a guarded value, in one process: how deep, and its value.

    One per value and process, shared by all of that process's handles of the value, so that
    a second handle used by the holder inside a block re-enters the same block. Only the
    thread holding the value's lock reads or writes it.
    """

    __slots__ = ("__weakref__", "depth", "value")

    def __init__(self) -> None:
        self.depth = 0
        self.value: Any = None


class GuardedCore(Generic[T]):
    """A value owned by a re-entrant lock, poisoned when a block holding it fails.

    The model provides ``_lock`` (its re-entrant lock), ``_flags`` (a :class:`GuardedState`,
    shared by every process in the process model), ``_block`` (a :class:`GuardedBlock`,
    shared by every handle of the value in one process) and the value's storage: ``_load()``
    and ``_store(value)``. While a block runs, its holder keeps the value it works on in the
    block record (written by the holder only, while holding the lock); it is stored when the
    outermost block ends, so a process killed inside a block leaves the last committed value.
    """

    __slots__ = ("__weakref__", "_block", "_flags", "_lock")
    _lock: Any
    _flags: Any
    _block: GuardedBlock

    def _load(self) -> T:
        raise NotImplementedError

    def _store(self, value: T) -> None:
        raise NotImplementedError

    def _enter(self, timeout: float | None, ignore_poison: bool = False) -> T:
        # ``timeout`` passed check_timeout already; None waits for as long as it takes.
        if not self._lock.acquire(True, timeout):
            raise LockTimeoutError(f"the guarded value was not locked within {timeout} seconds")
        return self._begin(ignore_poison)

    async def _aenter(self, timeout: float | None, ignore_poison: bool = False) -> T:
        if not await self._lock.aacquire(timeout):
            raise LockTimeoutError(f"the guarded value was not locked within {timeout} seconds")
        return self._begin(ignore_poison)

    def _begin(self, ignore_poison: bool = False) -> T:
        """With the lock just acquired: enter a block (or re-enter the holder's)."""
        try:
            if self._block.depth == 0:
                flags = self._flags
                if flags.in_block:  # its previous holder died inside a block
                    flags.in_block = 0
                    flags.poisoned = 1
                if flags.poisoned and not ignore_poison:
                    raise PoisonedError(
                        f"{type(self).__qualname__} is poisoned: a block holding it raised or "
                        "died; check the value (the error's .value) and call clear_poison()",
                        self._load(),
                    )
                self._block.value = self._load()
                flags.in_block = 1
            self._block.depth += 1
            return self._block.value  # type: ignore[no-any-return]
        except BaseException:
            self._lock.release()
            raise

    def _exit(self, failed: bool) -> None:
        try:
            if failed:
                self._flags.poisoned = 1
            self._block.depth -= 1
            if self._block.depth == 0:
                value = self._block.value
                self._block.value = None
                try:
                    self._store(value)
                finally:
                    self._flags.in_block = 0
        finally:
            self._lock.release()

    def lock(
        self, timeout: float | None = None, *, ignore_poison: bool = False
    ) -> contextlib.AbstractContextManager[T]:
        """Hold the lock for a ``with`` block, which gets the value.

        Changes the block makes to a mutable value are kept (stored, for processes) when the
        block ends; :meth:`set` inside the block replaces the value. The holder may lock
        again, and call :meth:`get`, :meth:`set` and :meth:`update`, inside the block.

        If the block raises, the value is kept as the block left it, the guarded value is
        poisoned, and the exception propagates.

        Args:
            timeout: the most seconds to wait for the lock (``None`` or ``math.inf``: for as
                long as it takes).
            ignore_poison: enter even if the value is poisoned, to repair it under the lock;
                call :meth:`clear_poison` inside the block once it is sound (Rust's
                ``PoisonError::into_inner``).

        Raises:
            TypeError: ``timeout`` is not a number or ``None`` (at the call).
            ValueError: ``timeout`` is negative or NaN (at the call).
            PoisonedError: the value is poisoned (see :meth:`clear_poison`).
            LockTimeoutError: the lock was not acquired within ``timeout`` seconds.
        """
        return self._locked(check_timeout(timeout), ignore_poison)

    @contextlib.contextmanager
    def _locked(self, timeout: float | None, ignore_poison: bool) -> Iterator[T]:
        value = self._enter(timeout, ignore_poison)
        try:
            yield value
        except BaseException:
            self._exit(failed=True)
            raise
        self._exit(failed=False)

    def alock(
        self, timeout: float | None = None, *, ignore_poison: bool = False
    ) -> contextlib.AbstractAsyncContextManager[T]:
        """:meth:`lock` for ``async with``: the calling task holds the value for the block.

        The lock is taken with an awaiting acquire (see
        :meth:`~concurrency_kit.ThreadRLock.aacquire`): the task, not its thread, holds it,
        so the other tasks of its event loop wait. A block that is cancelled ends by an
        exception like any other, so it poisons the value: it may have stopped half-way.
        Arguments and errors as :meth:`lock`.
        """
        return self._alocked(check_timeout(timeout), ignore_poison)

    @contextlib.asynccontextmanager
    async def _alocked(self, timeout: float | None, ignore_poison: bool) -> AsyncIterator[T]:
        value = await self._aenter(timeout, ignore_poison)
        try:
            yield value
        except BaseException:
            self._exit(failed=True)
            raise
        self._exit(failed=False)

    async def aget(self) -> T:
        """Await :meth:`get`: the value, once the lock is free (inside the task's own block:
        the block's value).

        Raises:
            PoisonedError: the value is poisoned.
        """
        if self._in_task_block():
            return self._block.value  # type: ignore[no-any-return]
        await self._aenter(None)
        try:
            return self._block.value  # type: ignore[no-any-return]
        finally:
            self._exit(failed=False)

    async def aset(self, value: T) -> None:
        """Await :meth:`set`: replace the value once the lock is free (inside the task's own
        block: the value the block will store).

        Raises:
            PoisonedError: the value is poisoned.
        """
        if self._in_task_block():
            self._block.value = value
            return
        await self._aenter(None)
        try:
            self._block.value = value
        finally:
            self._exit(failed=False)

    async def aupdate(self, fn: Callable[[T], T]) -> T:
        """Await :meth:`update`: replace the value with ``fn(value)`` atomically, once the
        lock is free, and return the new value.

        Raises:
            PoisonedError: the value is poisoned (also afterwards, if ``fn`` raises).
        """
        async with self.alock() as value:
            new = fn(value)
            self._block.value = new
        return new

    def _in_task_block(self) -> bool:
        """Whether the calling task is inside a block it holds (its lock's task owner)."""
        return self._in_block() and self._lock._open().async_owner is _running_task()

    def _in_block(self) -> bool:
        return bool(self._block.depth) and bool(self._lock._is_owned())

    def get(self) -> T:
        """Return the value (inside a block: the block's value).

        Raises:
            PoisonedError: the value is poisoned.
        """
        if self._in_block():
            return self._block.value  # type: ignore[no-any-return]
        self._enter(None)
        try:
            return self._block.value  # type: ignore[no-any-return]
        finally:
            self._exit(failed=False)

    def set(self, value: T) -> None:
        """Replace the value (inside a block: the value the block will store).

        Raises:
            PoisonedError: the value is poisoned.
        """
        if self._in_block():
            self._block.value = value
            return
        self._enter(None)
        try:
            self._block.value = value
        finally:
            self._exit(failed=False)

    def update(self, fn: Callable[[T], T]) -> T:
        """Replace the value with ``fn(value)`` atomically and return the new value.

        Raises:
            PoisonedError: the value is poisoned (also afterwards, if ``fn`` raises).
        """
        with self.lock() as value:
            new = fn(value)
            self._block.value = new
        return new

    def is_poisoned(self) -> bool:
        """Return whether the value is poisoned."""
        return bool(self._flags.poisoned)

    def clear_poison(self) -> None:
        """Mark the value as sound again, after checking or repairing it.

        To repair and clear atomically, do both in one block::

            with guarded.lock(ignore_poison=True) as value:
                repair(value)
                guarded.clear_poison()
        """
        with self._lock:
            self._flags.poisoned = 0
            if not self._block.depth:  # a block's holder that died left it set
                self._flags.in_block = 0

    def statistics(self) -> GuardedStatistics:
        """Return a snapshot: the poison flag and the lock's statistics."""
        return GuardedStatistics(poisoned=bool(self._flags.poisoned), lock=self._lock.statistics())

    def _describe(self) -> str:
        return "poisoned" if self._flags.poisoned else "sound"

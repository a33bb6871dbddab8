"""What every lock of both models is: a robust mutex, a record, and the compiled fast path.

A ``ThreadLock`` and a ``ProcessLock`` are the same machine in two places. Each is a robust
pthread mutex (``_core/mutex.py``) next to a :class:`LockRecord`; the thread lock keeps both in
this process's memory, the process lock in a shared-memory segment (``process.py``)::

    LockHandle (C, _core/_native.c)      acquire() / release() / with: one trylock or unlock,
      │                                  then the holder's bookkeeping in the record
      └─ RobustLockBase (here)           every other case: arguments, a busy mutex, a dead
           ├─ ThreadLock, ThreadRLock    holder, an unlock refused, statistics
           └─ ProcessLock, ProcessRLock

The mutex is ``NORMAL`` for a Lock and ``RECURSIVE`` for an RLock, and robust in both: robust
mutexes refuse an ``unlock`` from a thread that does not hold them (``EPERM``), which is the
owner check of ``release()``, for free; and a holder that ends without releasing (a thread
that returns, a process that is killed) leaves the mutex marked, so the next acquirer takes it
over (``EOWNERDEAD``), counts it and warns, where a :class:`threading.Lock` would stay locked
for ever. A lock whose mutex a thread holds is never freed or unmapped: that thread's robust
list points into it (``LockHandle`` keeps a held lock's memory alive).

The model supplies a :class:`LockPlace`: where the mutex and the record are, how a waiter is
counted while it waits, and how many wait.
"""

from __future__ import annotations

import ctypes
import os
import threading
import warnings
from types import TracebackType
from typing import Any, ClassVar, NoReturn, Protocol

from concurrency_kit._core import atomics, mutex
from concurrency_kit._core._native import LockHandle
from concurrency_kit._core.deadline import check_timeout, deadline_after, remaining
from concurrency_kit._core.mutex import EBUSY, EOWNERDEAD, EPERM, ETIMEDOUT
from concurrency_kit.errors import LockOwnerDiedWarning
from concurrency_kit.sync._base import LockStatistics, check_acquire_args

__all__ = ["LockPlace", "LockRecord", "Reentrant", "RobustLockBase"]


class LockRecord(ctypes.Structure):
    """The counters next to a lock's mutex. ``owner_pid``, ``acquisitions`` and
    ``owner_deaths`` are written by the holder only, while it holds the mutex; ``contentions``
    by any caller that finds the mutex busy, atomically."""

    _fields_ = (
        ("owner_pid", ctypes.c_int32),
        ("frees", ctypes.c_uint32),  # releases that left the mutex free (wraps): see aacquire
        ("acquisitions", ctypes.c_uint64),
        ("owner_deaths", ctypes.c_uint64),
        ("contentions", ctypes.c_uint64),
    )


def field_address(record: LockRecord, name: str) -> int:
    """The address of the record's field ``name`` in this process."""
    offset: int = getattr(LockRecord, name).offset
    return ctypes.addressof(record) + offset


class LockPlace(Protocol):
    """Where a lock lives, as its model provides it."""

    mutex_address: int
    record: LockRecord
    async_owner: object  # the task holding a re-entrant lock, when a task acquired it

    @property
    def memory(self) -> object:
        """What holds the mutex's memory: kept alive while a thread holds the mutex, so it
        must be an object the garbage collector cannot clear."""

    def wait(self, wait: float | None) -> int:
        """Wait for the mutex (``None``: as long as it takes), counted as a waiter meanwhile.

        Returns 0 or ``EOWNERDEAD`` (locked), or ``ETIMEDOUT``.
        """

    def waiters(self) -> int:
        """Callers blocked in ``acquire`` now."""


# This process's id, for the warnings and the holder's record; a forked child updates it.
_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork)


class RobustLockBase(LockHandle):
    """The slow paths and read-only methods of both models' locks (see the module docstring).

    Subclasses set ``_RECURSIVE`` and ``_place`` (a :class:`LockPlace`, or ``None`` once
    closed), bind the fast path with :meth:`_bind_place`, and say how a release that is
    refused is reported (:meth:`_not_held`).
    """

    __slots__ = ()
    _RECURSIVE: ClassVar[bool]
    _place: Any

    def _bind_place(self, place: LockPlace) -> None:
        record = place.record
        self._place = place
        self._bind(
            place.memory,
            place.mutex_address,
            field_address(record, "owner_pid"),
            field_address(record, "acquisitions"),
            field_address(record, "contentions"),
        )

    def _open(self) -> Any:
        place = self._place
        if place is None:
            raise ValueError(f"{type(self).__qualname__} is closed")
        return place

    def _acquire_slow(self, blocking: bool, timeout: object, rc: int | None) -> bool:
        """Acquire after the C fast path did not: ``rc`` is its ``trylock``'s result (its
        contention counted), or ``None`` when it made no try (arguments were given)."""
        wait = check_acquire_args(blocking, timeout)  # before anything else: may raise
        place = self._open()
        address = place.mutex_address
        if rc is None:
            rc = mutex.trylock(address)
            if rc == EBUSY:
                atomics.add(field_address(place.record, "contentions"), 1)
        if rc == EBUSY:
            rc = ETIMEDOUT if wait == 0 else place.wait(wait)
            if rc == ETIMEDOUT:
                return False
        if rc == EOWNERDEAD:
            self._recover(place)
        elif rc:
            raise OSError(rc, f"pthread_mutex_lock: {os.strerror(rc)}")
        else:
            record = place.record
            record.owner_pid = _pid
            record.acquisitions += 1
        if self._place is not place:  # closed by another thread meanwhile
            mutex.unlock(address)
            raise ValueError(f"{type(self).__qualname__} was closed while acquiring it")
        return True

    async def aacquire(self, timeout: float | None = None) -> bool:
        """Await :meth:`acquire`: take the lock, awaiting (not blocking) while it is busy.

        The lock is held by the event loop's thread, as :meth:`acquire` from it would hold
        it, and the tasks of that loop exclude one another: a task that finds the lock held
        by another task (or by the thread's synchronous code) waits. A re-entrant lock is
        re-entered by the task that holds it, not by the others of its thread.

        A busy lock is polled (a robust mutex wakes threads, which no event loop can wait
        on): three bare yields, then sleeps from 1 ms doubling to 2 ms, so a lock freed is
        seen up to 2 ms late. A cancelled call does not hold the lock: the lock is taken
        by a synchronous step, after the last await.

        Args:
            timeout: the most seconds to wait (``None`` or ``math.inf``: for as long as it
                takes; ``0``: do not wait).

        Returns:
            Whether the lock was acquired.

        Raises:
            TypeError: ``timeout`` is not a number or ``None``.
            ValueError: ``timeout`` is negative or NaN, or the handle is closed.
        """
        seconds = check_timeout(timeout)
        place = self._open()
        address = place.mutex_address
        if not mutex.holder(address) and self.acquire(False):  # free: the C fast path takes it
            if self._RECURSIVE:
                self._own(place)
            return True
        from concurrency_kit._core import aio  # at the first wait: asyncio and anyio load late

        deadline = deadline_after(seconds)
        me = threading.get_native_id()
        task = aio.current_task()
        backoff: aio.Backoff | None = None
        while True:
            holder = mutex.holder(address)
            if holder != me:
                rc = EBUSY if holder else mutex.trylock(address)
                if rc != EBUSY:
                    self._acquire_slow(False, -1, rc)
                    if self._RECURSIVE:
                        self._own(place, task)
                    return True
            elif self._RECURSIVE and place.async_owner == (task, place.record.frees):
                return bool(self.acquire(False))  # re-entry by the holder: cannot fail
            if backoff is None:  # found busy: a contention, as acquire() counts one
                atomics.add(field_address(place.record, "contentions"), 1)
                backoff = aio.Backoff()
            left = remaining(deadline)
            if left == 0:
                return False
            await backoff.pause(left)

    @staticmethod
    def _own(place: LockPlace, task: object = None) -> None:
        """Record the calling task (``None``: look it up) as the holder of a re-entrant lock
        it has just taken: until the lock is next freed (the record counts frees), so that a
        later holder in this thread (the thread's own code) is not taken for this task."""
        if task is None:
            from concurrency_kit._core import aio

            task = aio.current_task()
        place.async_owner = (task, place.record.frees)

    async def __aenter__(self) -> bool:
        return await self.aacquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def _recover(self, place: LockPlace) -> None:
        """Take over a mutex whose holder died (we hold it, ``EOWNERDEAD``); then warn."""
        record = place.record
        dead_pid = record.owner_pid
        rc = mutex.consistent(place.mutex_address)
        if rc:  # pragma: no cover - only fails if we did not get EOWNERDEAD
            mutex.unlock(place.mutex_address)
            raise OSError(rc, f"pthread_mutex_consistent: {os.strerror(rc)}")
        record.owner_pid = _pid
        record.acquisitions += 1
        record.owner_deaths += 1
        holder = "a thread of this process" if dead_pid == _pid else f"process {dead_pid}"
        try:
            warnings.warn(
                LockOwnerDiedWarning(
                    f"{self._label()}: the previous holder ({holder}) died or exited holding "
                    "it; the caller now holds it. The data it protects may be half-updated."
                ),
                stacklevel=3,  # warn <- _recover <- _acquire_slow <- (C acquire) the caller
            )
        except BaseException:
            # Warnings turned into errors: do not leave the lock held by a caller that sees
            # an exception (a ``with`` block would never release it). The death is recovered.
            mutex.unlock(place.mutex_address)
            raise

    def _label(self) -> str:
        return type(self).__qualname__

    def _release_failed(self, rc: int) -> NoReturn:
        place = self._open()
        if rc != EPERM:  # pragma: no cover - robust mutexes fail an unlock with EPERM only
            raise OSError(rc, f"pthread_mutex_unlock: {os.strerror(rc)}")
        if self._RECURSIVE:
            raise RuntimeError("cannot release un-acquired lock")
        if not mutex.holder(place.mutex_address):
            raise RuntimeError("release unlocked lock")
        raise RuntimeError("cannot release a lock held by another thread or process")

    def locked(self) -> bool:
        """Return whether any thread holds the lock now.

        Raises:
            ValueError: the handle is closed.
        """
        return mutex.holder(self._open().mutex_address) != 0

    def _is_owned(self) -> bool:
        # The hook threading.Condition uses to check that its caller holds the lock.
        return mutex.holder(self._open().mutex_address) == threading.get_native_id()

    def _recursion(self, place: LockPlace) -> int:
        return mutex.count(place.mutex_address) if self._RECURSIVE else 1

    def statistics(self) -> LockStatistics:
        """Return a snapshot of the lock's state and counters.

        Raises:
            ValueError: the handle is closed.
        """
        place = self._open()
        record = place.record
        tid = mutex.holder(place.mutex_address)
        return LockStatistics(
            locked=tid != 0,
            owner_pid=record.owner_pid if tid else None,
            owner_thread=tid or None,
            recursion=self._recursion(place) if tid else 0,
            waiters=place.waiters(),
            acquisitions=record.acquisitions,
            contentions=atomics.load(field_address(record, "contentions"), 8),
            owner_deaths_recovered=record.owner_deaths,
        )

    def _describe(self) -> str:
        place = self._open()
        tid = mutex.holder(place.mutex_address)
        if not tid:
            return "unlocked"
        text = f"locked owner={place.record.owner_pid}/{tid}"
        return f"{text} count={self._recursion(place)}" if self._RECURSIVE else text


class Reentrant:
    """The hooks :class:`threading.Condition` uses with a re-entrant lock (mixed into the
    RLocks only: over a plain lock, a condition calls ``release`` and ``acquire``)."""

    __slots__ = ()

    # wait() drops every level of recursion and restores them all once it has the lock again.
    def _release_save(self: Any) -> int:
        place = self._open()
        if mutex.holder(place.mutex_address) != threading.get_native_id():
            raise RuntimeError("cannot release un-acquired lock")
        count: int = self._recursion(place)
        place.record.frees += 1  # freed below (counted while held: no release runs meanwhile)
        for _ in range(count):
            mutex.unlock(place.mutex_address)
        return count

    def _acquire_restore(self: Any, count: int) -> None:
        self.acquire()
        place = self._open()
        for _ in range(count - 1):
            mutex.trylock(place.mutex_address)  # re-entry by the holder: cannot fail

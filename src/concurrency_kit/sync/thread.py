"""The thread column of the synchronization row.

The locks are built here; every other primitive is its algorithm from ``_algorithms.py`` on a
:class:`~concurrency_kit._core.monitor.ThreadMonitor`, with its state in private memory.

One lock is a one-token queue plus bookkeeping::

    ThreadLock / ThreadRLock
      _token         SimpleQueue    holds one token while the lock is free; acquiring takes
                                    it, releasing puts it back; the only thing threads block on
      _owner         thread ident   ┐ written only by the thread holding the token, while it
      _count         recursion      │ holds it: set right after taking the token, cleared right
      _acquisitions  counter        ┘ before putting it back (single writer: no second lock)
      _meta          _thread.lock   ┐ guards the counters of threads that do *not* hold the
      _waiters       counter        │ token: taken on the slow path only (the lock was busy, or
      _contentions   counter        ┘ a timeout was given), never on the uncontended path

Why a :class:`queue.SimpleQueue` and not a ``_thread.lock``: both are C, thread-safe with or
without the GIL, and block with the GIL released (interruptibly, with a monotonic deadline).
But a non-blocking try, which the uncontended path needs in order to count contention, is
``lock.acquire(False)`` on a lock, whose arguments go through the generic argument parser,
while ``SimpleQueue.get_nowait()`` takes none. On CPython 3.11 that is the difference between
about 3.4x and 2.8x the cost of a bare :class:`threading.Lock` acquire/release pair
(``benchmarks/bench_sync.py``; the target is 3x).

No GIL reliance: every mutation of shared state happens while holding the token (the holder's
fields) or ``_meta`` (the waiters' counters). Two reads happen without either, each justified by
the single-writer rule: the ownership test ``_owner == me`` (only thread ``me`` ever stores
``me`` there, and it clears it before it gives the token back, so a thread sees its own id only
while it holds the lock) and :meth:`statistics`, which reads the holder's fields as they are at
that moment (a snapshot taken while other threads use the lock may mix values from just before
and just after their latest acquire).

Owners are identified by :func:`threading.get_ident` (a few nanoseconds; the native id is a
system call); :meth:`statistics` translates it to the :func:`threading.get_native_id` it
reports. Like every thread-id-based lock (CPython's own ``RLock``), a lock left held by a thread
that has exited could be released by a later thread that receives the same id.
"""

from __future__ import annotations

import os
import threading
from _queue import Empty, SimpleQueue
from _thread import allocate_lock
from collections.abc import Callable
from threading import get_ident, get_native_id
from time import monotonic
from types import TracebackType
from typing import Any, ClassVar, NoReturn, TypeVar

from typing_extensions import Self

from concurrency_kit._core.deadline import deadline_after, remaining, wait_slice
from concurrency_kit._core.handles import ThreadHandle
from concurrency_kit._core.monitor import ThreadMonitor
from concurrency_kit.sync._algorithms import (
    BarrierCore,
    ConditionCore,
    ConditionState,
    EventCore,
    EventState,
    GuardedBlock,
    GuardedCore,
    GuardedState,
    RWLockCore,
    RWLockState,
    SemaphoreCore,
)
from concurrency_kit.sync._base import ConditionStatistics, LockStatistics, check_acquire_args
from concurrency_kit.sync._lockorder import checked_class, lock_order_checking_enabled

__all__ = [
    "ThreadBarrier",
    "ThreadBoundedSemaphore",
    "ThreadCondition",
    "ThreadEvent",
    "ThreadGuarded",
    "ThreadLock",
    "ThreadRLock",
    "ThreadRWLock",
    "ThreadSemaphore",
]

T = TypeVar("T")


class _ThreadLockBase:
    """What both thread locks share: the fields, the slow path and the read-only methods."""

    __slots__ = (
        "__weakref__",
        "_acquisitions",
        "_contentions",
        "_count",
        "_meta",
        "_owner",
        "_token",
        "_waiters",
    )

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        # A lock created while the lock-order checker is on is checked for its whole life
        # (_lockorder.py); one created while it is off pays nothing for it.
        if lock_order_checking_enabled():
            cls = checked_class(cls)
        return object.__new__(cls)

    def __init__(self) -> None:
        self._token: SimpleQueue[None] = SimpleQueue()
        self._token.put(None)
        self._meta = allocate_lock()
        self._owner: int | None = None
        self._count = 0
        self._acquisitions = 0
        self._waiters = 0
        self._contentions = 0

    def _take_slow(self, blocking: bool, timeout: object) -> bool:
        """Take the token after checking the arguments, counting contention and waiters.

        Returns whether the token was taken; the caller records ownership. The wait is made of
        bounded slices (:func:`~concurrency_kit._core.deadline.wait_slice`), so no timeout, however
        large, reaches ``SimpleQueue.get`` (which refuses one above :data:`threading.TIMEOUT_MAX`).
        """
        wait = check_acquire_args(blocking, timeout)
        try:
            self._token.get_nowait()
        except Empty:
            pass
        else:
            return True
        with self._meta:
            self._contentions += 1
            if wait == 0:
                return False
            self._waiters += 1
        try:
            deadline = deadline_after(wait)
            while True:
                try:
                    self._token.get(True, wait_slice(remaining(deadline)))
                except Empty:
                    if deadline is not None and monotonic() >= deadline:
                        return False
                else:
                    return True
        finally:
            with self._meta:
                self._waiters -= 1

    def close(self) -> None:
        """Do nothing: a thread lock holds no resource beyond its memory.

        It exists so that code written against a :class:`~concurrency_kit.Model` can close
        its locks whichever the model (a process lock releases its shared memory).
        """

    def locked(self) -> bool:
        """Return whether any thread holds the lock now."""
        return self._token.empty()

    def _is_owned(self) -> bool:
        # The hook threading.Condition uses to check that its caller holds the lock.
        return self._owner == get_ident()

    def statistics(self) -> LockStatistics:
        """Return a snapshot of the lock's state and counters.

        ``owner_deaths_recovered`` is always 0: a thread cannot die without its process (an
        exception unwinds through ``with`` and releases the lock), so there is nothing to
        recover.
        """
        owner = self._owner
        count = self._count
        acquisitions = self._acquisitions
        with self._meta:
            waiters = self._waiters
            contentions = self._contentions
        return LockStatistics(
            locked=self._token.empty(),
            owner_pid=None if owner is None else os.getpid(),
            owner_thread=None if owner is None else _native_id_of(owner),
            recursion=0 if owner is None else count,
            waiters=waiters,
            acquisitions=acquisitions,
            contentions=contentions,
            owner_deaths_recovered=0,
        )

    def _describe(self) -> str:
        owner = self._owner
        if owner is None:
            return "locked" if self._token.empty() else "unlocked"
        return f"locked owner={_native_id_of(owner)}"

    def __repr__(self) -> str:
        cls = type(self)
        return f"<{cls.__module__}.{cls.__qualname__} {self._describe()} at {id(self):#x}>"

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            f"cannot pickle {type(self).__qualname__!r} object: a thread lock works within "
            "one process; use a process lock to share a lock between processes"
        )


def _native_id_of(ident: int) -> int | None:
    """The native id of the live thread whose :func:`threading.get_ident` is ``ident``.

    ``None`` for a thread the :mod:`threading` module has never seen (one started from C that
    has not called into :mod:`threading`).
    """
    if ident == get_ident():
        return get_native_id()
    for thread in threading.enumerate():
        if thread.ident == ident:
            return thread.native_id
    return None


class ThreadLock(_ThreadLockBase):
    """A mutual-exclusion lock for threads: :class:`threading.Lock` with an owner.

    Same methods, signatures and results as :class:`threading.Lock`, with one deliberate
    difference: only the thread that acquired the lock may release it. Releasing a lock that
    the calling thread does not hold raises :exc:`RuntimeError`, where :class:`threading.Lock`
    lets any thread release it. The lock is not re-entrant: a second ``acquire()`` by its holder
    waits (for ever, without a timeout), as with :class:`threading.Lock`; use
    :class:`ThreadRLock` for a lock its holder may take again.

    Example::

        lock = ThreadLock()
        with lock:
            ...  # one thread at a time
    """

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__()
        self._count = 1  # the recursion statistics() reports while the lock is held

    def acquire(self, blocking: bool = True, timeout: float | None = -1) -> bool:
        """Acquire the lock, waiting for it if ``blocking`` and for up to ``timeout`` seconds.

        Args:
            blocking: wait for the lock (``True``) or return at once (``False``).
            timeout: the most seconds to wait; ``-1`` (or ``None``, or ``math.inf``) waits for
                as long as it takes. Only with ``blocking=True``.

        Returns:
            Whether the lock was acquired.

        Raises:
            TypeError: ``timeout`` is not a number.
            ValueError: a timeout with ``blocking=False``, NaN, or a negative timeout other
                than -1 (checked before anything changes).
        """
        if timeout == -1:  # the hot path: the stdlib's default arguments, the lock free
            try:
                self._token.get_nowait()
            except Empty:
                pass
            else:
                self._owner = get_ident()
                self._acquisitions += 1
                return True
        if self._take_slow(blocking, timeout):
            self._owner = get_ident()
            self._acquisitions += 1
            return True
        return False

    def release(self) -> None:
        """Release the lock, which the calling thread must hold.

        Raises:
            RuntimeError: the lock is not held, or is held by another thread.
        """
        if self._owner != get_ident():
            self._raise_not_owner()
        self._owner = None
        self._token.put(None)

    def _raise_not_owner(self) -> NoReturn:
        if self._owner is None:
            raise RuntimeError("release unlocked lock")
        raise RuntimeError("cannot release a lock held by another thread")

    __enter__ = acquire

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Release the lock at the end of a ``with`` block."""
        if self._owner != get_ident():
            self._raise_not_owner()
        self._owner = None
        self._token.put(None)


class ThreadRLock(_ThreadLockBase):
    """A re-entrant lock for threads: :class:`threading.RLock` with statistics.

    Same methods, signatures and results as :class:`threading.RLock`: the holding thread may
    acquire it again, and must release it as many times as it acquired it. Releasing it from a
    thread that does not hold it raises :exc:`RuntimeError`, as in :mod:`threading`.
    :meth:`locked` tells whether *any* thread holds it.

    Example::

        lock = ThreadRLock()
        with lock:
            with lock:  # the holder may enter again
                ...
    """

    __slots__ = ()

    def acquire(self, blocking: bool = True, timeout: float | None = -1) -> bool:
        """Acquire the lock, or acquire it once more if the calling thread holds it already.

        Args:
            blocking: wait for the lock (``True``) or return at once (``False``).
            timeout: the most seconds to wait; ``-1`` (or ``None``, or ``math.inf``) waits for
                as long as it takes. Only with ``blocking=True``.

        Returns:
            Whether the lock was acquired.

        Raises:
            TypeError: ``timeout`` is not a number.
            ValueError: a timeout with ``blocking=False``, NaN, or a negative timeout other
                than -1 (checked before anything changes).
        """
        me = get_ident()
        if self._owner == me:
            if timeout != -1:
                check_acquire_args(blocking, timeout)
            self._count += 1
            self._acquisitions += 1
            return True
        if timeout == -1:
            try:
                self._token.get_nowait()
            except Empty:
                pass
            else:
                self._owner = me
                self._count = 1
                self._acquisitions += 1
                return True
        if self._take_slow(blocking, timeout):
            self._owner = me
            self._count = 1
            self._acquisitions += 1
            return True
        return False

    def release(self) -> None:
        """Release the lock once; the holder's last release makes it free.

        Raises:
            RuntimeError: the calling thread does not hold the lock.
        """
        if self._owner != get_ident():
            raise RuntimeError("cannot release un-acquired lock")
        count = self._count - 1
        self._count = count
        if not count:
            self._owner = None
            self._token.put(None)

    __enter__ = acquire

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Release the lock once at the end of a ``with`` block."""
        self.release()

    def _describe(self) -> str:
        if self._owner is None:
            return super()._describe()
        return f"{super()._describe()} count={self._count}"

    # The hooks threading.Condition uses with a re-entrant lock: wait() drops every level of
    # recursion and restores them all once it has the lock again.
    def _release_save(self) -> int:
        if self._owner != get_ident():
            raise RuntimeError("cannot release un-acquired lock")
        count = self._count
        self._count = 0
        self._owner = None
        self._token.put(None)
        return count

    def _acquire_restore(self, count: int) -> None:
        self._take_slow(True, -1)
        self._owner = get_ident()
        self._count = count
        self._acquisitions += 1


# -- the primitives built on a monitor (their algorithms are in _algorithms.py) ----------------


class ThreadSemaphore(SemaphoreCore, ThreadHandle):
    """A counting semaphore for threads: :class:`threading.Semaphore` with statistics.

    Same methods, signatures, results and errors as :class:`threading.Semaphore`. Waiters are
    woken in the order they started waiting.

    Example::

        slots = ThreadSemaphore(2)
        with slots:  # at most two threads in here at a time
            ...
    """

    __slots__ = ()
    _BOUNDED: ClassVar[bool] = False

    def __init__(self, value: int = 1) -> None:
        """Create a semaphore whose counter starts at ``value`` (and, bounded, may not exceed
        it).

        Raises:
            ValueError: ``value`` is negative.
        """
        self._s = self._initial_state(value, bounded=self._BOUNDED)
        self._m = ThreadMonitor()


class ThreadBoundedSemaphore(ThreadSemaphore):
    """A semaphore that refuses to be released above its initial value.

    Same methods, signatures, results and errors as :class:`threading.BoundedSemaphore`:
    a :meth:`release` that would raise the counter above the initial value raises
    :exc:`ValueError` and leaves the counter unchanged.

    Example::

        connections = ThreadBoundedSemaphore(4)
        with connections:
            ...
    """

    __slots__ = ()
    _BOUNDED = True


class ThreadEvent(EventCore, ThreadHandle):
    """A flag threads wait for: :class:`threading.Event` with statistics.

    Example::

        ready = ThreadEvent()
        ...           # another thread calls ready.set()
        ready.wait()
    """

    __slots__ = ()

    def __init__(self) -> None:
        """Create an event, its flag clear."""
        self._s = EventState()
        self._m = ThreadMonitor()


class ThreadCondition(ConditionCore, ThreadHandle):
    """A condition variable for threads: :class:`threading.Condition` with statistics.

    Same methods, signatures, results and errors as :class:`threading.Condition`, over any
    lock with ``acquire``/``release`` (a :class:`ThreadLock`, a :class:`ThreadRLock`, a
    :class:`threading.Lock`, ...); :meth:`notify` wakes the longest-waiting threads first.

    Example::

        cond = ThreadCondition()
        with cond:
            cond.wait_for(lambda: queue)
    """

    __slots__ = ()

    def __init__(self, lock: Any = None) -> None:
        """Create a condition over ``lock`` (a new :class:`ThreadRLock` when ``None``)."""
        self._s = ConditionState()
        self._m = ThreadMonitor()
        self._bind(ThreadRLock() if lock is None else lock)

    def statistics(self) -> ConditionStatistics:
        """Return a snapshot: the waiters, and the lock's statistics if it has any."""
        stats = getattr(self._lock, "statistics", None)
        return ConditionStatistics(
            waiters=self._waiters(), lock=stats() if callable(stats) else None
        )

    def _describe(self) -> str:
        return f"waiters={self._waiters()} lock={self._lock!r}"


class ThreadBarrier(BarrierCore, ThreadHandle):
    """A barrier for threads: :class:`threading.Barrier` with statistics.

    Same methods, properties, results and errors as :class:`threading.Barrier`; the error is
    :exc:`~concurrency_kit.BrokenBarrierError`, a :class:`threading.BrokenBarrierError`.

    Example::

        barrier = ThreadBarrier(3)
        index = barrier.wait()  # in each of three threads
    """

    __slots__ = ()

    def __init__(
        self,
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
    ) -> None:
        """Create a barrier for ``parties`` threads.

        Args:
            parties: how many threads must call :meth:`wait` for the barrier to open.
            action: called by one of the threads (the last to arrive) each time it opens.
            timeout: the default timeout of :meth:`wait`.

        Raises:
            ValueError: ``parties`` is less than 1.
        """
        self._s = self._initial_state(parties, timeout)
        self._m = ThreadMonitor(queues=2)
        self._action = action


class ThreadRWLock(RWLockCore, ThreadHandle):
    """A reader-writer lock for threads: many readers or one writer.

    Writer-preferring: once a writer waits, new readers wait behind it, so a steady stream of
    readers cannot starve writers (a thread that already reads may read again at once).
    See the synchronization guide for the fairness rules.

    Example::

        rw = ThreadRWLock()
        with rw.read():
            ...  # shared with other readers
        with rw.write():
            ...  # alone
    """

    __slots__ = ("_reads",)

    def __init__(self) -> None:
        """Create a reader-writer lock, unlocked."""
        self._s = RWLockState()
        self._m = ThreadMonitor(queues=2)
        self._reads: dict[int, int] = {}  # thread ident -> read holds; under the monitor

    def _me(self) -> int:
        return get_ident()

    def _read_count(self, me: int) -> int:
        return self._reads.get(me, 0)

    def _set_read_count(self, me: int, count: int) -> None:
        if count:
            self._reads[me] = count
        else:
            del self._reads[me]

    def _writer_thread(self, writer: int) -> tuple[int | None, int | None]:
        return os.getpid(), _native_id_of(writer)


class ThreadGuarded(GuardedCore[T], ThreadHandle):
    """A value owned by a lock, for threads (Rust's ``Mutex<T>``).

    ``with guarded.lock() as value:`` holds the lock and gives the value; :meth:`get`,
    :meth:`set` and :meth:`update` access the whole value under the lock. A block that raises
    poisons the value: later calls raise :exc:`~concurrency_kit.PoisonedError` until
    :meth:`clear_poison`. The threads share the very object (no copies).

    Example::

        accounts = ThreadGuarded({"alice": 10, "bob": 0})
        with accounts.lock() as balances:
            balances["alice"] -= 5
            balances["bob"] += 5
    """

    __slots__ = ("_stored",)

    def __init__(self, value: T, *, max_bytes: int = 1 << 20) -> None:
        """Guard ``value``.

        Args:
            value: the initial value.
            max_bytes: accepted for code written against either model; a thread value is not
                serialized, so it has no size limit.
        """
        self._lock = ThreadRLock()
        self._flags = GuardedState()
        self._stored = value
        self._block = GuardedBlock()

    def _load(self) -> T:
        return self._stored

    def _store(self, value: T) -> None:
        self._stored = value

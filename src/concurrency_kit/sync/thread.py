"""The thread column of the synchronization row.

The locks are built here; every other primitive is its algorithm from ``_algorithms.py`` on a
:class:`~concurrency_kit._core.monitor.ThreadMonitor`, with its state in private memory.

A lock is the same machine as a process lock (``_robust_lock.py``) in this process's memory:
a robust pthread mutex and its record, acquired and released by the compiled fast path
(``LockHandle``), with the slow paths in Python::

    ThreadLock / ThreadRLock   ── LockHandle (C): acquire() / release() / with
      _PrivateLock             mutex (robust, NORMAL or RECURSIVE) + record: owner_pid,
                               acquisitions, owner_deaths (the holder's), contentions (atomic)
      _meta, _waiting          the callers blocked in acquire(), counted on the slow path only

No GIL reliance: the mutex is the lock, whatever the interpreter; the holder's fields are
written by the holder only while it holds the mutex, the contention counter atomically, the
waiters under ``_meta``. The owner check of ``release()`` is the mutex's own (a robust mutex
refuses an unlock from a thread that does not hold it), and so is the recursion count of an
RLock. Owners are kernel thread ids (:func:`threading.get_native_id`), which
:meth:`~ThreadLock.statistics` reports as they are.
"""

from __future__ import annotations

import ctypes
import os
import threading
from _thread import allocate_lock
from collections.abc import Callable
from threading import get_ident, get_native_id
from time import monotonic_ns
from typing import Any, ClassVar, NoReturn, TypeVar

from typing_extensions import Self

from concurrency_kit._core import mutex
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
from concurrency_kit.sync._base import ConditionStatistics
from concurrency_kit.sync._lockorder import checked_class, lock_order_checking_enabled
from concurrency_kit.sync._robust_lock import LockRecord, Reentrant, RobustLockBase

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


class _LockMemory(ctypes.Structure):
    _fields_ = (
        ("mutex", ctypes.c_byte * 64),  # pthread_mutex_t (mutex.MUTEX_SIZE <= 64 bytes)
        ("record", LockRecord),
    )


class _PrivateLock:
    """A thread lock's robust mutex and record, in this process's memory (a :class:`LockPlace`
    with its waiters counted here).

    The memory is a :class:`bytearray`, which the garbage collector cannot clear: a lock
    dropped while a thread holds it (in a reference cycle too) keeps it, for the holder's
    robust list points into it (``LockHandle`` keeps it for the life of the process). A
    :mod:`ctypes` structure owning its memory would free it when a cycle is collected.
    """

    __slots__ = ("_meta", "_waiting", "async_owner", "memory", "mutex_address", "record")

    def __init__(self, *, recursive: bool) -> None:
        self.memory = bytearray(ctypes.sizeof(_LockMemory))
        view = _LockMemory.from_buffer(self.memory)
        self.record = view.record
        self.mutex_address = ctypes.addressof(view)
        mutex.init(self.mutex_address, recursive=recursive)
        self._meta = allocate_lock()
        self._waiting = 0
        self.async_owner: object = None  # the task holding an RLock, if any

    def wait(self, wait: float | None) -> int:
        with self._meta:
            self._waiting += 1
        try:
            deadline = None if wait is None else monotonic_ns() + int(wait * 1e9)
            return mutex.acquire(self.mutex_address, deadline)
        finally:
            with self._meta:
                self._waiting -= 1

    def waiters(self) -> int:
        with self._meta:
            return self._waiting


class _ThreadLockBase(RobustLockBase):
    """What both thread locks add to :class:`RobustLockBase`: private memory, no pickling."""

    __slots__ = ("__weakref__", "_place")

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        # A lock created while the lock-order checker is on is checked for its whole life
        # (_lockorder.py); one created while it is off pays nothing for it.
        if lock_order_checking_enabled():
            cls = checked_class(cls)
        return super().__new__(cls)

    def __init__(self) -> None:
        self._bind_place(_PrivateLock(recursive=self._RECURSIVE))

    def close(self) -> None:
        """Do nothing: a thread lock holds no resource beyond its memory.

        It exists so that code written against a :class:`~concurrency_kit.Model` can close
        its locks whichever the model (a process lock releases its shared memory).
        """

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
    :class:`ThreadRLock` for a lock its holder may take again. A thread that ends while
    holding it does not leave it locked for ever: the next ``acquire`` takes it over, counts
    it in :meth:`statistics` and issues :class:`~concurrency_kit.LockOwnerDiedWarning`.

    Example::

        lock = ThreadLock()
        with lock:
            ...  # one thread at a time
    """

    __slots__ = ()
    _RECURSIVE = False


class ThreadRLock(Reentrant, _ThreadLockBase):
    """A re-entrant lock for threads: :class:`threading.RLock` with statistics.

    Same methods, signatures and results as :class:`threading.RLock`: the holding thread may
    acquire it again, and must release it as many times as it acquired it. Releasing it from a
    thread that does not hold it raises :exc:`RuntimeError`, as in :mod:`threading`.
    :meth:`locked` tells whether *any* thread holds it. A thread that ends holding it is
    taken over by the next acquirer, as with :class:`ThreadLock`.

    Example::

        lock = ThreadRLock()
        with lock:
            with lock:  # the holder may enter again
                ...
    """

    __slots__ = ()
    _RECURSIVE = True


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

    def _task_me(self, serial: int) -> int:
        # Above every thread ident (an address), so a task never passes for a thread; its
        # thread's native id in the low bits, for statistics().
        return 1 << 62 | serial << 32 | get_native_id()

    def _writer_thread(self, writer: int) -> tuple[int | None, int | None]:
        if writer >> 62:  # a task (see _task_me): its event loop's thread
            return os.getpid(), writer & 0xFFFFFFFF
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

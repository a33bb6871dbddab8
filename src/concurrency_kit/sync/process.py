"""The process column of the synchronization row.

The locks are built here; every other primitive is its algorithm from ``_algorithms.py`` on a
:class:`~concurrency_kit._core.monitor.ProcessMonitor` (one shared-memory segment holding its
state and its waiters), plus what only processes need: picklable handles and the reclaiming of
what a dead process held (``_repair``). ``ProcessGuarded`` is a :class:`ProcessRLock` and a
segment holding the pickled value.

A lock is a small shared-memory segment (``/dev/shm/ck_<hex>``, mode 0600, see ``_core/shm.py``)
holding a robust, process-shared pthread mutex (``_core/mutex.py``) and its counters::

    offset  size  field
    0       64    mutex       pthread_mutex_t (40 B on x86_64, 48 B on aarch64): the lock itself;
                              NORMAL for ProcessLock, RECURSIVE for ProcessRLock; its lock word
                              holds the owner's kernel thread id, its count the recursion
    64      64    meta        a second robust mutex guarding the waiter fields
    128     304   header      magic, kind
                              record: owner_pid,   ┐ written by the holder only, while it
                              acquisitions,        │ holds the mutex (single writer)
                              owner_deaths         ┘
                              record: contentions    by any caller that finds the mutex busy,
                                                     atomically (the C fast path counts too)
                              overflow_waiters,    ┐ written by callers that do *not* hold
                              waiter slots [32]    ┘ the mutex, so under ``meta``: (pid, count),
                                                     callers of each process blocked now

    handle (any process) ──> _LockMapping (one per segment per process) ──> mmap of the segment

The acquire and release paths, and the record, are both models' (``_robust_lock.py``); this
module adds the segment, the waiters of every process, and pickling. Every handle of a lock in
one process shares one ``_LockMapping`` (``_core/registry.py``), so a mutex has a single
address per process, as glibc's robust list (a list of the mutexes a thread holds, threaded
through the mutexes themselves and walked by the kernel when the thread exits) requires.

Why the mutex types: ``NORMAL`` gives :class:`threading.Lock` semantics exactly (a holder that
acquires again waits: ``acquire(False)`` fails, a timed acquire times out) and robust mutexes of
every type refuse ``unlock`` from a thread that does not hold them (``EPERM``), so the owner
check of ``release()`` costs nothing. ``ERRORCHECK`` would answer a holder's second acquire with
``EDEADLK`` at once, which no ``threading`` call does. ``RECURSIVE`` keeps the recursion count
in the mutex itself, per thread, as :class:`threading.RLock` does.

Owner death: the kernel marks the mutex when its holder thread exits without unlocking (the
process was killed, called ``os._exit``, or a thread ended inside the lock); the next locker gets
``EOWNERDEAD``, calls ``pthread_mutex_consistent``, counts the death and warns
(:class:`~concurrency_kit.LockOwnerDiedWarning`). Waiters are counted per process, so that a
process that dies while waiting is not counted for ever: its slot is ignored once it is gone.

Lifecycle: the creating handle owns the name. Its :meth:`~ProcessLock.close` (or its finalizer,
or the resource tracker when the creator dies) unlinks the segment; every process unmaps its
mapping when its last handle is closed or collected. A mapping whose mutex is still held by a
thread of this process is never unmapped (the thread's robust list points into it); it stays
until the process exits.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, cast

from concurrency_kit._core import mutex, registry, serialize, shm
from concurrency_kit._core.handles import Closed, ProcessHandle, drop_segment
from concurrency_kit._core.liveness import process_alive, thread_alive
from concurrency_kit._core.monitor import SLOTS, ProcessMonitor
from concurrency_kit._core.mutex import EOWNERDEAD
from concurrency_kit.sync._algorithms import (
    _ACTING,
    _ARRIVING,
    _DRAINING,
    _FILLING,
    _PARTIES,
    _READERS,
    _RESETTING,
    _WRITERS,
    BarrierCore,
    BarrierState,
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
    SemaphoreState,
)
from concurrency_kit.sync._base import ConditionStatistics
from concurrency_kit.sync._robust_lock import LockRecord, Reentrant, RobustLockBase

__all__ = [
    "ProcessBarrier",
    "ProcessBoundedSemaphore",
    "ProcessCondition",
    "ProcessEvent",
    "ProcessGuarded",
    "ProcessLock",
    "ProcessRLock",
    "ProcessRWLock",
    "ProcessSemaphore",
]

T = TypeVar("T")

_MAGIC = 0x4B4C4B43  # "CKLK"
_KIND_LOCK = 1
_KIND_RLOCK = 2
_MUTEX_OFFSET = 0
_META_OFFSET = 64  # one mutex per 64-byte cache line
_HEADER_OFFSET = 128
_WAITER_SLOTS = 32


class _WaiterSlot(ctypes.Structure):
    _fields_ = (("pid", ctypes.c_int32), ("count", ctypes.c_int32))


class _Header(ctypes.Structure):
    _fields_ = (
        ("magic", ctypes.c_uint32),
        ("kind", ctypes.c_uint32),
        ("record", LockRecord),  # owner_pid, acquisitions, owner_deaths, contentions
        ("overflow_waiters", ctypes.c_int64),
        ("slots", _WaiterSlot * _WAITER_SLOTS),
    )


_SEGMENT_SIZE = _HEADER_OFFSET + ctypes.sizeof(_Header)

# This process's id, read on the slow path; a forked child updates it (see _after_fork).
_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork)


class _LockMapping(registry.Mapping):
    """This process's view of one lock segment (see the module docstring)."""

    __slots__ = ("async_owner", "header", "kind", "meta", "record")

    @property
    def memory(self) -> _LockMapping:
        """What holds the mutex's memory: this mapping (the registry keeps one whose mutex a
        thread holds)."""
        return self

    def __init__(self, segment: shm.Segment) -> None:
        super().__init__(segment, _MUTEX_OFFSET)
        self.meta = segment.address + _META_OFFSET
        self.header = _Header.from_buffer(segment.buffer, _HEADER_OFFSET)
        self.record = self.header.record
        self.kind = 0
        self.async_owner: object = None  # the task of this process holding an RLock, if any

    @classmethod
    def create(cls, kind: int) -> _LockMapping:
        segment = shm.create(_SEGMENT_SIZE)
        try:
            m = cls(segment)
            mutex.init(m.mutex_address, recursive=kind == _KIND_RLOCK)
            mutex.init(m.meta, recursive=False)
            m.header.kind = m.kind = kind
            m.header.magic = _MAGIC  # last: the segment is complete
        except BaseException:
            segment.unlink()
            raise
        return _registry.add(m)

    @classmethod
    def attach(cls, name: str, kind: int) -> _LockMapping:
        def attach() -> _LockMapping:
            try:
                segment = shm.attach(name, _SEGMENT_SIZE)
            except FileNotFoundError:
                raise FileNotFoundError(
                    f"the process lock {name!r} no longer exists: the process that created it "
                    "closed it or exited"
                ) from None
            m = cls(segment)
            if m.header.magic != _MAGIC or m.header.kind != kind:
                raise ValueError(f"segment {name!r} does not hold a process lock of this kind")
            m.kind = kind
            return m

        return _registry.open(name, attach)

    # -- the waiter fields, under the meta mutex --------------------------------------------

    def _meta_enter(self) -> None:
        rc = mutex.trylock(self.meta)
        if rc and rc != EOWNERDEAD:
            rc = mutex.acquire(self.meta, None)
        if rc == EOWNERDEAD:  # died inside a few lines of counting: the counts are still fine
            mutex.consistent(self.meta)

    def _add_waiter(self) -> int:
        """Count a waiter of this process; return its slot (-1: overflow)."""
        h = self.header
        self._meta_enter()
        try:
            slots = h.slots
            free = -1
            for i in range(_WAITER_SLOTS):
                pid = slots[i].pid
                if pid == _pid:
                    slots[i].count += 1
                    return i
                if free < 0 and pid == 0:
                    free = i
            if free < 0:  # reclaim the slot of a process that died while waiting
                free = next(
                    (i for i in range(_WAITER_SLOTS) if not process_alive(slots[i].pid)), -1
                )
            if free < 0:
                h.overflow_waiters += 1
                return -1
            slots[free].pid = _pid
            slots[free].count = 1
            return free
        finally:
            mutex.unlock(self.meta)

    def _remove_waiter(self, slot: int) -> None:
        h = self.header
        self._meta_enter()
        try:
            if slot < 0:
                h.overflow_waiters -= 1
            else:
                entry = h.slots[slot]
                entry.count -= 1
                if entry.count <= 0:
                    entry.pid = entry.count = 0
        finally:
            mutex.unlock(self.meta)

    def waiters(self) -> int:
        """Callers blocked in ``acquire`` now, in every process still alive."""
        h = self.header
        self._meta_enter()
        try:
            counts = [(s.pid, s.count) for s in h.slots if s.pid]
            overflow = h.overflow_waiters
        finally:
            mutex.unlock(self.meta)
        return sum(int(count) for pid, count in counts if process_alive(pid)) + int(overflow)

    def wait(self, wait: float | None) -> int:
        """Wait for the mutex for ``wait`` seconds (``None``: for ever), counted as a waiter.

        Returns:
            0 or ``EOWNERDEAD`` (locked), ``ETIMEDOUT`` (not locked).
        """
        slot = self._add_waiter()
        try:
            # ``wait`` passed check_timeout: finite, at most MAX_TIMEOUT.
            deadline = None if wait is None else time.monotonic_ns() + int(wait * 1e9)
            return mutex.acquire(self.mutex_address, deadline)
        finally:
            self._remove_waiter(slot)


_registry: registry.Registry[_LockMapping] = registry.Registry()


def _drop_handle(m: _LockMapping, creator: bool) -> None:
    """Forget one handle of ``m``: the creator's unlinks the name, the last one unmaps."""
    if creator:
        m.segment.unlink()  # in the creating process only: a forked copy is no creator
    _registry.release(m)


def _attach(kind: int, name: str) -> _ProcessLockBase:
    """Unpickle a process lock handle: map the segment ``name`` in this process."""
    cls = ProcessRLock if kind == _KIND_RLOCK else ProcessLock
    handle = cls.__new__(cls)
    handle._setup(_LockMapping.attach(name, kind), creator=False)
    return handle


class _ProcessLockBase(RobustLockBase):
    """What both process locks add to :class:`RobustLockBase`: a segment, its lifecycle and
    pickling."""

    __slots__ = ("__weakref__", "_finalizer", "_name", "_place")

    def __init__(self) -> None:
        self._setup(_LockMapping.create(self._kind()), creator=True)

    @classmethod
    def _kind(cls) -> int:
        return _KIND_RLOCK if cls._RECURSIVE else _KIND_LOCK

    def _setup(self, m: _LockMapping, *, creator: bool) -> None:
        self._name = m.name
        self._bind_place(m)
        self._finalizer = weakref.finalize(self, _drop_handle, m, creator)

    def close(self) -> None:
        """Release this process's mapping of the lock (idempotent).

        Closing the handle that created the lock also removes the shared-memory segment: the
        processes that have the lock keep using it, but no more handles can be unpickled. A
        handle that is garbage collected is closed by a finalizer, and the segment is removed
        when the creating process exits, however it exits.
        """
        self._place = None
        self._bind(None)
        self._finalizer()

    def _label(self) -> str:
        return f"{type(self).__qualname__} {self._name}"

    def __repr__(self) -> str:
        cls = type(self)
        state = "closed" if self._place is None else self._describe()
        return f"<{cls.__module__}.{cls.__qualname__} {state} {self._name} at {id(self):#x}>"

    def __reduce__(self) -> tuple[Any, tuple[int, str]]:
        self._open()
        return _attach, (self._kind(), self._name)


class ProcessLock(_ProcessLockBase):
    """A mutual-exclusion lock shared by processes, that survives the death of its holder.

    Same methods, signatures and results as :class:`threading.Lock` and
    :obj:`multiprocessing.Lock`, with two differences:

    * only the thread that acquired the lock may release it: releasing a lock the calling
      thread does not hold raises :exc:`RuntimeError` (like a mutex, unlike
      :class:`threading.Lock`);
    * if the holder dies with the lock held (killed by a signal, ``os._exit``, an exception
      outside ``with`` that ends the process, or its thread exits), the next ``acquire`` gets
      the lock promptly, counts the death in :meth:`statistics` and issues
      :class:`~concurrency_kit.LockOwnerDiedWarning`, where a :obj:`multiprocessing.Lock`
      stays locked for ever.

    A lock is a picklable handle: pass it as an argument to a
    :class:`~concurrency_kit.ProcessPool` task or to a :class:`multiprocessing.Process` with any
    start method, and the other process uses the same lock. :meth:`close` releases this
    process's mapping; the lock itself goes away when the process that created it closes it or
    exits. Note that ``with lock:`` acquires the lock; it does not close it.

    It is a robust process-shared pthread mutex in a shared-memory segment (Linux).
    ``acquire()`` without arguments, ``release()`` and ``with`` are compiled (one
    ``pthread_mutex_trylock`` or ``unlock``); other calls and every wait are Python.

    Example::

        lock = ProcessLock()
        with ProcessPool(2) as pool:
            pool.map(append_line, [lock] * 10, range(10))
        lock.close()
    """

    __slots__ = ()
    _RECURSIVE = False

    def __init__(self) -> None:
        """Create a new lock, unlocked.

        Raises:
            OSError: the shared-memory segment could not be created.
        """
        super().__init__()


class ProcessRLock(Reentrant, _ProcessLockBase):
    """A re-entrant lock shared by processes, that survives the death of its holder.

    Same methods, signatures and results as :class:`threading.RLock` and
    :obj:`multiprocessing.RLock`: the holding thread may acquire it again and must release it
    as many times; releasing it from a thread that does not hold it raises
    :exc:`RuntimeError`. Ownership is per thread, as in :mod:`threading`: another thread of
    the holding process waits like any other process. :meth:`locked` tells whether *any*
    thread holds it.

    Everything else is as for :class:`ProcessLock`: a picklable handle, recovery from a dead
    holder with :class:`~concurrency_kit.LockOwnerDiedWarning` (the new holder holds it once,
    whatever the depth of the dead one), :meth:`close`.

    Example::

        lock = ProcessRLock()
        with lock:
            with lock:  # the holder may enter again
                ...
        lock.close()
    """

    __slots__ = ()
    _RECURSIVE = True

    def __init__(self) -> None:
        """Create a new re-entrant lock, unlocked.

        Raises:
            OSError: the shared-memory segment could not be created.
        """
        super().__init__()


# -- the primitives built on a monitor (their algorithms are in _algorithms.py) ---------------

_KIND_SEMAPHORE = 10
_KIND_EVENT = 11
_KIND_CONDITION = 12
_KIND_BARRIER = 13
_KIND_RWLOCK = 14


class ProcessSemaphore(SemaphoreCore, ProcessHandle):
    """A counting semaphore shared by processes.

    Same methods, signatures, results and errors as :class:`threading.Semaphore` and
    :obj:`multiprocessing.Semaphore`, plus :meth:`statistics`; waiters are woken in the order
    they started waiting, in any process. A picklable handle, like
    :class:`ProcessLock` (pass it to pool tasks or to any process, with any start method).

    A semaphore has no owner: a process that dies after ``acquire`` does not give its unit
    back (nobody can tell a death from a hand-over to another process).

    Example::

        slots = ProcessSemaphore(2)
        with ProcessPool(4) as pool:
            pool.map(use_a_scarce_resource, [slots] * 8)
        slots.close()
    """

    _KIND = _KIND_SEMAPHORE
    _STATE = SemaphoreState
    _BOUNDED: ClassVar[bool] = False

    def __init__(self, value: int = 1) -> None:
        """Create a semaphore whose counter starts at ``value`` (and, bounded, may not exceed
        it).

        Raises:
            ValueError: ``value`` is negative.
            OSError: the shared-memory segment could not be created.
        """
        initial = self._initial_state(value, bounded=self._BOUNDED)
        ctypes.pointer(self._create())[0] = initial


class ProcessBoundedSemaphore(ProcessSemaphore):
    """A process semaphore that refuses to be released above its initial value.

    As :class:`ProcessSemaphore`, with the check of :class:`threading.BoundedSemaphore`: a
    :meth:`release` that would raise the counter above the initial value raises
    :exc:`ValueError` and leaves the counter unchanged.

    Example::

        connections = ProcessBoundedSemaphore(4)
    """

    _KIND = _KIND_SEMAPHORE + 100
    _BOUNDED = True


class ProcessEvent(EventCore, ProcessHandle):
    """A flag processes wait for: :class:`threading.Event` semantics across processes.

    Same methods, signatures and results as :class:`threading.Event` and
    :obj:`multiprocessing.Event`, plus :meth:`statistics`. A picklable handle, like
    :class:`ProcessLock`.

    Example::

        stop = ProcessEvent()
        with ProcessPool(2) as pool:
            futures = [pool.submit(work_until, stop) for _ in range(2)]
            stop.set()
        stop.close()
    """

    _KIND = _KIND_EVENT
    _STATE = EventState

    def __init__(self) -> None:
        """Create an event, its flag clear.

        Raises:
            OSError: the shared-memory segment could not be created.
        """
        self._create()


class ProcessCondition(ConditionCore, ProcessHandle):
    """A condition variable shared by processes, over a :class:`ProcessLock` or
    :class:`ProcessRLock`.

    Same methods, signatures, results and errors as :class:`threading.Condition` and
    :obj:`multiprocessing.Condition`; :meth:`notify` wakes the longest-waiting callers first,
    in any process, and never gives a wake-up to a waiter that has died. A picklable handle:
    the lock travels with it.

    Example::

        cond = ProcessCondition()
        with cond:
            cond.wait_for(lambda: ready.is_set())
        cond.close()
    """

    _KIND = _KIND_CONDITION
    _STATE = ConditionState

    def __init__(self, lock: ProcessLock | ProcessRLock | None = None) -> None:
        """Create a condition over ``lock`` (a new :class:`ProcessRLock` when ``None``).

        Raises:
            TypeError: ``lock`` is not a process lock (a condition shared by processes needs a
                lock they share).
            OSError: the shared-memory segment could not be created.
        """
        if lock is not None and not isinstance(lock, (ProcessLock, ProcessRLock)):
            raise TypeError(
                "a ProcessCondition needs a ProcessLock or ProcessRLock, got "
                f"{type(lock).__qualname__}"
            )
        self._owns_lock = lock is None
        self._bind(ProcessRLock() if lock is None else lock)
        self._create()

    def _extra(self) -> Any:
        return self._lock

    def _restore(self, extra: Any) -> None:
        self._owns_lock = True  # this process's handle of the lock came with the condition
        self._bind(extra)

    def close(self) -> None:
        """Release this process's mapping (idempotent); also close the lock if it came with
        the condition (the default lock, or the one an unpickled handle brought), but not a
        lock the caller passed in."""
        super().close()
        if self._owns_lock:
            self._lock.close()

    def statistics(self) -> ConditionStatistics:
        """Return a snapshot: the waiters and the lock's statistics."""
        return ConditionStatistics(waiters=self._waiters(), lock=self._lock.statistics())

    def _describe(self) -> str:
        return f"waiters={self._waiters()} lock={self._lock!r}"


class ProcessBarrier(BarrierCore, ProcessHandle):
    """A barrier for processes: :class:`threading.Barrier` semantics across processes.

    Same methods, properties, results and errors as :class:`threading.Barrier` and
    :obj:`multiprocessing.Barrier`. The ``action`` travels with the handle (pickled with
    cloudpickle, so a lambda will do) and runs in the process of the last party to arrive.

    A party that *dies* after arriving (its ``wait()`` counted in :attr:`n_waiting`) and
    before the barrier opens — while waiting, while running the action, or inside the
    barrier's bookkeeping — breaks the barrier for every live party alike: each gets
    :exc:`~concurrency_kit.BrokenBarrierError` (the last party too, instead of opening it) and
    :attr:`broken` stays true until :meth:`reset`. The last party decides: it checks that every
    counted party is alive just before opening. A party that dies after the opening had
    passed: the others are not affected. One that dies before arriving is only missing, as
    with :class:`threading.Barrier` (the others wait until their timeout). A party is dead once
    its process (or thread) has ended, not when a signal is merely sent to it.

    Example::

        barrier = ProcessBarrier(2)
        with ProcessPool(2) as pool:
            pool.map(phase_one_then_two, [barrier] * 2)
        barrier.close()
    """

    _KIND = _KIND_BARRIER
    _STATE = BarrierState

    def __init__(
        self,
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
    ) -> None:
        """Create a barrier for ``parties`` processes (or threads of them).

        Args:
            parties: how many callers must :meth:`wait` for the barrier to open.
            action: called by the last caller to arrive each time it opens; must be
                picklable with cloudpickle.
            timeout: the default timeout of :meth:`wait`.

        Raises:
            ValueError: ``parties`` is less than 1.
            SerializationError: ``action`` cannot be pickled.
            OSError: the shared-memory segment could not be created.
        """
        initial = self._initial_state(parties, timeout)
        if action is not None:
            serialize.dumps_value(action, "as a barrier action")  # fail here, not at pickling
        self._action = action
        ctypes.pointer(self._create())[0] = initial

    def _extra(self) -> Any:
        return None if self._action is None else serialize.dumps(self._action)

    def _restore(self, extra: Any) -> None:
        self._action = None if extra is None else serialize.loads(extra)

    def _repair(self) -> bool:
        # A sleeper between two slices (of either queue): its own slot, if it is a party, is
        # still taken, so every counted party but an actor running the action has a slot.
        return self._collect_dead(unslotted=0)

    def _check_before_opening(self) -> None:
        # The last party, inside the monitor: counted, but never asleep in this generation
        # (after the action, it is the actor, which _collect_dead counts as such).
        self._collect_dead(unslotted=0 if self._s.state == _ACTING else 1)

    def _collect_dead(self, unslotted: int) -> bool:
        """Inside the monitor: take dead parties off the count; break if the barrier has not
        opened yet (see ``BarrierCore``). Returns whether anything changed.

        ``unslotted``: counted parties without a waiter slot, other than the actor (the
        caller, when it is the last party).
        """
        s, m = self._s, cast(ProcessMonitor, self._m)
        m.dead_waiters(_ARRIVING)  # callers not yet counted: nothing else to account for
        died_waiting, died_woken = m.dead_waiters(_PARTIES)
        dead = died_waiting + died_woken
        s.count -= dead
        if s.state == _ACTING and not thread_alive(s.actor_pid, s.actor_tid):
            s.count -= 1
            dead += 1
        recoveries = m.mutex_recoveries & 0xFFFFFFFF
        if recoveries != s.recoveries:
            # A process died inside the monitor, between two lines of bookkeeping. If it was
            # a party counted but not asleep yet, or a last party opening, the count holds a
            # party nobody can see: count again, from the parties that can be seen, and
            # treat a difference as a death. (One that died in statistics() changes nothing.)
            s.recoveries = recoveries
            actor = s.state == _ACTING and thread_alive(s.actor_pid, s.actor_tid)
            counted = m.occupied(_PARTIES) + unslotted + actor
            if counted != s.count:
                s.count = counted
                dead += 1
        if not dead:
            return False
        if s.state in (_FILLING, _ACTING):
            # A counted party died before the barrier opened: it can never open. Every live
            # party gets BrokenBarrierError, the last one included.
            self._break()
        elif s.count <= 0 and s.state in (_DRAINING, _RESETTING):
            # It had passed (or was being reset): only the count changes; the next generation
            # may start once every party of this one has left.
            s.count = 0
            s.state = _FILLING
            m.wake_all(_ARRIVING)
        return True


class _ReaderEntry(ctypes.Structure):
    _fields_ = (("owner", ctypes.c_uint64), ("count", ctypes.c_int64))


class _RWLockSegment(ctypes.Structure):
    _fields_ = (
        ("core", RWLockState),
        ("high", ctypes.c_int64),  # entries [high, SLOTS) have never been used
        ("entries", _ReaderEntry * SLOTS),
    )


def _identity(pid: int, tid: int) -> int:
    return (pid << 32) | tid


_TID_MASK = (1 << 22) - 1
"""The bits of a Linux thread id (ids are below ``PID_MAX_LIMIT``, 2**22); the 10 above them
in an identity tell apart the awaiting tasks of one thread (``_task_identity``)."""


class ProcessRWLock(RWLockCore, ProcessHandle):
    """A reader-writer lock shared by processes: many readers or one writer.

    The same API and fairness as :class:`ThreadRWLock` (writer-preferring, re-entrant reads),
    for threads of any process. A reader or writer that dies holding the lock (SIGKILL
    included) is reclaimed by the next caller that finds the lock held (a try-acquire too):
    counted in :meth:`statistics` and reported with
    :class:`~concurrency_kit.LockOwnerDiedWarning`.
    A picklable handle, like :class:`ProcessLock`. At most 128 threads (of all processes) may
    hold the read side at once, and 1,024 threads and tasks may wait.

    Example::

        rw = ProcessRWLock()
        with rw.read():
            ...  # shared with readers in every process
        rw.close()
    """

    _KIND = _KIND_RWLOCK
    _STATE = _RWLockSegment

    def __init__(self) -> None:
        """Create a reader-writer lock, unlocked.

        Raises:
            OSError: the shared-memory segment could not be created.
        """
        self._create()

    def _state_of(self, monitor: ProcessMonitor) -> Any:
        self._local = threading.local()
        self._segment_state = monitor.state
        self._entries = monitor.state.entries
        return monitor.state.core

    def _me(self) -> int:
        return _identity(os.getpid(), threading.get_native_id())

    def _entry(self, me: int) -> _ReaderEntry | None:
        # Each thread remembers where its entry was: one check instead of a scan. (A forked
        # child inherits the memory, but its identity differs, so it scans afresh.)
        entries = self._entries
        local = self._local
        index = getattr(local, "index", -1)
        if index >= 0 and entries[index].owner == me:
            return entries[index]  # type: ignore[no-any-return]
        for i in range(self._segment_state.high):
            entry = entries[i]
            if entry.owner == me:
                local.index = i
                return entry  # type: ignore[no-any-return]
        return None

    def _read_count(self, me: int) -> int:
        entry = self._entry(me)
        return 0 if entry is None else int(entry.count)

    def _set_read_count(self, me: int, count: int) -> None:
        entry = self._entry(me)
        if entry is None:
            segment = self._segment_state
            entries = self._entries
            # An entry stays its thread's while its count is 0, so the next read finds it at
            # once; the table takes such entries back only when no entry was ever used.
            free = -1
            if segment.high == SLOTS:
                free = next((i for i in range(SLOTS) if not entries[i].count), -1)
            if free < 0:
                if segment.high == SLOTS:
                    raise RuntimeError(f"more than {SLOTS} threads hold one ProcessRWLock")
                free = segment.high
                segment.high += 1
            entry = entries[free]
            entry.owner = me
            self._local.index = free
        entry.count = count

    def _task_me(self, serial: int) -> int:
        # (pid, thread id | serial << 22): the liveness checks see the task's thread.
        return _identity(os.getpid(), threading.get_native_id() | serial << 22)

    def _writer_thread(self, writer: int) -> tuple[int | None, int | None]:
        return writer >> 32, writer & _TID_MASK

    def _repair(self) -> bool:
        s, m = self._s, self._m
        changed = False
        for queue, field in ((_READERS, "readers_waiting"), (_WRITERS, "writers_waiting")):
            died_waiting, died_woken = m.dead_waiters(queue)
            if died_waiting or died_woken:
                setattr(s, field, getattr(s, field) - died_waiting - died_woken)
                changed = True
        if s.writer and not thread_alive(s.writer >> 32, s.writer & _TID_MASK):
            s.writer = 0
            s.owner_deaths += 1
            changed = True
        entries = self._entries
        for i in range(self._segment_state.high):
            entry = entries[i]
            owner = int(entry.owner)
            if entry.count and not thread_alive(owner >> 32, owner & _TID_MASK):
                entry.owner = entry.count = 0
                s.readers -= 1
                s.owner_deaths += 1
                changed = True
        if changed and not s.writer:
            if s.writers_waiting and not s.readers:
                m.wake(1, _WRITERS)
            elif not s.writers_waiting:
                m.wake_all(_READERS)
        return changed


_GUARDED_HEADER = ctypes.sizeof(GuardedState)
# Per process: segment name -> the block in progress, shared by the handles of one value.
_guarded_blocks: weakref.WeakValueDictionary[str, GuardedBlock] = weakref.WeakValueDictionary()
_guarded_blocks_lock = threading.Lock()


def _attach_guarded(lock: ProcessRLock, name: str, max_bytes: int) -> ProcessGuarded[Any]:
    """Unpickle a guarded value handle: map its data segment in this process."""
    handle: ProcessGuarded[Any] = ProcessGuarded.__new__(ProcessGuarded)
    handle._setup(lock, shm.attach(name, _GUARDED_HEADER + max_bytes), max_bytes, creator=False)
    return handle


class ProcessGuarded(GuardedCore[T]):
    """A value owned by a lock, shared by processes (Rust's ``Mutex<T>`` in shared memory).

    ``with guarded.lock() as value:`` holds the lock (a :class:`ProcessRLock`) and gives a
    copy of the value, unpickled from shared memory; when the block ends, the value (with the
    block's changes, or what :meth:`set` put in its place) is pickled back, and every process
    sees it from then on. :meth:`get`, :meth:`set` and :meth:`update` access the whole value
    under the lock.

    A block that raises poisons the value (it is stored as the block left it), and so does a
    process that dies inside a block (the value stays as last stored): later calls raise
    :exc:`~concurrency_kit.PoisonedError` until :meth:`clear_poison`. A picklable handle, like
    :class:`ProcessLock`.

    Example::

        accounts = ProcessGuarded({"alice": 10, "bob": 0})
        with accounts.lock() as balances:
            balances["alice"] -= 5
            balances["bob"] += 5
        accounts.close()
    """

    __slots__ = ("_data", "_finalizer", "_max_bytes", "_segment")

    def __init__(self, value: T, *, max_bytes: int = 1 << 20) -> None:
        """Guard ``value``, stored in a new shared-memory segment.

        Args:
            value: the initial value; it must be picklable (cloudpickle).
            max_bytes: the largest pickled value the segment holds. Pages are only used as
                they are written, so a large limit costs nothing until it is reached.

        Raises:
            SerializationError: ``value`` cannot be pickled.
            ValueError: its pickle is larger than ``max_bytes``, or ``max_bytes`` < 1.
            OSError: the shared-memory segments could not be created.
        """
        if not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive int, got {max_bytes!r}")
        data = self._pickle(value, max_bytes)
        lock = ProcessRLock()
        try:
            segment = shm.create(_GUARDED_HEADER + max_bytes)
        except BaseException:
            lock.close()
            raise
        self._setup(lock, segment, max_bytes, creator=True)
        self._write(data)

    def _setup(
        self, lock: ProcessRLock, segment: shm.Segment, max_bytes: int, *, creator: bool
    ) -> None:
        self._lock = lock
        self._segment = segment
        self._max_bytes = max_bytes
        self._flags = GuardedState.from_buffer(segment.buffer)
        self._data = (ctypes.c_char * max_bytes).from_buffer(segment.buffer, _GUARDED_HEADER)
        with _guarded_blocks_lock:  # every handle of this value in this process: one record
            block = _guarded_blocks.get(segment.name)
            if block is None:
                block = _guarded_blocks[segment.name] = GuardedBlock()
        self._block = block
        self._finalizer = weakref.finalize(self, _drop_guarded, lock, segment, creator)

    @staticmethod
    def _pickle(value: object, max_bytes: int) -> bytes:
        data = serialize.dumps_value(value, "into a ProcessGuarded")
        if len(data) > max_bytes:
            raise ValueError(
                f"the value pickles to {len(data)} bytes, more than this ProcessGuarded's "
                f"max_bytes={max_bytes}; the stored value is unchanged"
            )
        return data

    def _write(self, data: bytes) -> None:
        ctypes.memmove(self._data, data, len(data))
        self._flags.size = len(data)

    def _load(self) -> T:
        size = int(self._flags.size)
        value: T = serialize.loads(memoryview(self._data).cast("B")[:size])
        return value

    def _store(self, value: T) -> None:
        self._write(self._pickle(value, self._max_bytes))

    def close(self) -> None:
        """Release this process's mappings (idempotent); the creating handle also removes the
        shared memory. Using a closed handle raises :exc:`ValueError`."""
        what = f"{type(self).__qualname__} {self._segment.name}"
        self._flags = Closed(what)
        self._finalizer()

    def __repr__(self) -> str:
        cls = type(self)
        state = "closed" if isinstance(self._flags, Closed) else self._describe()
        name = self._segment.name
        return f"<{cls.__module__}.{cls.__qualname__} {state} {name} at {id(self):#x}>"

    def __reduce__(self) -> tuple[Any, tuple[ProcessRLock, str, int]]:
        if isinstance(self._flags, Closed):
            raise ValueError("cannot pickle a closed ProcessGuarded")
        return _attach_guarded, (self._lock, self._segment.name, self._max_bytes)


def _drop_guarded(lock: ProcessRLock, segment: shm.Segment, creator: bool) -> None:
    lock.close()
    drop_segment(segment, creator)

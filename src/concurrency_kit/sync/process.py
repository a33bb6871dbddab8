"""ProcessLock and ProcessRLock: the process column of the synchronization row.

A lock is a small shared-memory segment (``/dev/shm/ck_<hex>``, mode 0600, see ``_shm.py``)
holding a robust, process-shared pthread mutex (``_robust.py``) and its counters::

    offset  size  field
    0       64    mutex       pthread_mutex_t (40 B on x86_64, 48 B on aarch64): the lock itself;
                              NORMAL for ProcessLock, RECURSIVE for ProcessRLock; its lock word
                              holds the owner's kernel thread id, its count the recursion
    64      64    meta        a second robust mutex guarding the waiter fields and contentions
    128     168   header      magic, kind, owner_pid ┐ written by the holder only, while it
                              acquisitions,          │ holds the mutex (single writer)
                              owner_deaths           ┘
                              contentions,           ┐ written by callers that do *not* hold
                              overflow_waiters,      │ the mutex, so under ``meta``
                              waiter slots [32]      ┘ (pid, count): callers of each process
                                                       blocked in acquire() now

    handle (any process) ──> _Mapping (one per segment per process) ──> mmap of the segment

Every handle of a lock in one process shares one ``_Mapping``, so a mutex has a single
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
import warnings
import weakref
from threading import TIMEOUT_MAX
from types import TracebackType
from typing import Any, ClassVar, NoReturn

from concurrency_kit import _shm
from concurrency_kit.errors import LockOwnerDiedWarning
from concurrency_kit.sync import _robust
from concurrency_kit.sync._base import LockStatistics, check_acquire_args
from concurrency_kit.sync._robust import (
    EBUSY,
    EOWNERDEAD,
    EPERM,
    ETIMEDOUT,
    FUTEX_TID_MASK,
    MutexWords,
)

__all__ = ["ProcessLock", "ProcessRLock"]

_MAGIC = 0x4B4C4B43  # "CKLK"
_KIND_LOCK = 1
_KIND_RLOCK = 2
_MUTEX_OFFSET = 0
_META_OFFSET = 64  # one mutex per 64-byte cache line
_HEADER_OFFSET = 128
_WAITER_SLOTS = 32
_SLICE_NS = 100_000_000
"""Blocking waits are cut into slices this long (ns), so that signal handlers (Ctrl-C) run."""


class _WaiterSlot(ctypes.Structure):
    _fields_ = (("pid", ctypes.c_int32), ("count", ctypes.c_int32))


class _Header(ctypes.Structure):
    _fields_ = (
        ("magic", ctypes.c_uint32),
        ("kind", ctypes.c_uint32),
        ("owner_pid", ctypes.c_int32),
        ("_reserved", ctypes.c_int32),
        ("acquisitions", ctypes.c_uint64),
        ("owner_deaths", ctypes.c_uint64),
        ("contentions", ctypes.c_uint64),
        ("overflow_waiters", ctypes.c_int64),
        ("slots", _WaiterSlot * _WAITER_SLOTS),
    )


_SEGMENT_SIZE = _HEADER_OFFSET + ctypes.sizeof(_Header)

# This process's id, read on the hot path; a forked child updates it (see _after_fork).
_pid = os.getpid()
# Per process: segment name -> its mapping, shared by every handle of that lock here.
_registry: dict[str, _Mapping] = {}
_registry_lock = threading.Lock()
# Mappings whose mutex a thread of this process held when their last handle went away.
_pinned: list[_Mapping] = []


def _after_fork() -> None:
    global _pid, _registry_lock
    _pid = os.getpid()
    _registry_lock = threading.Lock()  # another thread may have held it at fork time


os.register_at_fork(after_in_child=_after_fork)


def _raise_closed(*args: object) -> NoReturn:
    raise ValueError("the lock is closed")


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (an unreaped zombie has exited)."""
    if pid == _pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 :][:1] not in (b"Z", b"X")


class _Mapping:
    """This process's view of one lock segment (see the module docstring)."""

    __slots__ = (
        "consistent",
        "handles",
        "header",
        "kind",
        "lock",
        "lock_until",
        "meta",
        "name",
        "ptr",
        "segment",
        "trylock",
        "unlock",
        "words",
    )

    def __init__(self, segment: _shm.Segment, pthread: _robust.Pthread) -> None:
        self.segment = segment
        self.name = segment.name
        self.handles = 1
        buffer = segment.buffer
        self.words = MutexWords.from_buffer(buffer, _MUTEX_OFFSET)
        # A pointer object keeps the view, hence the mapping, alive during every call made with
        # it: a handle closed by another thread cannot unmap the memory under a running call.
        self.ptr: Any = ctypes.pointer(self.words)
        self.meta: Any = ctypes.pointer(MutexWords.from_buffer(buffer, _META_OFFSET))
        self.header = _Header.from_buffer(buffer, _HEADER_OFFSET)
        self.kind = 0
        self.trylock: Any = pthread.trylock
        self.unlock: Any = pthread.unlock
        self.lock: Any = pthread.lock
        self.consistent: Any = pthread.consistent
        self.lock_until = pthread.lock_until

    @classmethod
    def create(cls, kind: int) -> _Mapping:
        pthread = _robust.load()
        segment = _shm.create(_SEGMENT_SIZE)
        try:
            m = cls(segment, pthread)
            pthread.init_mutex(m.ptr, recursive=kind == _KIND_RLOCK)
            pthread.init_mutex(m.meta, recursive=False)
            m.header.kind = m.kind = kind
            m.header.magic = _MAGIC  # last: the segment is complete
        except BaseException:
            segment.unlink()
            raise
        with _registry_lock:
            _registry[m.name] = m
        return m

    @classmethod
    def attach(cls, name: str, kind: int) -> _Mapping:
        with _registry_lock:
            m = _registry.get(name)
            if m is not None:
                m.handles += 1
                return m
            pthread = _robust.load()
            try:
                segment = _shm.attach(name, _SEGMENT_SIZE)
            except FileNotFoundError:
                raise FileNotFoundError(
                    f"the process lock {name!r} no longer exists: the process that created it "
                    "closed it or exited"
                ) from None
            m = cls(segment, pthread)
            if m.header.magic != _MAGIC or m.header.kind != kind:
                raise ValueError(f"segment {name!r} does not hold a process lock of this kind")
            m.kind = kind
            _registry[name] = m
            return m

    @classmethod
    def closed(cls) -> _Mapping:
        """The stand-in of a closed handle: its hot-path calls raise :exc:`ValueError`."""
        m = cls.__new__(cls)
        m.trylock = m.unlock = _raise_closed
        m.ptr = None
        return m

    def holder_tid(self) -> int:
        return int(self.words.lock) & FUTEX_TID_MASK

    def held_here(self) -> bool:
        """Whether a live thread of this process holds the mutex."""
        tid = self.holder_tid()
        return tid != 0 and os.path.exists(f"/proc/self/task/{tid}")

    # -- the waiter fields, under the meta mutex --------------------------------------------

    def _meta_enter(self) -> None:
        rc = self.lock(self.meta)
        if rc == EOWNERDEAD:  # died inside a few lines of counting: the counts are still fine
            self.consistent(self.meta)
        elif rc:
            raise OSError(rc, f"pthread_mutex_lock: {os.strerror(rc)}")

    def contend(self, waiting: bool) -> int:
        """Count a contention and, if ``waiting``, a waiter; return its slot (-1: overflow)."""
        h = self.header
        self._meta_enter()
        try:
            h.contentions += 1
            if not waiting:
                return -1
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
                free = next((i for i in range(_WAITER_SLOTS) if not _alive(slots[i].pid)), -1)
            if free < 0:
                h.overflow_waiters += 1
                return -1
            slots[free].pid = _pid
            slots[free].count = 1
            return free
        finally:
            self.unlock(self.meta)

    def uncontend(self, slot: int) -> None:
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
            self.unlock(self.meta)

    def waiters_and_contentions(self) -> tuple[int, int]:
        h = self.header
        self._meta_enter()
        try:
            counts = [(s.pid, s.count) for s in h.slots if s.pid]
            overflow = h.overflow_waiters
            contentions = h.contentions
        finally:
            self.unlock(self.meta)
        return sum(count for pid, count in counts if _alive(pid)) + overflow, contentions

    def wait(self, wait: float | None) -> int:
        """Wait for the mutex for ``wait`` seconds (``None``: for ever), counting the wait.

        Returns:
            0 or ``EOWNERDEAD`` (locked), ``ETIMEDOUT`` or ``EBUSY`` (not locked).
        """
        slot = self.contend(waiting=wait != 0)
        if wait == 0:
            return EBUSY
        try:
            now = time.monotonic_ns()
            deadline = None if wait is None else now + int(wait * 1e9)
            while True:
                slice_end = time.monotonic_ns() + _SLICE_NS
                if deadline is not None and deadline <= slice_end:
                    return int(self.lock_until(self.ptr, deadline))
                rc = int(self.lock_until(self.ptr, slice_end))
                if rc != ETIMEDOUT:
                    return rc
        finally:
            self.uncontend(slot)


def _drop_handle(m: _Mapping, creator: bool) -> None:
    """Forget one handle of ``m``: the creator's unlinks the name, the last one unmaps."""
    with _registry_lock:
        m.handles -= 1
        last = m.handles == 0
        if last and _registry.get(m.name) is m:
            del _registry[m.name]
    if creator:
        m.segment.unlink()  # in the creating process only: a forked copy is no creator
    if last and m.held_here():
        # Unmapping would leave the holder's robust list pointing at unmapped memory.
        _pinned.append(m)
    # Otherwise the mapping goes with the last reference to ``m``: now, or when a call that is
    # still running (and holds ``m``) returns.


def _attach(kind: int, name: str) -> _ProcessLockBase:
    """Unpickle a process lock handle: map the segment ``name`` in this process."""
    cls = ProcessRLock if kind == _KIND_RLOCK else ProcessLock
    handle = cls.__new__(cls)
    handle._setup(_Mapping.attach(name, kind), creator=False)
    return handle


class _ProcessLockBase:
    """What both process locks share: the handle, the slow path and the read-only methods."""

    __slots__ = ("__weakref__", "_finalizer", "_m", "_name")
    _kind: ClassVar[int]
    _CLOSED: ClassVar[_Mapping] = _Mapping.closed()

    def __init__(self) -> None:
        self._setup(_Mapping.create(self._kind), creator=True)

    def _setup(self, m: _Mapping, *, creator: bool) -> None:
        self._m = m
        self._name = m.name
        self._finalizer = weakref.finalize(self, _drop_handle, m, creator)

    def _open(self) -> _Mapping:
        m = self._m
        if m is self._CLOSED:
            raise ValueError(f"{type(self).__qualname__} is closed")
        return m

    def close(self) -> None:
        """Release this process's mapping of the lock (idempotent).

        Closing the handle that created the lock also removes the shared-memory segment: the
        processes that have the lock keep using it, but no more handles can be unpickled. A
        handle that is garbage collected is closed by a finalizer, and the segment is removed
        when the creating process exits, however it exits.
        """
        self._m = self._CLOSED
        self._finalizer()

    def _acquire_slow(self, m: _Mapping, blocking: bool, timeout: float, rc: int) -> bool:
        """Acquire after a first try (already made when ``rc`` is not ``EBUSY``) did not."""
        wait = check_acquire_args(blocking, timeout)
        if wait is not None and wait > TIMEOUT_MAX:
            raise OverflowError("timeout value is too large")
        if rc == EBUSY:
            # Not tried yet (a timeout was given), or busy: try (again), then wait.
            rc = m.trylock(m.ptr)
        if rc == EBUSY:
            rc = m.wait(wait)
            if rc in (EBUSY, ETIMEDOUT):
                return False
        if rc == EOWNERDEAD:
            self._recover(m)
        elif rc:
            raise OSError(rc, f"pthread_mutex_lock: {os.strerror(rc)}")
        else:
            h = m.header
            h.owner_pid = _pid
            h.acquisitions += 1
        if self._m is not m:
            self._closed_while_acquiring(m)
        return True

    def _recover(self, m: _Mapping) -> None:
        """Take over a mutex whose holder died (we hold it, ``EOWNERDEAD``); then warn."""
        h = m.header
        dead_pid = h.owner_pid
        rc = m.consistent(m.ptr)
        if rc:  # pragma: no cover - only fails if we did not get EOWNERDEAD
            m.unlock(m.ptr)
            raise OSError(rc, f"pthread_mutex_consistent: {os.strerror(rc)}")
        h.owner_pid = _pid
        h.acquisitions += 1
        h.owner_deaths += 1
        holder = "a thread of this process" if dead_pid == _pid else f"process {dead_pid}"
        try:
            warnings.warn(
                LockOwnerDiedWarning(
                    f"{type(self).__qualname__} {self._name}: the previous holder "
                    f"({holder}) died or exited holding it; the caller now holds it. "
                    "The data it protects may be half-updated."
                ),
                stacklevel=4,  # warn <- _recover <- _acquire_slow <- acquire <- the caller
            )
        except BaseException:
            # Warnings turned into errors: do not leave the lock held by a caller that sees
            # an exception (a ``with`` block would never release it). The death is recovered.
            m.unlock(m.ptr)
            raise

    def _closed_while_acquiring(self, m: _Mapping) -> NoReturn:
        m.unlock(m.ptr)
        raise ValueError(f"{type(self).__qualname__} was closed while acquiring it")

    def locked(self) -> bool:
        """Return whether any thread of any process holds the lock now.

        Raises:
            ValueError: the handle is closed.
        """
        return self._open().holder_tid() != 0

    def _is_owned(self) -> bool:
        # The hook threading.Condition uses to check that its caller holds the lock.
        return self._open().holder_tid() == threading.get_native_id()

    def _recursion(self, m: _Mapping) -> int:
        return 1

    def statistics(self) -> LockStatistics:
        """Return a snapshot of the lock's state and counters, as seen by every process.

        Raises:
            ValueError: the handle is closed.
        """
        m = self._open()
        h = m.header
        waiters, contentions = m.waiters_and_contentions()
        tid = m.holder_tid()
        recursion = self._recursion(m) if tid else 0
        return LockStatistics(
            locked=tid != 0,
            owner_pid=h.owner_pid if tid else None,
            owner_thread=tid or None,
            recursion=recursion,
            waiters=waiters,
            acquisitions=h.acquisitions,
            contentions=contentions,
            owner_deaths_recovered=h.owner_deaths,
        )

    def _describe(self, m: _Mapping) -> str:
        tid = m.holder_tid()
        if not tid:
            return "unlocked"
        return f"locked owner={m.header.owner_pid}/{tid}"

    def __repr__(self) -> str:
        cls = type(self)
        m = self._m
        state = "closed" if m is self._CLOSED else self._describe(m)
        return f"<{cls.__module__}.{cls.__qualname__} {state} {self._name} at {id(self):#x}>"

    def __reduce__(self) -> tuple[Any, tuple[int, str]]:
        self._open()
        return _attach, (self._kind, self._name)


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

    Linux with glibc (x86_64 or aarch64) only: it is a robust process-shared pthread mutex in a
    shared-memory segment. On other platforms the constructor raises
    :exc:`NotImplementedError`.

    Example::

        lock = ProcessLock()
        with ProcessPool(2) as pool:
            pool.map(append_line, [lock] * 10, range(10))
        lock.close()
    """

    __slots__ = ()
    _kind = _KIND_LOCK

    def __init__(self) -> None:
        """Create a new lock, unlocked.

        Raises:
            NotImplementedError: the platform has no robust process-shared mutexes we support.
            OSError: the shared-memory segment could not be created.
        """
        super().__init__()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock, waiting for it if ``blocking`` and for up to ``timeout`` seconds.

        Like :meth:`threading.Lock.acquire`, a holder that acquires the lock again waits for
        it (for ever, without a timeout).

        Args:
            blocking: wait for the lock (``True``) or return at once (``False``).
            timeout: the most seconds to wait; ``-1`` waits for as long as it takes. Only with
                ``blocking=True``.

        Returns:
            Whether the lock was acquired.

        Raises:
            ValueError: a timeout with ``blocking=False``, a negative timeout other than -1, or
                the handle is closed.
            OverflowError: a timeout above :data:`threading.TIMEOUT_MAX`.
        """
        m = self._m
        if timeout != -1:
            return self._acquire_slow(m, blocking, timeout, EBUSY)
        rc = m.trylock(m.ptr)  # the hot path: the stdlib's default timeout, the lock free
        if rc:
            return self._acquire_slow(m, blocking, timeout, rc)
        h = m.header
        h.owner_pid = _pid
        h.acquisitions += 1
        if self._m is not m:
            self._closed_while_acquiring(m)
        return True

    __enter__ = acquire

    def release(self) -> None:
        """Release the lock, which the calling thread must hold.

        Raises:
            RuntimeError: the lock is not held, or is held by another thread or process.
            ValueError: the handle is closed.
        """
        m = self._m
        rc = m.unlock(m.ptr)
        if rc:
            self._release_failed(m, rc)

    def _release_failed(self, m: _Mapping, rc: int) -> NoReturn:
        if rc != EPERM:  # pragma: no cover - robust mutexes fail an unlock with EPERM only
            raise OSError(rc, f"pthread_mutex_unlock: {os.strerror(rc)}")
        if not m.holder_tid():
            raise RuntimeError("release unlocked lock")
        raise RuntimeError("cannot release a lock held by another thread or process")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Release the lock at the end of a ``with`` block."""
        m = self._m
        rc = m.unlock(m.ptr)
        if rc:
            self._release_failed(m, rc)


class ProcessRLock(_ProcessLockBase):
    """A re-entrant lock shared by processes, that survives the death of its holder.

    Same methods, signatures and results as :class:`threading.RLock` and
    :obj:`multiprocessing.RLock`: the holding thread may acquire it again and must release it
    as many times; releasing it from a thread that does not hold it raises
    :exc:`RuntimeError`. Ownership is per thread, as in :mod:`threading`: another thread of
    the holding process waits like any other process. :meth:`locked` tells whether *any*
    thread holds it.

    Everything else is as for :class:`ProcessLock`: a picklable handle, recovery from a dead
    holder with :class:`~concurrency_kit.LockOwnerDiedWarning` (the new holder holds it once,
    whatever the depth of the dead one), :meth:`close`, Linux with glibc only.

    Example::

        lock = ProcessRLock()
        with lock:
            with lock:  # the holder may enter again
                ...
        lock.close()
    """

    __slots__ = ()
    _kind = _KIND_RLOCK

    def __init__(self) -> None:
        """Create a new re-entrant lock, unlocked.

        Raises:
            NotImplementedError: the platform has no robust process-shared mutexes we support.
            OSError: the shared-memory segment could not be created.
        """
        super().__init__()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock, or acquire it once more if the calling thread holds it already.

        Args:
            blocking: wait for the lock (``True``) or return at once (``False``).
            timeout: the most seconds to wait; ``-1`` waits for as long as it takes. Only with
                ``blocking=True``.

        Returns:
            Whether the lock was acquired.

        Raises:
            ValueError: a timeout with ``blocking=False``, a negative timeout other than -1, or
                the handle is closed.
            OverflowError: a timeout above :data:`threading.TIMEOUT_MAX`.
        """
        m = self._m
        if timeout != -1:
            return self._acquire_slow(m, blocking, timeout, EBUSY)
        rc = m.trylock(m.ptr)  # the hot path: the stdlib's default timeout, the lock free
        if rc:
            return self._acquire_slow(m, blocking, timeout, rc)
        h = m.header
        h.owner_pid = _pid
        h.acquisitions += 1
        if self._m is not m:
            self._closed_while_acquiring(m)
        return True

    __enter__ = acquire

    def release(self) -> None:
        """Release the lock once; the holder's last release makes it free.

        Raises:
            RuntimeError: the calling thread does not hold the lock.
            ValueError: the handle is closed.
        """
        m = self._m
        rc = m.unlock(m.ptr)
        if rc:
            self._release_failed(rc)

    def _release_failed(self, rc: int) -> NoReturn:
        if rc != EPERM:  # pragma: no cover - robust mutexes fail an unlock with EPERM only
            raise OSError(rc, f"pthread_mutex_unlock: {os.strerror(rc)}")
        raise RuntimeError("cannot release un-acquired lock")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Release the lock once at the end of a ``with`` block."""
        m = self._m
        rc = m.unlock(m.ptr)
        if rc:
            self._release_failed(rc)

    def _recursion(self, m: _Mapping) -> int:
        return int(m.words.count)

    def _describe(self, m: _Mapping) -> str:
        text = super()._describe(m)
        return text if text == "unlocked" else f"{text} count={m.words.count}"

    # The hooks threading.Condition uses with a re-entrant lock: wait() drops every level of
    # recursion and restores them all once it has the lock again.
    def _release_save(self) -> int:
        m = self._open()
        if m.holder_tid() != threading.get_native_id():
            raise RuntimeError("cannot release un-acquired lock")
        count = int(m.words.count)
        for _ in range(count):
            m.unlock(m.ptr)
        return count

    def _acquire_restore(self, count: int) -> None:
        self.acquire()
        m = self._m
        for _ in range(count - 1):
            m.trylock(m.ptr)  # re-entry by the holder: cannot fail short of 2**32 levels

"""Monitors: the one waiting machinery every primitive but the plain locks is built on.

A monitor is a mutex plus queues of sleeping callers, the shape of :class:`threading.Condition`
split into steps, so the algorithms in ``sync/_algorithms.py`` can be written once for both models::

    enter() ─ check / update the primitive's state ─ exit()
                 │ must wait
                 v
    ticket = prepare(queue)      (inside: joins the queue; FIFO within a queue)
    exit() ── sleep(ticket, deadline) ── enter()     (outside: the state may change meanwhile)
    finish(ticket) -> woken?     (inside: leaves the queue if still on it)

    wake(n, queue) / wake_all(queue)   (inside: the n longest-waiting callers of the queue)

``ThreadMonitor``: a ``_thread.lock`` and a deque of per-waiter locks per queue, exactly the
design of :class:`threading.Condition`, which needs no GIL for correctness.

``ProcessMonitor``: a shared-memory segment (``_core/shm.py``) holding a robust process-shared
mutex (``_core/mutex.py``), the primitive's state, and a table of waiter slots::

    offset   size          field
    0        64            mutex      robust pthread mutex guarding everything below
    64       64            header     magic, kind, waiting, high-water slot, next ticket,
                                      mutex owner deaths recovered
    128      state size    state      the primitive's ctypes structure (``sync/_algorithms.py``)
    ...      24 x WAITERS  slots      word (FREE/WAITING/SIGNALLED, a futex), queue, pid, tid,
                                      ticket

A sleeper waits on its own slot's word with a futex, so a wake-up goes to exactly the callers
chosen (no thundering herd) in any process. Sleeps are cut into slices of
:data:`SLICE_SECONDS`: between slices the primitive may look for dead owners (``repair``) and
signal handlers run.

Dead processes: a waiter that dies leaves its slot WAITING. :meth:`ProcessMonitor.wake` learns
from the futex call how many threads it actually woke; when that is none, the sleeper is either
between two slices (it will see SIGNALLED) or dead, and only then is its liveness checked, so a
wake-up is never given to a dead waiter and lost. The dead sleeper's slot is marked DEAD for
the primitive's ``repair`` to account for (:meth:`ProcessMonitor.dead_waiters`). A process
that dies *inside* the mutex (a few lines of bookkeeping) makes the next caller get
``EOWNERDEAD``; it takes the mutex over and counts it.

Awaiting tasks (``prepare_async``): a task joins a queue like a thread, with a *waker*
(``_core/aio.py``) in place of a sleep. In a thread monitor a wake-up calls the waker. In a
process monitor the task's slot is marked, and a wake-up that signals it also rings the
header's *bell* (a futex word); one thread per monitor and process, the :class:`_Bell`, sleeps
on it while tasks of its process wait, and calls their wakers: no thread per waiting task.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from _thread import allocate_lock
from collections import deque
from collections.abc import Callable
from threading import get_native_id
from typing import Any, ClassVar, Protocol, TypeVar

from concurrency_kit._core import mutex, shm
from concurrency_kit._core._native import futex_wait, futex_wake
from concurrency_kit._core.deadline import remaining, wait_slice
from concurrency_kit._core.liveness import thread_alive
from concurrency_kit._core.mutex import EOWNERDEAD

__all__ = [
    "SLICE_SECONDS",
    "SLOTS",
    "WAITERS",
    "Monitor",
    "ProcessMonitor",
    "ThreadMonitor",
]

SLICE_SECONDS = 0.05
"""How long a process sleeper sleeps before checking for dead owners and pending signals."""

SLOTS = 128
"""The size of the per-thread tables beside a monitor: the threads (of all processes) that may
hold a ProcessRWLock's read side at once, the rendezvous sends that may wait on one
ProcessChannel."""

WAITERS = 1024
"""How many threads and awaiting tasks (of all processes) may wait on one process primitive at
the same time. The slot table is sized for them, but only the slots ever used are touched, so
the memory a segment really takes grows with the most that have waited at once."""

_FREE = 0
_WAITING = 1
_SIGNALLED = 2
_DEAD = 3  # a wake-up found its sleeper dead: left for the primitive's repair to account for
_MAGIC = 0x4D4B4342  # "BCKM"
_ASYNC = 0x10000  # in a slot's queue field: the sleeper is an awaiting task (see _Bell)
_QUEUE = 0xFFFF
_STATE_OFFSET = 128

StateT = TypeVar("StateT", bound=ctypes.Structure)


class Monitor(Protocol):
    """What the algorithms of ``sync/_algorithms.py`` need from a model (module docstring)."""

    @property
    def enter(self) -> Callable[[], object]: ...
    @property
    def exit(self) -> Callable[[], object]: ...
    def prepare(self, queue: int = 0) -> Any: ...
    def prepare_async(self, queue: int, waker: Any) -> Any: ...
    def signalled(self, ticket: Any) -> bool: ...
    def sleep(self, ticket: Any, deadline: float | None) -> bool: ...
    def finish(self, ticket: Any) -> bool: ...
    def wake(self, n: int, queue: int = 0) -> int: ...
    def wake_all(self, queue: int = 0) -> None: ...
    def waiters(self, queue: int | None = None) -> int: ...

    slice_seconds: ClassVar[float | None]  # how long an awaiting task sleeps between repairs

    def dead_waiters(self, queue: int) -> tuple[int, int]: ...
    def has_dead(self) -> bool: ...


class _AsyncWaiter:
    """An awaiting task in a thread monitor's queue: waking it is calling its waker."""

    __slots__ = ("_wake", "woken")

    def __init__(self, waker: Any) -> None:
        self._wake = waker.wake
        self.woken = False

    def release(self) -> None:  # what wake() calls on a queued waiter; never blocks
        self.woken = True
        self._wake()


class ThreadMonitor:
    """The thread model's monitor: a lock and FIFO queues of one-shot locks."""

    __slots__ = ("_queues", "enter", "exit", "mutex")
    slice_seconds: ClassVar[float | None] = None  # an awaiting task sleeps until woken

    def __init__(self, queues: int = 1) -> None:
        self.mutex = allocate_lock()
        self.enter = self.mutex.acquire
        self.exit = self.mutex.release
        self._queues: tuple[deque[Any], ...] = tuple(deque() for _ in range(queues))

    def prepare(self, queue: int = 0) -> Any:
        waiter = allocate_lock()
        waiter.acquire()
        self._queues[queue].append(waiter)
        return queue, waiter

    def prepare_async(self, queue: int, waker: Any) -> Any:
        """:meth:`prepare` for an awaiting task: a wake-up calls ``waker.wake()``."""
        waiter = _AsyncWaiter(waker)
        self._queues[queue].append(waiter)
        return queue, waiter

    def signalled(self, ticket: Any) -> bool:
        """Whether the awaiting task of ``ticket`` (:meth:`prepare_async`) was woken."""
        return bool(ticket[1].woken)

    def sleep(self, ticket: Any, deadline: float | None) -> bool:
        # One bounded slice (wait_slice): a caller waiting longer, or for ever, loops.
        _, waiter = ticket
        return bool(waiter.acquire(True, wait_slice(remaining(deadline))))

    def finish(self, ticket: Any) -> bool:
        queue, waiter = ticket
        try:
            self._queues[queue].remove(waiter)
        except ValueError:  # a waker took it off the queue: it was woken
            return True
        return False

    def wake(self, n: int, queue: int = 0) -> int:
        waiting = self._queues[queue]
        woken = 0
        while waiting and woken < n:
            waiting.popleft().release()
            woken += 1
        return woken

    def wake_all(self, queue: int = 0) -> None:
        waiting = self._queues[queue]
        while waiting:
            waiting.popleft().release()

    def waiters(self, queue: int | None = None) -> int:
        if queue is not None:
            return len(self._queues[queue])
        return sum(len(q) for q in self._queues)

    def dead_waiters(self, queue: int) -> tuple[int, int]:
        return 0, 0  # a thread cannot die while it waits

    def has_dead(self) -> bool:
        return False


class _Slot(ctypes.Structure):
    _fields_ = (
        ("word", ctypes.c_uint32),  # the futex: FREE, WAITING or SIGNALLED
        ("queue", ctypes.c_int32),
        ("pid", ctypes.c_int32),
        ("tid", ctypes.c_int32),
        ("ticket", ctypes.c_uint64),
    )


class _Header(ctypes.Structure):
    _fields_ = (
        ("magic", ctypes.c_uint32),
        ("kind", ctypes.c_uint32),
        ("waiting", ctypes.c_int32),  # slots WAITING now (dead sleepers included until found)
        ("high", ctypes.c_int32),  # slots [high, WAITERS) have never been used
        ("next_ticket", ctypes.c_uint64),
        ("mutex_recoveries", ctypes.c_uint64),
        ("dead", ctypes.c_int64),  # slots marked DEAD by a wake-up, not yet accounted for
        ("bell", ctypes.c_uint32),  # a futex: bumped when an awaiting task's slot is signalled
    )


def _round_up(n: int) -> int:
    return (n + 63) // 64 * 64


class ProcessMonitor:
    """The process model's monitor: one shared-memory segment (see the module docstring).

    Attributes:
        segment: the mapped segment; its name is how another process attaches.
        state: the primitive's state, a ctypes structure in the segment.
        kind: which primitive the segment belongs to (checked on attach).
    """

    __slots__ = ("_bell", "_header", "_mutex", "_slots", "kind", "segment", "state")
    slice_seconds: ClassVar[float | None] = SLICE_SECONDS
    _sizes: ClassVar[dict[type[ctypes.Structure], int]] = {}

    def __init__(self, segment: shm.Segment, kind: int, state_type: type[ctypes.Structure]):
        self.segment = segment
        self.kind = kind
        buffer = segment.buffer
        self._mutex = segment.address  # the mutex is the segment's first field
        self._header = _Header.from_buffer(buffer, 64)
        self.state: Any = state_type.from_buffer(buffer, _STATE_OFFSET)
        slots_offset = _STATE_OFFSET + _round_up(ctypes.sizeof(state_type))
        self._slots = (_Slot * WAITERS).from_buffer(buffer, slots_offset)
        self._bell: _Bell | None = None

    @staticmethod
    def size(state_type: type[ctypes.Structure]) -> int:
        """The segment size for a primitive whose state is ``state_type``."""
        return _STATE_OFFSET + _round_up(ctypes.sizeof(state_type)) + ctypes.sizeof(_Slot) * WAITERS

    @classmethod
    def create(cls, kind: int, state_type: type[ctypes.Structure]) -> ProcessMonitor:
        """Create a segment for a new primitive; the caller fills in :attr:`state`.

        Raises:
            OSError: the segment could not be created.
        """
        segment = shm.create(cls.size(state_type))
        try:
            monitor = cls(segment, kind, state_type)
            mutex.init(monitor._mutex, recursive=False)
            monitor._header.kind = kind
            monitor._header.magic = _MAGIC
        except BaseException:
            segment.unlink()
            raise
        return monitor

    @classmethod
    def attach(cls, name: str, kind: int, state_type: type[ctypes.Structure]) -> ProcessMonitor:
        """Map the segment of an existing primitive of ``kind``.

        Raises:
            FileNotFoundError: its creator closed it or exited.
            ValueError: the segment holds another kind of primitive.
        """
        try:
            segment = shm.attach(name, cls.size(state_type))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"the process primitive {name!r} no longer exists: the process that created "
                "it closed it or exited"
            ) from None
        monitor = cls(segment, kind, state_type)
        if monitor._header.magic != _MAGIC or monitor._header.kind != kind:
            raise ValueError(f"segment {name!r} does not hold a primitive of this kind")
        return monitor

    @property
    def mutex_recoveries(self) -> int:
        """Times a process died inside the monitor's mutex and a later caller took over."""
        return int(self._header.mutex_recoveries)

    def enter(self) -> None:
        address = self._mutex
        rc = mutex.trylock(address)
        if rc:
            rc = rc if rc == EOWNERDEAD else mutex.acquire(address, None)
            if rc == EOWNERDEAD:
                # Its holder died inside a few lines of bookkeeping: the primitive's repair
                # (and the counters' readers) account for it.
                self._header.mutex_recoveries += 1
                mutex.consistent(address)

    def exit(self) -> None:
        mutex.unlock(self._mutex)

    def prepare(self, queue: int = 0) -> Any:
        h = self._header
        slots = self._slots
        index = -1
        for i in range(h.high):
            if slots[i].word == _FREE:
                index = i
                break
        if index < 0:
            if h.high < WAITERS:
                index = h.high
                h.high += 1
            elif sum(self.dead_waiters(None)):
                return self.prepare(queue)
            else:
                raise RuntimeError(
                    f"more than {WAITERS} threads and tasks are waiting on one process primitive "
                    "at once"
                )
        slot = slots[index]
        slot.queue = queue
        slot.pid = os.getpid()
        slot.tid = get_native_id()
        slot.ticket = h.next_ticket
        h.next_ticket += 1
        slot.word = _WAITING
        h.waiting += 1
        return slot

    def prepare_async(self, queue: int, waker: Any) -> Any:
        """:meth:`prepare` for an awaiting task: its slot is marked, and this process's
        :class:`_Bell` calls ``waker.wake()`` once a wake-up signals it."""
        slot = self.prepare(queue)
        slot.queue = queue | _ASYNC
        bell = self._bell
        if bell is None:
            bell = self._bell = _Bell(self._header)
        bell.add(slot, waker)
        return slot

    def signalled(self, ticket: Any) -> bool:
        """Whether the awaiting task of ``ticket`` (:meth:`prepare_async`) was woken."""
        return bool(ticket.word != _WAITING)

    def sleep(self, ticket: Any, deadline: float | None) -> bool:
        slot = ticket
        now = time.monotonic()
        end = now + SLICE_SECONDS
        if deadline is not None and deadline < end:
            end = deadline
        if slot.word == _WAITING and end > now:
            futex_wait(ctypes.addressof(slot), _WAITING, int(end * 1e9))
        return bool(slot.word == _SIGNALLED)

    def finish(self, ticket: Any) -> bool:
        slot = ticket
        word = slot.word
        if word == _WAITING:
            self._header.waiting -= 1
        if slot.queue & _ASYNC and self._bell is not None:
            self._bell.remove(slot)
        slot.word = _FREE
        return bool(word == _SIGNALLED)

    def wait(self, queue: int, deadline: float | None) -> bool:
        """Inside the monitor: join ``queue``, sleep one slice at most, retake the monitor.

        :meth:`prepare`, :meth:`exit`, :meth:`sleep`, :meth:`enter` and :meth:`finish` in one
        call, for callers that re-check their condition after every slice anyway. Returns
        whether this caller was woken.
        """
        ticket = self.prepare(queue)
        self.exit()
        try:
            self.sleep(ticket, deadline)
        finally:
            self.enter()
            woken = self.finish(ticket)
        return woken

    def _queued(self, queue: int) -> list[_Slot]:
        slots = self._slots
        waiting = [
            s
            for s in slots[: self._header.high]
            if s.word == _WAITING and s.queue & _QUEUE == queue
        ]
        waiting.sort(key=lambda s: s.ticket)
        return waiting

    def wake(self, n: int, queue: int = 0) -> int:
        if self._header.waiting == 0 or n <= 0:
            return 0
        woken = 0
        ring = False
        for slot in self._queued(queue):
            if woken == n:
                break
            if self._signal(slot):
                woken += 1
                ring = ring or bool(slot.queue & _ASYNC)
        if ring:
            self._ring()
        return woken

    def wake_all(self, queue: int = 0) -> None:
        if self._header.waiting:
            ring = False
            for slot in self._queued(queue):
                if self._signal(slot):
                    ring = ring or bool(slot.queue & _ASYNC)
            if ring:
                self._ring()

    def _ring(self) -> None:
        """Tell the bells of every process that one of their awaiting tasks was signalled."""
        h = self._header
        h.bell = (h.bell + 1) & 0xFFFFFFFF
        futex_wake(ctypes.addressof(h) + _Header.bell.offset, 0x7FFFFFFF)

    def _signal(self, slot: _Slot) -> bool:
        """Signal one WAITING slot; return ``False`` if its sleeper is dead.

        A dead sleeper's slot is marked DEAD, not freed: the primitive may count its waiters
        (an RWLock's waiting writers hold readers back), and its ``repair`` learns of the
        death from :meth:`dead_waiters`.
        """
        slot.word = _SIGNALLED
        self._header.waiting -= 1
        if futex_wake(ctypes.addressof(slot), 1) == 0 and not thread_alive(slot.pid, slot.tid):
            slot.word = _DEAD
            self._header.dead += 1
            return False
        return True

    def has_dead(self) -> bool:
        """Whether a wake-up found dead sleepers that :meth:`dead_waiters` has not collected."""
        return bool(self._header.dead)

    def waiters(self, queue: int | None = None) -> int:
        return sum(
            1
            for s in self._slots[: self._header.high]
            if s.word == _WAITING and (queue is None or s.queue & _QUEUE == queue)
        )

    def occupied(self, queue: int) -> int:
        """How many slots of ``queue`` are taken: sleepers, and woken callers that have not
        finished yet (dead ones too, until :meth:`dead_waiters` collects them)."""
        return sum(
            1
            for s in self._slots[: self._header.high]
            if s.word != _FREE and s.queue & _QUEUE == queue
        )

    def dead_waiters(self, queue: int | None) -> tuple[int, int]:
        """Free the slots of the sleepers of ``queue`` (``None``: all) that died.

        Returns:
            How many died waiting, and how many died after being woken but before
            :meth:`finish` (so what they were woken for was not done).
        """
        waiting = woken = 0
        for slot in self._slots[: self._header.high]:
            word = slot.word
            if word == _FREE or (queue is not None and slot.queue & _QUEUE != queue):
                continue
            if word == _DEAD:
                waiting += 1
                self._header.dead -= 1
                slot.word = _FREE
            elif not thread_alive(slot.pid, slot.tid):
                if word == _WAITING:
                    self._header.waiting -= 1
                    waiting += 1
                else:
                    woken += 1
                slot.word = _FREE
        return waiting, woken


def _daemon_allowed() -> bool:
    return True


# A subinterpreter made by ``concurrent.interpreters.create()`` refuses daemon threads
# (RuntimeError at start()). There the bell is an ordinary thread: it ends within a slice of
# its last task leaving, so closing the interpreter, which joins such threads, does not wait.
_DAEMON_ALLOWED: Callable[[], bool] = getattr(threading, "_daemon_threads_allowed", _daemon_allowed)


class _Bell:
    """What wakes this process's tasks awaiting one process monitor: one thread, not one per
    task.

    An event loop cannot wait on a futex, so a task awaiting a process primitive takes a slot
    marked ``_ASYNC`` and registers its waker here. A wake-up that signals such a slot (in any
    process) also bumps the header's ``bell`` word and wakes its futex; this process's bell
    thread, asleep on that word, then calls the waker of every registered slot that is no longer
    WAITING. The thread runs only while tasks of this process await the monitor (it ends within
    a slice of the last one leaving) and is started again by the next one, also in a forked
    child, which inherits no threads.
    """

    __slots__ = ("_address", "_header", "_lock", "_pid", "_running", "_waiting")

    def __init__(self, header: _Header) -> None:
        self._header = header  # keeps the segment mapped while the thread runs
        self._address = ctypes.addressof(header) + _Header.bell.offset
        self._lock = allocate_lock()
        self._waiting: dict[int, tuple[_Slot, Any]] = {}
        self._pid = os.getpid()
        self._running = False

    def add(self, slot: _Slot, waker: Any) -> None:
        if self._pid != os.getpid():  # a forked child: the parent's tasks and thread are gone
            self._lock = allocate_lock()  # (the thread may have held it at the fork)
            self._pid = os.getpid()
            self._waiting.clear()
            self._running = False
        with self._lock:
            self._waiting[ctypes.addressof(slot)] = (slot, waker)
            if not self._running:
                self._running = True
                threading.Thread(
                    target=self._run, name="concurrency_kit bell", daemon=_DAEMON_ALLOWED()
                ).start()

    def remove(self, slot: _Slot) -> None:
        with self._lock:
            self._waiting.pop(ctypes.addressof(slot), None)

    def _run(self) -> None:
        header = self._header
        while True:
            seen = header.bell  # read before looking: a ring after the look changes it
            with self._lock:
                if not self._waiting:
                    self._running = False
                    return
                signalled = [
                    key for key, (slot, _) in self._waiting.items() if slot.word != _WAITING
                ]
                wakers = [self._waiting.pop(key)[1] for key in signalled]
            for waker in wakers:
                waker.wake()
            futex_wait(self._address, seen, int((time.monotonic() + SLICE_SECONDS) * 1e9))

"""The one exception hierarchy of concurrency_kit.

Every error the library raises on purpose derives from :class:`ConcurrencyKitError`, and also
from the standard-library class whose meaning it shares, so that code written against the stdlib
keeps working: a task timeout is a :class:`TimeoutError`, a broken pool is a
:class:`concurrent.futures.BrokenExecutor`, a value that cannot cross a process boundary is a
:class:`pickle.PickleError`.
"""

from __future__ import annotations

import pickle
import queue
import signal as _signal
import threading
from concurrent.futures import BrokenExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concurrency_kit.supervision import SupervisorEvent

__all__ = [
    "BrokenBarrierError",
    "BrokenPoolError",
    "ChannelClosed",
    "ChannelEmpty",
    "ChannelFull",
    "ChannelTimeout",
    "ConcurrencyKitError",
    "ConcurrencyKitWarning",
    "LockOrderError",
    "LockOwnerDiedWarning",
    "LockTimeoutError",
    "PoisonedError",
    "RemoteTraceback",
    "SerializationError",
    "SharedMemoryCorruptError",
    "SharedMemoryFullError",
    "SupervisorEventsLost",
    "SupervisorGaveUp",
    "TaskTimeoutError",
    "UntrustedSegmentError",
    "WorkerCrashedError",
    "WorkerMemoryError",
    "WouldBlock",
]


class ConcurrencyKitError(Exception):
    """Base class of every error raised by concurrency_kit."""


class TaskTimeoutError(ConcurrencyKitError, TimeoutError):
    """A task ran longer than the timeout it was scheduled with.

    In the process model the worker that ran the task was killed and replaced; in the thread
    model the thread could not be killed, so it was abandoned and replaced (see the pools guide).
    """


class WorkerCrashedError(ConcurrencyKitError):
    """The worker running a task died before the task finished.

    Only the task that was running fails with this error; the pool replaces the worker and
    carries on.

    Attributes:
        exitcode: the worker's exit code as :attr:`multiprocessing.Process.exitcode` reports it
            (negative for a signal), or ``None`` when it is not known.
        signal: the number of the signal that killed the worker, or ``None``.
        pid: the process id of the worker, or ``None`` when it is not known.
    """

    def __init__(
        self,
        message: str,
        *,
        exitcode: int | None = None,
        signal: int | None = None,
        pid: int | None = None,
    ) -> None:
        super().__init__(message)
        self.exitcode = exitcode
        self.signal = signal
        self.pid = pid

    @classmethod
    def from_exitcode(cls, exitcode: int | None, pid: int | None, what: str) -> WorkerCrashedError:
        """Build the error for a worker that exited with ``exitcode`` while doing ``what``."""
        if exitcode is not None and exitcode < 0:
            signum = -exitcode
            try:
                name = _signal.Signals(signum).name
            except ValueError:
                name = f"signal {signum}"
            reason = f"was killed by {name}"
            return cls(
                f"worker {pid} {reason} while {what}", exitcode=exitcode, signal=signum, pid=pid
            )
        reason = "vanished" if exitcode is None else f"exited with code {exitcode}"
        return cls(f"worker {pid} {reason} while {what}", exitcode=exitcode, pid=pid)

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_worker_crashed,
            (str(self), self.exitcode, self.signal, self.pid),
        )


def _rebuild_worker_crashed(
    message: str, exitcode: int | None, signal: int | None, pid: int | None
) -> WorkerCrashedError:
    return WorkerCrashedError(message, exitcode=exitcode, signal=signal, pid=pid)


class WorkerMemoryError(WorkerCrashedError, MemoryError):
    """A task's worker was killed because its memory passed the pool's limit while it ran.

    Raised on the task that was running when a :class:`~concurrency_kit.ProcessPool` worker's
    resident memory went above ``max_memory_per_worker``; the pool replaces the worker and
    carries on. A :class:`WorkerCrashedError` (the worker died) and a :class:`MemoryError`.

    Attributes:
        limit: the pool's ``max_memory_per_worker``, in bytes.
        rss: the worker's resident memory when it was seen over the limit, in bytes.
    """

    def __init__(
        self,
        message: str,
        *,
        limit: int,
        rss: int,
        exitcode: int | None = None,
        signal: int | None = None,
        pid: int | None = None,
    ) -> None:
        super().__init__(message, exitcode=exitcode, signal=signal, pid=pid)
        self.limit = limit
        self.rss = rss

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_worker_memory,
            (str(self), self.limit, self.rss, self.exitcode, self.signal, self.pid),
        )


def _rebuild_worker_memory(
    message: str,
    limit: int,
    rss: int,
    exitcode: int | None,
    signal: int | None,
    pid: int | None,
) -> WorkerMemoryError:
    return WorkerMemoryError(
        message, limit=limit, rss=rss, exitcode=exitcode, signal=signal, pid=pid
    )


class BrokenPoolError(ConcurrencyKitError, BrokenExecutor):
    """A pool can no longer run tasks: its workers cannot start.

    Raised on the pending futures and on later submissions when the pool's ``initializer``
    fails; the initializer's own exception is chained as ``__cause__``.
    """

    def fresh(self) -> BrokenPoolError:
        """A new error with the same message and cause, to raise once more.

        Each future and each refused call gets its own instance, so that their tracebacks do
        not pile up on one shared exception object.
        """
        error = BrokenPoolError(str(self))
        error.__cause__ = self.__cause__
        return error


class SerializationError(ConcurrencyKitError, pickle.PickleError):
    """A value could not be pickled or unpickled to cross a process boundary.

    The message names the value and what failed; the original error is chained as
    ``__cause__``.
    """


class RemoteTraceback(Exception):
    """Carries the traceback text of an exception raised in another process.

    It is attached as ``__cause__`` of the re-raised exception, so the worker's stack is printed
    below the caller's.
    """

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


class UntrustedSegmentError(ConcurrencyKitError, PermissionError):
    """A shared-memory segment was refused: not a private file of this process's user.

    Raised when a process-side handle is unpickled (or attached) and the file under its name in
    ``/dev/shm`` is a symbolic link, not a regular file, owned by another user, or readable or
    writable by anyone but its owner. ``/dev/shm`` names are visible to every local user; what
    the library reads from a segment it unpickles, so it maps only segments it could have
    created. The message names the segment and what was wrong. A
    :class:`~concurrency_kit.ProcessChannel` handle whose creator's pipe belongs to another user
    (its pid reused) is refused the same way.
    """


class LockTimeoutError(ConcurrencyKitError, TimeoutError):
    """A lock was not acquired within the timeout given to a context manager.

    ``acquire(timeout=...)`` methods return ``False`` on a timeout, as in :mod:`threading`;
    the context managers that take a timeout (``RWLock.read()``, ``RWLock.write()``,
    ``Guarded.lock()``) cannot return a value, so they raise this.
    """


class BrokenBarrierError(ConcurrencyKitError, threading.BrokenBarrierError):
    """A barrier was aborted, reset or broken while a party was waiting on it.

    A :class:`threading.BrokenBarrierError`, so code written for :class:`threading.Barrier`
    catches it unchanged. A process barrier also breaks when a party dies while waiting.
    """


class PoisonedError(ConcurrencyKitError):
    """A guarded value was left poisoned: a block that held its lock raised or died.

    The value may be half-updated. It is still available as :attr:`value`; call
    ``clear_poison()`` on the guarded value once it has been checked or repaired.

    Attributes:
        value: the guarded value as the failed block left it.
    """

    def __init__(self, message: str, value: Any) -> None:
        super().__init__(message)
        self.value = value

    def __reduce__(self) -> tuple[object, ...]:
        return (PoisonedError, (str(self), self.value))


class LockOrderError(ConcurrencyKitError, RuntimeError):
    """Two locks were taken in the opposite order of an earlier acquisition.

    Raised by the lock-order checker (off by default) before the acquire that could
    deadlock; the message names both call sites.
    """


class ChannelClosed(ConcurrencyKitError):
    """The channel is closed: no more sends, and (for receives) every item has been taken.

    ``send`` raises it as soon as the channel is closed; ``recv`` only once the items sent
    before ``close()`` have all been received, so closing never loses an item.
    """


class WouldBlock(ConcurrencyKitError):
    """A ``*_nowait`` call could not complete without waiting."""


class ChannelFull(WouldBlock, queue.Full):
    """``send_nowait`` found the channel full (for a rendezvous channel: no receiver waiting).

    A :class:`queue.Full`, so code written for :mod:`queue` catches it unchanged.
    """


class ChannelEmpty(WouldBlock, queue.Empty):
    """``recv_nowait`` found no item. A :class:`queue.Empty`, as for :mod:`queue`."""


class ChannelTimeout(ConcurrencyKitError, TimeoutError):
    """A blocking channel call did not complete within its timeout.

    Attributes:
        sent: for ``send_many``, how many of the items were sent before the timeout (the rest
            were not); 0 for every other call.
    """

    def __init__(self, message: str, sent: int = 0) -> None:
        super().__init__(message)
        self.sent = sent

    def __reduce__(self) -> tuple[object, ...]:
        return (ChannelTimeout, (str(self), self.sent))


class SharedMemoryFullError(ConcurrencyKitError, MemoryError):
    """A shared-memory container cannot grow: ``/dev/shm`` is full, or its reservation is.

    Raised by a :class:`~concurrency_kit.ProcessSharedDict` that needs more room than
    ``/dev/shm`` (or the size it was created with) allows. Nothing was changed: the operation
    that needed the room is refused whole.
    """


class SharedMemoryCorruptError(ConcurrencyKitError, RuntimeError):
    """Bytes read from shared memory fail a check: a length, offset or count is out of place.

    Every value read from a process container's or a process channel's shared memory is
    checked before it is used. Nothing this library writes can fail a check, a crash included:
    something else wrote into the segment (another process of the same user, or damaged
    memory). The operation is refused before it reads or writes out of place; the object should
    be recreated.
    """


class SupervisorGaveUp(ConcurrencyKitError):
    """A supervisor exceeded its restart intensity, stopped its children and gave up.

    Attributes:
        history: every event of the supervisor's life, oldest first (the crashes that made
            it give up are at the end).
    """

    def __init__(self, message: str, history: tuple[SupervisorEvent, ...] = ()) -> None:
        super().__init__(message)
        self.history = history

    def __reduce__(self) -> tuple[Any, ...]:
        return (SupervisorGaveUp, (str(self), self.history))


class SupervisorEventsLost(ConcurrencyKitError):
    """An ``aevents()`` consumer fell too far behind: its oldest unread events were dropped.

    Raised once, by the step of the iteration where the gap is; iterating again goes on with
    the oldest event kept. The supervisor never waits for a slow consumer (see
    :meth:`~concurrency_kit.ProcessSupervisor.aevents`).

    Attributes:
        count: how many events were dropped.
    """

    def __init__(self, message: str, count: int = 0) -> None:
        super().__init__(message)
        self.count = count

    def __reduce__(self) -> tuple[Any, ...]:
        return (SupervisorEventsLost, (str(self), self.count))


class ConcurrencyKitWarning(UserWarning):
    """Base class of every warning concurrency_kit issues."""


class LockOwnerDiedWarning(ConcurrencyKitWarning):
    """A process died holding a process lock; the caller has just taken the lock over.

    The data the lock protected may be half-updated: check it before trusting it.
    """

"""What both models' primitives share: argument checks and the statistics values."""

from __future__ import annotations

import attrs

from concurrency_kit._core.deadline import check_timeout

__all__ = [
    "BarrierStatistics",
    "ConditionStatistics",
    "EventStatistics",
    "GuardedStatistics",
    "LockStatistics",
    "RWLockStatistics",
    "SemaphoreStatistics",
    "check_acquire_args",
]


@attrs.frozen
class LockStatistics:
    """A snapshot of a lock's state and counters.

    Attributes:
        locked: whether the lock is held now.
        owner_pid: the process id of the holder, or ``None`` when free.
        owner_thread: the :func:`threading.get_native_id` of the holding thread, or ``None``.
        recursion: how many times the holder has acquired it (``RLock``; 1 or 0 for ``Lock``).
        waiters: callers blocked in ``acquire`` now.
        acquisitions: successful acquisitions since the lock was created.
        contentions: acquisitions that found the lock held and had to wait (or gave up).
        owner_deaths_recovered: times a holder ended with the lock held (a process that died,
            a thread that returned) and the next acquirer took it over.
    """

    locked: bool
    owner_pid: int | None
    owner_thread: int | None
    recursion: int
    waiters: int
    acquisitions: int
    contentions: int
    owner_deaths_recovered: int


def check_acquire_args(blocking: bool, timeout: object) -> float | None:
    """Validate ``acquire(blocking, timeout)``: :meth:`threading.Lock.acquire`'s signature, the
    library's timeout rule (:func:`concurrency_kit._core.deadline.check_timeout`).

    ``-1`` (the default) waits for as long as it takes, as in :mod:`threading`; so do ``None``,
    ``math.inf`` and any timeout too large for a clock to count. A timeout with
    ``blocking=False`` is refused, as :mod:`threading` refuses it.

    Returns:
        The timeout in seconds, or ``None`` to wait forever (``0`` when not blocking).

    Raises:
        TypeError: ``timeout`` is not a number (or ``None``).
        ValueError: a negative timeout other than -1, NaN, or a timeout with ``blocking=False``.
    """
    if timeout == -1:
        return None if blocking else 0.0
    seconds = check_timeout(timeout)
    if not blocking:
        raise ValueError("can't specify a timeout for a non-blocking call")
    return seconds


@attrs.frozen
class SemaphoreStatistics:
    """A snapshot of a semaphore's state and counters.

    Attributes:
        value: the counter now: how many more ``acquire`` calls would succeed at once.
        waiters: callers blocked in ``acquire`` now.
        acquisitions: successful acquisitions since the semaphore was created.
        contentions: acquisitions that found the counter at zero (waited or gave up).
    """

    value: int
    waiters: int
    acquisitions: int
    contentions: int


@attrs.frozen
class EventStatistics:
    """A snapshot of an event.

    Attributes:
        is_set: whether the flag is set now.
        waiters: callers blocked in ``wait`` now.
    """

    is_set: bool
    waiters: int


@attrs.frozen
class ConditionStatistics:
    """A snapshot of a condition variable.

    Attributes:
        waiters: callers blocked in ``wait`` now.
        lock: the statistics of the condition's lock, or ``None`` for a lock without any (a
            :class:`threading.Lock` given to a thread condition).
    """

    waiters: int
    lock: LockStatistics | None


@attrs.frozen
class BarrierStatistics:
    """A snapshot of a barrier.

    Attributes:
        parties: how many parties must call ``wait`` for the barrier to open.
        n_waiting: parties waiting now.
        broken: whether the barrier is broken.
        passes: how many times the barrier has opened.
    """

    parties: int
    n_waiting: int
    broken: bool
    passes: int


@attrs.frozen
class RWLockStatistics:
    """A snapshot of a reader-writer lock's state and counters.

    Attributes:
        readers: threads holding the read side now.
        writer_pid: the process id of the write holder, or ``None``.
        writer_thread: the :func:`threading.get_native_id` of the write holder, or ``None``.
        readers_waiting: callers blocked in a read acquire now.
        writers_waiting: callers blocked in a write acquire now.
        read_acquisitions: successful read acquisitions since creation (re-entries included).
        write_acquisitions: successful write acquisitions since creation.
        contentions: acquisitions of either side that had to wait (or gave up).
        owner_deaths_recovered: holders (readers or writer) that died holding the lock and
            were reclaimed (processes only).
    """

    readers: int
    writer_pid: int | None
    writer_thread: int | None
    readers_waiting: int
    writers_waiting: int
    read_acquisitions: int
    write_acquisitions: int
    contentions: int
    owner_deaths_recovered: int


@attrs.frozen
class GuardedStatistics:
    """A snapshot of a guarded value.

    Attributes:
        poisoned: whether the value is poisoned (a block raised or its holder died).
        lock: the statistics of the lock that guards the value.
    """

    poisoned: bool
    lock: LockStatistics

"""What the thread and process locks share: argument checks and the statistics value."""

from __future__ import annotations

import attrs

__all__ = ["LockStatistics", "check_acquire_args"]


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
        owner_deaths_recovered: times a holder died with the lock held and the next acquirer
            took it over (processes only; a thread cannot die without its process).
    """

    locked: bool
    owner_pid: int | None
    owner_thread: int | None
    recursion: int
    waiters: int
    acquisitions: int
    contentions: int
    owner_deaths_recovered: int


def check_acquire_args(blocking: bool, timeout: float) -> float | None:
    """Validate ``acquire(blocking, timeout)`` exactly as :meth:`threading.Lock.acquire` does.

    Returns:
        The timeout in seconds, or ``None`` to wait forever (``0`` when not blocking).

    Raises:
        ValueError: a timeout with ``blocking=False``, or a negative timeout other than -1.
    """
    if not blocking:
        if timeout != -1:
            raise ValueError("can't specify a timeout for a non-blocking call")
        return 0.0
    if timeout == -1:
        return None
    if timeout < 0:
        raise ValueError("timeout value must be a non-negative number")
    return float(timeout)

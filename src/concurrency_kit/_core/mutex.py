"""Robust, process-shared pthread mutexes in shared memory, and the one way to wait for one.

Every process primitive keeps a ``pthread_mutex_t`` in a segment, initialised with
``PTHREAD_PROCESS_SHARED`` (any process that maps the memory may lock it) and
``PTHREAD_MUTEX_ROBUST`` (when the holding *thread* exits, however it exits, the kernel marks
the mutex and the next locker gets ``EOWNERDEAD`` instead of waiting for ever)::

    lock word (glibc's __data.__lock):  [WAITERS | OWNER_DIED | owner's kernel thread id]
          │                                bit 31     bit 30       bits 0-29
          │   trylock / clocklock: 0 -> our tid (one compare-and-swap when free)
          │   the holder exits: the kernel walks its robust list -> OWNER_DIED, wakes a waiter
          v
    next locker: EOWNERDEAD -> consistent() -> it is the holder, as after a lock

The calls are the compiled ones of ``_native.c``; the structure's size and fields come from
``<pthread.h>`` at build time. A mutex must have one address per process: the holder's robust
list (a list of the mutexes a thread holds, threaded through the mutexes themselves and walked
by the kernel when the thread exits) points into the mapping, which therefore is never
unmapped while a thread of this process holds the mutex (``registry.py``).

:func:`acquire` is the one blocking acquire every primitive uses: a few tries, then waits with
the GIL released in slices of :data:`SLICE_NS`, so that signal handlers (Ctrl-C) run between
slices and a wait is never handed to the kernel for longer than that.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from threading import get_native_id

from concurrency_kit._core import _native

__all__ = [
    "EBUSY",
    "EOWNERDEAD",
    "EPERM",
    "ETIMEDOUT",
    "FUTEX_TID_MASK",
    "MUTEX_SIZE",
    "SLICE_NS",
    "acquire",
    "consistent",
    "count",
    "holder",
    "init",
    "lock_until",
    "trylock",
    "unlock",
]

EBUSY = errno.EBUSY
EPERM = errno.EPERM
ETIMEDOUT = errno.ETIMEDOUT
EOWNERDEAD: int = getattr(errno, "EOWNERDEAD", 130)

MUTEX_SIZE: int = _native.MUTEX_SIZE
"""``sizeof(pthread_mutex_t)`` on this platform (40 bytes on x86_64, 48 on aarch64)."""
FUTEX_TID_MASK: int = _native.FUTEX_TID_MASK

SLICE_NS = 100_000_000
"""The longest a blocked caller sleeps before its signal handlers get a chance to run."""

trylock = _native.mutex_trylock
"""``trylock(address) -> 0, EBUSY or EOWNERDEAD``; never blocks (the GIL is kept)."""
unlock = _native.mutex_unlock
"""``unlock(address) -> 0 or EPERM`` (the calling thread does not hold it)."""
consistent = _native.mutex_consistent
"""``consistent(address)``: after ``EOWNERDEAD``, make the mutex usable again."""
lock_until = _native.mutex_lock_until
"""``lock_until(address, deadline_ns) -> 0, EOWNERDEAD or ETIMEDOUT`` (monotonic clock)."""
holder = _native.mutex_holder
"""``holder(address)``: the holder's kernel thread id, or 0 (one load, no call into libc)."""
count = _native.mutex_count
"""``count(address)``: the recursion depth of a held recursive mutex."""


def init(address: int, *, recursive: bool) -> None:
    """Initialise a robust, process-shared mutex at ``address`` (``MUTEX_SIZE`` bytes).

    Raises:
        OSError: a pthread call failed.
    """
    _native.mutex_init(address, recursive)


def acquire(
    address: int,
    deadline_ns: int | None,
    *,
    spin: int = 0,
    interrupted: Callable[[], None] | None = None,
) -> int:
    """Lock the mutex at ``address`` by ``deadline_ns`` (:func:`time.monotonic_ns`'s clock) or,
    with ``None``, as long as it takes.

    The caller must not hold the mutex already (it tried :func:`trylock` first). ``spin`` more
    tries are made before sleeping, for a holder that is likely running on another core.

    Returns:
        0 or ``EOWNERDEAD`` (locked; after ``EOWNERDEAD`` the caller repairs what the dead
        holder may have left half-done, then calls :func:`consistent`), or ``ETIMEDOUT``.

    Raises:
        OSError: the mutex is unusable (``ENOTRECOVERABLE``: a holder died and the next one
            released it without making it consistent).
        BaseException: whatever a signal handler raised between two slices. The mutex is not
            held then: if the exception came just after it was taken, it is made consistent,
            ``interrupted`` is called (the caller marks its state for repair) and it is
            unlocked.
    """
    try:
        rc = EBUSY
        while spin and rc == EBUSY:
            spin -= 1
            rc = trylock(address)
        while rc in (EBUSY, ETIMEDOUT):
            now = time.monotonic_ns()
            end = now + SLICE_NS
            if deadline_ns is not None:
                if deadline_ns <= now:
                    return ETIMEDOUT
                end = min(end, deadline_ns)
            rc = lock_until(address, end)
        if rc not in (0, EOWNERDEAD):
            raise OSError(rc, f"pthread_mutex_lock: {os.strerror(rc)}")
        return rc
    except BaseException:
        if holder(address) == get_native_id():
            consistent(address)  # EINVAL if it was consistent: harmless
            if interrupted is not None:
                interrupted()
            unlock(address)
        raise

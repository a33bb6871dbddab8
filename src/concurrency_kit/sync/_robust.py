"""Robust, process-shared pthread mutexes through :mod:`ctypes` (glibc on Linux only).

The process locks keep a ``pthread_mutex_t`` in shared memory, initialised with
``PTHREAD_PROCESS_SHARED`` (any process that maps the memory may lock it) and
``PTHREAD_MUTEX_ROBUST`` (when the holding *thread* exits, however it exits, the kernel marks the
mutex and the next locker gets ``EOWNERDEAD`` instead of waiting for ever)::

    lock word (first 4 bytes, glibc ABI):  [WAITERS | OWNER_DIED | owner's kernel thread id]
          │                                   bit 31     bit 30       bits 0-29
          │   pthread_mutex_trylock / _clocklock: 0 -> our tid (one CAS when free)
          │   the holder exits: the kernel walks its robust list -> OWNER_DIED, wakes a waiter
          v
    next locker: EOWNERDEAD -> pthread_mutex_consistent -> it is the holder, as after a lock

Every call goes through a :class:`ctypes.CDLL` function, which releases the GIL for the duration
of the call, so a thread blocked here does not stop the others. The first three ``int`` fields
of ``pthread_mutex_t`` (``__lock``, ``__count``, ``__owner``) are read directly: they are part
of glibc's ABI (``PTHREAD_MUTEX_INITIALIZER`` spells them out) and give :meth:`locked`-style
queries and the recursion count without a call.

The sizes of ``pthread_mutex_t`` and ``pthread_mutexattr_t`` are not available at run time, so
they come from a table of the platforms whose ABI is known (x86_64 and aarch64 glibc). Anything
else is refused with :class:`NotImplementedError` naming the platform, rather than writing a
structure of a guessed size into shared memory.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import sys
import time
from typing import Any

__all__ = [
    "EAGAIN",
    "EBUSY",
    "EOWNERDEAD",
    "EPERM",
    "ETIMEDOUT",
    "FUTEX_OWNER_DIED",
    "FUTEX_TID_MASK",
    "Futex",
    "MutexWords",
    "Pthread",
    "futex",
    "load",
    "process_alive",
    "thread_alive",
]

# (pthread_mutex_t, pthread_mutexattr_t) sizes in bytes, from glibc's
# sysdeps/<arch>/nptl/bits/pthreadtypes-arch.h.
LAYOUTS: dict[str, tuple[int, int]] = {
    "x86_64": (40, 4),
    "aarch64": (48, 8),
}

# <pthread.h> on Linux.
_PTHREAD_MUTEX_NORMAL = 0
_PTHREAD_MUTEX_RECURSIVE = 1
_PTHREAD_PROCESS_SHARED = 1
_PTHREAD_MUTEX_ROBUST = 1
# linux/futex.h: the bits of a robust mutex's lock word.
FUTEX_TID_MASK = 0x3FFFFFFF
FUTEX_OWNER_DIED = 0x40000000

EAGAIN = errno.EAGAIN
EBUSY = errno.EBUSY
EPERM = errno.EPERM
ETIMEDOUT = errno.ETIMEDOUT
EOWNERDEAD: int = getattr(errno, "EOWNERDEAD", 130)

_NS = 1_000_000_000


class MutexWords(ctypes.Structure):
    """The leading fields of glibc's ``pthread_mutex_t`` (stable ABI on every glibc platform)."""

    _fields_ = (
        ("lock", ctypes.c_int32),  # 0, or owner tid | FUTEX_WAITERS | FUTEX_OWNER_DIED
        ("count", ctypes.c_uint32),  # recursion depth of a recursive mutex
        ("owner", ctypes.c_int32),  # owner tid (glibc's copy), or a marker after owner death
    )


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


def _platform() -> tuple[str, str, str, int]:
    """(``sys.platform``, machine, C library, pointer bits): what the ABI table is keyed on."""
    libc, _ = platform.libc_ver()
    return sys.platform, platform.machine(), libc, ctypes.sizeof(ctypes.c_void_p) * 8


class Pthread:
    """The pthread calls the process locks make, bound once per process.

    Attributes:
        mutex_size: ``sizeof(pthread_mutex_t)`` on this platform.
        trylock: ``pthread_mutex_trylock(mutex)``; returns 0 or an error number.
        unlock: ``pthread_mutex_unlock(mutex)``; returns 0 or an error number.
        lock: ``pthread_mutex_lock(mutex)``; returns 0 or an error number (not interruptible).
        consistent: ``pthread_mutex_consistent(mutex)``, after ``EOWNERDEAD``.
    """

    __slots__ = (
        "_attr_size",
        "_clocklock",
        "_lib",
        "_timedlock",
        "consistent",
        "lock",
        "mutex_size",
        "trylock",
        "unlock",
    )

    def __init__(self, lib: ctypes.CDLL, mutex_size: int, attr_size: int) -> None:
        self._lib = lib
        self.mutex_size = mutex_size
        self._attr_size = attr_size
        # No argtypes: the callers pass ctypes pointers and ints, which ctypes converts without
        # looking anything up; restype is int by default. The hot path is one such call.
        self.trylock: Any = lib.pthread_mutex_trylock
        self.unlock: Any = lib.pthread_mutex_unlock
        self.lock: Any = lib.pthread_mutex_lock
        self.consistent: Any = lib.pthread_mutex_consistent
        self._timedlock: Any = lib.pthread_mutex_timedlock
        # glibc 2.30+: wait against CLOCK_MONOTONIC, immune to wall-clock jumps.
        self._clocklock: Any = getattr(lib, "pthread_mutex_clocklock", None)

    def init_mutex(self, mutex: Any, *, recursive: bool) -> None:
        """Initialise a robust, process-shared mutex at ``mutex`` (a ctypes pointer).

        Raises:
            OSError: a pthread call failed.
        """
        lib = self._lib
        attr = ctypes.create_string_buffer(self._attr_size)  # malloc'd: aligned for any type
        _check(lib.pthread_mutexattr_init(attr), "pthread_mutexattr_init")
        try:
            kind = _PTHREAD_MUTEX_RECURSIVE if recursive else _PTHREAD_MUTEX_NORMAL
            _check(lib.pthread_mutexattr_settype(attr, kind), "pthread_mutexattr_settype")
            _check(
                lib.pthread_mutexattr_setpshared(attr, _PTHREAD_PROCESS_SHARED),
                "pthread_mutexattr_setpshared",
            )
            _check(
                lib.pthread_mutexattr_setrobust(attr, _PTHREAD_MUTEX_ROBUST),
                "pthread_mutexattr_setrobust",
            )
            _check(lib.pthread_mutex_init(mutex, attr), "pthread_mutex_init")
        finally:
            lib.pthread_mutexattr_destroy(attr)

    def lock_until(self, mutex: Any, deadline_ns: int) -> int:
        """Lock ``mutex``, waiting until ``deadline_ns`` on :func:`time.monotonic_ns`'s clock.

        Returns:
            0, ``EOWNERDEAD`` (locked; its previous holder died) or ``ETIMEDOUT``.
        """
        if self._clocklock is not None:
            spec = _Timespec(deadline_ns // _NS, deadline_ns % _NS)
            return int(self._clocklock(mutex, time.CLOCK_MONOTONIC, ctypes.byref(spec)))
        # Before glibc 2.30: an absolute CLOCK_REALTIME deadline, computed as late as possible.
        real_ns = time.time_ns() + max(0, deadline_ns - time.monotonic_ns())
        spec = _Timespec(real_ns // _NS, real_ns % _NS)
        return int(self._timedlock(mutex, ctypes.byref(spec)))


def _check(rc: int, what: str) -> None:
    if rc:
        raise OSError(rc, f"{what}: {os.strerror(rc)}")


@functools.cache
def load() -> Pthread:
    """Bind the pthread calls for this platform (once per process).

    Raises:
        NotImplementedError: the platform is not Linux with glibc on x86_64 or aarch64.
    """
    system, machine, libc, bits = _platform()
    layout = LAYOUTS.get(machine)
    if system != "linux" or libc != "glibc" or bits != 64 or layout is None:
        raise NotImplementedError(
            "process locks need robust process-shared pthread mutexes with a known ABI: "
            f"64-bit Linux with glibc on {' or '.join(LAYOUTS)}; this platform is "
            f"{system} {machine} ({libc or 'unknown C library'}, {bits}-bit)"
        )
    mutex_size, attr_size = layout
    # The pthread symbols are in libc.so.6 since glibc 2.34 and in libpthread.so.0 before it,
    # which the interpreter links: the global namespace (dlopen(NULL)) has them either way.
    lib = ctypes.CDLL(None)
    return Pthread(lib, mutex_size, attr_size)


# linux/futex.h. No FUTEX_PRIVATE_FLAG: the words live in memory shared between processes.
_FUTEX_WAKE = 1
_FUTEX_WAIT_BITSET = 9  # an absolute timeout, on CLOCK_MONOTONIC
_FUTEX_BITSET_MATCH_ANY = 0xFFFFFFFF
# asm/unistd_64.h (x86_64) and asm-generic/unistd.h (aarch64).
_SYS_FUTEX = {"x86_64": 202, "aarch64": 98}


class Futex:
    """The two futex operations the process primitives sleep and wake with.

    A futex is a 32-bit word in shared memory that the kernel can put threads to sleep on,
    keyed by the page it lives in, so a thread of any process that maps the segment can be
    woken by any other. :meth:`wait` sleeps only while the word still holds the expected value,
    which closes the race between checking a state and going to sleep on it.
    """

    __slots__ = ("_number", "_syscall")

    def __init__(self, syscall: Any, number: int) -> None:
        self._syscall = syscall
        self._number = number

    def wait(self, address: int, expected: int, deadline_ns: int) -> int:
        """Sleep while the word at ``address`` is ``expected``, until ``deadline_ns`` at most.

        ``deadline_ns`` is on :func:`time.monotonic_ns`'s clock. A signal ends the sleep early
        (its handler runs when the call returns).

        Returns:
            0 (woken, or the word had changed: ``EAGAIN``), ``ETIMEDOUT`` or ``EINTR``.
        """
        spec = _Timespec(deadline_ns // _NS, deadline_ns % _NS)
        rc = self._syscall(
            self._number,
            ctypes.c_void_p(address),
            _FUTEX_WAIT_BITSET,
            expected,
            ctypes.byref(spec),
            None,
            ctypes.c_uint32(_FUTEX_BITSET_MATCH_ANY),
        )
        if rc == 0:
            return 0
        err = ctypes.get_errno()
        return 0 if err == EAGAIN else err

    def wake(self, address: int, count: int) -> int:
        """Wake up to ``count`` threads sleeping on the word at ``address``; return how many."""
        return int(self._syscall(self._number, ctypes.c_void_p(address), _FUTEX_WAKE, count))


@functools.cache
def futex() -> Futex:
    """Bind the futex system call for this platform (once per process).

    Raises:
        NotImplementedError: the platform is not one :func:`load` supports.
    """
    load()  # the same platform check as the mutexes
    lib = ctypes.CDLL(None, use_errno=True)
    syscall = lib.syscall
    syscall.restype = ctypes.c_long
    return Futex(syscall, _SYS_FUTEX[platform.machine()])


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (an unreaped zombie has exited)."""
    if pid == os.getpid():
        return True
    return _task_running(f"/proc/{pid}/stat", pid)


def thread_alive(pid: int, tid: int) -> bool:
    """Whether the thread with kernel id ``tid`` of process ``pid`` is still running."""
    return _task_running(f"/proc/{pid}/task/{tid}/stat", pid)


def _task_running(stat_path: str, pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    try:
        with open(stat_path, "rb") as f:
            stat = f.read()
    except OSError:
        return False
    # The state letter follows the command name, which is in parentheses and may contain any.
    return stat[stat.rindex(b")") + 2 :][:1] not in (b"Z", b"X")

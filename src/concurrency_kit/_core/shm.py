"""POSIX shared-memory segments: create, attach, unmap, unlink, and cleanup after the creator.

The one place that owns the lifecycle of a named segment (the process-side primitives build on
it; see ``sync/process.py``), and the one place where a name read from a pickled handle becomes
a mapping, so the one place that checks whose file it is::

    creator                                    any other process (a handle is unpickled)
    create(size)                               attach(name, size)
      os.open("/dev/shm/ck_<pid>_<hex>",         name matches ck_<pid>_<32 hex>, else ValueError
              O_CREAT | O_EXCL | O_NOFOLLOW      os.open(path, O_RDWR | O_NOFOLLOW)
              | O_RDWR, 0600); fchmod 0600       fstat the descriptor: a regular file, one
      ftruncate, mmap, close the fd                link, owned by our euid, mode exactly 0600,
      resource_tracker.register ──┐                big enough; else UntrustedSegmentError
           │                      │              mmap, close the fd
      Segment.close(): unmap      │              Segment.close(): unmap (never unlinks,
      Segment.unlink(): unlink ───┴─ unregister    never touches the tracker)

    the creator dies (SIGKILL, os._exit, ...) ─> its resource tracker sees EOF on its pipe
                                                and unlinks every name still registered
    any process exits ───────────────────────────> nothing is unmapped at exit (see below)

Names are ``ck_<creator pid>_<32 random hex digits>``: unguessable (``secrets.token_hex``), and
the pid says which process made the segment (the test suite's leak check charges a leftover
segment to the test whose process made it, not to whatever else uses ``/dev/shm``). Segments
are created with ``O_EXCL`` and mode 0600 (``fchmod`` after the ``open``: the umask may have
taken bits away), so another user can neither predict, pre-create nor open one.

``/dev/shm`` is world-writable and its names are world-readable, and what the library reads
from a segment it unpickles (shared dict values, guarded values, channel items). A handle can
outlive its segment: once the creator unlinks the name, another local user may create a file
under it. So :func:`attach` maps only what this process could have created: never through a
symbolic link (``O_NOFOLLOW``), and checked on the open descriptor, so nothing can be swapped
between the check and the mapping. Anything else is refused with
:exc:`~concurrency_kit.UntrustedSegmentError` before a byte is read (docs/design.rst, "Trust
boundary").

The file descriptor is closed as soon as the segment is mapped: a segment costs one mapping, no
descriptor. That is why the mapping is made with ``mmap`` from ``_native.c``:
``mmap.mmap`` keeps a duplicate of the descriptor for its whole life (before Python 3.13's
``trackfd=False``), one descriptor per lock. The mapping is exposed as a :mod:`ctypes` array
and unmapped when the last reference to it goes: views built with ``from_buffer`` keep it
alive, so memory in use can never be unmapped under a running call.

A mapping is never unmapped *at exit*: its finalizer has ``atexit = False``. The kernel walks a
dying thread's robust-mutex list and marks each mutex it still holds "owner died", but only if
the mutex is still mapped. From Python 3.13, ``fork`` and ``forkserver`` children run atexit
handlers before ``os._exit``; a ``weakref.finalize`` with the default ``atexit = True`` then
unmapped the segment of a lock the dying process held, and the next ``acquire`` waited for a
holder the kernel no longer knew about (issue #15). The exit unmaps everything anyway.

Only the creator registers the name with ``multiprocessing.resource_tracker``. Processes
that merely attach must not: an attacher that registers makes its tracker unlink the segment
when *the attacher* exits, under the feet of every other user (CPython issue 82300, the reason
``multiprocessing.shared_memory.SharedMemory`` grew ``track=False`` in 3.13). The tracker is
shared by a process and the children it starts with any start method, so the segment outlives
the creator while one of its children is still running, and goes when the last of them does.

A subinterpreter (``concurrent.interpreters``, Python 3.14+) has its own copy of every module,
the tracker's included, so the first segment it creates starts a tracker process of its own,
whose pid only that interpreter knows. When the interpreter is closed, its ``atexit`` handlers
run before its objects are collected: :func:`_interpreter_exit` then removes the names this
interpreter still owns (its handles would at collection; other interpreters keep their
mappings, as an attacher process does when its creator exits) and stops and reaps its
tracker. Without it the tracker was left a zombie child, one per interpreter that ever
created a segment.
"""

from __future__ import annotations

import atexit
import ctypes
import errno
import importlib
import os
import re
import secrets
import stat
import weakref
from multiprocessing import resource_tracker
from typing import Any

from concurrency_kit._core import _native
from concurrency_kit.errors import UntrustedSegmentError

__all__ = ["SHM_DIR", "Segment", "attach", "create", "creator_pid", "open_checked"]

SHM_DIR = "/dev/shm"
"""Where Linux keeps POSIX shared memory (``shm_open`` names map to files here)."""

PREFIX = "ck_"
"""Every segment this library creates is named ``ck_<creator pid>_<32 hex digits>``."""

_NAME = re.compile(r"ck_([1-9][0-9]{0,9})_[0-9a-f]{32}")
_MODE = 0o600

_TRACKER_TYPE = "shared_memory"  # the tracker unlinks these with shm_unlink("/" + name)

_registered: set[str] = set()
"""The names this interpreter registered with its tracker and has not unregistered."""
_exit_hooked: bool | None = False  # None: the main interpreter (nothing to do there)


def _in_subinterpreter() -> bool:
    try:  # CPython 3.13+, private; imported by name (no stub)
        interpreters: Any = importlib.import_module("_interpreters")
    except ImportError:
        return False
    return bool(interpreters.get_current()[0] != interpreters.get_main()[0])


def _interpreter_exit() -> None:
    """At the close of a subinterpreter: remove its names, then stop and reap its tracker."""
    for name in sorted(_registered):
        try:
            os.unlink(f"{SHM_DIR}/{name}")
        except FileNotFoundError:
            pass
        resource_tracker.unregister("/" + name, _TRACKER_TYPE)
    _registered.clear()
    tracker = getattr(resource_tracker, "_resource_tracker", None)
    stop = getattr(tracker, "_stop", None)
    if stop is not None:
        stop()


def _register(name: str) -> None:
    global _exit_hooked
    if _exit_hooked is False:
        _exit_hooked = _in_subinterpreter()
        if _exit_hooked:
            atexit.register(_interpreter_exit)
        else:
            _exit_hooked = None  # the main interpreter: looked once
    resource_tracker.register("/" + name, _TRACKER_TYPE)
    _registered.add(name)


def _map(fd: int, size: int) -> ctypes.Array[ctypes.c_char]:
    """Map ``size`` bytes of ``fd`` shared, read-write; unmapped when the array is collected."""
    address = _native.map_shared(fd, size)
    buffer = (ctypes.c_char * size).from_address(address)
    # Not at exit: a process that dies holding a robust mutex must die with it mapped, or the
    # kernel cannot mark it owner-died (the module docstring; Python 3.13+ runs atexit
    # handlers in fork and forkserver children).
    weakref.finalize(buffer, _native.unmap, address, size).atexit = False
    return buffer


def creator_pid(name: str) -> int | None:
    """The pid of the process that created segment ``name``; ``None`` if not one of ours."""
    match = _NAME.fullmatch(name)
    return int(match.group(1)) if match else None


def _refuse(name: str, why: str) -> UntrustedSegmentError:
    return UntrustedSegmentError(
        errno.EPERM,
        f"refusing shared-memory segment {SHM_DIR}/{name}: {why}. The segments of this "
        "library are regular files of this user with mode 0600: this is not one (was the "
        "segment removed and its name taken by another program?)",
    )


def _kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def _wrong(st: os.stat_result) -> str | None:
    """What makes the file ``st`` describes not a segment this user made; ``None``: nothing."""
    if not stat.S_ISREG(st.st_mode):
        return f"it is {_kind(st.st_mode)}"
    euid = os.geteuid()
    if st.st_uid != euid:
        return f"it is owned by uid {st.st_uid}, not by this user (uid {euid})"
    if stat.S_IMODE(st.st_mode) != _MODE:
        return f"its mode is {stat.S_IMODE(st.st_mode):#o}, not 0o600"
    if st.st_nlink != 1:
        return f"it has {st.st_nlink} hard links, not 1"
    return None


def open_checked(name: str) -> int:
    """Open segment ``name`` read-write, after checking that this process's user made it.

    The checks are made on the open descriptor (nothing can be swapped in between): the name
    is ``ck_<pid>_<32 hex digits>``; the file is not a symbolic link (``O_NOFOLLOW``), is a
    regular file with one link, is owned by the effective uid and has mode 0600. The caller
    closes the descriptor.

    Raises:
        ValueError: ``name`` is not a segment name of this library.
        FileNotFoundError: there is no such segment.
        UntrustedSegmentError: the file under the name fails a check (the message says which).
        OSError: the segment could not be opened for another reason (no descriptor left).
    """
    if _NAME.fullmatch(name) is None:
        raise ValueError(f"not a concurrency_kit shared-memory segment name: {name!r}")
    path = f"{SHM_DIR}/{name}"
    flags = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError:  # ELOOP (a symlink), EISDIR, ENXIO (a socket), EACCES, EMFILE, ...
        try:
            why = _wrong(os.lstat(path))
        except OSError:
            why = None
        if why is None:
            raise
        raise _refuse(name, why) from None
    try:
        why = _wrong(os.fstat(fd))
        if why is not None:
            raise _refuse(name, why)
    except BaseException:
        os.close(fd)
        raise
    return fd


class Segment:
    """One process's mapping of a named shared-memory segment.

    Attributes:
        name: the segment's name, without a directory (``ck_...``).
        size: its size in bytes.
        inode: the inode of the file that was mapped (a name can later be taken by another).
    """

    __slots__ = ("_buffer", "_creator_pid", "_unlinked", "inode", "name", "size")

    def __init__(
        self,
        name: str,
        size: int,
        buffer: ctypes.Array[ctypes.c_char],
        creator_pid: int | None,
        inode: int,
    ) -> None:
        self.name = name
        self.size = size
        self.inode = inode
        self._buffer: ctypes.Array[ctypes.c_char] | None = buffer
        self._creator_pid = creator_pid
        self._unlinked = False

    @property
    def buffer(self) -> ctypes.Array[ctypes.c_char]:
        """The mapping, as a :mod:`ctypes` array; build views on it with ``from_buffer``.

        Raises:
            ValueError: the segment is closed.
        """
        if self._buffer is None:
            raise ValueError(f"segment {self.name} is closed")
        return self._buffer

    @property
    def address(self) -> int:
        """Where the segment is mapped in this process.

        Raises:
            ValueError: the segment is closed.
        """
        return ctypes.addressof(self.buffer)

    @property
    def path(self) -> str:
        """The segment's path under :data:`SHM_DIR`."""
        return f"{SHM_DIR}/{self.name}"

    @property
    def is_creator(self) -> bool:
        """Whether the calling process created the segment (a forked copy did not)."""
        return self._creator_pid == os.getpid()

    def reopen(self) -> int:
        """A new read-write descriptor on the very file that is mapped; the caller closes it.

        For the calls that need the file rather than the mapping (``posix_fallocate``). The file
        is checked as :func:`attach` checks it, and must be the one mapped: a file of this user
        put under the name after the segment was removed is not it.

        Raises:
            FileNotFoundError: the segment's name is gone, or now names another file.
            UntrustedSegmentError: the file under the name fails a check of :func:`open_checked`.
        """
        fd = open_checked(self.name)
        if os.fstat(fd).st_ino != self.inode:
            os.close(fd)
            raise FileNotFoundError(
                errno.ENOENT, f"segment {self.name} was removed (its name now names another file)"
            )
        return fd

    def close(self) -> None:
        """Let go of this process's mapping (idempotent).

        The memory is unmapped at once if nothing else refers to it, or else as soon as the
        last :mod:`ctypes` view built on :attr:`buffer` is collected.
        """
        self._buffer = None

    def unlink(self) -> None:
        """Remove the segment's name, in the creating process only (idempotent).

        Processes that have it mapped keep using it; nobody can attach any more. In any other
        process (an attacher, or a forked copy of the creator) this does nothing.
        """
        if self._unlinked or not self.is_creator:
            return
        self._unlinked = True
        try:
            os.unlink(self.path)
        except FileNotFoundError:  # already removed (by hand, or by the tracker)
            pass
        if self.name in _registered:  # not after _interpreter_exit: that would start a tracker
            _registered.discard(self.name)
            resource_tracker.unregister("/" + self.name, _TRACKER_TYPE)


def create(size: int) -> Segment:
    """Create a new segment of ``size`` bytes, zero-filled, mode 0600, and map it.

    The name is registered with the resource tracker, which unlinks it if this process dies
    before :meth:`Segment.unlink`.

    Raises:
        OSError: the segment could not be created or mapped (``/dev/shm`` full or missing).
    """
    if size <= 0:
        raise ValueError(f"a segment needs a positive size, got {size}")
    pid = os.getpid()
    flags = os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW
    while True:
        name = f"{PREFIX}{pid}_{secrets.token_hex(16)}"
        try:
            fd = os.open(f"{SHM_DIR}/{name}", flags, _MODE)
        except FileExistsError:  # pragma: no cover - 128 random bits collided
            continue
        break
    try:
        try:
            os.fchmod(fd, _MODE)  # the umask may have taken bits away; attach wants 0600
            os.ftruncate(fd, size)
            inode = os.fstat(fd).st_ino
            buffer = _map(fd, size)
        finally:
            os.close(fd)
    except BaseException:
        os.unlink(f"{SHM_DIR}/{name}")
        raise
    # Registered after the segment exists, before anyone can learn its name.
    _register(name)
    return Segment(name, size, buffer, pid, inode)


def attach(name: str, size: int) -> Segment:
    """Map the existing segment ``name``, which must be at least ``size`` bytes.

    The file is checked first (:func:`open_checked`): a name can outlive its segment, and
    another local user may have put a file of theirs under it. Attaching never registers the
    name with the resource tracker (see the module docstring).

    Raises:
        FileNotFoundError: there is no such segment (its creator unlinked it, or died).
        UntrustedSegmentError: the file under the name is not a private segment of this
            user (a symbolic link, not a regular file, another owner, a mode other than 0600).
        ValueError: ``name`` is not a segment name of this library, or the segment is too small.
    """
    fd = open_checked(name)
    try:
        st = os.fstat(fd)
        if st.st_size < size:
            raise ValueError(f"segment {name} has {st.st_size} bytes, expected at least {size}")
        buffer = _map(fd, size)
    finally:
        os.close(fd)
    return Segment(name, size, buffer, None, st.st_ino)

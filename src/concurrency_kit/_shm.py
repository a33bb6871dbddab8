"""POSIX shared-memory segments: create, attach, unmap, unlink, and cleanup after the creator.

The one place that owns the lifecycle of a named segment (the process-side primitives build on
it; see ``sync/process.py``)::

    creator                                   any other process
    create(size)                              attach(name)
      os.open("/dev/shm/ck_<hex>",              os.open(path, O_RDWR)
              O_CREAT | O_EXCL | O_RDWR, 0600)  mmap, close the fd
      ftruncate, mmap, close the fd                 │
      resource_tracker.register ──┐                 │
           │                      │                 │
      Segment.close(): unmap      │             Segment.close(): unmap (never unlinks,
      Segment.unlink(): unlink ───┴─ unregister       never touches the tracker)

    the creator dies (SIGKILL, os._exit, ...) ─> its resource tracker sees EOF on its pipe
                                                and unlinks every name still registered

Names are unguessable (``secrets.token_hex``) and created with ``O_EXCL`` and mode 0600,
so another user can neither predict, pre-create nor open a segment. The file descriptor is
closed as soon as the segment is mapped: a segment costs one mapping, no descriptor. That is
why the mapping is made with libc's ``mmap`` through :mod:`ctypes`: ``mmap.mmap`` keeps a
duplicate of the descriptor for its whole life (before Python 3.13's ``trackfd=False``), one
descriptor per lock. The mapping is exposed as a :mod:`ctypes` array and unmapped when the last
reference to it goes: views built with ``from_buffer`` keep it alive, so memory in use can
never be unmapped under a running call.

Only the creator registers the name with ``multiprocessing.resource_tracker``. Processes
that merely attach must not: an attacher that registers makes its tracker unlink the segment
when *the attacher* exits, under the feet of every other user (CPython issue 82300, the reason
``multiprocessing.shared_memory.SharedMemory`` grew ``track=False`` in 3.13). The tracker is
shared by a process and the children it starts with any start method, so the segment outlives
the creator while one of its children is still running, and goes when the last of them does.
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import os
import secrets
import weakref
from multiprocessing import resource_tracker
from typing import Any

__all__ = ["SHM_DIR", "Segment", "attach", "create"]

SHM_DIR = "/dev/shm"
"""Where Linux keeps POSIX shared memory (``shm_open`` names map to files here)."""

PREFIX = "ck_"
"""Every segment this library creates is named ``ck_<32 hex digits>``."""

_TRACKER_TYPE = "shared_memory"  # the tracker unlinks these with shm_unlink("/" + name)
_MAP_FAILED = ctypes.c_void_p(-1).value


@functools.cache
def _libc() -> tuple[Any, Any]:
    lib = ctypes.CDLL(None, use_errno=True)
    lib.mmap.restype = ctypes.c_void_p
    lib.mmap.argtypes = (
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    )
    lib.munmap.restype = ctypes.c_int
    lib.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    return lib.mmap, lib.munmap


def _map(fd: int, size: int) -> ctypes.Array[ctypes.c_char]:
    """Map ``size`` bytes of ``fd`` shared, read-write; unmapped when the array is collected."""
    mmap_, munmap = _libc()
    address = mmap_(None, size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, 0)
    if address is None or address == _MAP_FAILED:
        err = ctypes.get_errno()
        raise OSError(err, f"mmap: {os.strerror(err)}")
    buffer = (ctypes.c_char * size).from_address(address)
    weakref.finalize(buffer, munmap, address, size)
    return buffer


class Segment:
    """One process's mapping of a named shared-memory segment.

    Attributes:
        name: the segment's name, without a directory (``ck_...``).
        size: its size in bytes.
    """

    __slots__ = ("_buffer", "_creator_pid", "_unlinked", "name", "size")

    def __init__(
        self,
        name: str,
        size: int,
        buffer: ctypes.Array[ctypes.c_char],
        creator_pid: int | None,
    ) -> None:
        self.name = name
        self.size = size
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
    def path(self) -> str:
        """The segment's path under :data:`SHM_DIR`."""
        return f"{SHM_DIR}/{self.name}"

    @property
    def is_creator(self) -> bool:
        """Whether the calling process created the segment (a forked copy did not)."""
        return self._creator_pid == os.getpid()

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
    while True:
        name = PREFIX + secrets.token_hex(16)
        try:
            fd = os.open(
                f"{SHM_DIR}/{name}", os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, 0o600
            )
        except FileExistsError:  # pragma: no cover - 128 random bits collided
            continue
        break
    try:
        try:
            os.ftruncate(fd, size)
            buffer = _map(fd, size)
        finally:
            os.close(fd)
    except BaseException:
        os.unlink(f"{SHM_DIR}/{name}")
        raise
    # Registered after the segment exists, before anyone can learn its name.
    resource_tracker.register("/" + name, _TRACKER_TYPE)
    return Segment(name, size, buffer, os.getpid())


def attach(name: str, size: int) -> Segment:
    """Map the existing segment ``name``, which must be at least ``size`` bytes.

    Attaching never registers the name with the resource tracker (see the module docstring).

    Raises:
        FileNotFoundError: there is no such segment (its creator unlinked it, or died).
        ValueError: ``name`` is not a segment name of this library, or the segment is too small.
    """
    if not name.startswith(PREFIX) or "/" in name or name in (".", ".."):
        raise ValueError(f"not a concurrency_kit shared-memory segment name: {name!r}")
    fd = os.open(f"{SHM_DIR}/{name}", os.O_RDWR | os.O_CLOEXEC)
    try:
        actual = os.fstat(fd).st_size
        if actual < size:
            raise ValueError(f"segment {name} has {actual} bytes, expected at least {size}")
        buffer = _map(fd, size)
    finally:
        os.close(fd)
    return Segment(name, size, buffer, None)

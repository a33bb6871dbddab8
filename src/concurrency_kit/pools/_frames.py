"""The wire format between a process pool and its workers.

Each worker has two pipes of its own: tasks flow parent → worker, events flow worker → parent.
Both carry *frames*: a 17-byte header (kind, task id, payload length) and a payload of pickled
bytes. Frames are read in bulk — one ``read`` may bring many — and cut apart here, so a burst of
tiny tasks costs a few system calls, not one per task.
"""

from __future__ import annotations

import collections
import itertools
import os
import struct
from collections.abc import Callable

HEADER = struct.Struct("<BqQ")

# parent -> worker
TASK = 1  # payload: pickled (fn, args, kwargs)
TASK_TIMED = 2  # the same, for a task with a timeout (the parent tracks its deadline)
CANCEL = 3  # no payload: skip this task if it has not started
STOP = 4  # no payload: exit once the frames before this one are done

# worker -> parent
READY = 10  # no payload: the initializer (if any) succeeded
START = 11  # no payload: the task is starting now
OK = 12  # payload: the pickled result
ERROR = 13  # payload: the pickled exception (with its traceback text)
SKIPPED = 14  # no payload: the task was cancelled before it started
INIT_FAILED = 15  # payload: the pickled exception the initializer raised

READ_SIZE = 1 << 20
PIPE_SIZE = 1 << 20
"""Pipes are grown to this (Linux's default ceiling for unprivileged processes): large tasks and
results then cross in a few writes instead of thousands of 64 KiB ones."""


def grow_pipe(fd: int) -> None:
    """Enlarge the pipe behind ``fd`` where the platform allows; harmless where it does not."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except (ImportError, AttributeError, OSError):  # not Linux, or over the limit
        pass


BIG_FRAME = 1 << 20
"""A frame with a payload this large is read straight into a buffer of its exact size."""
IOV_MAX = 512
COALESCE = 1 << 16
"""Frames smaller than this are copied together into one buffer; larger payloads are written
from where they lie (``writev``), never copied."""

Handler = Callable[[int, int, "bytes | bytearray"], None]


def frame(kind: int, task_id: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, task_id, len(payload)) + payload


class FrameReader:
    """Reads a pipe in bulk and hands each complete frame to a handler.

    Small frames are cut out of a shared buffer. For a big one, once its header is in, the
    reader allocates a buffer of the payload's exact size and reads the rest straight into it,
    so a 100 MB result is copied once out of the kernel, not several times over.
    """

    __slots__ = ("_big", "_big_filled", "_big_id", "_big_kind", "_buf")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._big: bytearray | None = None
        self._big_filled = 0
        self._big_kind = 0
        self._big_id = 0

    def read(self, fd: int, handle: Handler, *, block: bool) -> bool:
        """Read what is available and hand over every complete frame; False at end of file.

        With ``block``, waits for at least one read (``fd`` must then be blocking); otherwise
        reads until the pipe is empty (``fd`` must be non-blocking).
        """
        while True:
            try:
                if self._big is not None:
                    with memoryview(self._big) as view:
                        count = os.readv(fd, [view[self._big_filled :]])
                    self._big_filled += count
                else:
                    data = os.read(fd, READ_SIZE)
                    count = len(data)
                    self._buf += data
            except BlockingIOError:
                return True
            if count == 0:
                return False
            self._cut(handle)
            if block or (self._big is None and count < READ_SIZE):
                return True

    def _cut(self, handle: Handler) -> None:
        if self._big is not None:
            if self._big_filled < len(self._big):
                return
            payload, self._big = self._big, None
            handle(self._big_kind, self._big_id, payload)
        buf = self._buf
        offset = 0
        size = HEADER.size
        end = len(buf)
        unpack = HEADER.unpack_from
        with memoryview(buf) as view:
            while end - offset >= size:
                kind, task_id, length = unpack(buf, offset)
                start = offset + size
                if end - start >= length:
                    handle(kind, task_id, bytes(view[start : start + length]) if length else b"")
                    offset = start + length
                elif length >= BIG_FRAME:
                    big = bytearray(length)
                    have = end - start
                    big[:have] = view[start:end]
                    self._big, self._big_filled = big, have
                    self._big_kind, self._big_id = kind, task_id
                    offset = end
                    break
                else:
                    break
        if offset:
            del buf[:offset]


class Outbox:
    """Frames waiting to be written to a pipe, in order.

    Small frames are packed into one shared buffer; a large payload stays where it is and is
    written with ``writev``. Works on blocking pipes (:meth:`write_all`) and non-blocking ones
    (:meth:`write_some`).
    """

    __slots__ = ("_parts", "_tail")

    def __init__(self) -> None:
        self._parts: collections.deque[bytes | bytearray | memoryview] = collections.deque()
        self._tail: bytearray | None = None  # the last part, still open for small frames

    def __bool__(self) -> bool:
        return bool(self._parts)

    def add(self, kind: int, task_id: int, payload: bytes | bytearray = b"") -> None:
        head = HEADER.pack(kind, task_id, len(payload))
        if len(payload) < COALESCE:
            if self._tail is None:
                self._tail = bytearray()
                self._parts.append(self._tail)
            self._tail += head
            self._tail += payload
        else:
            self._parts.append(head)
            self._parts.append(payload)
            self._tail = None

    def write_some(self, fd: int) -> bool:
        """Write what a non-blocking ``fd`` takes now; True once everything is out."""
        while self._parts:
            try:
                written = os.writev(fd, list(itertools.islice(self._parts, IOV_MAX)))
            except BlockingIOError:
                return False
            self._consume(written)
        return True

    def write_all(self, fd: int) -> None:
        """Write everything to a blocking ``fd`` (resuming after a signal's short write)."""
        while self._parts:
            self._consume(os.writev(fd, list(itertools.islice(self._parts, IOV_MAX))))

    def clear(self) -> None:
        self._parts.clear()
        self._tail = None

    def _consume(self, written: int) -> None:
        parts = self._parts
        while written:
            first = parts[0]
            if written >= len(first):
                written -= len(first)
                parts.popleft()
                if first is self._tail:
                    self._tail = None
            else:
                if first is self._tail:
                    self._tail = None  # a view now holds it: it can no longer grow
                parts[0] = memoryview(first)[written:]
                written = 0


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write every byte to a blocking ``fd``."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]

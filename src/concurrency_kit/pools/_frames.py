"""The wire format between a process pool and its workers.

Each worker has two pipes of its own: tasks flow parent → worker, events flow worker → parent.
Both carry *frames*: a 17-byte header (kind, task id, payload length) and a payload of pickled
bytes. Frames are read in bulk — one ``read`` may bring many — and cut apart here, so a burst of
tiny tasks costs a few system calls, not one per task.
"""

from __future__ import annotations

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

READ_SIZE = 1 << 18


def frame(kind: int, task_id: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, task_id, len(payload)) + payload


def header(kind: int, task_id: int, payload_len: int) -> bytes:
    return HEADER.pack(kind, task_id, payload_len)


class FrameReader:
    """Accumulates bytes from a pipe and yields complete frames."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def read_from(self, fd: int) -> bool:
        """Read what is available from ``fd`` (which may block); False at end of file."""
        data = os.read(fd, READ_SIZE)
        if not data:
            return False
        self._buf += data
        return True

    def drain_nonblocking(self, fd: int) -> bool:
        """Read everything available from a non-blocking ``fd``; False at end of file."""
        while True:
            try:
                data = os.read(fd, READ_SIZE)
            except BlockingIOError:
                return True
            if not data:
                return False
            self._buf += data
            if len(data) < READ_SIZE:
                return True

    def pop_all(self, handle: Callable[[int, int, bytes], None]) -> None:
        """Call ``handle(kind, task_id, payload)`` for each complete frame, in order."""
        buf = self._buf
        offset = 0
        size = HEADER.size
        end = len(buf)
        unpack = HEADER.unpack_from
        while end - offset >= size:
            kind, task_id, length = unpack(buf, offset)
            if end - offset - size < length:
                break
            start = offset + size
            handle(kind, task_id, bytes(buf[start : start + length]) if length else b"")
            offset = start + length
        if offset:
            del buf[:offset]


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write every byte to a blocking ``fd``."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]

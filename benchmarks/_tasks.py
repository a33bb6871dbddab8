"""Tiny task functions for the benchmarks, in a module of their own.

They live in an importable module (not in the benchmark script, which runs as ``__main__``) so
that every contender, the standard library's pools included, pickles them by reference and a
worker process imports them by name, whatever its start method.
"""

from __future__ import annotations

import os
import signal
import struct
import time
from multiprocessing.connection import Connection

STAMP = struct.Struct("<d")


def inc(x: int) -> int:
    """The benchmarks' unit of work: as small as a task can be."""
    return x + 1


def record_and_die(path: str) -> None:
    """Write the time of death to ``path``, then SIGKILL the calling (worker) process.

    The stamp is :func:`time.monotonic`, which on Linux reads ``CLOCK_MONOTONIC``: one clock
    for every process on the machine, so the parent can subtract it from its own reading. The
    file is opened before the clock is read, so only one ``write`` separates the stamp from the
    kill.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, STAMP.pack(time.monotonic()))
    os.kill(os.getpid(), signal.SIGKILL)


def read_stamp(path: str) -> float:
    """The time :func:`record_and_die` wrote to ``path``."""
    with open(path, "rb") as stamp_file:
        (stamp,) = STAMP.unpack(stamp_file.read(STAMP.size))
    return float(stamp)


def echo(reader: Connection, writer: Connection) -> None:
    """Echo every message from ``reader`` to ``writer`` until end of file (the floor's child).

    Uses the raw file descriptors with ``os.read``/``os.write``, so the round trip measured
    against it is two pipe writes, two reads and two wake-ups, nothing more.
    """
    rfd, wfd = reader.fileno(), writer.fileno()
    while True:
        data = os.read(rfd, 4096)
        if not data:
            return
        os.write(wfd, data)

"""The pipes of a ProcessChannel: made by its creator, opened by every other process.

Two pipes, four ends, in this order: the *pipe* (read, write) that carries small items, one
packet each, and the *bell* (read, write) that holds a byte while the ring holds items or the
channel is closed::

    creator: pipe2(O_DIRECT) + pipe2()            another process: for each end
      F_SETPIPE_SZ 1 MiB (256 packets)              open /proc/<creator>/fd/<fd> (non-blocking)
      origin = (pid, the four fds, the inodes)      fstat: a FIFO with the recorded inode,
        (pickled in every handle)                   owned by this user; else refused
                                                    O_DIRECT on our own writing end

*Packet mode* (``O_DIRECT``): every write of at most :data:`PACKET` bytes is one atomic packet
and every read returns exactly one, so any number of processes share the pipe with no lock, and
a process killed mid-``write`` never leaves half a packet. It belongs to the open file
description, so an attaching process sets it on the writing end it opened.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat

from concurrency_kit.errors import UntrustedSegmentError

__all__ = ["PACKET", "Origin", "close_ends", "create_pipes", "open_pipes"]

PACKET = 4096  # PIPE_BUF on Linux: the largest atomic packet
_PIPE_BYTES = 1 << 20  # 256 packets; the unprivileged maximum (/proc/sys/fs/pipe-max-size)
_F_SETPIPE_SZ = 1031
_F_GETPIPE_SZ = 1032

Origin = tuple[int, tuple[int, ...], tuple[int, int]]
"""What a handle carries to open the pipes elsewhere: creator pid, its four fds, the inodes
of the pipe and of the bell."""


def close_ends(fds: tuple[int, ...] | list[int]) -> None:
    """Close pipe ends, ignoring those already closed."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def create_pipes() -> tuple[tuple[int, int, int, int], int, Origin]:
    """Make the pipe (packet mode, enlarged) and the bell.

    Returns:
        The four ends (pipe read, pipe write, bell read, bell write), how many packets the
        pipe holds, and the origin to pickle into handles.
    """
    fds: list[int] = []
    try:
        fds.extend(os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC | os.O_DIRECT))
        fds.extend(os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC))
        try:
            fcntl.fcntl(fds[1], _F_SETPIPE_SZ, _PIPE_BYTES)
        except OSError:  # a lower pipe-max-size: the pipe holds fewer packets, that is all
            pass
        packets = fcntl.fcntl(fds[1], _F_GETPIPE_SZ) // PACKET
        inodes = (os.fstat(fds[0]).st_ino, os.fstat(fds[2]).st_ino)
    except BaseException:
        close_ends(fds)
        raise
    rfd, wfd, bell_r, bell_w = fds
    return (rfd, wfd, bell_r, bell_w), packets, (os.getpid(), tuple(fds), inodes)


def open_pipes(origin: Origin) -> tuple[int, ...]:
    """This process's own descriptors of the four ends described by ``origin``.

    In the creating process they are duplicates; elsewhere they are opened through
    ``/proc/<creator>/fd`` and checked (:func:`_open_end`).
    """
    pid, fds, (pipe_inode, bell_inode) = origin
    mine: list[int] = []
    try:
        if pid == os.getpid():
            mine.extend(os.dup(fd) for fd in fds)
        else:
            for fd, inode, flags in zip(
                fds,
                (pipe_inode, pipe_inode, bell_inode, bell_inode),
                (os.O_RDONLY, os.O_WRONLY, os.O_RDONLY, os.O_WRONLY),
                strict=True,
            ):
                mine.append(_open_end(pid, fd, inode, flags))
            # Packet mode belongs to the open file description: set it on our writing end.
            flags = fcntl.fcntl(mine[1], fcntl.F_GETFL)
            fcntl.fcntl(mine[1], fcntl.F_SETFL, flags | os.O_DIRECT)
    except BaseException:
        close_ends(mine)
        raise
    return tuple(mine)


def _open_end(pid: int, fd: int, inode: int, flags: int) -> int:
    """Open our own description of the creator's pipe end ``fd``.

    Checked on the open descriptor: a pipe with the recorded inode, made by this user. A pid
    can be reused, and root may open any process's descriptors: never read another user's pipe.
    """
    try:
        mine = os.open(f"/proc/{pid}/fd/{fd}", flags | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise FileNotFoundError(
            f"cannot open the pipe of a ProcessChannel created by process {pid}: it was "
            f"closed or its creator exited ({exc})"
        ) from None
    st = os.fstat(mine)
    if st.st_ino != inode or not stat.S_ISFIFO(st.st_mode):
        os.close(mine)
        raise FileNotFoundError(f"the ProcessChannel's pipe in process {pid} no longer exists")
    if st.st_uid != os.geteuid():
        os.close(mine)
        raise UntrustedSegmentError(
            errno.EPERM,
            f"refusing the ProcessChannel's pipe in process {pid}: it is owned by uid "
            f"{st.st_uid}, not by this user (was the process gone and its pid reused?)",
        )
    return mine

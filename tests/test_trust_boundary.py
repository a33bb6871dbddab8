"""The /dev/shm trust boundary: a segment is mapped only if this process's user could have made it.

``/dev/shm`` is world-writable and its names are world-readable. A pickled handle names its
segment; once the creator unlinks it, anyone may create a file under that name, and what the
library reads from a segment it unpickles. ``shm.attach`` (every attach goes through it)
refuses symbolic links, non-regular files, files of another owner, any mode but 0600 and extra
hard links, with :exc:`UntrustedSegmentError`. The last test is the attack end to end: a planted
``ProcessSharedDict`` image whose value, once unpickled, would run the attacker's code.

The tests run as root (the development VM's user) to make files owned by another uid; they are
skipped elsewhere.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import secrets
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from concurrency_kit import (
    ConcurrencyKitError,
    ProcessLock,
    ProcessSharedDict,
    UntrustedSegmentError,
)
from concurrency_kit._core import shm

NOBODY = 65534
SIZE = 4096

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")


@pytest.fixture
def name() -> Iterator[str]:
    """A fresh, well-formed segment name; whatever the test puts under it is removed after."""
    name = f"ck_{os.getpid()}_{secrets.token_hex(16)}"
    yield name
    path = Path(shm.SHM_DIR, name)
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    else:
        path.unlink(missing_ok=True)


def plant(name: str, *, mode: int = 0o600, uid: int | None = None, data: bytes = b"") -> Path:
    """Create a regular file under ``name`` as another program would (no umask in the way)."""
    path = Path(shm.SHM_DIR, name)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        os.ftruncate(fd, SIZE)
        os.write(fd, data)
        os.fchmod(fd, mode)
        if uid is not None:
            os.fchown(fd, uid, uid)
    finally:
        os.close(fd)
    return path


def refused(
    name: str, why: str
) -> contextlib.AbstractContextManager[pytest.ExceptionInfo[UntrustedSegmentError]]:
    return pytest.raises(UntrustedSegmentError, match=rf"/dev/shm/{name}: {why}")


def test_a_private_file_of_this_user_is_accepted(name: str) -> None:
    # The control: the checks accept what create() makes, and a file made like it.
    plant(name, data=b"hello")
    segment = shm.attach(name, SIZE)
    try:
        assert segment.buffer[:5] == b"hello"
    finally:
        segment.close()


def test_the_error_is_a_permission_error_naming_the_segment(name: str) -> None:
    plant(name, mode=0o644)
    with pytest.raises(UntrustedSegmentError) as info:
        shm.attach(name, SIZE)
    assert isinstance(info.value, PermissionError)
    assert isinstance(info.value, ConcurrencyKitError)
    message = str(info.value)
    assert f"/dev/shm/{name}" in message
    assert "mode is 0o644, not 0o600" in message


@pytest.mark.parametrize("target", ["a segment of ours", "a file of ours"])
def test_a_symbolic_link_is_refused(name: str, target: str, tmp_path: Path) -> None:
    # Even to a real segment of this user: the name itself must be the segment.
    if target == "a segment of ours":
        real = shm.create(SIZE)
        destination = Path(real.path)
    else:
        real = None
        destination = tmp_path / "file"
        destination.write_bytes(bytes(SIZE))
        destination.chmod(0o600)
    try:
        Path(shm.SHM_DIR, name).symlink_to(destination)
        with refused(name, "it is a symbolic link"):
            shm.attach(name, SIZE)
    finally:
        if real is not None:
            real.unlink()
            real.close()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o666, 0o700, 0o400, 0o4600])
def test_any_mode_but_0600_is_refused(name: str, mode: int) -> None:
    plant(name, mode=mode)
    with refused(name, f"its mode is {mode:#o}, not 0o600"):
        shm.attach(name, SIZE)


@pytest.mark.parametrize("kind", ["directory", "FIFO", "socket"])
def test_a_file_that_is_not_regular_is_refused(name: str, kind: str) -> None:
    path = Path(shm.SHM_DIR, name)
    if kind == "directory":
        path.mkdir(mode=0o600)
        expected = "it is a directory"
    elif kind == "FIFO":
        os.mkfifo(path, 0o600)
        expected = "it is a FIFO"
    else:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(path))
        os.chmod(path, 0o600)
        expected = "it is a socket"
    with refused(name, expected):
        shm.attach(name, SIZE)


def test_a_second_hard_link_is_refused(name: str) -> None:
    # One of our own segments linked under another name would make one handle read another
    # handle's bytes as its own.
    real = shm.create(SIZE)
    try:
        os.link(real.path, Path(shm.SHM_DIR, name))
        with refused(name, "it has 2 hard links, not 1"):
            shm.attach(name, SIZE)
    finally:
        real.unlink()
        real.close()


@needs_root
def test_a_file_of_another_user_is_refused(name: str) -> None:
    plant(name, uid=NOBODY)
    with refused(name, f"it is owned by uid {NOBODY}, not by this user \\(uid 0\\)"):
        shm.attach(name, SIZE)


def test_segments_are_0600_whatever_the_umask() -> None:
    old = os.umask(0o177)  # would leave 0400
    try:
        segment = shm.create(SIZE)
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(os.stat(segment.path).st_mode) == 0o600
        shm.attach(segment.name, SIZE).close()
    finally:
        segment.unlink()
        segment.close()


def test_a_vanished_lock_name_taken_by_another_user_is_refused(name: str) -> None:
    lock = ProcessLock()
    data = pickle.dumps(lock)
    path = Path(shm.SHM_DIR, lock._name)
    image = path.read_bytes()
    lock.close()  # the creator: removes the name
    assert not path.exists()
    try:
        path.write_bytes(image)  # the same bytes, but mode 0644: anyone could have written them
        path.chmod(0o644)
        with refused(lock._name, "its mode is 0o644"):
            pickle.loads(data)
    finally:
        path.unlink(missing_ok=True)


class Payload:
    """What the attacker stores: unpickling it creates the marker file (the 'attacker code')."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return Path.touch, (self.marker,)


def copy_sparse(source: Path, destination: Path, uid: int) -> None:
    """Copy a (mostly sparse) segment file as its data extents only, owned by ``uid``."""
    with source.open("rb") as src:
        fd = os.open(destination, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            size = os.fstat(src.fileno()).st_size
            os.ftruncate(fd, size)
            offset = 0
            while offset < size:
                try:
                    start = os.lseek(src.fileno(), offset, os.SEEK_DATA)
                except OSError:  # ENXIO: no data after offset
                    break
                end = os.lseek(src.fileno(), start, os.SEEK_HOLE)
                src.seek(start)
                os.lseek(fd, start, os.SEEK_SET)
                remaining = end - start
                while remaining:
                    chunk = src.read(min(remaining, 1 << 20))
                    os.write(fd, chunk)
                    remaining -= len(chunk)
                offset = end
            os.fchown(fd, uid, uid)  # the attacker's file, private to the attacker
        finally:
            os.close(fd)


@needs_root
def test_planted_shared_dict_image_does_not_run_the_attackers_code(tmp_path: Path) -> None:
    marker = tmp_path / "attacker-code-ran"
    # The victim shares a dict (its pickled handle is kept somewhere: a queue, a file, a task).
    victim = ProcessSharedDict({"k": "victim's value"})
    (table_name,) = victim.__reduce__()[1]
    handle = pickle.dumps(victim)
    # The attacker builds a dict image whose value runs code when it is unpickled ...
    evil = ProcessSharedDict({"k": Payload(marker)})
    (evil_name,) = evil.__reduce__()[1]
    planted = Path(shm.SHM_DIR, table_name)
    try:
        # ... and once the victim's segment is gone, plants it under the victim's name.
        victim.close()
        assert not planted.exists()
        copy_sparse(Path(shm.SHM_DIR, evil_name), planted, NOBODY)
        with refused(table_name, f"it is owned by uid {NOBODY}"):
            reopened = pickle.loads(handle)
            reopened.get("k")  # what the victim does next; unpickles the planted value
        assert not marker.exists(), "the attacker's code ran"
    finally:
        planted.unlink(missing_ok=True)
        evil.close()


def test_an_open_that_fails_for_another_reason_is_not_called_untrusted(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant(name)

    def no_descriptor_left(*args: object) -> int:
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    monkeypatch.setattr(os, "open", no_descriptor_left)
    with pytest.raises(OSError, match="Too many open files") as info:
        shm.attach(name, SIZE)
    assert not isinstance(info.value, UntrustedSegmentError)


def test_growing_a_dict_never_touches_a_file_put_under_its_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before Linux 5.14 a dict grows by ``posix_fallocate`` on its file, opened by name again.

    That reopen is checked like an attach, and must find the very file that is mapped: a file
    of this user put under the name after the segment was removed is left alone.
    """
    from concurrency_kit.state import _hashtable

    monkeypatch.setattr(_hashtable, "_populate_supported", False)  # the pre-5.14 path
    shared = ProcessSharedDict()
    try:
        (table_name,) = shared.__reduce__()[1]
        os.unlink(Path(shm.SHM_DIR, table_name))  # removed, and the name taken again
        planted = plant(table_name)
        with pytest.raises(MemoryError, match="removed"):
            shared["big"] = b"x" * (4 << 20)
        assert planted.stat().st_size == SIZE  # not grown
    finally:
        Path(shm.SHM_DIR, table_name).unlink(missing_ok=True)
        shared.close()


@needs_root
def test_a_channel_pipe_of_another_user_is_refused() -> None:
    # A handle reopens its creator's pipe through /proc/<pid>/fd; after the pid is reused, root
    # could open another user's pipe there. The check is on the open descriptor's owner.
    from concurrency_kit.channels._pipe import _open_end

    r, w = os.pipe()
    try:
        os.fchown(r, NOBODY, NOBODY)
        with pytest.raises(UntrustedSegmentError, match=f"owned by uid {NOBODY}"):
            _open_end(os.getpid(), r, os.fstat(r).st_ino, os.O_RDONLY)
    finally:
        os.close(r)
        os.close(w)

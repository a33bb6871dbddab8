"""The shared-memory segment lifecycle of ``concurrency_kit._core.shm``."""

from __future__ import annotations

import atexit
import ctypes
import os
import textwrap
from collections.abc import Iterator
from multiprocessing import resource_tracker
from pathlib import Path

import pytest

from _children import creator
from concurrency_kit._core import shm

DEADLOCK = 60.0


@pytest.fixture
def segment() -> Iterator[shm.Segment]:
    seg = shm.create(4096)
    yield seg
    seg.unlink()
    seg.close()


def shm_fds() -> list[str]:
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:  # the descriptor listdir itself used
            pass
    return [t for t in targets if t.startswith("/dev/shm/")]


def test_create_makes_a_private_zeroed_segment_without_a_descriptor() -> None:
    before = shm_fds()
    seg = shm.create(1000)
    try:
        path = Path(seg.path)
        assert path.parent == Path("/dev/shm")
        prefix, pid, token = seg.name.split("_")
        assert (prefix, pid, len(token)) == ("ck", str(os.getpid()), 32)
        assert shm.creator_pid(seg.name) == os.getpid()
        stat = path.stat()
        assert stat.st_mode & 0o777 == 0o600
        assert stat.st_size == seg.size == 1000
        assert seg.buffer.raw == bytes(1000)
        assert shm_fds() == before
        assert seg.is_creator
        assert seg.name in Path("/proc/self/maps").read_text()
    finally:
        seg.unlink()
        seg.close()
    assert not Path(seg.path).exists()
    assert seg.name not in Path("/proc/self/maps").read_text()  # unmapped
    with pytest.raises(ValueError, match="closed"):
        seg.buffer  # noqa: B018


def test_close_waits_for_the_last_view() -> None:
    seg = shm.create(64)
    view = ctypes.c_int.from_buffer(seg.buffer, 8)
    seg.unlink()
    seg.close()
    view.value = 5  # still mapped: the view keeps the mapping alive
    assert seg.name in Path("/proc/self/maps").read_text()
    del view
    assert seg.name not in Path("/proc/self/maps").read_text()


def test_names_are_unique() -> None:
    segs = [shm.create(64) for _ in range(5)]
    try:
        assert len({s.name for s in segs}) == 5
    finally:
        for s in segs:
            s.unlink()
            s.close()


def test_attach_shares_the_bytes_and_never_unlinks(segment: shm.Segment) -> None:
    other = shm.attach(segment.name, segment.size)
    try:
        assert not other.is_creator
        other.buffer[:5] = b"hello"
        assert segment.buffer[:5] == b"hello"
        other.unlink()  # an attacher does not own the name
        assert Path(segment.path).exists()
    finally:
        other.close()
    assert segment.buffer[:5] == b"hello"


def test_only_the_creator_talks_to_the_resource_tracker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, str, str]] = []
    monkeypatch.setattr(resource_tracker, "register", lambda n, t: calls.append(("reg", n, t)))
    monkeypatch.setattr(resource_tracker, "unregister", lambda n, t: calls.append(("unreg", n, t)))
    seg = shm.create(64)
    assert calls == [("reg", "/" + seg.name, "shared_memory")]
    other = shm.attach(seg.name, 64)
    other.unlink()
    other.close()
    assert len(calls) == 1  # CPython issue 82300: attachers must not register
    seg.unlink()
    seg.unlink()  # idempotent
    assert calls[1:] == [("unreg", "/" + seg.name, "shared_memory")]
    seg.close()
    assert not Path(seg.path).exists()


def test_attach_errors(segment: shm.Segment) -> None:
    with pytest.raises(FileNotFoundError):
        shm.attach(f"ck_{os.getpid()}_" + "0" * 32, 64)
    for bad in (
        "../etc/passwd",
        "other",
        "ck_/x",
        "ck_" + "0" * 32,  # the old format: no creator pid
        f"ck_{os.getpid()}_" + "0" * 31,
        f"ck_{os.getpid()}_" + "A" * 32,
        "ck_0_" + "0" * 32,
        f"ck_{os.getpid()}_" + "0" * 32 + "/x",
        f"ck_{os.getpid()}_" + "0" * 32 + "\n",
    ):
        assert shm.creator_pid(bad) is None
        with pytest.raises(ValueError, match="segment name"):
            shm.attach(bad, 64)
    with pytest.raises(ValueError, match="expected at least"):
        shm.attach(segment.name, segment.size + 1)
    with pytest.raises(ValueError, match="positive"):
        shm.create(0)


def test_unlink_removes_the_name_but_not_the_mapping(segment: shm.Segment) -> None:
    segment.buffer[0] = b"\x07"
    segment.unlink()
    assert not Path(segment.path).exists()
    assert segment.buffer[0] == b"\x07"
    with pytest.raises(FileNotFoundError):
        shm.attach(segment.name, segment.size)


@pytest.mark.fork  # forks the test process
def test_a_forked_copy_is_not_the_creator(segment: shm.Segment) -> None:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            segment.unlink()  # must do nothing: the copy did not create it
            os.write(w, b"1" if not segment.is_creator else b"0")
        finally:
            os._exit(0)
    os.close(w)
    try:
        assert os.read(r, 1) == b"1"
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    assert Path(segment.path).exists()


@pytest.mark.fork  # forks the test process
def test_atexit_handlers_do_not_unmap(segment: shm.Segment) -> None:
    # Python 3.13+ runs atexit handlers in fork and forkserver children before os._exit; a
    # robust mutex must still be mapped when the process dies (test_holder_dies_by_raising).
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            other = shm.attach(segment.name, segment.size)
            atexit._run_exitfuncs()
            maps = Path("/proc/self/maps").read_text()
            os.write(w, b"%d" % maps.count(segment.name))
            del other
        finally:
            os._exit(0)
    os.close(w)
    try:
        assert os.read(r, 10) == b"2"  # the creator's mapping (inherited) and the attacher's
    finally:
        os.close(r)
        os.waitpid(pid, 0)


CREATOR = textwrap.dedent(
    """
    import sys
    from concurrency_kit._core import shm

    seg = shm.create(4096)
    print(seg.name, flush=True)
    sys.stdin.read()  # until the test kills us
    """
)


def test_resource_tracker_removes_the_segment_of_a_killed_creator() -> None:
    with creator(CREATOR) as process:
        (name,) = process.words
        assert name.startswith("ck_")
        path = Path("/dev/shm") / name
        assert path.exists()
        err = process.kill()
    assert not path.exists()
    assert "leaked shared_memory" in err

"""The compiled core's small helpers that the larger suites use only on their happy paths."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from concurrency_kit._core import _native


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe2(os.O_NONBLOCK | os.O_DIRECT)
    yield r, w
    os.close(r)
    os.close(w)


def test_read_nowait_returns_none_on_an_empty_pipe_and_one_packet_otherwise(
    pipe: tuple[int, int],
) -> None:
    r, w = pipe
    assert _native.read_nowait(r, 4096) is None
    os.write(w, b"abc")
    os.write(w, b"de")
    assert _native.read_nowait(r, 4096) == b"abc"  # packet mode: one write per read
    assert _native.read_nowait(r, 4096) == b"de"
    assert _native.read_nowait(r, 4096) is None


def test_read_nowait_raises_for_what_is_not_an_empty_pipe(pipe: tuple[int, int]) -> None:
    r, w = pipe
    with pytest.raises(ValueError, match="size"):
        _native.read_nowait(r, -1)
    with pytest.raises(OSError, match="Bad file descriptor"):
        _native.read_nowait(w, 16)  # the write end cannot be read
    closed_r, closed_w = os.pipe()
    os.close(closed_r)
    os.close(closed_w)
    with pytest.raises(OSError, match="Bad file descriptor"):
        _native.read_nowait(closed_r, 16)


def test_byte_ring_refuses_unaligned_memory_and_use_after_close() -> None:
    buf = bytearray(4096)
    with pytest.raises(ValueError, match="aligned"):
        _native.ByteRing(buf, 8, 16, 4095, (0, 1, 2, 3, 4, 5), (1, 4, 0, 1, 2))
    with pytest.raises(ValueError, match="negative"):
        _native.ByteRing(buf, 8, 16, 4096, (0, 1, -2, 3, 4, 5), (1, 4, 0, 1, 2))
    ring = _native.ByteRing(buf, 8, 16, 4096, (0, 1, 2, 3, 4, 5), (1, 4, 0, 1, 2))
    ring.close()
    with pytest.raises(ValueError, match="closed"):
        ring.take(1, -1)
    with pytest.raises(ValueError, match="closed"):
        ring.put(0, b"x")

"""Every item comes out of a ProcessChannel byte for byte as it went in, of the same type.

Issue #15, defect 2: a ``bytes`` item longer than a pipe packet whose length was not a multiple
of 8 came back padded to 8 with the bytes of an *earlier* item (the store kept only the entry's
rounded size). Here Hypothesis sends items of every kind the channel treats apart, with sizes
around each boundary of its layout, through both paths::

    sizes     a pipe packet (4096) +- a few;  8-byte multiples +- 1;  0;  large enough that a
              64 KiB store wraps (items are kept in the store across rounds)
    kinds     bytes, bytearray, memoryview (formats, shapes, non-contiguous), str, NumPy arrays
              (dtypes, shapes, Fortran order, non-contiguous), pickled objects
    paths     a small item goes to the pipe, unless the store holds items (then to the store)
    calls     send / send_many, recv / recv_many

and compares what arrives with what was sent: the type, and the exact bytes.
"""

from __future__ import annotations

import array
import pickle
import struct
from typing import Any

import numpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from concurrency_kit import ChannelEmpty, ProcessChannel
from concurrency_kit.channels import _layout as layout

STORE = 64 * 1024
"""The smallest store: items of a few KiB kept across rounds make its ring wrap."""

PACKET = 4096
MAX_ITEM = 12_000
"""Bytes of the largest item: with two held, a third always finds room in the store, even
with the end of the ring unused after a wrap."""

BOUNDARIES = sorted(
    {0, 1, 7, 8, 9, 15, 16, 17}
    | {PACKET + d for d in range(-17, 18)}
    | {2 * PACKET + d for d in (-9, -8, -1, 0, 1, 7, 8, 9)}
    | {MAX_ITEM - d for d in range(9)}
)
SIZES = st.one_of(st.sampled_from(BOUNDARIES), st.integers(0, MAX_ITEM))
DTYPES = ["uint8", "int16", "int32", "float32", "float64", "complex128", "bool", ">i4"]


def fill(size: int, seed: int) -> bytes:
    """``size`` bytes that differ by item and by offset (so a shifted copy never matches)."""
    unit = bytes((seed * 37 + j * 11) % 251 for j in range(251))
    return (unit * (size // 251 + 1))[:size]


@st.composite
def items(draw: st.DrawFn, seed: int) -> Any:
    size = draw(SIZES)
    data = fill(size, seed)
    kind = draw(st.sampled_from(["bytes", "bytearray", "memoryview", "str", "numpy", "object"]))
    if kind == "bytes":
        return data
    if kind == "bytearray":
        return bytearray(data)
    if kind == "str":
        if draw(st.booleans()):  # not ASCII: up to 2 bytes a character in the pickle
            return data[: size // 2 + 1].decode("latin-1")
        return bytes(32 + b % 95 for b in data).decode("ascii")
    if kind == "object":
        return {"seed": seed, "payload": (data, [size, data[:3]])}
    if kind == "memoryview":
        shape = draw(st.sampled_from(["flat", "ints", "matrix", "strided"]))
        if shape == "ints":
            return memoryview(array.array("i", data[: size - size % 4]))
        if shape == "matrix" and size >= 64:
            rows = size // 64
            return memoryview(numpy.frombuffer(data[: rows * 64], "uint8").reshape(rows, 64))
        if shape == "strided":
            return memoryview(data)[::3]
        return memoryview(data)
    dtype = numpy.dtype(draw(st.sampled_from(DTYPES)))
    n = size // dtype.itemsize
    flat = numpy.frombuffer(data[: n * dtype.itemsize], dtype).copy()
    layout = draw(st.sampled_from(["flat", "matrix", "fortran", "strided", "zero-d"]))
    if layout == "flat":
        return flat
    if layout == "zero-d":
        return flat[:1].reshape(()) if n else flat
    columns = 8 if n >= 8 else 1
    matrix = flat[: n - n % columns].reshape(-1, columns)
    if layout == "matrix":
        return matrix
    if layout == "fortran":
        return numpy.asfortranarray(matrix)
    return matrix[::2, ::3]  # not contiguous either way


def described(item: Any) -> tuple[Any, ...]:
    """What must survive the trip: the type, the shape and format, the exact bytes."""
    if isinstance(item, numpy.ndarray):
        order = "F" if item.flags.f_contiguous and not item.flags.c_contiguous else "C"
        return ("ndarray", item.dtype.str, item.shape, item.tobytes(order="A"), order)
    if isinstance(item, memoryview):
        # A memoryview arrives C-contiguous, of the same format and shape.
        return ("memoryview", item.format, item.shape, item.tobytes())
    if isinstance(item, dict):
        return ("dict", repr(item))
    return (type(item).__name__, bytes(item) if not isinstance(item, str) else item)


def nbytes(item: Any) -> int:
    if isinstance(item, (numpy.ndarray, memoryview)):
        return int(item.nbytes)
    if isinstance(item, dict):
        return len(item["payload"][0]) * 2
    return len(item)


@st.composite
def rounds(draw: st.DrawFn) -> list[tuple[list[Any], bool, bool, int]]:
    """Rounds of (items, sent with send_many, received with recv_many, items kept)."""
    out = []
    seed = 0
    kept = 0
    for _ in range(draw(st.integers(1, 6))):
        batch = []
        for _ in range(draw(st.integers(1, 3 - min(kept, 2)))):
            seed += 1
            batch.append(draw(items(seed)))
        keep = draw(st.integers(0, min(1, len(batch) + kept)))
        out.append((batch, draw(st.booleans()), draw(st.booleans()), keep))
        kept = keep
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=rounds(), spill=st.booleans())
def test_every_item_arrives_exactly(
    plan: list[tuple[list[Any], bool, bool, int]], spill: bool
) -> None:
    sent: list[Any] = []
    got: list[Any] = []
    with ProcessChannel[Any](None, shared_memory_size=STORE) as channel:
        if spill:  # a large item first: the store holds items, so small ones follow it there
            sent.append(fill(PACKET + 1, 0))
            channel.send(sent[0])
        for batch, many_out, many_in, keep in plan:
            if many_out:
                channel.send_many(batch, timeout=60)
            else:
                for item in batch:
                    channel.send(item, timeout=60)
            sent.extend(batch)
            while len(got) < len(sent) - keep:
                if many_in:
                    got.extend(channel.recv_many(len(sent) - keep - len(got), timeout=60))
                else:
                    got.append(channel.recv(timeout=60))
        while len(got) < len(sent):
            got.append(channel.recv(timeout=60))
        with pytest.raises(ChannelEmpty):
            channel.recv_nowait()
    assert [described(x) for x in got] == [described(expected(x)) for x in sent]


def expected(item: Any) -> Any:
    """What the item should arrive as: a NumPy array as a plain pickle round trip makes it
    (NumPy pickles a non-contiguous array of non-native byte order in native order)."""
    if isinstance(item, numpy.ndarray):
        return pickle.loads(pickle.dumps(item, 5))
    return item


# -- the examples of the issue, and each boundary on its own ----------------------------------


@pytest.mark.parametrize("many", [False, True], ids=["send", "send_many"])
def test_a_bytes_item_never_carries_an_earlier_items_bytes(many: bool) -> None:
    with ProcessChannel[bytes]() as channel:
        channel.send(b"SECRET-" * 2000)
        assert channel.recv(timeout=60) == b"SECRET-" * 2000
        if many:
            channel.send_many([b"B" * 4097])
        else:
            channel.send(b"B" * 4097)
        got = channel.recv(timeout=60)
    assert got == b"B" * 4097  # was 4104 bytes, ending in b"CRET-SE"


@pytest.mark.parametrize("size", [4097, 4098, 4103, 4104, 4105, 9999, 65_000])
def test_bytes_just_past_a_packet_keep_their_length(size: int) -> None:
    with ProcessChannel[bytes](shared_memory_size=2 * STORE) as channel:
        channel.send(b"\xff" * (size + 7))  # leaves its bytes in the store
        channel.recv(timeout=60)
        channel.send(fill(size, 1))
        got = channel.recv(timeout=60)
    assert type(got) is bytes
    assert got == fill(size, 1)


def test_the_store_wraps_without_mixing_items() -> None:
    sizes = [PACKET + 1 + 8 * k + k % 7 for k in range(40)]
    with ProcessChannel[bytes](None, shared_memory_size=STORE) as channel:
        channel.send(fill(sizes[0], 0))
        for k, size in enumerate(sizes[1:], 1):
            channel.send(fill(size, k))  # one item stays behind: the ring never empties
            assert channel.recv(timeout=60) == fill(sizes[k - 1], k - 1)
        assert channel.recv(timeout=60) == fill(sizes[-1], len(sizes) - 1)


def test_the_entry_header_records_the_exact_length() -> None:
    # White box: the header's payload length is the item's, its size the rounded one.
    from concurrency_kit.channels import _items, _ring

    with ProcessChannel[bytes]() as channel:
        channel.send(b"x" * 4097)
        size, state, kind, _ack, length, _number = _ring.ENTRY.unpack_from(channel._ring.buf, 0)
        assert (kind, length, size) == (_items.RAW_BYTES, 4097, _ring.align(4097 + 32))
        assert struct.calcsize("<QHHIQQ") == _ring.ENTRY.size == 32
        assert state == _ring.READY
        assert channel.recv(timeout=60) == b"x" * 4097


def test_a_send_many_run_too_large_for_one_batch_goes_item_by_item() -> None:
    # A 64 KiB store takes batches of up to 16 KiB: this run's pickle is larger, so its items
    # travel one by one (large ones through the store, each its own entry), in order.
    with ProcessChannel[Any](None, shared_memory_size=STORE) as channel:
        run = [bytes([i]) * 5_000 for i in range(6)] + ["small", 7]
        channel.send_many(run)
        assert channel.statistics().queued == len(run)
        assert channel._w[layout.ENTRIES] >= 6  # white box: not one batch entry
        assert channel.recv_many(len(run), timeout=0) + _drain(channel) == run


def _drain(channel: ProcessChannel[Any]) -> list[Any]:
    items = []
    while True:
        try:
            items.append(channel.recv_nowait())
        except ChannelEmpty:
            return items

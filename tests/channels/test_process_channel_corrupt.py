"""A ProcessChannel whose shared memory holds values it could not have written refuses them.

The store and the state words are shared memory that any process of this user can write (a bug,
a stray pointer, a hostile process of the same user). Every offset, length and count the channel
reads there is checked before it is used: a bad one raises
:class:`~concurrency_kit.SharedMemoryCorruptError` naming the channel and the value — never a
read past the entry, never another item's bytes (issue #15). These tests write bad values into a
real channel's memory (white box: the layouts are those of ``channels/_layout.py`` and
``channels/_ring.py``) and check that the next receive refuses them, and keeps refusing them
without hanging (the mutex is released).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import pytest

from concurrency_kit import ProcessChannel, SharedMemoryCorruptError
from concurrency_kit.channels import _layout as layout
from concurrency_kit.channels import _ring as ring

BIG = 5_000  # bytes: past a pipe packet, so the item goes to the store


def header(channel: ProcessChannel[Any], at: int = 0) -> list[int]:
    """The entry header at ``at``: size, state, kind, ack slot, payload length, number."""
    return list(ring.ENTRY.unpack_from(channel._ring.buf, at))


def write_header(channel: ProcessChannel[Any], fields: list[int], at: int = 0) -> None:
    ring.ENTRY.pack_into(channel._ring.buf, at, *fields)


def refused(channel: ProcessChannel[Any]) -> None:
    """Every receive refuses the channel's memory, each time, with a clear error."""
    calls: list[Callable[[], Any]] = [
        channel.recv_nowait,
        lambda: channel.recv(timeout=0),
        lambda: channel.recv_many(3, timeout=0),
    ]
    for call in calls:
        with pytest.raises(
            SharedMemoryCorruptError, match=r"shared memory of ProcessChannel .* is corrupt"
        ):
            call()


SIZE, STATE, KIND, ACK, LENGTH, NUMBER = range(6)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (LENGTH, BIG + 8),  # longer than its entry: would read the next entry's bytes
        (LENGTH, 2**62),
        (SIZE, 2**40),  # past the end of the store
        (SIZE, 8),  # shorter than a header
        (STATE, 99),
        (KIND, 77),
        (ACK, 10**6),
        (NUMBER, 12345),  # not the next entry written
    ],
    ids=["length+8", "length-huge", "size-huge", "size-tiny", "state", "kind", "ack", "number"],
)
@pytest.mark.parametrize("item", [b"a" * BIG, "a" * BIG], ids=["raw-bytes", "pickled"])
def test_a_bad_entry_header_is_refused(
    make: Callable[..., ProcessChannel[Any]], field: int, value: int, item: object
) -> None:
    channel = make()
    channel.send(item)
    fields = header(channel)
    fields[field] = value
    write_header(channel, fields)
    refused(channel)


def test_a_stale_entry_is_never_taken_again(make: Callable[..., ProcessChannel[Any]]) -> None:
    channel = make()
    channel.send(b"A" * BIG)
    channel.send(b"B" * BIG)
    assert channel.recv(timeout=0) == b"A" * BIG
    assert channel.recv(timeout=0) == b"B" * BIG
    channel.send(b"C" * (BIG - 16))  # the ring restarted at 0: B's old entry follows C's
    channel._w[layout.ENTRIES] += 1  # the counts claim one more entry: B's, stale
    channel._w[layout.SPILLED] += 1
    assert channel.recv(timeout=0) == b"C" * (BIG - 16)
    refused(channel)  # B's bytes are never returned a second time


@pytest.mark.parametrize("where", ["tail-unaligned", "tail-past-the-end", "head-negative"])
def test_a_bad_ring_position_is_refused(
    make: Callable[..., ProcessChannel[Any]], where: str
) -> None:
    channel = make(shared_memory_size=1 << 20)
    channel.send(b"a" * BIG)
    if where == "tail-unaligned":
        channel._w[layout.TAIL] = 3
    elif where == "tail-past-the-end":
        channel._w[layout.TAIL] = (1 << 20) + 64
    else:
        channel._w[layout.HEAD] = -8
    refused(channel)
    # A sender does not write there either.
    with pytest.raises(SharedMemoryCorruptError, match="corrupt"):
        channel.send(b"b" * BIG, timeout=0)


def batch_entry(channel: ProcessChannel[Any]) -> int:
    """Where the batch entry sent after one big item starts (the big one received)."""
    channel.send(b"x" * BIG)  # the store holds an item: the batch goes there too
    channel.send_many(["one", "two", "three"])
    assert channel.recv(timeout=0) == b"x" * BIG
    return header(channel)[SIZE]  # the batch entry follows the first one


def test_a_batch_taken_past_its_items_is_refused(make: Callable[..., ProcessChannel[Any]]) -> None:
    channel = make()
    at = batch_entry(channel)
    pos = at + ring.ENTRY.size
    ring.BATCH_HEAD.pack_into(channel._ring.buf, pos, 3, 3)  # 3 items, 3 taken: none left
    refused(channel)


@pytest.mark.parametrize(
    "forged", [["one", "two"], ("one", "two", "three"), {"one": 1}], ids=["short", "tuple", "dict"]
)
def test_a_batch_that_is_not_its_list_of_items_is_refused(
    make: Callable[..., ProcessChannel[Any]], forged: object
) -> None:
    channel = make()
    at = batch_entry(channel)
    pos = at + ring.ENTRY.size + ring.BATCH_HEAD.size
    data = pickle.dumps(forged, 5)
    length = header(channel, at)[LENGTH] - ring.BATCH_HEAD.size
    assert len(data) <= length
    channel._ring.buf[pos : pos + length] = data.ljust(length, pickle.STOP)
    with pytest.raises(SharedMemoryCorruptError, match="a batch of 3 items holds"):
        channel.recv(timeout=0)
    # Each of the three items it claimed to hold fails the same way, then the channel is empty.
    for _ in range(2):
        with pytest.raises(SharedMemoryCorruptError, match="a batch of 3 items holds"):
            channel.recv_nowait()
    assert channel.statistics().queued == 0


def test_a_partly_taken_batch_is_unpickled_once_per_handle(
    make: Callable[..., ProcessChannel[Any]],
) -> None:
    channel = make()
    at = batch_entry(channel)
    assert channel.recv(timeout=0) == "one"
    # The rest of the list is kept by this handle: bytes written over the pickle now are not
    # read again, and the items come out in order.
    pos = at + ring.ENTRY.size + ring.BATCH_HEAD.size
    channel._ring.buf[pos : pos + 4] = b"\xff\xff\xff\xff"
    assert channel.recv_many(5, timeout=0) == ["two", "three"]
    assert channel.statistics().queued == 0


def test_pickled_item_lengths_that_do_not_add_up_are_refused(
    make: Callable[..., ProcessChannel[Any]],
) -> None:
    channel = make()
    channel.send(bytearray(b"y" * BIG))  # pickled, its bytes out of band
    pos = ring.ENTRY.size
    length, count = ring.PAYLOAD.unpack_from(channel._ring.buf, pos)
    assert count == 1
    ring.PAYLOAD.pack_into(channel._ring.buf, pos, length, 2**31)  # a buffer count past the item
    refused(channel)


def test_a_pickle_length_that_does_not_add_up_is_refused(
    make: Callable[..., ProcessChannel[Any]],
) -> None:
    channel = make()
    channel.send("z" * BIG)  # pickled, no out-of-band buffers: the compiled path's entry
    pos = ring.ENTRY.size
    length, count = ring.PAYLOAD.unpack_from(channel._ring.buf, pos)
    assert count == 0
    ring.PAYLOAD.pack_into(channel._ring.buf, pos, length + 8, 0)  # past its entry's payload
    refused(channel)


def test_the_entry_layout_is_the_compiled_paths() -> None:
    # _native.c's ByteRing writes and reads the same header and pickle prefix as _ring.py.
    assert (ring.ENTRY.size, ring.PAYLOAD.size) == (32, 12)


def test_a_dead_threads_bad_mark_is_refused(make: Callable[..., ProcessChannel[Any]]) -> None:
    channel = make(4)
    slot = layout.SLOTS_AT + layout.SLOT_WORDS * (layout.THREAD_SLOTS - 1)
    channel._w[slot + layout.SLOT_PID], channel._w[slot + layout.SLOT_TID] = (
        2**22 + 1,
        1,
    )  # no such process
    channel._w[slot + layout.SLOT_IN_FLIGHT] = 10**9  # in flight: more than any send reserves
    with pytest.raises(SharedMemoryCorruptError, match="corrupt"):
        channel._slots.scan()
    assert channel.statistics().sent == 0  # the count was not touched


def test_a_bad_store_size_is_refused_when_a_handle_is_unpickled(
    make: Callable[..., ProcessChannel[Any]],
) -> None:
    channel = make()
    data = pickle.dumps(channel)
    channel._w[layout.STORE_SIZE] = 17
    with pytest.raises(SharedMemoryCorruptError, match="corrupt"):
        pickle.loads(data)

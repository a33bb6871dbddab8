"""The bytes of a shared table cross a trust boundary: a corrupt length or offset is an error.

Each test writes a bad word where a length, an offset or a count of the table lives (as a
stray writer in another process of the same user could), then checks that every operation
that would use it raises :exc:`SharedMemoryCorruptError` (or, for the dict's pickled keys and
values, :exc:`~concurrency_kit.SerializationError`) instead of reading out of place, handing
back another entry's bytes, looping for ever, or giving back pages still in use; and that the
mutex is free afterwards: putting the word back makes the table work again, from another
thread too.

The version word is bumped with each scribble, as every change does, so that no handle's read
cache hides it.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

import pytest

from concurrency_kit import (
    ConcurrencyKitError,
    ProcessSharedDict,
    SerializationError,
    SharedMemoryCorruptError,
)
from concurrency_kit.state import _hashtable as ht
from concurrency_kit.state._hashtable import SharedHashTable, key_hash

DEADLOCK = 60.0
"""Seconds after which a wait that should have ended is a deadlock (a failure, not a pass)."""

CTX = multiprocessing.get_context("forkserver")


@pytest.fixture
def table() -> Iterator[SharedHashTable]:
    t = SharedHashTable.create()
    yield t
    t.close()
    t.unlink()


def put(table: SharedHashTable, key: bytes, value: bytes) -> None:
    table.set(key, key_hash(key), value)


def get(table: SharedHashTable, key: bytes) -> bytes | None:
    return table.get(key, key_hash(key))


def slot_of(table: SharedHashTable, key: bytes) -> int:
    """The word index of the slot that holds ``key``."""
    geo = table._current()
    tag = (key_hash(key) >> 5) & ht._TAG_MASK
    for i in range(geo[2] + 1):
        w = table._words[geo[1] + i]
        if 0 < w < ht._TOMB and w >> ht._OFF_BITS == tag:
            return int(geo[1] + i)
    raise AssertionError(f"{key!r} has no slot")


def record_of(table: SharedHashTable, key: bytes) -> int:
    """The word index of the length word of ``key``'s record."""
    return int(table._words[slot_of(table, key)] & ht._OFF_MASK)


class Scribble:
    """Writes a bad word into the table, and puts the good one back."""

    def __init__(self, table: SharedHashTable, word: int, value: int) -> None:
        self.table, self.word = table, word
        self.good = int(table._words[word])
        table._words[word] = value
        table._words[ht._W_VERSION] += 1

    def undo(self) -> None:
        self.table._words[self.word] = self.good
        self.table._words[ht._W_VERSION] += 1


def usable_from_another_thread(table: SharedHashTable) -> None:
    """The mutex is free and the table works: a set and a get from a fresh thread."""
    done: list[bytes | None] = []
    worker = threading.Thread(
        target=lambda: (put(table, b"z", b"26"), done.append(get(table, b"z")))
    )
    worker.start()
    worker.join(DEADLOCK)
    assert not worker.is_alive(), "the table's mutex was left held"
    assert done == [b"26"]


def every_operation_refuses(table: SharedHashTable, key: bytes, match: str) -> None:
    operations: list[Callable[[], Any]] = [
        lambda: get(table, key),
        lambda: put(table, key, b"new value"),
        lambda: table.delete(key, key_hash(key)),
        table.items,
        table.keys,
        table.values,
    ]
    for operation in operations:
        with pytest.raises(SharedMemoryCorruptError, match=match):
            operation()


def test_the_error_is_a_library_error_and_a_runtime_error() -> None:
    assert issubclass(SharedMemoryCorruptError, ConcurrencyKitError)
    assert issubclass(SharedMemoryCorruptError, RuntimeError)


def test_a_value_length_past_the_arena_is_refused(table: SharedHashTable) -> None:
    put(table, b"a", b"1")
    put(table, b"b", b"2")
    word = record_of(table, b"b")
    lens = int(table._words[word])
    bad = Scribble(table, word, (lens & 0xFFFFFFFF) | (0xFFFFFFFF << 32))
    every_operation_refuses(table, b"b", "runs past the arena's end")
    assert get(table, b"a") == b"1"  # another key of the index still reads
    bad.undo()
    assert get(table, b"b") == b"2"
    usable_from_another_thread(table)


def test_a_key_length_past_the_arena_is_refused(table: SharedHashTable) -> None:
    put(table, b"k", b"v")
    word = record_of(table, b"k")
    bad = Scribble(table, word, int(table._words[word]) | 0xFFFFFFF0)
    every_operation_refuses(table, b"k", "runs past the arena's end")
    bad.undo()
    assert table.items() == [(b"k", b"v")]
    usable_from_another_thread(table)


def test_a_length_reaching_into_the_next_record_is_refused_by_a_walk(
    table: SharedHashTable,
) -> None:
    put(table, b"first", b"x" * 8)
    put(table, b"second", b"y" * 8)
    word = record_of(table, b"first")
    lens = int(table._words[word])
    bad = Scribble(table, word, lens + (16 << 32))  # 16 more value bytes: the next record's
    for walk in (table.items, table.keys, table.values, table.statistics):
        with pytest.raises(SharedMemoryCorruptError, match="overlap"):
            walk()
    bad.undo()
    assert dict(table.items()) == {b"first": b"x" * 8, b"second": b"y" * 8}


@pytest.mark.parametrize("where", ["header", "index", "past the top", "past the segment"])
def test_a_slot_pointing_outside_the_arena_is_refused(table: SharedHashTable, where: str) -> None:
    put(table, b"k", b"v")
    geo = table._current()
    slot = slot_of(table, b"k")
    top_word = int(table._words[geo[3] + ht._TOP]) >> 3
    offsets = {
        "header": ht._W_MAGIC,
        "index": geo[1],
        "past the top": top_word + 4,
        "past the segment": ht._OFF_MASK,
    }
    w = int(table._words[slot])
    bad = Scribble(table, slot, (w & ~ht._OFF_MASK) | offsets[where])
    every_operation_refuses(table, b"k", "outside the arena")
    bad.undo()
    assert get(table, b"k") == b"v"
    usable_from_another_thread(table)


def test_an_index_without_an_empty_slot_does_not_loop_for_ever(table: SharedHashTable) -> None:
    put(table, b"k", b"v")
    geo = table._current()
    slots = range(geo[1], geo[1] + geo[2] + 1)
    good = [int(table._words[i]) for i in slots]
    for i in slots:
        table._words[i] = ht._TOMB  # every slot "deleted": a probe never meets an empty one
    table._words[ht._W_VERSION] += 1
    for operation in (
        lambda: get(table, b"absent"),
        lambda: table.delete(b"absent", key_hash(b"absent")),
    ):
        with pytest.raises(SharedMemoryCorruptError, match="no empty slot"):
            operation()
    for i, w in zip(slots, good, strict=True):
        table._words[i] = w
    table._words[ht._W_VERSION] += 1
    table._repair()  # the failed operations marked the table for a recount
    assert get(table, b"k") == b"v"
    usable_from_another_thread(table)


def test_a_bad_root_word_is_refused(table: SharedHashTable) -> None:
    put(table, b"k", b"v")
    root = int(table._words[ht._W_ROOT])
    for bad_root in (root | 0x3F, (root & ~0xFF) | 63, root | (1 << 12)):
        bad = Scribble(table, ht._W_ROOT, bad_root)
        with pytest.raises(SharedMemoryCorruptError, match="root word"):
            get(table, b"k")
        with pytest.raises(SharedMemoryCorruptError, match="root word"):
            len(table)
        bad.undo()
    assert get(table, b"k") == b"v"
    usable_from_another_thread(table)


def test_a_bad_arena_top_is_refused(table: SharedHashTable) -> None:
    put(table, b"k", b"v")
    geo = table._current()
    for word, value in ((geo[3] + ht._TOP, 8), (geo[3] + ht._LIMIT, 1 << 62)):
        bad = Scribble(table, word, value)
        with pytest.raises(SharedMemoryCorruptError, match="top of its arena"):
            put(table, b"other", b"x")
        bad.undo()
        table._repair()
    # Seen by a handle that loads the geometry afresh, too.
    other = SharedHashTable.attach(table.name)
    try:
        bad = Scribble(table, geo[3] + ht._TOP, 8)
        with pytest.raises(SharedMemoryCorruptError, match="top of its arena"):
            other.get(b"k", key_hash(b"k"))
        bad.undo()
        assert other.get(b"k", key_hash(b"k")) == b"v"
    finally:
        other.close()


def test_a_bad_count_is_refused(table: SharedHashTable) -> None:
    put(table, b"k", b"v")
    geo = table._current()
    bad = Scribble(table, geo[3] + ht._COUNT, 1 << 63)
    with pytest.raises(SharedMemoryCorruptError, match="entries in"):
        len(table)
    bad.undo()
    assert len(table) == 1


def test_a_bad_committed_size_gives_back_no_page_in_use(table: SharedHashTable) -> None:
    for i in range(50):
        put(table, b"%d" % i, b"v" * 100)
    geo = table._current()
    # The idle arena area claims more than an area holds: giving its pages back would
    # reach into the next area.
    idle = ht._W_COMMITTED + 2 + (1 - geo[7])
    bad = Scribble(table, idle, 1 << 62)
    with pytest.raises(SharedMemoryCorruptError, match="committed"):
        table.clear()  # a rebuild into the idle area
    bad.undo()
    table._repair()
    assert len(table) == 50
    assert get(table, b"7") == b"v" * 100


def attach_in_child(name: str, conn: Connection) -> None:
    try:
        SharedHashTable.attach(name).close()
        conn.send("attached")
    except Exception as exc:
        conn.send(f"{type(exc).__name__}: {exc}")


def attach_elsewhere(name: str) -> str:
    """Attach ``name`` in a new process (this one has it mapped already); what happened."""
    ours, theirs = multiprocessing.Pipe(duplex=False)
    child = CTX.Process(target=attach_in_child, args=(name, theirs))
    child.start()
    theirs.close()
    try:
        assert ours.poll(DEADLOCK), "the child never answered"
        answer: str = ours.recv()
    finally:
        ours.close()
        child.join(DEADLOCK)
    return answer


def test_attach_refuses_a_bad_arena_size(table: SharedHashTable) -> None:
    bad = Scribble(table, ht._W_ARENA_SIZE, 12345)
    answer = attach_elsewhere(table.name)
    assert answer.startswith("SharedMemoryCorruptError: ")
    assert "arena size of 12345 bytes" in answer
    bad.undo()
    assert attach_elsewhere(table.name) == "attached"


# -- the dict's own encoding: tuple keys and pickles ---------------------------------------------


def test_a_tuple_key_with_a_bad_inner_length_is_a_serialization_error() -> None:
    d = ProcessSharedDict({("a", "bc"): 1, "good": 2})
    try:
        table = d._table
        key = next(k for k in table.keys() if k.startswith(b"t"))  # noqa: SIM118
        word = record_of(table, key)
        # Rewrite the first item's 4-byte length (just after the b"t" tag) to run past the key.
        start = (word + 1) * 8 + 1
        good = bytes(table._mvb[start : start + 4])
        table._mvb[start : start + 4] = (1000).to_bytes(4, "little")
        table._words[ht._W_VERSION] += 1
        it = iter(d)
        with pytest.raises(SerializationError, match="key"):
            next(it)
        assert next(it) == "good"  # the iteration goes on past it
        assert d["good"] == 2
        table._mvb[start : start + 4] = good
        table._words[ht._W_VERSION] += 1
        assert d == {("a", "bc"): 1, "good": 2}
    finally:
        d.close()


def test_a_value_length_that_cuts_or_stretches_the_pickle_is_a_serialization_error() -> None:
    d = ProcessSharedDict({"k": "value", "next": "n"})
    try:
        table = d._table
        key = next(k for k in table.keys() if k == b"sk")  # noqa: SIM118
        word = record_of(table, key)
        lens = int(table._words[word])
        for delta in (-1, +1):  # one byte short (a cut pickle), one too many (a padding byte)
            bad = Scribble(table, word, lens + (delta << 32))
            with pytest.raises(SerializationError, match="'k'"):
                d["k"]
            bad.undo()
        assert d["k"] == "value"
    finally:
        d.close()

"""The ring of a ProcessChannel: a byte ring in its own shared-memory segment (the *store*).

It carries large items, items with out-of-band buffers, ``send_many`` batches, rendezvous
offers, and whatever the pipe cannot hold. Every method runs under the channel monitor's
mutex; the ring's words (``head``, ``tail``, ``entries``, ``put_seq``, ``take_seq``: see
``_layout.py``) are changed only there. The segment is sparse (pages are used only when
written) and the ring restarts at offset 0 whenever it empties. Once it has stayed empty a
moment (a receiver waiting finds no new item for :data:`IDLE_RELEASE` seconds), the pages
beyond :data:`RESIDENT_KEEP` that entries used (``high_water``) are given back to the system
(``madvise(MADV_REMOVE)``), so a burst of large items does not stay resident after it has been
received; not at once, or a stream of large items would fault the same pages in again and
again.

An entry::

    offset  size        field
    0       8           size       the whole entry, rounded up to 8: where the next one starts
    8       2           state      READY, OFFER (a rendezvous send waits), RETRACTED, WRAP
    10      2           kind       PICKLED, RAW_BYTES, BATCH (``_items.py``)
    12      4           ack        an OFFER's acknowledgement word (``_slots.py``)
    16      8           length     the payload's exact length (the padding may hold old bytes)
    24      8           number     the entry's number: a stale entry never matches take_seq
    32      length      payload    RAW_BYTES: the bytes; PICKLED: pickle length (Q), buffer
                                   count (I), one Q per buffer, the pickle, the buffers;
                                   BATCH: items (I), items taken (I), then one pickle of the
                                   list of the items (``send_many``: one pickle, not one per
                                   item, so a batch costs about what a list sent as one item
                                   does; a receiver that takes part of it keeps the unpickled
                                   list for the next take, keyed by the entry's number)

An entry is written first and published last (``head`` moves past it), so a producer killed
mid-copy leaves nothing visible; a consumer copies an entry out before it moves ``tail``, so one
killed mid-copy leaves the item for the next. A WRAP header (or too little room for a header)
marks where the ring went back to 0.

*Trust*: the segment and the words are shared memory any process of this user can write, so
every offset, length and count is checked before it is used; a value the ring could not have
written raises :class:`~concurrency_kit.SharedMemoryCorruptError` rather than reading past an
entry or returning stale bytes.
"""

from __future__ import annotations

import mmap
import pickle
import struct
from typing import Any

from concurrency_kit._core import _native
from concurrency_kit.channels._items import BATCH, KINDS, PICKLED, RAW_BYTES
from concurrency_kit.channels._layout import (
    ENTRIES,
    HEAD,
    HIGH_WATER,
    PUT_SEQ,
    SLOTS,
    TAIL,
    TAKE_SEQ,
)
from concurrency_kit.errors import SharedMemoryCorruptError

__all__ = [
    "BATCH_HEAD",
    "ENTRY",
    "IDLE_RELEASE",
    "OFFER",
    "PAYLOAD",
    "READY",
    "RESIDENT_KEEP",
    "RETRACTED",
    "WRAP",
    "Entry",
    "Ring",
    "align",
    "batch_payload",
    "corrupt",
]

ENTRY = struct.Struct("<QHHIQQ")  # size, state, kind, ack, length, number
_STATE_AT = 8  # the offset of the state field in ENTRY
READY, OFFER, RETRACTED, WRAP = 1, 2, 3, 4
_STATES = frozenset({READY, OFFER, RETRACTED, WRAP})
BATCH_HEAD = struct.Struct("<II")  # items, items taken
PAYLOAD = struct.Struct("<QI")  # pickle length, buffer count

RESIDENT_KEEP = 512 * 1024
"""Bytes at the start of the ring that stay resident when it empties (the pages small items
reuse); the pages beyond are given back."""
IDLE_RELEASE = 0.25
"""Seconds an empty ring waits, with a receiver waiting on it, before giving pages back."""
_MADV_REMOVE = 9  # <sys/mman.h>: free the pages of a shared mapping (they read back as zeros)

Entry = tuple[int, int, int, int, int, int, int]
"""A checked entry header: offset, size, state, kind, ack, length, number."""


def align(n: int) -> int:
    return (n + 7) & ~7


def corrupt(name: str, what: str) -> SharedMemoryCorruptError:
    """The error for a value in channel ``name``'s shared memory that it could not have
    written (another process of this user wrote over it, or memory was damaged)."""
    return SharedMemoryCorruptError(
        f"the shared memory of ProcessChannel {name!r} is corrupt: {what}; the "
        f"channel cannot be used safely any more"
    )


class Ring:
    """The ring over ``buf`` (the store segment) and the channel's state ``words``.

    Every method is called with the channel's mutex held.
    """

    __slots__ = ("_address", "_compiled", "_w", "buf", "name", "size")

    def __init__(
        self,
        buf: memoryview,
        address: int,
        words: memoryview,
        words_address: int,
        size: int,
        name: str,
    ) -> None:
        self.buf = buf  # keeps the segment mapped for as long as the ring is used
        self._address = address  # where ``buf`` starts, for madvise
        self._w = words
        self.size = size
        self.name = name
        # The common entry, compiled (``_native.c``, ByteRing): the words and the store stay
        # mapped while it holds ``buf`` and ``words``.
        self._compiled = _native.ByteRing(
            (buf, words),
            words_address,
            address,
            size,
            (HEAD, TAIL, ENTRIES, PUT_SEQ, TAKE_SEQ, HIGH_WATER),
            (READY, WRAP, PICKLED, RAW_BYTES, BATCH),
        )

    def put_plain(self, kind: int, data: bytes) -> int:
        """Place and publish a READY entry holding ``data`` (a pickle with no out-of-band
        buffers, a raw ``bytes``, or a batch payload) in one compiled step: its offset, or -1
        if there is no room now, or -2 if it is not such an entry or the ring's words fail a
        check (the caller takes the general path, :meth:`allocate` and :meth:`put`, which
        says why)."""
        return self._compiled.put(kind, data)

    def take_plain(self, limit: int, cached: int) -> tuple[int, Any, Any] | int:
        """Copy out and drop the oldest entry in one compiled step if it is a READY pickle
        with no buffers or a raw ``bytes``: ``(kind, bytes, None)``; or, from a READY batch,
        take up to ``limit`` items as :meth:`take_from_batch` does (the pickle is ``None`` if
        the batch's number is ``cached``, whose list the caller holds); else 0 if the ring is
        empty, or 1 (the caller takes the general path, :meth:`next_entry`, which checks
        everything again and says what is wrong, if anything is)."""
        return self._compiled.take(limit, cached)

    # putting -----------------------------------------------------------------------------

    def entry_size(self, kind: int, data: bytes, views: list[memoryview]) -> tuple[int, int]:
        """The payload length and the whole entry's size for an item.

        Raises:
            ValueError: the entry is larger than the ring.
        """
        if kind != PICKLED:
            payload = len(data)
        else:
            payload = PAYLOAD.size + 8 * len(views) + len(data) + sum(v.nbytes for v in views)
        size = align(ENTRY.size + payload)
        if size > self.size:
            raise ValueError(
                f"an item of {payload} bytes does not fit the channel's shared memory "
                f"({self.size} bytes); make the channel with a larger shared_memory_size"
            )
        return payload, size

    def allocate(self, size: int) -> int:
        """Where an entry of ``size`` bytes goes (see :meth:`_place`), its end counted in
        ``high_water``; -1 if it does not fit."""
        at = self._place(size)
        if at >= 0 and at + size > self._w[HIGH_WATER]:
            self._w[HIGH_WATER] = at + size
        return at

    def _place(self, size: int) -> int:
        """Where an entry of ``size`` bytes goes, or -1 if it does not fit.

        The used part runs from the tail to the head, wrapping at the end of the segment;
        ``head == tail`` means empty or full, told apart by the entry count.
        """
        w = self._w
        store_size = self.size
        if w[ENTRIES] == 0:
            w[HEAD] = w[TAIL] = 0
            return 0
        head, tail = int(w[HEAD]), int(w[TAIL])
        if not (0 <= head <= store_size and 0 <= tail <= store_size) or (head | tail) & 7:
            raise corrupt(self.name, f"its ring runs from {tail} to {head} in {store_size} bytes")
        if head > tail:
            if store_size - head >= size:
                return head
            if tail >= size:  # wrap: mark the end, start again at 0
                if store_size - head >= ENTRY.size:
                    ENTRY.pack_into(self.buf, head, 0, WRAP, 0, 0, 0, 0)
                w[HEAD] = 0
                return 0
            return -1
        if tail - head >= size:
            return head
        return -1

    def put(
        self,
        at: int,
        size: int,
        kind: int,
        data: bytes,
        views: list[memoryview],
        payload: int,
        ack: int,
    ) -> None:
        """Copy an item into the space :meth:`allocate` gave, then publish it: an OFFER with
        acknowledgement word ``ack`` if ``ack >= 0``, else READY."""
        buf = self.buf
        w = self._w
        pos = at + ENTRY.size
        if kind != PICKLED:
            buf[pos : pos + len(data)] = data
        else:
            PAYLOAD.pack_into(buf, pos, len(data), len(views))
            pos += PAYLOAD.size
            for v in views:
                struct.pack_into("<Q", buf, pos, v.nbytes)
                pos += 8
            buf[pos : pos + len(data)] = data
            pos += len(data)
            for v in views:
                buf[pos : pos + v.nbytes] = v.cast("B")
                pos += v.nbytes
        state = OFFER if ack >= 0 else READY
        ENTRY.pack_into(buf, at, size, state, kind, max(ack, 0), payload, w[PUT_SEQ])
        w[PUT_SEQ] += 1
        w[HEAD] = at + size  # published: the entry is complete
        w[ENTRIES] += 1

    def retract(self, at: int) -> None:
        """Mark the OFFER at ``at`` taken back: receivers skip it."""
        struct.pack_into("<H", self.buf, at + _STATE_AT, RETRACTED)

    # taking ------------------------------------------------------------------------------

    def next_entry(self) -> Entry:
        """The oldest entry's checked header (there must be one: ``entries`` > 0), past any
        wrap marker."""
        w = self._w
        buf = self.buf
        store_size = self.size
        while True:
            at, head = int(w[TAIL]), int(w[HEAD])
            if not (0 <= at <= store_size and 0 <= head <= store_size) or (at | head) & 7:
                raise corrupt(self.name, f"its ring runs from {at} to {head} in {store_size} bytes")
            if at + ENTRY.size > store_size or ENTRY.unpack_from(buf, at)[1] == WRAP:
                if at < head or at == 0:  # the end is marked only when the ring wraps
                    raise corrupt(self.name, f"a wrap at offset {at}, with the head at {head}")
                w[TAIL] = 0
                continue
            size, state, kind, ack, length, seq = ENTRY.unpack_from(buf, at)
            if (
                seq != w[TAKE_SEQ]
                or state not in _STATES
                or kind not in KINDS
                or ack >= SLOTS
                or size != align(ENTRY.size + length)
                or at + size > store_size
                or at < head < at + size
            ):
                raise corrupt(
                    self.name,
                    f"the entry at offset {at} (size {size}, payload {length} bytes, "
                    f"state {state}, kind {kind}, number {seq}) is not the next one it "
                    f"wrote (number {w[TAKE_SEQ]})",
                )
            return at, size, state, kind, ack, length, seq

    def pop(self, at: int, size: int) -> None:
        """Drop the oldest entry (at ``at``, ``size`` bytes), used up."""
        w = self._w
        w[TAIL] = at + size
        w[ENTRIES] -= 1
        w[TAKE_SEQ] += 1

    def rewind_if_empty(self) -> None:
        """Start again at offset 0 when the ring is empty."""
        w = self._w
        if w[ENTRIES] == 0:
            w[HEAD] = w[TAIL] = 0

    def holds_idle_pages(self) -> bool:
        """Whether the ring is empty with pages beyond :data:`RESIDENT_KEEP` to give back (a
        hint, read without the mutex; :meth:`release_idle_pages` checks again)."""
        w = self._w
        return bool(w[HIGH_WATER] > RESIDENT_KEEP and w[ENTRIES] == 0)

    def release_idle_pages(self) -> None:
        """If the ring is empty, give back the pages beyond :data:`RESIDENT_KEEP` that entries
        used since the last time. No process reads or writes them meanwhile: every copy in or
        out holds the mutex, which the caller holds."""
        w = self._w
        high = int(w[HIGH_WATER])
        if w[ENTRIES] != 0 or high <= RESIDENT_KEEP:
            return
        end = min(self.size, -(-high // mmap.PAGESIZE) * mmap.PAGESIZE)
        # Failing only leaves the pages allocated: nothing to undo.
        _native.advise(self._address + RESIDENT_KEEP, end - RESIDENT_KEEP, _MADV_REMOVE)
        w[HIGH_WATER] = RESIDENT_KEEP

    def copy_out(self, pos: int, length: int, kind: int) -> tuple[int, Any, Any]:
        """Copy one item's ``length`` payload bytes at ``pos`` out: ``(kind, bytes, buffers)``.

        A raw ``bytes`` item is its payload, exactly; a pickled one is its pickle's length
        and its buffers' lengths, then the pickle and the buffers, adding up to ``length``.
        """
        buf = self.buf
        if kind == RAW_BYTES:
            return kind, bytes(buf[pos : pos + length]), None
        end = pos + length
        if length < PAYLOAD.size:
            raise corrupt(self.name, f"an item of {length} bytes at offset {pos}")
        size, count = PAYLOAD.unpack_from(buf, pos)
        pos += PAYLOAD.size
        if 8 * count > end - pos:
            raise corrupt(self.name, f"an item at offset {pos} with {count} buffers")
        sizes = struct.unpack_from(f"<{count}Q", buf, pos)
        pos += 8 * count
        if size + sum(sizes) != end - pos:
            raise corrupt(self.name, f"the lengths of the item at offset {pos} do not add up")
        data = bytes(buf[pos : pos + size])
        pos += size
        buffers = []
        for n in sizes:
            buffers.append(bytearray(buf[pos : pos + n]))
            pos += n
        return kind, data, buffers

    def take_from_batch(
        self,
        pos: int,
        length: int,
        limit: int,
        number: int,
        cached: list[Any] | None,
        raw: list[tuple[int, Any, Any]],
    ) -> tuple[bool, int]:
        """Take up to ``limit`` items of the batch entry numbered ``number``, whose payload of
        ``length`` bytes is at ``pos``: append ``(BATCH, the pickle or cached, (number, first,
        n, count))`` to ``raw`` (``cached``: that entry's list, unpickled by an earlier take of
        this handle, so the pickle is not copied again); return whether the batch is used up,
        and ``n``, how many were taken. The list is checked when it is unpickled
        (``_items.decode``): a list of exactly ``count`` items.
        """
        buf = self.buf
        if length <= BATCH_HEAD.size:
            raise corrupt(self.name, f"a batch entry of {length} bytes at offset {pos}")
        count, taken = BATCH_HEAD.unpack_from(buf, pos)
        if not 0 <= taken < count:
            raise corrupt(self.name, f"a batch at offset {pos} of {count} items, {taken} taken")
        n = min(count - taken, limit)
        data = cached if cached is not None else bytes(buf[pos + BATCH_HEAD.size : pos + length])
        raw.append((BATCH, data, (number, taken, n, count)))
        BATCH_HEAD.pack_into(buf, pos, count, taken + n)
        return taken + n == count, n


def batch_payload(items: list[Any]) -> bytes:
    """The payload of a BATCH entry holding ``items`` (small plain objects: ``_items.PLAIN``)."""
    return BATCH_HEAD.pack(len(items), 0) + pickle.dumps(items, 5)

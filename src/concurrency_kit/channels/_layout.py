"""The layout of a ProcessChannel's state: one ctypes structure in its monitor's state area.

Every field is a signed 64-bit word; the channel reads and writes them through a memoryview
of ``q`` words (:func:`state_words`), indexed by the constants below, which are derived from
the structure (so the layout is written down here, once)::

    word          field           how it changes
    0             sent            atomic add: items counted in (reserved by senders)
    1             received        atomic add: items taken
    2             spilled         atomic add, under the mutex: items in the ring
    3             space_waiters   atomic add: senders asleep waiting for room
    4             high_water      under the mutex: the end of the ring's furthest entry since
                                  its pages were last given back (``_ring.py``)
    5             closed          under the mutex, 0 -> 1 once
    6             capacity        at creation: -1 unbounded, 0 rendezvous
    7, 8          head, tail      under the mutex: the ring's used part (``_ring.py``)
    9             entries         under the mutex: entries in the ring
    10            store_size      at creation: bytes of the ring's segment
    11            pipe_packets    at creation: packets the pipe holds
    12, 13        put_seq,        under the mutex: numbers of the next entry written and taken
                  take_seq
    14, 15        (unused)
    16            slots           THREAD_SLOTS x ThreadSlot: pid, native thread id, sends in
                                  flight, asleep in a receive (``_slots.py``)
    16 + 4 x 256  acks            SLOTS rendezvous acknowledgement words (``_slots.py``)
"""

from __future__ import annotations

import ctypes
from typing import Any

from concurrency_kit._core.monitor import SLOTS, ProcessMonitor

__all__ = [
    "ACKS_AT",
    "CAPACITY",
    "CLOSED",
    "ENTRIES",
    "HEAD",
    "HIGH_WATER",
    "KIND",
    "PIPE_PACKETS",
    "PUT_SEQ",
    "Q_ACK",
    "Q_ROOM",
    "Q_STORE",
    "RECEIVED",
    "SENT",
    "SLOTS",
    "SLOTS_AT",
    "SLOT_ASLEEP",
    "SLOT_IN_FLIGHT",
    "SLOT_PID",
    "SLOT_TID",
    "SLOT_WORDS",
    "SPACE_WAITERS",
    "SPILLED",
    "STORE_SIZE",
    "TAIL",
    "TAKE_SEQ",
    "THREAD_SLOTS",
    "ChannelState",
    "ThreadSlot",
    "state_address",
    "state_words",
]

KIND = 0x43484E4C  # "CHNL": the monitor segment's kind, checked on attach
THREAD_SLOTS = 256  # threads (of all processes) that may use one channel at once

# Monitor queues.
Q_ROOM = 0  # senders waiting for capacity
Q_STORE = 1  # senders waiting for bytes in the ring
Q_ACK = 2  # rendezvous senders waiting for their offer to be taken

_word = ctypes.c_int64


class ThreadSlot(ctypes.Structure):
    """One thread's slot; only its own thread writes ``in_flight`` and ``asleep``."""

    _fields_ = (
        ("pid", _word),  # 0: free
        ("tid", _word),  # native thread id
        ("in_flight", _word),  # what it counted in ``sent`` and has not delivered (its mark)
        ("asleep", _word),  # asleep in a receive (a rendezvous send_nowait looks)
    )


class ChannelState(ctypes.Structure):
    """The channel's state words (the module docstring)."""

    _fields_ = (
        ("sent", _word),
        ("received", _word),
        ("spilled", _word),
        ("space_waiters", _word),
        ("high_water", _word),
        ("closed", _word),
        ("capacity", _word),
        ("head", _word),
        ("tail", _word),
        ("entries", _word),
        ("store_size", _word),
        ("pipe_packets", _word),
        ("put_seq", _word),
        ("take_seq", _word),
        ("_unused_14", _word * 2),
        ("slots", ThreadSlot * THREAD_SLOTS),
        ("acks", _word * SLOTS),
    )


def _index(field: Any) -> int:
    """The word index of a field of :class:`ChannelState` or :class:`ThreadSlot`."""
    return int(field.offset) // 8


SENT = _index(ChannelState.sent)
RECEIVED = _index(ChannelState.received)
SPILLED = _index(ChannelState.spilled)
SPACE_WAITERS = _index(ChannelState.space_waiters)
CLOSED = _index(ChannelState.closed)
CAPACITY = _index(ChannelState.capacity)
HEAD = _index(ChannelState.head)
HIGH_WATER = _index(ChannelState.high_water)
TAIL = _index(ChannelState.tail)
ENTRIES = _index(ChannelState.entries)
STORE_SIZE = _index(ChannelState.store_size)
PIPE_PACKETS = _index(ChannelState.pipe_packets)
PUT_SEQ = _index(ChannelState.put_seq)
TAKE_SEQ = _index(ChannelState.take_seq)
SLOTS_AT = _index(ChannelState.slots)  # the first word of the first thread slot
SLOT_WORDS = ctypes.sizeof(ThreadSlot) // 8
SLOT_PID = _index(ThreadSlot.pid)  # word offsets within a slot
SLOT_TID = _index(ThreadSlot.tid)
SLOT_IN_FLIGHT = _index(ThreadSlot.in_flight)
SLOT_ASLEEP = _index(ThreadSlot.asleep)
ACKS_AT = _index(ChannelState.acks)  # the first acknowledgement word


def state_words(monitor: ProcessMonitor) -> memoryview:
    """The monitor's :class:`ChannelState` as a memoryview of int64 words (it keeps the
    mapping alive)."""
    return memoryview(monitor.state).cast("B").cast("q")


def state_address(monitor: ProcessMonitor, word: int) -> int:
    """The address of state word ``word`` in this process's mapping."""
    return ctypes.addressof(monitor.state) + 8 * word

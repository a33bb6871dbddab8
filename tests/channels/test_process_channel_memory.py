"""The channel's shared memory after a burst: an idle ring gives its pages back.

The store is a sparse segment: a page is allocated when an item is first written there. Before,
a burst of large items left the ring's high-water mark resident for the channel's whole life
(up to ``shared_memory_size``); now a receiver that waits on the emptied channel for
``_ring.IDLE_RELEASE`` seconds gives back every page beyond ``_ring.RESIDENT_KEEP`` (issue 17:
"back under 1 MiB within one second of the channel emptying"). Not at once: a stream of large
items would fault the same pages in again for every item.
"""

from __future__ import annotations

import os

import pytest

from concurrency_kit import ChannelTimeout, ProcessChannel
from concurrency_kit._core import shm
from concurrency_kit.channels import _ring

STORE = 64 << 20
ITEM = 4 << 20


def own_segments() -> set[str]:
    """This process's segments (other programs make and remove /dev/shm entries meanwhile)."""
    return {n for n in os.listdir(shm.SHM_DIR) if shm.creator_pid(n) == os.getpid()}


def resident(name: str) -> int:
    """Bytes of the segment ``name`` backed by memory now."""
    return os.stat(f"{shm.SHM_DIR}/{name}").st_blocks * 512


def test_a_drained_ring_gives_back_the_pages_of_a_burst() -> None:
    before = own_segments()
    channel = ProcessChannel(None, shared_memory_size=STORE)
    try:
        (store,) = [
            n for n in own_segments() - before if os.stat(f"{shm.SHM_DIR}/{n}").st_size == STORE
        ]
        items = [bytes([i]) * ITEM for i in range(8)]
        for item in items:
            channel.send(item)
        assert resident(store) >= 8 * ITEM  # the burst is in the ring
        for item in items[:-1]:
            assert channel.recv() == item
        assert resident(store) >= ITEM  # not drained: nothing given back under an item
        assert channel.recv() == items[-1]
        assert resident(store) >= ITEM  # drained, but not idle yet: kept for the next item
        with pytest.raises(ChannelTimeout):  # a receiver waits longer than IDLE_RELEASE
            channel.recv(timeout=4 * _ring.IDLE_RELEASE)
        assert resident(store) <= _ring.RESIDENT_KEEP  # idle: back under the floor
        # The ring works as before, over the pages given back (they read zeros until written).
        for size in (100_000, ITEM, 3 * ITEM):
            channel.send(b"z" * size)
            assert channel.recv() == b"z" * size
        assert resident(store) >= 3 * ITEM
        with pytest.raises(ChannelTimeout):
            channel.recv(timeout=4 * _ring.IDLE_RELEASE)
        assert resident(store) <= _ring.RESIDENT_KEEP
    finally:
        channel.close()


def test_a_ring_that_never_passed_the_floor_keeps_its_pages() -> None:
    # Small items never cost a system call: below RESIDENT_KEEP nothing is given back.
    before = own_segments()
    channel = ProcessChannel(None, shared_memory_size=1 << 20)
    try:
        (store,) = [
            n for n in own_segments() - before if os.stat(f"{shm.SHM_DIR}/{n}").st_size == 1 << 20
        ]
        channel.send(b"a" * 100_000)
        assert channel.recv() == b"a" * 100_000
        with pytest.raises(ChannelTimeout):
            channel.recv(timeout=4 * _ring.IDLE_RELEASE)
        assert resident(store) >= 100_000  # still there, to be reused by the next item
    finally:
        channel.close()

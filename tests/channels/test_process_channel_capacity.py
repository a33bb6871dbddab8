"""A ProcessChannel's capacity stays exact however many producers are SIGKILLed, and wherever.

Issue #15, defect 5: a producer's "sends in flight" mark covered its whole send, including the
time it slept waiting for room, when it held no reservation. When a dead producer's slot was
reaped, that mark was taken off the sent count anyway, so each producer killed while blocked
let one more item in: after 20 kills a capacity-4 channel accepted 23 items. The mark now
covers exactly what the producer has counted and not yet delivered.

Each round here starts a producer, lets it reach a known point, kills it there, reaps the dead
(what a waiting sender does between slices, and a receiver draining a closed channel), then
checks the channel against what the producer reported::

    producer ── send ... ("sent", k) ... ─┬─ "parked": every send returned ──────── SIGKILL
                                          └─ "sending": the next send waits for room ─ SIGKILL
    test ── reap ── queued == items there ── drain: exactly the items sent, once each
         ── send_nowait x capacity, then ChannelFull ── drain again

The kill lands after a report: either every send has returned (the producer waits on its
pipe), or the next send cannot go through (the channel is full and nobody receives), so where
it lands does not change what the channel must hold. Waiting until the producer sleeps only
makes a kill inside the blocked send likely.
"""

from __future__ import annotations

from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import pytest

from _children import Child, asleep, wait_until
from _children import children as children  # the fixture
from concurrency_kit import ChannelEmpty, ChannelFull, ProcessChannel
from concurrency_kit.channels import _layout as layout

DEADLOCK = 60.0
CAPACITY = 4
SMALL = 10  # bytes: a pipe packet (send_many: a batch entry in the store)
LARGE = 6_000  # bytes: the shared-memory store

Children = Callable[..., Child]


def item(tag: int, k: int, size: int) -> bytes:
    """Item ``k`` of producer ``tag``: plain bytes, so ``send_many`` batches the small ones."""
    return bytes([tag, k]) * (size // 2)


def stored(channel: ProcessChannel[Any]) -> int:
    """Items published in the channel's shared-memory store (white box: the counter that
    keeps the receivers' bell ringing)."""
    return int(channel._w[layout.SPILLED])


# -- the producer: module level, so that forkserver children can import it ----------------------


def producer(conn: Connection, channel: Any, tag: int, mode: str, size: int) -> None:
    """Send as ``mode`` says, reporting; then wait (to be killed) or block in a send."""
    if mode == "after send":  # two sends that return, then parked
        for k in range(2):
            channel.send(item(tag, k, size), DEADLOCK)
            conn.send(("sent", k))
        conn.send("parked")
        conn.recv()
    elif mode == "blocked in send":  # fill the channel, then one more send waits for room
        for k in range(CAPACITY):
            channel.send(item(tag, k, size), DEADLOCK)
            conn.send(("sent", k))
        conn.send("sending")
        channel.send(item(tag, CAPACITY, size), DEADLOCK)
        conn.send("the channel was full: this send should have waited")
    elif mode == "after send_many":
        channel.send_many([item(tag, k, size) for k in range(3)], DEADLOCK)
        conn.send(("sent", 2))
        conn.send("parked")
        conn.recv()
    elif mode == "blocked in send_many":  # the first CAPACITY go, the rest wait for room
        channel.send_many([item(tag, k, size) for k in range(CAPACITY + 2)], DEADLOCK)
        conn.send("the channel was full: this send_many should have waited")


def reported(child: Child) -> tuple[str, int]:
    """Read the producer's reports up to its last one: (that report, items it sent)."""
    sent = 0
    while True:
        message = child.recv()
        if isinstance(message, tuple):
            sent = message[1] + 1
            continue
        return message, sent


MODES = [
    ("after send", SMALL),
    ("after send", LARGE),
    ("blocked in send", SMALL),
    ("blocked in send", LARGE),
    ("after send_many", SMALL),
    ("blocked in send_many", SMALL),
    ("blocked in send_many", LARGE),
]


def test_capacity_is_exact_after_many_producers_are_killed(children: Children) -> None:
    with ProcessChannel[Any](CAPACITY, shared_memory_size=1 << 20) as channel:
        kill_one_producer_per_mode(channel, children, rounds=3 * len(MODES))


def kill_one_producer_per_mode(
    channel: ProcessChannel[Any], children: Children, rounds: int
) -> None:
    for tag in range(rounds):
        mode, size = MODES[tag % len(MODES)]
        child = children(producer, channel, tag, mode, size)
        if mode == "blocked in send_many":
            # send_many reports nothing before it returns: wait until its first items are in.
            wait_until(lambda: stored(channel) == CAPACITY, "the first items are stored")
            last, sent = "sending", CAPACITY
        else:
            last, sent = reported(child)
        assert last in ("parked", "sending"), last
        if last == "sending":
            pid = child.process.pid
            assert pid is not None
            wait_until(lambda pid=pid: asleep(pid), "the producer blocks")
        child.kill()
        channel._slots.scan()  # reap the dead now (a waiting sender does it between slices)

        where = f"round {tag}: {mode}, {size} bytes"
        assert channel.statistics().queued == sent, where
        got = []
        while True:
            try:
                got.append(channel.recv_nowait())
            except ChannelEmpty:
                break
        assert got == [item(tag, k, size) for k in range(sent)], where
        # The room is whole, and no more than whole: exactly `capacity` items fit.
        for k in range(CAPACITY):
            channel.send_nowait(k)
        with pytest.raises(ChannelFull):
            channel.send_nowait("one too many")
        assert channel.recv_many(CAPACITY + 1) == list(range(CAPACITY)), where
        stats = channel.statistics()
        assert (stats.queued, stats.sent) == (0, stats.received), where


def rendezvous_producer(conn: Connection, channel: Any, size: int) -> None:
    conn.send("sending")
    channel.send(item(7, 0, size), DEADLOCK)
    conn.send("an offer nobody took should not return")


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["small", "large"])
def test_an_offer_whose_producer_was_killed_is_counted_once_and_leaks_nothing(
    children: Children, size: int
) -> None:
    with ProcessChannel[Any](0) as channel:
        child = children(rendezvous_producer, channel, size)
        assert child.recv() == "sending"
        wait_until(lambda: stored(channel) == 1, "the offer is made")
        pid = child.process.pid
        assert pid is not None
        wait_until(lambda: asleep(pid), "the producer waits for a receiver")
        child.kill()
        channel._slots.scan()
        # The offer was whole when its producer died: it is there, counted once.
        assert channel.recv(DEADLOCK) == item(7, 0, size)
        stats = channel.statistics()
        assert (stats.queued, stats.sent, stats.received) == (0, 1, 1)
        # Its acknowledgement word (white box) is marked taken, for nobody: dead senders'
        # words are reclaimed when the SLOTS words run out, so they never make every
        # rendezvous send fail. Fill every word with the dead sender's, and claim one.
        acks = channel._w[layout.ACKS_AT : layout.ACKS_AT + layout.SLOTS]
        dead_words = [word for word in acks.tolist() if word]
        assert len(dead_words) == 1
        for i in range(layout.SLOTS):
            acks[i] = dead_words[0]
        mark = channel._slots.mark()
        channel._m.enter()
        try:
            claimed = channel._slots.claim_ack(12345, mark)
            channel._slots.free_ack(claimed)
        finally:
            channel._m.exit()
        assert acks.tolist() == [0] * layout.SLOTS
        with pytest.raises(ChannelFull):  # and no receiver waits now
            channel.send_nowait("nobody waits")

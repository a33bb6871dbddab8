"""ThreadChannel's fast paths (issue 17) keep every rule of the slow ones.

The send fast path tests one number (``_room``: capacity, unbounded, rendezvous and closed
folded together), only receives are counted (``sent`` is derived) and a timeout of ``None``
skips validation; these tests pin what each shortcut must not change.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from concurrency_kit import ChannelClosed, ChannelFull, ChannelTimeout, ThreadChannel

DEADLOCK = 30.0  # seconds; only catches a hang


@pytest.mark.parametrize("capacity", [1, 256, None])
def test_a_closed_channel_with_room_refuses_sends_and_drains(capacity: int | None) -> None:
    channel = ThreadChannel[Any](capacity)
    channel.send("kept")
    channel.close()
    with pytest.raises(ChannelClosed):
        channel.send("late")
    with pytest.raises(ChannelClosed):
        channel.send_nowait("late")
    assert channel.recv() == "kept"
    with pytest.raises(ChannelClosed):
        channel.recv()
    stats = channel.statistics()
    assert (stats.sent, stats.received, stats.queued) == (1, 1, 0)


@pytest.mark.parametrize("capacity", [2, None])
def test_invalid_timeouts_are_refused_even_when_no_wait_is_needed(capacity: int | None) -> None:
    channel = ThreadChannel[Any](capacity)
    for bad, error in ((-1, ValueError), (float("nan"), ValueError), ("1", TypeError)):
        with pytest.raises(error):
            channel.send(1, timeout=bad)  # type: ignore[arg-type]
    channel.send(1)
    with pytest.raises(TypeError):
        channel.recv(timeout=True)
    assert channel.statistics().queued == 1  # the refused calls changed nothing
    assert channel.recv(timeout=0) == 1


def test_unbounded_takes_far_more_than_the_default_capacity_without_waiting() -> None:
    channel = ThreadChannel[int](None)
    for i in range(10_000):
        channel.send_nowait(i)
    assert [channel.recv_nowait() for _ in range(10_000)] == list(range(10_000))
    stats = channel.statistics()
    assert (stats.sent, stats.received, stats.queued) == (10_000, 10_000, 0)


def test_a_full_channel_still_waits_and_times_out() -> None:
    channel = ThreadChannel[int](2)
    channel.send(0)
    channel.send_nowait(1)
    with pytest.raises(ChannelFull):
        channel.send_nowait(2)
    with pytest.raises(ChannelTimeout):
        channel.send(2, timeout=0)
    stats = channel.statistics()
    assert (stats.sent, stats.received, stats.queued) == (2, 0, 2)


def test_rendezvous_counts_only_offers_taken() -> None:
    channel = ThreadChannel[str](0)
    with pytest.raises(ChannelTimeout):
        channel.send("nobody", timeout=0)  # offered, taken back
    with pytest.raises(ChannelFull):
        channel.send_nowait("nobody")
    assert channel.statistics().sent == 0

    got: list[str] = []
    receiver = threading.Thread(target=lambda: got.append(channel.recv(timeout=DEADLOCK)))
    receiver.start()
    channel.send("taken", timeout=DEADLOCK)  # returns once the receiver has it
    receiver.join(DEADLOCK)
    assert got == ["taken"]
    stats = channel.statistics()
    assert (stats.sent, stats.received, stats.queued) == (1, 1, 0)


def test_items_pass_in_order_between_two_threads() -> None:
    channel = ThreadChannel[int](4)
    n = 20_000

    def produce() -> None:
        for i in range(n):
            channel.send(i, timeout=DEADLOCK)
        channel.close()

    producer = threading.Thread(target=produce)
    producer.start()
    assert list(channel) == list(range(n))
    producer.join(DEADLOCK)
    stats = channel.statistics()
    assert (stats.sent, stats.received, stats.queued, stats.closed) == (n, n, 0, True)

"""A channel of each model, driven by Hypothesis side by side with a list and a capacity.

One thread, one process: every call either completes at once or is refused at once (``*_nowait``,
or a tiny timeout that expires), so the plain model predicts each outcome exactly::

    send*   closed -> ChannelClosed;  full -> ChannelFull / ChannelTimeout;  else append
    recv*   items  -> pop the first;  closed -> ChannelClosed;  else ChannelEmpty / ChannelTimeout

A rendezvous channel (capacity 0) never has a receiver waiting here, so every send is refused.
For the process model, some calls go through handles made by pickling the channel in the same
process: all handles share one channel. The contract with concurrent parties is in
``tests/contract/test_channels.py``.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from concurrency_kit import (
    ChannelClosed,
    ChannelEmpty,
    ChannelFull,
    ChannelStatistics,
    ChannelTimeout,
    Model,
)

TINY = 0.001
"""The timeout of the blocking calls: each one here either completes at once or expires."""

ITEMS = st.one_of(
    st.integers(),
    st.text(max_size=5),
    st.binary(max_size=8),
    st.tuples(st.integers(0, 9), st.none()),
    # Big enough for a process channel's shared-memory store rather than its pipe.
    st.integers(0, 255).map(lambda b: bytes([b]) * 6_000),
)


class ChannelMachine(RuleBasedStateMachine):
    """A channel of :attr:`model` and the list of items it should hold."""

    model: Model

    def __init__(self) -> None:
        super().__init__()
        self.handles: list[Any] = []
        self.items: list[Any] = []
        self.capacity: int | None = None
        self.closed = False
        self.sent = self.received = 0

    @initialize(capacity=st.sampled_from([None, 0, 1, 3]))
    def make(self, capacity: int | None) -> None:
        self.capacity = capacity
        self.handles.append(self.model.Channel(capacity))

    # -- helpers -------------------------------------------------------------------------------

    def channel(self, which: int) -> Any:
        return self.handles[which % len(self.handles)]

    def room(self) -> int | None:
        return None if self.capacity is None else self.capacity - len(self.items)

    def full(self) -> bool:
        room = self.room()
        return room is not None and room <= 0

    def take(self, n: int) -> list[Any]:
        taken, self.items = self.items[:n], self.items[n:]
        self.received += len(taken)
        return taken

    # -- sends ---------------------------------------------------------------------------------

    @rule(item=ITEMS, which=st.integers(0, 3))
    def send_nowait(self, item: Any, which: int) -> None:
        channel = self.channel(which)
        if self.closed:
            with pytest.raises(ChannelClosed):
                channel.send_nowait(item)
        elif self.full():
            with pytest.raises(ChannelFull):
                channel.send_nowait(item)
        else:
            channel.send_nowait(item)
            self.items.append(item)
            self.sent += 1

    @rule(item=ITEMS, which=st.integers(0, 3))
    def send(self, item: Any, which: int) -> None:
        channel = self.channel(which)
        if self.closed:
            with pytest.raises(ChannelClosed):
                channel.send(item, TINY)
        elif self.full():
            with pytest.raises(ChannelTimeout) as info:
                channel.send(item, TINY)
            assert info.value.sent == 0
        else:
            channel.send(item, TINY)
            self.items.append(item)
            self.sent += 1

    @rule(items=st.lists(ITEMS, min_size=1, max_size=5), which=st.integers(0, 3))
    def send_many(self, items: list[Any], which: int) -> None:
        channel = self.channel(which)
        if self.closed:
            with pytest.raises(ChannelClosed):
                channel.send_many(items, TINY)
            return
        room = self.room()
        fits = len(items) if room is None else min(len(items), room)
        if fits == len(items):
            channel.send_many(items, TINY)
        else:
            with pytest.raises(ChannelTimeout) as info:
                channel.send_many(iter(items), TINY)
            assert info.value.sent == fits
        self.items.extend(items[:fits])
        self.sent += fits

    # -- receives ------------------------------------------------------------------------------

    @rule(which=st.integers(0, 3))
    def recv_nowait(self, which: int) -> None:
        channel = self.channel(which)
        if self.items:
            assert channel.recv_nowait() == self.take(1)[0]
        elif self.closed:
            with pytest.raises(ChannelClosed):
                channel.recv_nowait()
        else:
            with pytest.raises(ChannelEmpty):
                channel.recv_nowait()

    @rule(which=st.integers(0, 3))
    def recv(self, which: int) -> None:
        channel = self.channel(which)
        if self.items:
            assert channel.recv(TINY) == self.take(1)[0]
        elif self.closed:
            with pytest.raises(ChannelClosed):
                channel.recv(TINY)
        else:
            with pytest.raises(ChannelTimeout):
                channel.recv(TINY)

    @rule(max_items=st.integers(1, 6), which=st.integers(0, 3))
    def recv_many(self, max_items: int, which: int) -> None:
        channel = self.channel(which)
        if self.items:
            assert channel.recv_many(max_items, TINY) == self.take(max_items)
        elif self.closed:
            with pytest.raises(ChannelClosed):
                channel.recv_many(max_items, TINY)
        else:
            with pytest.raises(ChannelTimeout):
                channel.recv_many(max_items, TINY)

    @precondition(lambda self: self.closed)
    @rule(which=st.integers(0, 3))
    def iterate(self, which: int) -> None:
        assert list(self.channel(which)) == self.take(len(self.items))

    # -- close, handles ------------------------------------------------------------------------

    @rule(which=st.integers(0, 3))
    def close(self, which: int) -> None:
        self.channel(which).close()
        self.closed = True

    @precondition(lambda self: self.model.name == "process" and len(self.handles) < 3)
    @rule()
    def new_handle(self) -> None:
        self.handles.append(pickle.loads(pickle.dumps(self.handles[0])))

    @precondition(lambda self: len(self.handles) > 1)
    @rule()
    def drop_handle(self) -> None:
        self.handles.pop()  # released by the garbage collector; closes nothing

    @invariant()
    def statistics_match(self) -> None:
        if not self.handles:
            return
        expected = ChannelStatistics(
            capacity=self.capacity,
            queued=len(self.items),
            sent=self.sent,
            received=self.received,
            closed=self.closed,
        )
        for channel in self.handles:
            assert channel.statistics() == expected
            assert channel.closed is self.closed
            assert channel.capacity == self.capacity

    def teardown(self) -> None:
        if self.handles:
            self.handles[0].close()
        self.handles.clear()


def test_channel_against_a_list(model: Model) -> None:
    machine = type(f"{model.name.title()}ChannelMachine", (ChannelMachine,), {"model": model})
    run_state_machine_as_test(
        machine,
        settings=settings(max_examples=40, stateful_step_count=30, deadline=None),
    )

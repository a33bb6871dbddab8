"""The contract of ThreadChannel and ProcessChannel: one behaviour suite for both models.

Every test takes ``model`` and builds its channels as ``model.Channel(...)`` (through the
``make`` fixture, which closes them at teardown). The other parties are *peers*
(``_sync_peers.Peer``): threads for the thread model, ``forkserver`` processes for the process
model, the channel passed to them as a ``Process`` argument (a pickled handle); on Python
3.14+ the suite also runs over INTERPRETER (``InterpreterChannel``), whose peers are other
interpreters of this process, the handle pickled into them. A peer runs one command at a time;
the test learns that a peer is blocked in a channel call from a state, never from a sleep::

    test ─ send(blocking, "ch", "send", 99, 60) ─> peer: started.set(); ch.send(99, 60) ... waits
         ─ wait until started is set and the peer's thread sleeps in the kernel
         ─ ch.recv() ─────────────────────────────> the peer's send returns
         <─ ("ok", None) ─────────────────────────

"Sleeps in the kernel" (``/proc/<pid>/task/<tid>/stat`` in state ``S``) only makes it likely
that the peer really waits when the test acts: no assertion depends on it, so a test passes for
a correct channel whatever the scheduling. Where the test needs certainty (a ``send_nowait`` on a
rendezvous channel succeeds only while a receiver waits) it polls the call itself until it
succeeds. Concurrency tests with several producers and consumers use ``_parallel.run_parallel``
(threads, or forkserver processes, lined up on a barrier). Time limits only turn a deadlock into
a failure; a timeout that expires on purpose is the one under test, and short.

What only a process channel does when processes die is in
``tests/channels/test_process_channel_faults.py``; a Hypothesis state machine compares both
channels with a list in ``tests/channels/test_channel_stateful.py``.
"""

from __future__ import annotations

import collections
import gc
import multiprocessing
import os
import pickle
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from _models import is_process, with_interpreter_model
from _parallel import run_parallel
from _sync_peers import DEADLOCK, Peer, PeerRaised, wait_until

import concurrency_kit as ck
from concurrency_kit import (
    ChannelClosed,
    ChannelEmpty,
    ChannelFull,
    ChannelTimeout,
    Model,
    ProcessChannel,
    SerializationError,
    ThreadChannel,
)

SHORT = 0.1
"""The one timeout that expires on purpose in a test."""

MiB = 1 << 20


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    with_interpreter_model(metafunc)  # INTERPRETER too, on Python 3.14+


# -- fixtures --------------------------------------------------------------------------------------


Make = Callable[..., Any]


@pytest.fixture
def make(model: Model) -> Iterator[Make]:
    """``make(capacity, **kwargs)``: a channel of the model, closed at teardown."""
    made: list[Any] = []

    def build(*args: Any, **kwargs: Any) -> Any:
        channel = model.Channel(*args, **kwargs)
        made.append(channel)
        return channel

    yield build
    for channel in reversed(made):
        channel.close()
    made.clear()  # a closed channel's resources go with its last handle


class Keep:
    """A channel as a peer's primitive.

    A process peer closes its primitives when it stops (to release its handles); closing a
    channel closes it for everyone, so the peer gets this wrapper, whose ``close`` does nothing:
    the peer's handle is released when the peer drops it.
    """

    def __init__(self, channel: Any) -> None:
        self.channel = channel

    def close(self) -> None:
        pass


StartPeers = Callable[..., list[Peer]]


@pytest.fixture
def peers(model: Model, make: Make) -> Iterator[StartPeers]:
    """``peers(n, kind=None, **channels)``: ``n`` other parties sharing ``channels``.

    Each peer also gets its own ``started`` event of the model, which :func:`blocking` sets.
    """
    started: list[Peer] = []
    events: list[Any] = []
    shared: list[Any] = []

    def start(n: int, kind: str | None = None, **channels: Any) -> list[Peer]:
        default = {"process": "forkserver", "interpreter": "interpreter"}
        kind = kind or default.get(model.name, "thread")
        event_model = ck.THREAD if kind == "thread" else ck.PROCESS
        new = []
        for _ in range(n):
            event = event_model.Event()
            events.append(event)
            prims: dict[str, Any] = {name: Keep(ch) for name, ch in channels.items()}
            prims["started"] = event
            peer = Peer(kind, prims)
            peer.started = event  # type: ignore[attr-defined]
            new.append(peer)
        shared.extend(channels.values())
        started.extend(new)
        for p in new:  # processes start up in parallel
            p.ready()
            assert (p.pid != os.getpid()) is (kind not in ("thread", "interpreter"))
        return new

    yield start
    for channel in shared:  # wakes a thread peer a failed test left blocked in a channel call
        channel.close()
    shared.clear()
    for p in started:
        p.stop()
    for event in events:
        event.close()


# -- peer commands: module-level, so that forkserver children can import them ----------------------


def op(prims: dict[str, Any], name: str, method: str, *args: Any) -> Any:
    """``channel.method(*args)`` on the channel ``name``."""
    return getattr(prims[name].channel, method)(*args)


def blocking(prims: dict[str, Any], name: str, method: str, *args: Any) -> Any:
    """Set the peer's ``started`` event, then call ``channel.method(*args)`` (which waits)."""
    prims["started"].set()
    return getattr(prims[name].channel, method)(*args)


def drain(prims: dict[str, Any], name: str) -> list[Any]:
    """``list(channel)``: every item until the channel is closed and drained."""
    return list(prims[name].channel)


def send_items(prims: dict[str, Any], name: str, items: list[Any]) -> None:
    channel = prims[name].channel
    for item in items:
        channel.send(item, DEADLOCK)


def send_patterned(prims: dict[str, Any], name: str, sizes: list[int]) -> None:
    """Send ``pattern(k, size)`` for each size (made here: only the sizes cross the pipe)."""
    channel = prims[name].channel
    for k, size in enumerate(sizes):
        channel.send(pattern(k, size), DEADLOCK)


def pattern(k: int, size: int) -> bytes:
    """``size`` bytes that differ from item to item and from offset to offset."""
    unit = bytes((k * 7 + j) % 251 for j in range(251))
    return (unit * (size // 251 + 1))[:size]


def asleep(peer: Peer) -> bool:
    """Whether the peer's thread sleeps in the kernel now (state ``S``), or has answered."""
    try:
        with open(f"/proc/{peer.pid}/task/{peer.native_id}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return True  # gone: the caller finds out from the peer's answer
    return stat[stat.rindex(b")") + 2 :].split()[0] == b"S" or peer.answered()


def start_blocking(peer: Peer, name: str, method: str, *args: Any) -> None:
    """Have ``peer`` call ``channel.method(*args)``; return once it has most likely blocked.

    Waits until the peer has started the call (its ``started`` event) and then sleeps in the
    kernel. No assertion may depend on the peer being blocked: this only makes it likely.
    """
    event = peer.started  # type: ignore[attr-defined]
    event.clear()
    peer.send(blocking, name, method, *args)
    wait_until(lambda: event.is_set() or peer.answered(), "the peer starts its call")
    wait_until(lambda: asleep(peer), "the peer blocks (or answers)")


def raised(info: pytest.ExceptionInfo[PeerRaised], cls: type[BaseException]) -> bool:
    """The peer's command raised ``cls`` (from concurrency_kit)."""
    return info.value.names[0].rsplit(".", 1)[-1] == cls.__name__ and any(
        name.startswith("concurrency_kit") for name in info.value.names
    )


def try_call(fn: Callable[[], Any], refused: type[BaseException]) -> Callable[[], bool]:
    """A predicate: call ``fn``; False if it raised ``refused``, True once it succeeded."""
    results: list[Any] = []

    def attempt() -> bool:
        if results:
            return True
        try:
            results.append(fn())
        except refused:
            return False
        return True

    attempt.results = results  # type: ignore[attr-defined]
    return attempt


# -- construction, names, statistics ---------------------------------------------------------------


def test_model_records_the_channel_classes() -> None:
    assert ck.PROCESS.Channel is ProcessChannel
    assert ck.THREAD.Channel is ThreadChannel
    assert issubclass(ChannelFull, queue.Full)
    assert issubclass(ChannelEmpty, queue.Empty)
    assert issubclass(ChannelFull, ck.WouldBlock)
    assert issubclass(ChannelEmpty, ck.WouldBlock)
    assert issubclass(ChannelTimeout, TimeoutError)
    assert issubclass(ChannelClosed, ck.ConcurrencyKitError)
    assert not issubclass(ChannelClosed, ck.WouldBlock)


def test_defaults_and_name(model: Model, make: Make) -> None:
    channel = make()
    assert channel.capacity == 256
    assert isinstance(channel.name, str)
    assert channel.closed is False
    named = make(3, name="jobs")
    assert (named.name, named.capacity) == ("jobs", 3)
    assert make(None).capacity is None
    assert make(0).capacity == 0


def test_statistics_values(model: Model, make: Make) -> None:
    channel = make(4)
    stats = channel.statistics()
    assert type(stats) is ck.ChannelStatistics
    assert [f.name for f in attrs.fields(type(stats))] == [
        "capacity",
        "queued",
        "sent",
        "received",
        "closed",
    ]
    assert stats == ck.ChannelStatistics(capacity=4, queued=0, sent=0, received=0, closed=False)

    def counts(queued: int, sent: int, received: int, closed: bool) -> ck.ChannelStatistics:
        return ck.ChannelStatistics(4, queued, sent, received, closed)

    with pytest.raises(AttributeError):
        stats.queued = 1  # type: ignore[misc]
    channel.send("a")
    channel.send_nowait("b")
    channel.send_many(["c", "d"])
    with pytest.raises(ChannelFull):  # a refused send counts nowhere
        channel.send_nowait("e")
    with pytest.raises(ChannelTimeout):
        channel.send("e", timeout=0)
    assert channel.statistics() == counts(4, 4, 0, False)
    assert channel.recv() == "a"
    assert channel.recv_nowait() == "b"
    assert channel.statistics() == counts(2, 4, 2, False)
    channel.close()
    assert channel.statistics() == counts(2, 4, 2, True)
    assert channel.recv_many(5) == ["c", "d"]
    assert channel.statistics() == counts(0, 4, 4, True)
    assert make(None).statistics().capacity is None
    assert make(0).statistics().capacity == 0


@pytest.mark.parametrize("capacity", [None, 100])
def test_statistics_count_every_form_of_send_and_recv(
    model: Model, make: Make, capacity: int | None
) -> None:
    # Each form, with plain items (a process channel's fast path), containers, and big items.
    channel = make(capacity)
    sends: list[Callable[[Any], None]] = [
        lambda x: channel.send(x),
        lambda x: channel.send(x, timeout=0),
        lambda x: channel.send(x, timeout=DEADLOCK),
        lambda x: channel.send_nowait(x),
        lambda x: channel.send_many([x]),
    ]
    recvs: list[Callable[[], Any]] = [
        lambda: channel.recv(),
        lambda: channel.recv(timeout=0),
        lambda: channel.recv_nowait(),
        lambda: channel.recv_many(1)[0],
        lambda: ck.select(channel)[1],
    ]
    items = [7, "text", 2.5, None, [1, 2], b"x" * 10_000]
    n = 0
    for i, send in enumerate(sends):
        for item in items:
            send(item)
            n += 1
            stats = channel.statistics()
            assert (stats.queued, stats.sent, stats.received) == (n, n, 0), (i, item)
    got = 0
    for i, recv in enumerate(recvs):
        for item in items:
            assert recv() == item
            got += 1
            stats = channel.statistics()
            assert (stats.queued, stats.sent, stats.received) == (n - got, n, got), (i, item)


# -- FIFO, capacity, unbounded ---------------------------------------------------------------------


def test_fifo(model: Model, make: Make) -> None:
    channel = make(None)
    items = [0, "one", (2, 2.0), None, b"four", {"five": [5]}, 0]
    for item in items:
        channel.send(item)
    assert [channel.recv() for _ in items] == items
    with pytest.raises(ChannelEmpty):
        channel.recv_nowait()
    with pytest.raises(queue.Empty):  # as code written for queue.Queue expects
        channel.recv_nowait()


def test_items_are_references_or_copies(model: Model, make: Make) -> None:
    channel = make()
    item = {"list": [1, 2]}
    channel.send(item)
    got = channel.recv()
    assert got == item
    assert (got is item) is (not is_process(model))  # threads pass references; processes copy
    lock = threading.Lock()  # not picklable: fine for a thread channel, refused by a process one
    if is_process(model):
        with pytest.raises(SerializationError):
            channel.send(lock)
    else:
        channel.send(lock)
        assert channel.recv() is lock


@pytest.mark.parametrize("capacity", [1, 3, 256, 300])
@pytest.mark.parametrize("size", [8, 10_000], ids=["small", "large"])
def test_send_nowait_is_full_exactly_at_capacity(
    model: Model, make: Make, capacity: int, size: int
) -> None:
    # 256 small items fill a process channel's pipe exactly; 300 overflow into its store.
    channel = make(capacity)
    for i in range(capacity):
        channel.send_nowait((i, pattern(i, size)))
    assert channel.statistics().queued == capacity
    with pytest.raises(ChannelFull):
        channel.send_nowait("one too many")
    with pytest.raises(queue.Full):
        channel.send_nowait("one too many")
    with pytest.raises(ChannelTimeout):
        channel.send("one too many", timeout=0)
    assert channel.recv() == (0, pattern(0, size))
    channel.send_nowait((capacity, pattern(capacity, size)))  # exactly one place came free
    with pytest.raises(ChannelFull):
        channel.send_nowait("one too many")
    got = channel.recv_many(capacity + 1)
    assert got == [(i, pattern(i, size)) for i in range(1, capacity + 1)]
    stats = channel.statistics()
    assert (stats.queued, stats.sent, stats.received) == (0, capacity + 1, capacity + 1)


def test_blocked_send_proceeds_when_a_receiver_takes_one(
    model: Model, make: Make, peers: StartPeers
) -> None:
    channel = make(2)
    channel.send_many([0, 1])
    (peer,) = peers(1, ch=channel)
    start_blocking(peer, "ch", "send", 2, DEADLOCK)
    assert not peer.answered()
    assert channel.statistics().queued == 2
    assert channel.recv() == 0
    assert peer.answer() is None
    assert channel.statistics().queued == 2  # never more than the capacity
    with pytest.raises(ChannelFull):
        channel.send_nowait(3)
    assert channel.recv_many(5) == [1, 2]


def test_blocked_recv_gets_the_next_item(model: Model, make: Make, peers: StartPeers) -> None:
    channel = make(2)
    (peer,) = peers(1, ch=channel)
    start_blocking(peer, "ch", "recv", DEADLOCK)
    assert not peer.answered()
    channel.send("item")
    assert peer.answer() == "item"
    assert channel.statistics().queued == 0


def test_unbounded_never_blocks(model: Model, make: Make) -> None:
    channel = make(None)
    n = 5_000
    for i in range(n):
        channel.send_nowait(i)
    channel.send_many(range(n, 2 * n), timeout=0)
    channel.send(2 * n, timeout=0)
    stats = channel.statistics()
    assert (stats.capacity, stats.queued, stats.sent) == (None, 2 * n + 1, 2 * n + 1)
    got: list[int] = []
    while len(got) < 2 * n + 1:
        batch = channel.recv_many(1_000, timeout=0)
        assert 1 <= len(batch) <= 1_000
        got.extend(batch)
    assert got == list(range(2 * n + 1))


def test_unbounded_process_channel_is_bounded_by_its_memory(model: Model, make: Make) -> None:
    if not is_process(model):
        pytest.skip("shared_memory_size is a process-only keyword")
    size = 64 * 1024  # well above a pipe packet: every item goes to the store
    channel = make(None, shared_memory_size=MiB)
    sent = 0
    while True:
        try:
            channel.send_nowait(pattern(sent, size))
        except ChannelFull:
            break
        sent += 1
        assert sent <= MiB // size, "a 1 MiB store took more than 1 MiB of items"
    assert sent >= 1
    with pytest.raises(ChannelTimeout):
        channel.send(b"x" * size, timeout=SHORT)
    assert channel.recv() == pattern(0, size)
    channel.send(pattern(sent, size), timeout=DEADLOCK)  # the room that came free is used
    got = [channel.recv() for _ in range(sent)]
    assert got == [pattern(k, size) for k in range(1, sent + 1)]
    # An item bigger than the whole store never fits: refused, not a hang, channel usable.
    with pytest.raises((ck.ConcurrencyKitError, ValueError)):
        channel.send(b"y" * (2 * MiB), timeout=SHORT)
    channel.send(b"z" * size)
    assert channel.recv() == b"z" * size


# -- rendezvous (capacity 0) -----------------------------------------------------------------------


def test_rendezvous_send_waits_until_a_receiver_takes_the_item(
    model: Model, make: Make, peers: StartPeers
) -> None:
    channel = make(0)
    with pytest.raises(ChannelFull):
        channel.send_nowait("nobody waits")
    with pytest.raises(ChannelTimeout):
        channel.send("nobody waits", timeout=SHORT)
    with pytest.raises(ChannelEmpty):  # a send that gave up withdrew its item
        channel.recv_nowait()
    (peer,) = peers(1, ch=channel)
    start_blocking(peer, "ch", "send", "handed over", DEADLOCK)
    assert not peer.answered()
    assert channel.recv(timeout=DEADLOCK) == "handed over"
    assert peer.answer() is None
    with pytest.raises(ChannelEmpty):
        channel.recv_nowait()
    stats = channel.statistics()
    assert (stats.capacity, stats.queued, stats.sent, stats.received) == (0, 0, 1, 1)


def test_rendezvous_send_nowait_needs_a_blocked_receiver(
    model: Model, make: Make, peers: StartPeers
) -> None:
    channel = make(0)
    with pytest.raises(ChannelFull):
        channel.send_nowait("early")
    (peer,) = peers(1, ch=channel)
    peer.send(op, "ch", "recv", DEADLOCK)
    # Only the call itself can tell that the receiver waits now: poll it until it succeeds.
    wait_until(try_call(lambda: channel.send_nowait("now"), ChannelFull), "send_nowait succeeds")
    with pytest.raises(ChannelFull):  # one waiting receiver takes one item
        channel.send_nowait("second")
    assert peer.answer() == "now"
    with pytest.raises(ChannelFull):
        channel.send_nowait("late")
    with pytest.raises(ChannelEmpty):
        channel.recv_nowait()
    stats = channel.statistics()
    assert (stats.queued, stats.sent, stats.received) == (0, 1, 1)


def test_rendezvous_recv_nowait_takes_a_blocked_senders_item(
    model: Model, make: Make, peers: StartPeers
) -> None:
    channel = make(0)
    (peer,) = peers(1, ch=channel)
    peer.send(op, "ch", "send", "offered", DEADLOCK)
    attempt = try_call(channel.recv_nowait, ChannelEmpty)
    wait_until(attempt, "recv_nowait takes the offered item")
    assert attempt.results == ["offered"]  # type: ignore[attr-defined]
    assert peer.answer() is None


def test_rendezvous_large_item(model: Model, make: Make, peers: StartPeers) -> None:
    channel = make(0)
    (peer,) = peers(1, ch=channel)
    peer.send(send_patterned, "ch", [4 * MiB, 10, 100_000])
    assert [channel.recv(timeout=DEADLOCK) for _ in range(3)] == [
        pattern(0, 4 * MiB),
        pattern(1, 10),
        pattern(2, 100_000),
    ]
    assert peer.answer() is None


# -- timeouts --------------------------------------------------------------------------------------


def test_timeouts_raise_channel_timeout(model: Model, make: Make) -> None:
    channel = make(1)
    for call in (
        lambda: channel.recv(timeout=SHORT),
        lambda: channel.recv_many(3, timeout=SHORT),
    ):
        start = time.monotonic()
        with pytest.raises(ChannelTimeout) as info:
            call()
        assert time.monotonic() - start >= SHORT * 0.6
        assert isinstance(info.value, TimeoutError)
        assert info.value.sent == 0
    with pytest.raises(ChannelTimeout):
        channel.recv(timeout=0)
    channel.send("fills it")
    start = time.monotonic()
    with pytest.raises(ChannelTimeout) as info:
        channel.send("no room", timeout=SHORT)
    assert time.monotonic() - start >= SHORT * 0.6
    assert info.value.sent == 0
    assert channel.recv_many(5, timeout=0) == ["fills it"]  # the timed-out item is not there
    stats = channel.statistics()
    assert (stats.queued, stats.sent, stats.received) == (0, 1, 1)


@pytest.mark.parametrize("capacity", [0, 3])
def test_send_many_timeout_says_how_many_went_in(model: Model, make: Make, capacity: int) -> None:
    channel = make(capacity)
    if capacity:
        channel.send("already there")
    start = time.monotonic()
    with pytest.raises(ChannelTimeout) as info:
        channel.send_many(["a", "b", "c", "d"], timeout=SHORT)
    assert time.monotonic() - start >= SHORT * 0.6
    assert isinstance(info.value, TimeoutError)
    expected = ["a", "b"] if capacity else []
    assert info.value.sent == len(expected)
    if capacity:
        assert channel.recv_many(10) == ["already there", *expected]
    with pytest.raises(ChannelEmpty):
        channel.recv_nowait()
    assert channel.statistics().sent == len(expected) + (1 if capacity else 0)


def test_send_many_waits_for_room(model: Model, make: Make, peers: StartPeers) -> None:
    channel = make(2)
    (peer,) = peers(1, ch=channel)
    peer.send(op, "ch", "send_many", list(range(50)), DEADLOCK)
    got = [channel.recv(timeout=DEADLOCK) for _ in range(50)]
    assert got == list(range(50))
    assert peer.answer() is None


# The one timeout rule (concurrency_kit._core.deadline), for every channel call of both models:
# None, inf and values too large for any clock wait forever; 0 does not wait; NaN and negatives
# are ValueErrors and non-numbers TypeErrors at the call. A value a system call cannot take
# (inf raised OverflowError in recv, issue #15) is never passed on: waits are made of slices.

FOREVER = [float("inf"), 1e10, 1e300, 2**70]
"""Timeouts that mean "wait forever": inf, and values beyond what any clock or syscall counts."""


def select_one(prims: dict[str, Any], name: str, timeout: Any) -> Any:
    """Set the peer's ``started`` event, then ``select`` on one channel; return the item."""
    prims["started"].set()
    return ck.select(prims[name].channel, timeout=timeout)[1]


@pytest.mark.parametrize("timeout", FOREVER, ids=["inf", "1e10", "1e300", "2**70"])
@pytest.mark.parametrize("call", ["recv", "recv_many", "select"])
def test_a_receive_with_an_endless_timeout_waits_for_the_item(
    model: Model, make: Make, peers: StartPeers, call: str, timeout: float
) -> None:
    channel = make(1)
    (peer,) = peers(1, ch=channel)
    event = peer.started  # type: ignore[attr-defined]
    if call == "select":
        peer.send(select_one, "ch", timeout)
    else:
        peer.send(blocking, "ch", call, *([2] if call == "recv_many" else []), timeout)
    wait_until(lambda: event.is_set() or peer.answered(), "the peer starts its call")
    wait_until(lambda: asleep(peer), "the peer blocks (or answers)")
    assert not peer.answered()  # it waits: no OverflowError, no early timeout
    channel.send("item")
    assert peer.answer() == (["item"] if call == "recv_many" else "item")


@pytest.mark.parametrize("timeout", FOREVER, ids=["inf", "1e10", "1e300", "2**70"])
@pytest.mark.parametrize("call", ["send", "send_many"])
@pytest.mark.parametrize("capacity", [1, 0], ids=["full", "rendezvous"])
def test_a_send_with_an_endless_timeout_waits_for_room(
    model: Model, make: Make, peers: StartPeers, call: str, timeout: float, capacity: int
) -> None:
    channel = make(capacity)
    if capacity:
        channel.send("first")
    (peer,) = peers(1, ch=channel)
    item: Any = ["late"] if call == "send_many" else "late"
    start_blocking(peer, "ch", call, item, timeout)
    assert not peer.answered()
    if capacity:
        assert channel.recv(timeout=DEADLOCK) == "first"
    assert channel.recv(timeout=DEADLOCK) == "late"
    assert peer.answer() is None
    assert channel.statistics().queued == 0


def test_a_zero_timeout_does_not_wait(model: Model, make: Make) -> None:
    full, rendezvous = make(1), make(0)
    full.send("fills it")
    empty = make(1)
    calls: list[Callable[[], Any]] = [
        lambda: empty.recv(timeout=0),
        lambda: empty.recv_many(3, timeout=0),
        lambda: ck.select(empty, timeout=0),
        lambda: full.send("no room", timeout=0),
        lambda: full.send_many(["no", "room"], timeout=0),
        lambda: rendezvous.send("nobody waits", timeout=0),
        lambda: rendezvous.send_many(["nobody"], timeout=0),
    ]
    for call in calls:  # each returns at once: a wait here would be a deadlock
        with pytest.raises(ChannelTimeout):
            call()
    assert full.recv(timeout=0) == "fills it"
    assert [ch.statistics().queued for ch in (full, rendezvous, empty)] == [0, 0, 0]


@pytest.mark.parametrize(
    ("timeout", "error"),
    [
        (float("nan"), ValueError),
        (-1, ValueError),
        (-1e-9, ValueError),
        (float("-inf"), ValueError),
        ("1", TypeError),
        (True, TypeError),
        (b"", TypeError),
        (1j, TypeError),
        ([1], TypeError),
    ],
    ids=["nan", "-1", "-1e-9", "-inf", "str", "bool", "bytes", "complex", "list"],
)
def test_a_bad_timeout_is_refused_at_the_call(
    model: Model, make: Make, timeout: Any, error: type[Exception]
) -> None:
    channel = make(4)
    channel.send("there")  # refused even when the call could complete at once
    calls: list[Callable[[], Any]] = [
        lambda: channel.send("x", timeout=timeout),
        lambda: channel.send_many(["x", "y"], timeout=timeout),
        lambda: channel.recv(timeout=timeout),
        lambda: channel.recv_many(2, timeout=timeout),
        lambda: ck.select(channel, timeout=timeout),
    ]
    for call in calls:
        with pytest.raises(error, match="timeout"):
            call()
    stats = channel.statistics()
    assert (stats.sent, stats.received) == (1, 0)  # nothing went in or out
    assert channel.recv_nowait() == "there"


# -- recv_many -------------------------------------------------------------------------------------


def test_recv_many_takes_what_is_there(model: Model, make: Make) -> None:
    channel = make(10)
    channel.send_many(range(5))
    assert channel.recv_many(3) == [0, 1, 2]
    start = time.monotonic()
    assert channel.recv_many(10, timeout=DEADLOCK) == [3, 4]  # does not wait for more
    assert time.monotonic() - start < DEADLOCK / 2
    channel.send(5)
    assert channel.recv_many(1) == [5]


def test_recv_many_waits_for_the_first_item(model: Model, make: Make, peers: StartPeers) -> None:
    channel = make(10)
    (peer,) = peers(1, ch=channel)
    start_blocking(peer, "ch", "recv_many", 5, DEADLOCK)
    assert not peer.answered()
    channel.send_many(["a", "b", "c"])
    got = peer.answer()  # at least the first item; more if they were there already
    assert 1 <= len(got) <= 3
    rest = channel.recv_many(5, timeout=0) if len(got) < 3 else []
    assert got + rest == ["a", "b", "c"]


@pytest.mark.parametrize("max_items", [0, -1])
def test_recv_many_needs_one_item_or_more(model: Model, make: Make, max_items: int) -> None:
    channel = make()
    channel.send("kept")
    with pytest.raises(ValueError, match="max_items"):
        channel.recv_many(max_items)
    with pytest.raises((TypeError, ValueError), match="max_items"):
        channel.recv_many(1.5)
    assert channel.recv_many(1) == ["kept"]


# -- close -----------------------------------------------------------------------------------------


def test_close_semantics(model: Model, make: Make) -> None:
    channel = make(5)
    channel.send_many([1, 2, 3])
    channel.close()
    assert channel.closed is True
    for send in (
        lambda: channel.send(4),
        lambda: channel.send_nowait(4),
        lambda: channel.send_many([4]),
        lambda: channel.send(4, timeout=SHORT),
    ):
        with pytest.raises(ChannelClosed):
            send()
    assert channel.recv() == 1  # every item sent before close is received ...
    assert channel.recv_nowait() == 2
    assert channel.recv_many(5) == [3]
    for recv in (  # ... then every receive says closed, without waiting
        lambda: channel.recv(),
        lambda: channel.recv(timeout=DEADLOCK),
        lambda: channel.recv_nowait(),
        lambda: channel.recv_many(3),
    ):
        with pytest.raises(ChannelClosed):
            recv()
    channel.close()  # idempotent
    assert channel.closed is True
    stats = channel.statistics()
    assert (stats.closed, stats.queued, stats.sent, stats.received) == (True, 0, 3, 3)


def test_iteration_ends_when_closed_and_drained(model: Model, make: Make) -> None:
    channel = make(None)
    channel.send_many(range(4))
    channel.close()
    assert list(channel) == [0, 1, 2, 3]
    assert list(channel) == []


def test_iterating_peer_gets_everything_then_stops(
    model: Model, make: Make, peers: StartPeers
) -> None:
    channel = make(3)
    (peer,) = peers(1, ch=channel)
    peer.send(drain, "ch")
    channel.send_many(range(20), timeout=DEADLOCK)
    channel.close()
    assert peer.answer() == list(range(20))


def test_context_manager_closes(model: Model, make: Make) -> None:
    with make(2) as channel:
        assert channel.closed is False
        channel.send("inside")
    assert channel.closed is True
    assert channel.recv() == "inside"
    with pytest.raises(ChannelClosed):
        channel.recv()
    with pytest.raises(KeyError), make() as other:
        raise KeyError("inside")
    assert other.closed is True


def test_close_wakes_blocked_receivers(model: Model, make: Make, peers: StartPeers) -> None:
    channel = make(2)
    group = peers(2, ch=channel)
    start_blocking(group[0], "ch", "recv", DEADLOCK)
    start_blocking(group[1], "ch", "recv_many", 3, DEADLOCK)
    channel.close()
    for p in group:
        with pytest.raises(PeerRaised) as info:
            p.answer()
        assert raised(info, ChannelClosed), info.value.names


@pytest.mark.parametrize("capacity", [0, 1])
def test_close_wakes_blocked_senders(
    model: Model, make: Make, peers: StartPeers, capacity: int
) -> None:
    channel = make(capacity)
    if capacity:
        channel.send("queued")
    (peer,) = peers(1, ch=channel)
    start_blocking(peer, "ch", "send", "blocked", DEADLOCK)
    channel.close()
    with pytest.raises(PeerRaised) as info:
        peer.answer()
    assert raised(info, ChannelClosed), info.value.names
    assert list(channel) == (["queued"] if capacity else [])  # the refused item is not in


def test_close_by_a_peer_is_seen_by_every_handle(
    model: Model, make: Make, peers: StartPeers
) -> None:
    channel = make()
    channel.send("before")
    (peer,) = peers(1, ch=channel)
    peer.call(op, "ch", "close")
    assert channel.closed is True
    assert channel.statistics().closed is True
    with pytest.raises(ChannelClosed):
        channel.send("after")
    assert channel.recv() == "before"
    with pytest.raises(ChannelClosed):
        channel.recv_nowait()


# -- many producers, many consumers ----------------------------------------------------------------


def item_of(tag: int, i: int) -> tuple[int, int, bytes]:
    """Item ``i`` of producer ``tag``: every fifth one is big (a process channel's store)."""
    size = 6_000 if i % 5 == 0 else i % 40
    return tag, i, pattern(tag * 1_000 + i, size)


def producer(
    barrier: Any, channel: Any, done: Any, tag: int, n: int, n_producers: int, batch: int
) -> int:
    """Send this producer's ``n`` items; the last producer to finish closes the channel."""
    barrier.wait(DEADLOCK)
    for start in range(0, n, batch):
        items = [item_of(tag, i) for i in range(start, min(n, start + batch))]
        if batch == 1:
            channel.send(items[0], DEADLOCK)
        else:
            channel.send_many(items, DEADLOCK)
    if done.add() == n_producers:
        channel.close()
    return n


def consumer(barrier: Any, channel: Any, batch: int) -> list[tuple[int, int, bytes]]:
    """Receive until the channel is closed and drained."""
    barrier.wait(DEADLOCK)
    got: list[tuple[int, int, bytes]] = []
    if batch == 0:
        return list(channel)
    while True:
        try:
            if batch == 1:
                got.append(channel.recv(DEADLOCK))
            else:
                got.extend(channel.recv_many(batch, DEADLOCK))
        except ChannelClosed:
            return got


@pytest.mark.parametrize(
    ("producers", "consumers", "capacity", "batch"),
    [(3, 1, 4, 1), (1, 3, 2, 1), (2, 2, 8, 0), (2, 2, None, 16), (2, 2, 0, 1), (2, 2, 5, 7)],
    ids=["3p1c-cap4", "1p3c-cap2", "2p2c-iter", "2p2c-unbounded-batch", "2p2c-rendezvous", "batch"],
)
def test_many_producers_many_consumers(
    model: Model,
    make: Make,
    producers: int,
    consumers: int,
    capacity: int | None,
    batch: int,
) -> None:
    channel = make(capacity)
    n = 150
    with model.SharedCounter() as done:
        results = run_parallel(
            model,
            _producer_or_consumer,
            [("p", channel, done, tag, n, producers, max(batch, 1)) for tag in range(producers)]
            + [("c", channel, batch) for _ in range(consumers)],
        )
    received = results[producers:]
    everything = [item for got in received for item in got]
    expected = [item_of(tag, i) for tag in range(producers) for i in range(n)]
    counts = collections.Counter((tag, i) for tag, i, _ in everything)
    assert [key for key, c in counts.items() if c > 1] == [], "items received twice"
    assert sorted(counts) == [(tag, i) for tag in range(producers) for i in range(n)], "lost"
    assert sorted(everything) == sorted(expected), "an item arrived damaged"
    for got in received:  # each consumer sees each producer's items in the order sent
        for tag in range(producers):
            seq = [i for t, i, _ in got if t == tag]
            assert seq == sorted(seq), f"producer {tag}'s items out of order"
    if consumers == 1:
        for tag in range(producers):
            assert [i for t, i, _ in received[0] if t == tag] == list(range(n))
    stats = channel.statistics()
    total = producers * n
    assert (stats.queued, stats.sent, stats.received, stats.closed) == (0, total, total, True)


def _producer_or_consumer(barrier: Any, role: str, *args: Any) -> Any:
    return producer(barrier, *args) if role == "p" else consumer(barrier, *args)


# -- bad arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize("capacity", [-1, -256])
def test_negative_capacity(model: Model, capacity: int) -> None:
    with pytest.raises(ValueError, match="capacity"):
        model.Channel(capacity)


@pytest.mark.parametrize("capacity", [True, False, 2.0, 2.5, "3"])
def test_capacity_must_be_an_int(model: Model, capacity: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="capacity"):
        model.Channel(capacity)


def test_shared_memory_size_is_process_only(model: Model, make: Make) -> None:
    if is_process(model):
        for bad in (0, -1):
            with pytest.raises(ValueError, match="shared_memory_size"):
                model.Channel(4, shared_memory_size=bad)
        with pytest.raises((TypeError, ValueError), match="shared_memory_size"):
            model.Channel(4, shared_memory_size="big")
        channel = make(4, shared_memory_size=MiB)
        channel.send(b"fits")
        assert channel.recv() == b"fits"
    else:
        with pytest.raises(TypeError):
            model.Channel(4, shared_memory_size=MiB)


def test_negative_timeouts_raise_at_the_call(model: Model, make: Make) -> None:
    channel = make(4)
    calls: list[Callable[[], Any]] = [
        lambda: channel.send("x", timeout=-1),
        lambda: channel.send_many(["x", "y"], timeout=-0.5),
        lambda: channel.recv(timeout=-1),
        lambda: channel.recv_many(2, timeout=-1),
        lambda: ck.select(channel, timeout=-1),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="timeout"):
            call()
    assert channel.statistics().sent == 0  # nothing went in
    channel.send("y")
    for call in calls[2:]:  # refused even with an item there to take
        with pytest.raises(ValueError, match="timeout"):
            call()
    assert channel.recv_nowait() == "y"


# -- select ----------------------------------------------------------------------------------------


def test_select_takes_from_the_ready_channel(model: Model, make: Make) -> None:
    a, b, c = make(), make(), make()
    b.send("from b")
    assert ck.select(a, b, c, timeout=DEADLOCK) == (b, "from b")
    a.send("from a")
    c.send("from c")
    first = ck.select(a, b, c, timeout=0)
    second = ck.select(a, b, c, timeout=0)
    assert {first, second} == {(a, "from a"), (c, "from c")}  # each item taken once
    with pytest.raises(ChannelTimeout):
        ck.select(a, b, c, timeout=0)
    assert all(ch.statistics().queued == 0 for ch in (a, b, c))


def test_select_returns_the_channel_object_it_was_given(model: Model, make: Make) -> None:
    a, b = make(), make()
    b.send(1)
    channel, item = ck.select(a, b)
    assert channel is b
    assert item == 1


def test_select_waits_for_a_peer(model: Model, make: Make, peers: StartPeers) -> None:
    a, b = make(), make(0)
    (peer,) = peers(1, a=a, b=b)
    peer.send(op, "b", "send", "late", DEADLOCK)  # a rendezvous: select is its receiver
    assert ck.select(a, b, timeout=DEADLOCK) == (b, "late")
    assert peer.answer() is None
    peer.send(op, "a", "send", "later", DEADLOCK)
    assert ck.select(a, b, timeout=DEADLOCK) == (a, "later")
    assert peer.answer() is None


def test_select_timeout(model: Model, make: Make) -> None:
    a, b = make(), make(0)
    start = time.monotonic()
    with pytest.raises(ChannelTimeout) as info:
        ck.select(a, b, timeout=SHORT)
    assert time.monotonic() - start >= SHORT * 0.6
    assert isinstance(info.value, TimeoutError)


def test_select_skips_closed_channels(model: Model, make: Make) -> None:
    a, b, c = make(), make(), make()
    a.send("last of a")
    a.close()
    b.close()
    assert ck.select(a, b, c, timeout=DEADLOCK) == (a, "last of a")
    with pytest.raises(ChannelTimeout):  # a and b are done, c is open and empty
        ck.select(a, b, c, timeout=SHORT)
    c.close()
    with pytest.raises(ChannelClosed):
        ck.select(a, b, c, timeout=DEADLOCK)
    with pytest.raises(ChannelClosed):
        ck.select(a, timeout=0)


def test_select_wakes_when_every_channel_closes(
    model: Model, make: Make, peers: StartPeers
) -> None:
    a, b = make(), make()
    (peer,) = peers(1, a=a, b=b)
    b.close()
    peer.send(op, "a", "close")
    with pytest.raises(ChannelClosed):
        ck.select(a, b, timeout=DEADLOCK)
    assert peer.answer() is None


def test_select_needs_channels(model: Model) -> None:
    with pytest.raises(ValueError, match="channel"):
        ck.select()
    with pytest.raises(ValueError, match="channel"):
        ck.select(timeout=1)


@pytest.mark.parametrize("ready", ["thread", "process"])
def test_select_over_both_models(ready: str) -> None:
    with ThreadChannel() as t, ProcessChannel() as p:
        (t if ready == "thread" else p).send(ready)
        channel, item = ck.select(t, p, timeout=DEADLOCK)
        assert (channel, item) == ((t if ready == "thread" else p), ready)
        with pytest.raises(ChannelTimeout):
            ck.select(p, t, timeout=SHORT)


def test_select_over_both_models_waits_for_either() -> None:
    with ThreadChannel() as t, ProcessChannel() as p:
        thread_peer = Peer("thread", {"ch": Keep(t)}).ready()
        process_peer = Peer("forkserver", {"ch": Keep(p)}).ready()
        try:
            process_peer.send(op, "ch", "send", "from a process", DEADLOCK)
            assert ck.select(t, p, timeout=DEADLOCK) == (p, "from a process")
            assert process_peer.answer() is None
            thread_peer.send(op, "ch", "send", "from a thread", DEADLOCK)
            assert ck.select(p, t, timeout=DEADLOCK) == (t, "from a thread")
            assert thread_peer.answer() is None
            t.close()
            p.close()
            with pytest.raises(ChannelClosed):
                ck.select(t, p, timeout=DEADLOCK)
        finally:
            t.close()
            p.close()
            thread_peer.stop()
            process_peer.stop()


# -- payloads --------------------------------------------------------------------------------------


def test_large_payloads_round_trip(model: Model, make: Make) -> None:
    np = pytest.importorskip("numpy")
    channel = make(4)
    big = os.urandom(4 * MiB)
    array = np.arange(MiB, dtype=np.float64).reshape(1024, 1024)
    channel.send(big)
    channel.send(bytearray(big[: MiB + 1]))
    channel.send(array)
    channel.send({"strided": array[::3, 1::2], "ints": np.arange(10, dtype=np.int16), "b": big})
    assert channel.recv() == big
    got = channel.recv()
    assert type(got) is bytearray
    assert got == big[: MiB + 1]
    got_array = channel.recv()
    assert got_array.dtype == array.dtype
    assert got_array.shape == array.shape
    assert np.array_equal(got_array, array)
    assert got_array.flags.writeable, "a received array must be a normal, writable array"
    mixed = channel.recv()
    assert np.array_equal(mixed["strided"], array[::3, 1::2])
    assert mixed["ints"].dtype == np.int16
    assert np.array_equal(mixed["ints"], np.arange(10, dtype=np.int16))
    assert mixed["b"] == big
    # What was received is the receiver's own: reusing the channel's memory changes nothing.
    snapshot = array.copy()
    for k in range(4):
        channel.send(np.full_like(array, k))
        assert np.array_equal(channel.recv(), np.full_like(array, k))
    assert np.array_equal(got_array, snapshot)
    if is_process(model):  # a copy, independent of the sender's array
        got_array[0, 0] = -1.0
        assert array[0, 0] == 0.0


def test_large_payloads_from_a_peer(model: Model, make: Make, peers: StartPeers) -> None:
    channel = make(2)
    (peer,) = peers(1, ch=channel)
    sizes = [4 * MiB, 1, 300_000, 4 * MiB, 5_000, 2 * MiB, 0, 4 * MiB]
    peer.send(send_patterned, "ch", sizes)
    for k, size in enumerate(sizes):
        assert channel.recv(timeout=DEADLOCK) == pattern(k, size), f"item {k} damaged"
    assert peer.answer() is None


# -- process only: pickling, serialization errors, start methods, pools ---------------------------


def test_unpicklable_item_is_refused_and_the_channel_works_on(model: Model, make: Make) -> None:
    if not is_process(model):
        pytest.skip("a thread channel passes references: nothing is pickled")
    channel = make(1)
    lock = threading.Lock()
    with pytest.raises(SerializationError, match="lock") as info:
        channel.send(lock)
    assert isinstance(info.value, pickle.PickleError)
    with pytest.raises(SerializationError):
        channel.send_nowait([1, 2, lock])
    with pytest.raises(SerializationError):  # fails after a big buffer was already pickled
        channel.send([b"x" * (4 * MiB), (i for i in range(3))])
    stats = channel.statistics()
    assert (stats.queued, stats.sent) == (0, 0)
    channel.send_nowait("fits: the refused items took no place")
    with pytest.raises(ChannelFull):
        channel.send_nowait("full")
    assert channel.recv() == "fits: the refused items took no place"
    channel.send(b"y" * (4 * MiB))
    assert channel.recv() == b"y" * (4 * MiB)


class FailsToLoad:
    """Pickles fine; unpickling raises."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (explode, ("on load",))


def explode(message: str) -> None:
    raise RuntimeError(message)


def test_item_that_fails_to_unpickle(model: Model, make: Make) -> None:
    if not is_process(model):
        pytest.skip("a thread channel passes references: nothing is unpickled")
    channel = make()
    channel.send(FailsToLoad())
    channel.send("next")
    with pytest.raises(SerializationError):
        channel.recv()
    assert channel.recv() == "next"  # the bad item was taken, the channel works on
    assert channel.statistics().queued == 0


def serve_once(prims: dict[str, Any], name: str) -> None:
    """Take one ``(x, reply_channel)`` request and answer ``2 * x`` on the reply channel."""
    x, reply = prims[name].channel.recv(DEADLOCK)
    reply.send(2 * x, DEADLOCK)


def test_a_channel_sent_through_a_channel(model: Model, make: Make, peers: StartPeers) -> None:
    # The request/reply pattern: each request carries the channel to answer on.
    requests = make()
    (peer,) = peers(1, requests=requests)
    for x in range(3):
        reply = make(1)
        peer.send(serve_once, "requests")
        requests.send((x, reply), DEADLOCK)
        assert reply.recv(DEADLOCK) == 2 * x
        assert peer.answer() is None


def test_thread_channel_cannot_be_pickled() -> None:
    with ThreadChannel() as channel, pytest.raises(TypeError, match="ProcessChannel"):
        pickle.dumps(channel)


def test_process_channel_handle_in_the_same_process() -> None:
    with ProcessChannel(3, name="shared") as channel:
        handle = pickle.loads(pickle.dumps(channel))
        assert type(handle) is ProcessChannel
        assert handle is not channel
        assert (handle.name, handle.capacity) == ("shared", 3)
        handle.send("via the handle")
        channel.send(b"z" * 100_000)
        assert channel.recv() == "via the handle"
        assert handle.recv() == b"z" * 100_000
        channel.send_many([1, 2, 3])
        with pytest.raises(ChannelFull):  # one capacity, whichever handle sends
            handle.send_nowait(4)
        assert handle.statistics() == channel.statistics()
        del handle
        gc.collect()
        assert channel.recv_many(3) == [1, 2, 3]  # dropping a handle closes nothing


def child_echo(requests: Any, replies: Any) -> None:
    for item in requests:
        replies.send(("echo", item), DEADLOCK)


@pytest.mark.parametrize("method", multiprocessing.get_all_start_methods())
def test_process_channel_in_a_child_of_every_start_method(method: str) -> None:
    ctx = multiprocessing.get_context(method)
    with ProcessChannel(4) as requests, ProcessChannel(4) as replies:
        child = ctx.Process(target=child_echo, args=(requests, replies))
        child.start()
        try:
            items = [*range(30), pattern(1, 100_000)]
            for item in items:
                requests.send(item, DEADLOCK)
                assert replies.recv(DEADLOCK) == ("echo", item)
            requests.close()
            child.join(DEADLOCK)
            assert child.exitcode == 0
            # The child's exit released its handles only: both channels work on here.
            replies.send(pattern(2, 200_000))
            assert replies.recv() == pattern(2, 200_000)
        finally:
            if child.is_alive():
                child.kill()
                child.join()
            child.close()


def test_channels_as_pool_task_arguments(model: Model, make: Make) -> None:
    jobs, results = make(3), make(3)

    def produce(channel: Any, tag: int, n: int) -> int:
        for i in range(n):
            channel.send((tag, i), DEADLOCK)
        return os.getpid()

    def consume(channel: Any, out: Any, n: int) -> int:
        for _ in range(n):
            out.send(channel.recv(DEADLOCK) * 2, DEADLOCK)
        return os.getpid()

    with model.Pool(2) as pool:
        producers = [pool.submit(produce, results, tag, 40) for tag in range(2)]
        got = [results.recv(DEADLOCK) for _ in range(80)]
        pids = {f.result(DEADLOCK) for f in producers}
        for tag in range(2):
            assert [i for t, i in got if t == tag] == list(range(40))
        worker = pool.submit(consume, jobs, results, 20)
        doubled = []
        for i in range(20):  # one at a time: both channels are small
            jobs.send(i, DEADLOCK)
            doubled.append(results.recv(DEADLOCK))
        assert doubled == [2 * i for i in range(20)]
        pids.add(worker.result(DEADLOCK))
    assert (os.getpid() in pids) is (model.name != "process")

"""ProcessChannel when processes die: producers and consumers SIGKILLed, creator death, GC.

The contract both models share is in ``tests/contract/test_channels.py``. Here real processes
are killed at the points the design names:

* a producer killed while blocked in ``send`` (channel full, or a rendezvous offer): no trace of
  its item, the room it waited for is the survivors', a survivor's blocked send goes through;
* producers killed at whatever instruction they are in while sending a stream of small (pipe)
  and large (shared-memory store) items: every item received is whole, each dead producer's
  items are a prefix of its stream, a survivor's items all arrive in order, and ``close`` then
  drains without waiting for the dead;
* consumers killed after taking items, or in the middle of a stream of receives: they lose
  only what they took; a consumer killed while blocked in ``recv`` takes nothing with it (on a
  rendezvous channel, ``send_nowait`` does not hand an item to the dead);
* the creator SIGKILLed (in a subprocess): its ``/dev/shm`` entries are removed;
* a channel dropped without ``close`` (and a handle that outlives its channel's ``close``)
  releases its descriptors, segments and mappings, as the leak checker counts them; a child
  that exits, however it exits, removes nothing.

Children are ``forkserver`` processes from ``_children`` that report over a pipe. When the
test must know a child is *blocked*, it waits until the child's thread sleeps in the kernel;
that only makes the kill likely to land there, no assertion depends on it. :data:`DEADLOCK`
only turns a hang into a failure.
"""

from __future__ import annotations

import gc
import os
import pickle
import textwrap
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

from _children import Child, asleep, creator, wait_until
from _children import children as children  # the fixture
from ck_leakcheck import find_leaks, take_snapshot
from concurrency_kit import (
    ChannelClosed,
    ChannelEmpty,
    ChannelFull,
    ProcessChannel,
    ProcessPool,
)
from concurrency_kit._core.shm import creator_pid

DEADLOCK = 60.0
"""Seconds after which a wait that should have ended is a deadlock (a failure, not a pass)."""

SHM = Path("/dev/shm")
MiB = 1 << 20
SIZES = [10, 3_000, 5_000, 70_000, 0, 300_000, 200, 4_097]
"""Item sizes of the streams: around a pipe packet (4 KiB), and well into the store."""


Children = Callable[..., Child]


def wait_asleep(child: Child) -> None:
    """Wait until ``child`` sleeps in the kernel: most likely blocked where the test put it."""
    pid = child.process.pid
    assert pid is not None
    wait_until(lambda: asleep(pid), "the child blocks")


def pattern(tag: int, k: int, size: int) -> bytes:
    """``size`` bytes that differ by producer, by item and by offset."""
    unit = bytes((tag * 31 + k * 7 + j) % 251 for j in range(251))
    return (unit * (size // 251 + 1))[:size]


def item(tag: int, k: int) -> tuple[int, int, bytes]:
    return tag, k, pattern(tag, k, SIZES[k % len(SIZES)])


def whole(got: tuple[int, int, bytes]) -> bool:
    return got == item(got[0], got[1])


# -- children: module-level so that the forkserver children can import them -------------------


def child_send(conn: Connection, channel: Any, tag: int, ks: list[int]) -> None:
    """Report, then send ``item(tag, k)`` for each ``k``, reporting each one sent."""
    for k in ks:
        conn.send(("sending", k))
        channel.send(item(tag, k), DEADLOCK)
        conn.send(("sent", k))
    conn.send("done")


def child_send_forever(conn: Connection, channel: Any, tag: int) -> None:
    """Send ``item(tag, 0)``, ``item(tag, 1)``, ... until killed."""
    conn.send("started")
    k = 0
    while True:
        channel.send(item(tag, k), DEADLOCK)
        k += 1


def child_recv(conn: Connection, channel: Any, n: int) -> None:
    """Take ``n`` items, report them, then wait (to be killed)."""
    conn.send([channel.recv(DEADLOCK) for _ in range(n)])
    conn.recv()


def child_recv_blocked(conn: Connection, channel: Any) -> None:
    """Report, then wait in ``recv``; report what it got."""
    conn.send("receiving")
    conn.send(channel.recv(DEADLOCK))


def child_drain(conn: Connection, channel: Any) -> None:
    """Receive until the channel is closed and drained; report everything."""
    conn.send(list(channel))


def child_recv_forever(conn: Connection, channel: Any) -> None:
    """Receive and report each item's ``(tag, k, whole)``, until killed."""
    while True:
        got = channel.recv(DEADLOCK)
        conn.send((got[0], got[1], whole(got)))


def child_attach_and_leave(conn: Connection, channel: Any, how: str) -> None:
    channel.send(pattern(9, 1, 2 * MiB))
    channel.send("small")
    conn.send("sent")
    if how == "os_exit":
        os._exit(0)
    if how == "sigkill":
        conn.recv()  # killed here


# -- producers die -----------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, 5], ids=["small", "large"])  # SIZES[0] = 10, SIZES[5] = 300_000
@pytest.mark.parametrize("capacity", [1, 0], ids=["full", "rendezvous"])
def test_producer_killed_blocked_in_send(
    make: Callable[..., ProcessChannel], children: Children, capacity: int, k: int
) -> None:
    channel = make(capacity)
    if capacity:
        channel.send("first")
    doomed = children(child_send, channel, 1, [k])
    assert doomed.recv() == ("sending", k)
    wait_asleep(doomed)
    survivor = children(child_send, channel, 2, [k])
    assert survivor.recv() == ("sending", k)
    wait_asleep(survivor)
    doomed.kill()
    assert not survivor.conn.poll()
    if capacity:
        got = [channel.recv(DEADLOCK), channel.recv(DEADLOCK)]
        assert got == ["first", item(2, k)]  # the dead producer's item never appears
        assert survivor.recv() == ("sent", k)
        with pytest.raises(ChannelEmpty):
            channel.recv_nowait()
    else:
        # The dead producer's offer was whole: it may still be taken, but at most once, and
        # the survivor's item comes through.
        got = [channel.recv(DEADLOCK)]
        if got[0] == item(1, k):
            got.append(channel.recv(DEADLOCK))
        assert got[-1] == item(2, k)
        assert survivor.recv() == ("sent", k)
        try:
            got.append(channel.recv_nowait())
        except ChannelEmpty:
            pass
        assert sorted(got) == sorted({item(2, k), *got}), got
        assert set(got) <= {item(1, k), item(2, k)}
        with pytest.raises(ChannelEmpty):
            channel.recv_nowait()
    assert survivor.recv() == "done"
    assert survivor.join() == 0
    stats = channel.statistics()
    assert stats.queued == 0
    assert stats.sent == stats.received == len(got)
    # The room the dead producer waited for is whole: exactly `capacity` items fit.
    for i in range(capacity):
        channel.send_nowait(i)
    with pytest.raises(ChannelFull):
        channel.send_nowait("one too many")
    if capacity:
        assert channel.recv_many(5) == list(range(capacity))


@pytest.mark.parametrize("capacity", [None, 8], ids=["unbounded", "cap8"])
def test_producers_killed_while_sending_a_stream(
    make: Callable[..., ProcessChannel], children: Children, capacity: int | None
) -> None:
    channel = make(capacity, shared_memory_size=8 * MiB)
    n = 120
    survivor = children(child_send, channel, 0, list(range(n)))
    kill_after = {1: 10, 2: 45, 3: 90}  # items of each doomed producer seen before its kill
    doomed = {tag: children(child_send_forever, channel, tag) for tag in kill_after}
    for child in doomed.values():
        assert child.recv() == "started"
    received: dict[int, list[int]] = {tag: [] for tag in [0, *kill_after]}
    damaged = []
    while len(received[0]) < n or any(child.process.is_alive() for child in doomed.values()):
        got = channel.recv(DEADLOCK)
        if not whole(got):
            damaged.append(got[:2])
        received[got[0]].append(got[1])
        for tag, child in doomed.items():
            if len(received[tag]) == kill_after[tag] and child.process.is_alive():
                child.kill()
    while survivor.recv() != "done":
        pass
    assert survivor.join() == 0
    channel.close()  # every send has landed or died: close must not wait for the dead
    for got in channel:
        if not whole(got):
            damaged.append(got[:2])
        received[got[0]].append(got[1])
    assert damaged == []
    assert received[0] == list(range(n)), "the survivor's items, all, in order"
    for tag in kill_after:
        ks = received[tag]
        assert ks == list(range(len(ks))), f"producer {tag}: not a prefix of its stream"
        assert len(ks) >= kill_after[tag]
    stats = channel.statistics()
    total = sum(len(ks) for ks in received.values())
    assert (stats.queued, stats.received) == (0, total)
    # A producer killed in the instant between its write and clearing its in-flight mark is
    # counted as not having sent that item (documented): at most one per killed producer.
    assert total - len(kill_after) <= stats.sent <= total


# -- consumers die -----------------------------------------------------------------------------


def test_consumer_killed_after_taking_items(
    make: Callable[..., ProcessChannel], children: Children
) -> None:
    channel = make(None)
    for k in range(60):
        channel.send(item(0, k))
    doomed = children(child_recv, channel, 5)
    taken = doomed.recv()
    assert taken == [item(0, k) for k in range(5)]
    doomed.kill()
    survivor = children(child_drain, channel)
    for k in range(60, 100):
        channel.send(item(0, k), DEADLOCK)
    channel.close()
    rest = survivor.recv()
    assert survivor.join() == 0
    assert rest == [item(0, k) for k in range(5, 100)]  # nothing lost, nothing twice, in order
    stats = channel.statistics()
    assert (stats.queued, stats.sent, stats.received) == (0, 100, 100)


def test_consumer_killed_in_a_stream_of_receives(
    make: Callable[..., ProcessChannel], children: Children
) -> None:
    channel = make(None, shared_memory_size=32 * MiB)
    n = 160
    for k in range(n):
        channel.send(item(0, k))
    doomed = children(child_recv_forever, channel)
    reported: list[tuple[int, int, bool]] = []
    while len(reported) < 40:
        reported.append(doomed.recv())
    doomed.kill()
    while True:  # what it reported before it died; a report cut short is lost with its item
        try:
            if not doomed.conn.poll():
                break
            reported.append(doomed.conn.recv())
        except EOFError:
            break
    assert all(ok for _, _, ok in reported)
    rest = []
    while True:
        try:
            rest.append(channel.recv_nowait())
        except ChannelEmpty:
            break
    assert all(whole(got) for got in rest)
    ks = [k for _, k, _ in reported] + [k for _, k, _ in rest]
    assert len(ks) == len(set(ks)), "an item received twice"
    missing = set(range(n)) - set(ks)
    assert len(missing) <= 1, f"the dead consumer took more than one item with it: {missing}"
    assert [k for _, k, _ in rest] == sorted(k for _, k, _ in rest)
    assert channel.statistics().queued == 0
    channel.send("still works")
    assert channel.recv() == "still works"


@pytest.mark.parametrize("capacity", [2, 0], ids=["bounded", "rendezvous"])
def test_consumer_killed_blocked_in_recv_takes_nothing(
    make: Callable[..., ProcessChannel], children: Children, capacity: int
) -> None:
    channel = make(capacity)
    doomed = children(child_recv_blocked, channel)
    assert doomed.recv() == "receiving"
    wait_asleep(doomed)
    doomed.kill()
    if capacity == 0:
        with pytest.raises(ChannelFull):  # the dead receiver waits no more
            channel.send_nowait("to the dead?")
    survivor = children(child_recv_blocked, channel)
    assert survivor.recv() == "receiving"
    if capacity:
        channel.send("for the survivor")
    else:  # succeeds once the survivor waits in recv

        def offered() -> bool:
            try:
                channel.send_nowait("for the survivor")
            except ChannelFull:
                return False
            return True

        wait_until(offered, "send_nowait finds the survivor waiting")
    assert survivor.recv() == "for the survivor"
    assert survivor.join() == 0
    with pytest.raises(ChannelEmpty):
        channel.recv_nowait()
    stats = channel.statistics()
    assert (stats.queued, stats.sent, stats.received) == (0, 1, 1)


def test_rendezvous_send_nowait_after_a_waiting_receiver_died_does_not_hang(
    make: Callable[..., ProcessChannel], children: Children
) -> None:
    # Issue #15: the look for a waiting receiver reaped the dead one by entering the store's
    # mutex, which that send held already (it is not recursive): the send waited for ever.
    channel = make(0)
    with pytest.raises(ChannelFull):  # this thread has its place in the channel already
        channel.send_nowait("nobody waits")
    doomed = children(child_recv_blocked, channel)
    assert doomed.recv() == "receiving"
    wait_asleep(doomed)
    doomed.kill()
    with pytest.raises(ChannelFull):  # the dead receiver is reaped, and waits no more
        channel.send_nowait("to the dead?")
    stats = channel.statistics()
    assert (stats.queued, stats.sent, stats.received) == (0, 0, 0)


# -- creator death, attachers that exit, garbage collection -----------------------------------


CREATOR = textwrap.dedent(
    """
    import os, sys
    from concurrency_kit import ProcessChannel

    channels = [ProcessChannel(None, shared_memory_size=16 << 20), ProcessChannel(0)]
    for i in range(300):
        channels[0].send(b"x" * (i * 100))  # the pipe and the store
    names = [n for ch in channels for n in (ch._m.segment.name, ch._store.name)]
    print(" ".join(names), flush=True)
    sys.stdin.read()  # until the test kills us
    """
)


def test_segments_removed_when_the_creator_is_killed() -> None:
    with creator(CREATOR) as process:
        names = process.words
        pid = process.proc.pid
        assert all((SHM / name).exists() for name in names)
        err = process.kill()
    wait_until(lambda: not any((SHM / name).exists() for name in names), "segments removed")
    # Nothing else the creator made is left either (its pid is in the name; the rest of
    # /dev/shm belongs to whatever else runs on the machine).
    assert [name for name in os.listdir(SHM) if creator_pid(name) == pid] == []
    assert "Traceback" not in err


def segments(channel: ProcessChannel) -> list[str]:
    """The channel's /dev/shm names (white box; a diff of /dev/shm would also catch the
    segments of whatever else runs on the machine)."""
    return [channel._m.segment.name, channel._store.name]


def mapped(name: str) -> bool:
    with open("/proc/self/maps") as f:
        return any(f"{SHM}/{name}" in line for line in f)


def test_forgotten_channel_releases_everything() -> None:
    snapshot = take_snapshot()
    channel = ProcessChannel(4)
    channel.send(pattern(0, 0, 2 * MiB))  # into the store
    channel.send("small")  # into the pipe
    names = segments(channel)
    assert all((SHM / name).exists() for name in names)
    assert find_leaks(snapshot, take_snapshot()).fds  # the channel holds its pipe
    del channel  # never closed
    gc.collect()
    assert find_leaks(snapshot, take_snapshot()).fds == {}
    assert not any((SHM / name).exists() for name in names)
    assert not any(mapped(name) for name in names)


def test_a_handle_outlives_the_close_of_its_channel() -> None:
    snapshot = take_snapshot()
    channel = ProcessChannel(4)
    handle = pickle.loads(pickle.dumps(channel))
    channel.send(pattern(0, 1, MiB))
    channel.send("small")
    names = segments(channel)
    assert all((SHM / name).exists() for name in names)
    channel.close()
    del channel
    gc.collect()
    assert handle.closed
    assert handle.recv() == pattern(0, 1, MiB)  # the items sent before close are all there
    assert handle.recv() == "small"
    with pytest.raises(ChannelClosed):
        handle.recv()
    del handle
    gc.collect()
    assert find_leaks(snapshot, take_snapshot()).fds == {}
    assert not any((SHM / name).exists() for name in names)
    assert not any(mapped(name) for name in names)


def test_handles_passed_to_pool_tasks_do_not_pile_up(
    make: Callable[..., ProcessChannel],
) -> None:
    channel = make(None)

    def task(ch: Any, i: int) -> tuple[int, int]:
        ch.send(i)
        gc.collect()
        fds = len(os.listdir("/proc/self/fd"))
        with open("/proc/self/maps") as f:
            mappings = sum("/dev/shm/" in line for line in f)
        return fds, mappings

    with ProcessPool(1) as pool:  # one worker runs every task, each with a new handle
        usage = [pool.submit(task, channel, i).result(DEADLOCK) for i in range(30)]
    assert channel.recv_many(100) == list(range(30))
    assert len(set(usage[3:])) == 1, f"the worker's (fds, shm mappings), task by task: {usage}"


@pytest.mark.parametrize("how", ["return", "os_exit", "sigkill"])
def test_a_child_that_exits_removes_nothing(
    make: Callable[..., ProcessChannel], children: Children, how: str
) -> None:
    channel = make(4)
    child = children(child_attach_and_leave, channel, how)
    assert child.recv() == "sent"
    names = segments(channel)
    if how == "sigkill":
        child.kill()
    else:
        assert child.join() == 0
    assert all((SHM / name).exists() for name in names)
    assert channel.recv() == pattern(9, 1, 2 * MiB)
    assert channel.recv() == "small"
    channel.send(pattern(9, 2, 3 * MiB))
    assert channel.recv() == pattern(9, 2, 3 * MiB)
    other = children(child_drain, channel)
    channel.send_many(["a", "b"])
    channel.close()
    assert other.recv() == ["a", "b"]
    assert other.join() == 0

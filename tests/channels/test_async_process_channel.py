"""What only a ProcessChannel's async face does: the event loop watches its pipe and bell.

The contract both models share is ``tests/contract/test_async_channels.py``. Here: many tasks
of one loop waiting on one process channel fed by another process (one watch per descriptor,
each readiness waking one task, the watch gone once nobody waits), large items that come
through the shared-memory store (the bell), a full channel an async sender waits on (in the
monitor's room queue) until a consumer process makes room, and a rendezvous with a receiver
in another process. Children are ``forkserver`` processes; the test learns their state from
the channel, never from a sleep. :data:`DEADLOCK` only turns a hang into a failure.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from concurrency_kit import ChannelClosed, ProcessChannel
from concurrency_kit._core import aio

DEADLOCK = 60.0


@pytest.fixture
def start() -> Iterator[Callable[..., Any]]:
    """``start(target, *args)``: a forkserver child, joined (or killed) at teardown."""
    started: list[Any] = []

    def run(target: Callable[..., None], *args: Any) -> Any:
        process = multiprocessing.get_context("forkserver").Process(target=target, args=args)
        process.start()
        started.append(process)
        return process

    yield run
    for process in started:
        process.join(DEADLOCK)
        if process.exitcode is None:
            process.kill()
            process.join()
        process.close()


def watched_fds() -> dict[int, Any]:
    """The descriptors the running loop's channel watches are on (empty once nobody waits)."""
    try:
        return dict(aio._WATCHES.get().watches)
    except LookupError:
        return {}


# -- children ----------------------------------------------------------------------------------


def send_range(channel: Any, n: int, size: int) -> None:
    for i in range(n):
        channel.send((i, b"x" * size), DEADLOCK)
    channel.close()


def receive_n(channel: Any, n: int, results: Any) -> None:
    results.send([channel.recv(DEADLOCK) for _ in range(n)])


# -- tests -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [10, 200_000], ids=["pipe", "store"])
def test_many_tasks_wait_on_one_channel_fed_by_a_process(
    make: Any, start: Any, backend: str, size: int
) -> None:
    channel = make(8)
    n = 300

    async def main() -> list[int]:
        got: list[int] = []

        async def receive() -> None:
            while True:
                try:
                    i, payload = await channel.arecv(timeout=DEADLOCK)
                except ChannelClosed:
                    return
                assert len(payload) == size
                got.append(i)

        with anyio.fail_after(DEADLOCK):
            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    tg.start_soon(receive)
                start(send_range, channel, n, size)
        assert watched_fds() == {}  # nobody waits: the loop watches nothing
        return got

    assert sorted(anyio.run(main, backend=backend)) == list(range(n))


def test_an_async_send_to_a_full_channel_waits_for_a_consumer(
    make: Any, start: Any, backend: str
) -> None:
    channel = make(2)
    n = 50
    results_r, results_w = multiprocessing.Pipe(duplex=False)

    async def main() -> None:
        with anyio.fail_after(DEADLOCK):
            for i in range(n):  # the child starts after the channel is full
                await channel.asend(i)
                if i == 1:
                    start(receive_n, channel, n, results_w)

    anyio.run(main, backend=backend)
    with results_r, results_w:
        assert results_r.poll(DEADLOCK)
        assert results_r.recv() == list(range(n))


def receive_one(channel: Any, results: Any) -> None:
    results.send(channel.recv(DEADLOCK))


def test_an_async_sender_of_a_full_channel_waits_in_the_room_queue(
    make: Any, start: Any, backend: str
) -> None:
    # Queued with the sleeping senders, it is woken by the receive in the other process
    # (through the monitor's bell), not found by a poll; cancelled, it leaves the queue.
    from concurrency_kit.channels._layout import Q_ROOM

    channel = make(1)
    results_r, results_w = multiprocessing.Pipe(duplex=False)

    async def queued(count: int) -> None:
        while channel._m.waiters(Q_ROOM) != count:
            await anyio.sleep(0.001)  # (a deadlock only: fail_after ends it)

    async def main() -> None:
        with anyio.fail_after(DEADLOCK):
            await channel.asend("first")
            async with anyio.create_task_group() as group:
                group.start_soon(channel.asend, "second")
                await queued(1)
                start(receive_one, channel, results_w)
            assert await channel.arecv(0) == "second"
            await channel.asend("third")
            with anyio.move_on_after(0) as scope:  # cancelled at its first await
                await channel.asend("lost")
            assert scope.cancelled_caught
            async with anyio.create_task_group() as group:
                group.start_soon(channel.asend, "cancelled")
                await queued(1)
                group.cancel_scope.cancel()
            await queued(0)

    anyio.run(main, backend=backend)
    with results_r, results_w:
        assert results_r.poll(DEADLOCK)
        assert results_r.recv() == "first"
    assert channel.recv(0) == "third"
    assert channel.statistics().queued == 0
    assert channel._space_waiters.load() == 0


def test_a_rendezvous_send_to_a_receiver_in_another_process(
    make: Any, start: Any, backend: str
) -> None:
    channel = make(0)
    n = 20
    results_r, results_w = multiprocessing.Pipe(duplex=False)
    start(receive_n, channel, n, results_w)

    async def main() -> None:
        with anyio.fail_after(DEADLOCK):
            for i in range(n):
                await channel.asend(i)  # returns once the waiting child was handed it

    anyio.run(main, backend=backend)
    with results_r, results_w:
        assert results_r.poll(DEADLOCK)
        assert results_r.recv() == list(range(n))


def test_a_receive_on_a_closed_channel_with_nothing_in_flight_ends(make: Any, backend: str) -> None:
    channel: ProcessChannel[Any] = make(4)

    async def main() -> None:
        async with anyio.create_task_group() as tg:

            async def receive() -> None:
                with pytest.raises(ChannelClosed):
                    await channel.arecv(timeout=DEADLOCK)

            tg.start_soon(receive)
            with anyio.fail_after(DEADLOCK):
                while not watched_fds():
                    await anyio.sleep(0.0005)
            channel.close()  # the bell rings; the waiting task finds the channel drained

    anyio.run(main, backend=backend)


def test_an_event_loop_that_waited_on_a_channel_is_not_kept_alive(make: Any) -> None:
    """The loop's watches are kept per loop (weakly): a finished loop can be collected."""
    import asyncio
    import gc
    import weakref

    from concurrency_kit import ChannelTimeout

    channel = make(4)
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def main() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        with pytest.raises(ChannelTimeout):
            await channel.arecv(timeout=0.001)  # watches the channel's pipe and bell

    for _ in range(3):
        asyncio.run(main())
    gc.collect()
    assert [ref() for ref in loops] == [None, None, None]


def test_an_async_receiver_gives_back_the_pages_of_a_burst(backend: str) -> None:
    """As a sync receiver does (test_process_channel_memory.py): waiting on the emptied
    channel longer than ``IDLE_RELEASE``, an async receiver gives back the burst's pages."""
    import os

    from concurrency_kit import ChannelTimeout
    from concurrency_kit._core import shm
    from concurrency_kit.channels import _ring

    store_size, item = 64 << 20, 4 << 20
    before = {n for n in os.listdir(shm.SHM_DIR) if shm.creator_pid(n) == os.getpid()}
    channel: ProcessChannel[bytes] = ProcessChannel(None, shared_memory_size=store_size)
    try:
        (store,) = [
            n
            for n in os.listdir(shm.SHM_DIR)
            if shm.creator_pid(n) == os.getpid()
            and n not in before
            and os.stat(f"{shm.SHM_DIR}/{n}").st_size == store_size
        ]

        def resident() -> int:
            return os.stat(f"{shm.SHM_DIR}/{store}").st_blocks * 512

        async def main() -> None:
            for i in range(4):
                await channel.asend(bytes([i]) * item)
            assert resident() >= 4 * item
            for i in range(4):
                assert await channel.arecv() == bytes([i]) * item
            with pytest.raises(ChannelTimeout):  # waits longer than IDLE_RELEASE
                await channel.arecv(timeout=4 * _ring.IDLE_RELEASE)
            assert resident() <= _ring.RESIDENT_KEEP

        anyio.run(main, backend=backend)
    finally:
        channel.close()

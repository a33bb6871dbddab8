"""The contract of the channels' async face, for both models and both event-loop libraries.

Every test takes ``model`` (PROCESS, THREAD) and ``backend`` (asyncio, trio) and runs its body
in that event loop with :func:`run`. What the other party does is ordered by states (a task is
known to wait once the channel's waiter queue, or its ``asleep`` count, says so), never by
sleeps; timeouts only catch deadlocks, except the short ones under test.

Cancellation is tested where it can land: the stress tests cancel receives and sends at random
(cancel scopes with deadlines of zero or a few microseconds, which land before, during or after
the wait) and check that every item was received exactly once or is still in the channel, and
that a cancelled send put nothing (the producer sends it again: a duplicate would show).
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import os
import random
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from _event_loops import run
from concurrency_kit import (
    ChannelClosed,
    ChannelEmpty,
    ChannelTimeout,
    Model,
    ProcessChannel,
    ThreadChannel,
    aselect,
)

DEADLOCK = 60.0
SHORT = 0.05
"""The one timeout that expires on purpose in a test."""

CANCELLATIONS = 10_000


@pytest.fixture
def make(model: Model) -> Iterator[Callable[..., Any]]:
    made: list[Any] = []

    def build(*args: Any, **kwargs: Any) -> Any:
        channel = model.Channel(*args, **kwargs)
        made.append(channel)
        return channel

    yield build
    for channel in made:
        channel.close()
    made.clear()  # a closed channel's resources go with its last handle


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Yield to the loop until ``predicate()`` (a deadlock bound, not a timing)."""
    with anyio.fail_after(DEADLOCK):
        while not predicate():
            await anyio.sleep(0.0005)
    assert predicate(), what


def waiting_receivers(channel: Any) -> int:
    """How many receivers wait on ``channel`` now (armed async ones included)."""
    if isinstance(channel, ThreadChannel):
        return len(channel._receivers)
    return int(channel._slots.scan()[1])


# -- basics ------------------------------------------------------------------------------------


@pytest.mark.parametrize("capacity", [1, 4, None])
def test_send_then_recv(make: Any, backend: str, capacity: int | None) -> None:
    async def main() -> None:
        channel = make(capacity)
        await channel.asend("a")
        assert await channel.arecv() == "a"
        await channel.asend(b"x" * 100_000)  # a large item: the process channel's store
        assert await channel.arecv(timeout=DEADLOCK) == b"x" * 100_000

    run(backend, main)


@pytest.mark.parametrize("capacity", [0, 1, 4, None])
def test_async_producer_and_consumer(make: Any, backend: str, capacity: int | None) -> None:
    async def main() -> None:
        channel = make(capacity)
        got: list[int] = []

        async def produce() -> None:
            for i in range(200):
                await channel.asend(i, timeout=DEADLOCK)
            channel.close()

        async def consume() -> None:
            got.extend([item async for item in channel])

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            tg.start_soon(produce)
        assert got == list(range(200))

    run(backend, main)


def test_async_for_ends_when_a_sync_producer_closes(make: Any, backend: str, model: Model) -> None:
    channel = make(4)
    if model.name == "process":
        producer: Any = multiprocessing.get_context("forkserver").Process(
            target=produce_and_close, args=(channel, 100)
        )
    else:
        producer = threading.Thread(target=produce_and_close, args=(channel, 100))

    async def main() -> list[int]:
        producer.start()
        return [item async for item in channel]

    try:
        assert run(backend, main) == list(range(100))
    finally:
        producer.join(DEADLOCK)


def produce_and_close(channel: Any, n: int) -> None:
    for i in range(n):
        channel.send(i, DEADLOCK)
    channel.close()


# -- timeouts and closing ------------------------------------------------------------------------


def test_timeouts(make: Any, backend: str) -> None:
    async def main() -> None:
        channel = make(1)
        for timeout in (0, SHORT):
            with pytest.raises(ChannelTimeout):
                await channel.arecv(timeout=timeout)
        await channel.asend("full")
        for timeout in (0, SHORT):
            with pytest.raises(ChannelTimeout):
                await channel.asend("no room", timeout=timeout)
        assert channel.statistics().sent == 1  # the timed-out sends put nothing
        for bad in (math.nan, -1):
            with pytest.raises(ValueError, match="timeout"):
                await channel.arecv(timeout=bad)
            with pytest.raises(ValueError, match="timeout"):
                await channel.asend("x", timeout=bad)
        with pytest.raises(TypeError):
            await channel.arecv(timeout="1")  # type: ignore[arg-type]
        assert await channel.arecv(timeout=None) == "full"

    run(backend, main)


def test_rendezvous_send_times_out_without_a_receiver(make: Any, backend: str) -> None:
    async def main() -> None:
        channel = make(0)
        with pytest.raises(ChannelTimeout):
            await channel.asend("nobody", timeout=SHORT)
        assert channel.statistics().sent == 0
        with pytest.raises(ChannelEmpty):
            channel.recv_nowait()

    run(backend, main)


def test_closed_channel(make: Any, backend: str) -> None:
    async def main() -> None:
        channel = make(4)
        await channel.asend(1)
        channel.close()
        with pytest.raises(ChannelClosed):
            await channel.asend(2)
        assert await channel.arecv() == 1  # drained after close
        with pytest.raises(ChannelClosed):
            await channel.arecv()

    run(backend, main)


@pytest.mark.parametrize("side", ["recv", "send"])
def test_close_from_another_thread_wakes_a_waiting_call(make: Any, backend: str, side: str) -> None:
    async def main() -> None:
        channel = make(1)
        if side == "send":
            await channel.asend("full")
        closer = threading.Event()
        thread = threading.Thread(target=lambda: (closer.wait(DEADLOCK), channel.close()))
        thread.start()
        try:
            closer.set()  # close() may land before or during the wait: both must end it
            call = channel.arecv() if side == "recv" else channel.asend("more")
            with anyio.fail_after(DEADLOCK), pytest.raises(ChannelClosed):
                await call
        finally:
            thread.join(DEADLOCK)

    run(backend, main)


# -- select ----------------------------------------------------------------------------------------


def test_aselect_over_both_models(backend: str) -> None:
    async def main() -> None:
        with ThreadChannel[Any](4) as threads, ProcessChannel[Any](4) as processes:
            with pytest.raises(ChannelTimeout):
                await aselect(threads, processes, timeout=0)
            processes.send("p")
            assert await aselect(threads, processes, timeout=DEADLOCK) == (processes, "p")
            threads.send("t")
            assert await aselect(threads, processes, timeout=DEADLOCK) == (threads, "t")

            got: list[tuple[Any, Any]] = []

            async def select_one() -> None:
                got.append(await aselect(threads, processes, timeout=DEADLOCK))

            for channel in (threads, processes):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(select_one)
                    await until(lambda ch=channel: waiting_receivers(ch) == 1, "armed")
                    channel.send(channel.name)
                assert got.pop() == (channel, channel.name)
            threads.close()
            processes.close()
            with pytest.raises(ChannelClosed):
                await aselect(threads, processes)
        with pytest.raises(ValueError, match="at least one"):
            await aselect()
        with pytest.raises(TypeError):
            await aselect("not a channel")  # type: ignore[arg-type]

    run(backend, main)


# -- cancellation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("capacity", [0, 1, 8])
def test_random_cancellations_lose_and_duplicate_nothing(
    make: Any, backend: str, capacity: int
) -> None:
    """Producers and consumers in one loop, every call under a random cancel deadline, until
    enough calls have been cancelled (issue 18: 10,000 during a stream; fewer for the other
    capacities, to keep the suite short)."""
    target = CANCELLATIONS if capacity == 1 else CANCELLATIONS // 5
    rng = random.Random(18 + capacity)
    cancelled = {"send": 0, "recv": 0}
    sent: list[int] = []

    async def main() -> list[int]:
        channel = make(capacity)
        got: list[int] = []

        def deadline() -> float:
            return rng.choice([0.0, 0.0, 1e-6, 1e-5, 1e-4, 1e-3, math.inf])

        def enough() -> bool:
            return cancelled["send"] + cancelled["recv"] >= target

        async def produce(first: int) -> None:
            for i in itertools.count(first, 2):
                if enough():
                    return
                while True:  # a cancelled send put nothing: send the item again
                    with anyio.move_on_after(deadline()) as scope:
                        await channel.asend(i, timeout=DEADLOCK)
                    if not scope.cancelled_caught:
                        sent.append(i)
                        break
                    cancelled["send"] += 1

        async def consume() -> None:
            while True:
                with anyio.move_on_after(deadline()) as scope:
                    try:
                        got.append(await channel.arecv(timeout=DEADLOCK))
                    except ChannelClosed:
                        return
                if scope.cancelled_caught:
                    cancelled["recv"] += 1

        with anyio.fail_after(DEADLOCK):
            async with anyio.create_task_group() as consumers:
                for _ in range(3):
                    consumers.start_soon(consume)
                async with anyio.create_task_group() as producers:
                    producers.start_soon(produce, 0)
                    producers.start_soon(produce, 1)
                channel.close()
        return got + list(channel)  # what is left in the channel counts too

    got = run(backend, main)
    assert sorted(got) == sorted(sent)  # each once: none lost, none duplicated
    assert len(set(got)) == len(got)
    assert cancelled["send"] + cancelled["recv"] >= target
    if capacity == 0:
        assert cancelled["send"] > 0  # a rendezvous send waits for every item


def test_random_cancellations_of_receives_from_another_producer(
    make: Any, backend: str, model: Model
) -> None:
    """A sync producer (another thread or process); async receivers cancelled at random."""
    n = 2000
    channel = make(16)
    rng = random.Random(1018)
    if model.name == "process":
        producer: Any = multiprocessing.get_context("forkserver").Process(
            target=produce_and_close, args=(channel, n)
        )
    else:
        producer = threading.Thread(target=produce_and_close, args=(channel, n))

    async def main() -> list[int]:
        got: list[int] = []

        async def consume() -> None:
            while True:
                with anyio.move_on_after(rng.choice([0.0, 1e-6, 1e-5, 1e-4, math.inf])):
                    try:
                        got.append(await channel.arecv(timeout=DEADLOCK))
                    except ChannelClosed:
                        return

        producer.start()
        with anyio.fail_after(DEADLOCK):
            async with anyio.create_task_group() as tg:
                for _ in range(4):
                    tg.start_soon(consume)
        return got

    try:
        got = run(backend, main)
    finally:
        producer.join(DEADLOCK)
    assert sorted(got) == list(range(n))


def test_a_cancelled_wait_hands_its_wake_up_on(make: Any, backend: str) -> None:
    """Two receivers wait; the one woken is cancelled before it can run: either it completes
    (the item is its), or the other one gets the item: never neither."""

    async def main() -> None:
        channel = make(4)
        got: list[Any] = []

        async def receive(scope_out: list[anyio.CancelScope]) -> None:
            with anyio.CancelScope() as scope:
                scope_out.append(scope)
                try:
                    got.append(await channel.arecv(timeout=DEADLOCK))
                except ChannelClosed:
                    pass

        scopes: list[anyio.CancelScope] = []
        with anyio.fail_after(DEADLOCK):
            async with anyio.create_task_group() as tg:
                tg.start_soon(receive, scopes)
                await until(lambda: waiting_receivers(channel) == 1, "first waits")
                tg.start_soon(receive, scopes)
                await until(lambda: waiting_receivers(channel) == 2, "second waits")
                channel.send("only")  # wakes the first: cancel it before it runs
                scopes[0].cancel()
                await until(lambda: len(got) == 1, "someone took the item")
                channel.close()
        assert got == ["only"]

    run(backend, main)


def test_a_task_cancelled_after_its_wake_up_hands_it_on(make: Any) -> None:
    """asyncio's ``task.cancel()`` after the wake-up, before the task runs: the item goes to
    the other receiver."""
    import asyncio

    async def main() -> None:
        channel = make(4)

        async def receive() -> Any:
            return await channel.arecv(timeout=DEADLOCK)

        first = asyncio.create_task(receive())
        await until(lambda: waiting_receivers(channel) == 1, "first waits")
        second = asyncio.create_task(receive())
        await until(lambda: waiting_receivers(channel) == 2, "second waits")
        channel.send("only")
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await asyncio.wait_for(second, DEADLOCK) == "only"

    run("asyncio", main)


# -- no thread per waiter; a dead peer -------------------------------------------------------------


def test_a_thousand_waiting_tasks_start_no_thread(make: Any, backend: str) -> None:
    async def main() -> None:
        channel = make(8)
        got: list[Any] = []
        threads = len(os.listdir("/proc/self/task"))

        async def receive() -> None:
            got.append(await channel.arecv(timeout=DEADLOCK))

        with anyio.fail_after(DEADLOCK):
            async with anyio.create_task_group() as tg:
                for _ in range(1000):
                    tg.start_soon(receive)
                await until(lambda: waiting_receivers(channel) == 1000, "all wait")
                assert len(os.listdir("/proc/self/task")) == threads
                for i in range(1000):
                    await channel.asend(i)
        assert sorted(got) == list(range(1000))

    run(backend, main)


def send_forever(channel: Any, started: Any) -> None:
    started.set()
    i = 0
    while True:
        channel.send(i, DEADLOCK)
        i += 1


async def drain(channel: Any, timeout: float | None) -> list[Any]:
    """Receive until a timeout (``timeout`` given) or the end of the channel (``None``)."""
    got = []
    expected = ChannelTimeout if timeout is not None else ChannelClosed
    while True:
        try:
            got.append(await channel.arecv(timeout=timeout))
        except (ChannelTimeout, ChannelClosed) as exc:
            if type(exc) is not expected:
                raise
            return got


def test_a_killed_sender_does_not_hang_the_receiver(make: Any, backend: str, model: Model) -> None:
    if model.name != "process":
        pytest.skip("a thread cannot be killed")
    channel = make(4)
    context = multiprocessing.get_context("forkserver")
    started = context.Event()
    sender = context.Process(target=send_forever, args=(channel, started))
    sender.start()

    async def main() -> list[int]:
        got: list[int] = []
        with anyio.fail_after(DEADLOCK):
            while len(got) < 50:
                got.append(await channel.arecv())
            assert sender.pid is not None
            os.kill(sender.pid, signal.SIGKILL)
            sender.join(DEADLOCK)  # blocks the loop briefly: nothing else runs in it
            got.extend(await drain(channel, SHORT))  # nothing more comes, and the wait ends
            channel.close()
            got.extend(await drain(channel, None))  # closed: the dead sender is not waited for
        return got

    try:
        got = run(backend, main)
    finally:
        sender.join(DEADLOCK)
    assert got == list(range(len(got)))  # in order, none lost in between

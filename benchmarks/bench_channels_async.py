"""The async face of the channels against the sync calls and the async workarounds (issue 18).

Run ``python benchmarks/bench_channels_async.py --help`` for the options and see
``benchmarks/README.md`` for how to read the tables. Child processes use the ``forkserver``
start method.

Benchmarks (``--only NAME``):

* ``async_pingpong``: one int to a child process and back through two ``ProcessChannel(256)``
  (the child echoes with the sync ``recv``/``send``), one round trip timed per sample
  (latency). This side: ``await ping.asend(1); await pong.arecv()`` in an asyncio event loop
  (and in a trio run when trio is installed), against ``ping.send(1); pong.recv()`` on the same
  kind of channel. Target (issue 18): async <= 1.5x the sync round trip.
* ``async_throughput``: a child process sends small ints (``0..n-1``) as fast as it can; an
  asyncio event loop receives them (items per second, from the child's go to the last item).
  ``ProcessChannel(256)`` with ``await channel.arecv()``, against a
  ``multiprocessing.Queue`` read with ``await asyncio.to_thread(queue.get)`` and an
  ``aioprocessing.AioQueue`` read with ``await queue.coro_get()`` (a thread per call; skipped
  when aioprocessing is missing). Targets (issue 18): >= 5x ``to_thread(mp_queue.get)``,
  >= 2x ``coro_get``.
* ``async_waiter_memory``: 1,000 asyncio tasks awaiting ``arecv`` on one empty channel
  (``ProcessChannel`` and ``ThreadChannel``): bytes allocated per waiting task (tracemalloc,
  the task and its coroutines included), against tasks awaiting an :class:`asyncio.Event`.
  Target (issue 18): < 2 KiB per waiter.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import sys
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import partial
from multiprocessing.connection import Connection
from typing import Any

from _runner import Benchmark, Config, Contender, Measure, Target, main

START_METHOD = "forkserver"
DEADLOCK = 60.0
WAITERS = 1000


def mp_context() -> Any:
    return multiprocessing.get_context(START_METHOD)


@contextmanager
def child(target: Callable[..., None], *args: Any) -> Iterator[Connection]:
    """Run ``target(*args, conn)`` in a child process; yield this side's ``conn``; at the end
    send ``None`` and join it (killed after ``DEADLOCK`` seconds)."""
    conn, child_conn = multiprocessing.Pipe()
    process = mp_context().Process(target=target, args=(*args, child_conn), name="bench-child")
    process.start()
    child_conn.close()
    try:
        if not conn.poll(DEADLOCK) or conn.recv() != "ready":
            raise AssertionError("the child never started")
        yield conn
    finally:
        try:
            conn.send(None)
        except OSError:
            pass
        process.join(DEADLOCK)
        if process.exitcode is None:
            process.kill()
            process.join()
        process.close()
        conn.close()


# -- ping-pong --------------------------------------------------------------------------------


def echo(ping: Any, pong: Any, conn: Connection) -> None:
    """The child: send back every item received on ``ping`` until ``None``."""
    conn.send("ready")
    while (item := ping.recv()) is not None:
        pong.send(item)


def run_async(backend: str, coro: Callable[[], Awaitable[Any]]) -> Any:
    if backend == "trio":
        import trio

        return trio.run(coro)
    return asyncio.run(coro())  # type: ignore[arg-type]


@contextmanager
def pingpong(mode: str, k: int) -> Iterator[Measure]:
    """``k`` timed round trips per round: ``mode`` is ``sync``, ``asyncio`` or ``trio``."""
    from concurrency_kit import ProcessChannel

    ping: Any = ProcessChannel(256)
    pong: Any = ProcessChannel(256)
    try:
        with child(echo, ping, pong):
            if mode == "sync":

                def measure() -> list[float]:
                    clock = time.perf_counter
                    samples = []
                    for _ in range(20 + k):
                        start = clock()
                        ping.send(1)
                        if pong.recv() != 1:
                            raise AssertionError("the echo child answered something else")
                        samples.append(clock() - start)
                    return samples[20:]

            else:

                async def rounds() -> list[float]:
                    clock = time.perf_counter
                    samples = []
                    for _ in range(20 + k):
                        start = clock()
                        await ping.asend(1)
                        if await pong.arecv() != 1:
                            raise AssertionError("the echo child answered something else")
                        samples.append(clock() - start)
                    return samples[20:]

                def measure() -> list[float]:
                    return run_async(mode, rounds)  # type: ignore[no-any-return]

            measure()
            yield measure
            ping.send(None)
    finally:
        ping.close()
        pong.close()


def pingpong_benchmark(config: Config) -> Benchmark:
    k = config.size(3_000, 500, 20)
    return Benchmark(
        name="async_pingpong",
        title=f"one int to a child process and back, {k} samples per round, {START_METHOD}",
        kind="latency",
        unit="us",
        reference="ProcessChannel sync",
        contenders=(
            Contender(
                "ProcessChannel sync",
                partial(pingpong, "sync", k),
                note="ProcessChannel(256): ping.send(1); pong.recv()",
            ),
            Contender(
                "ProcessChannel asyncio",
                partial(pingpong, "asyncio", k),
                note="ProcessChannel(256): await ping.asend(1); await pong.arecv(), asyncio",
            ),
            Contender(
                "ProcessChannel trio",
                partial(pingpong, "trio", k),
                requires=("trio",),
                note="the same in trio.run",
            ),
        ),
        targets=(Target("ProcessChannel asyncio", "ProcessChannel sync", 1.5),),
    )


# -- throughput, process -> event loop ------------------------------------------------------


def produce(channel: Any, conn: Connection) -> None:
    """The child: per command ``n``, send ``0..n-1`` on ``channel``; ``None`` ends it."""
    conn.send("ready")
    while (n := conn.recv()) is not None:
        put = getattr(channel, "send", None) or channel.put
        for i in range(n):
            put(i)


@contextmanager
def throughput(kind: str, n: int) -> Iterator[Measure]:
    """A round: tell the child to send ``n`` ints; receive them all in an asyncio loop."""
    if kind == "channel":
        from concurrency_kit import ProcessChannel

        channel: Any = ProcessChannel(256)
        close: Callable[[], object] = channel.close

        async def receive() -> None:
            arecv = channel.arecv
            for i in range(n):
                if await arecv() != i:
                    raise AssertionError("items out of order")

    elif kind == "to_thread":
        channel = mp_context().Queue(256)
        close = channel.close

        async def receive() -> None:
            get = channel.get
            for i in range(n):
                if await asyncio.to_thread(get) != i:
                    raise AssertionError("items out of order")

    else:
        import aioprocessing

        channel = aioprocessing.AioQueue(256, context=mp_context())
        close = channel.close

        async def receive() -> None:
            for i in range(n):
                if await channel.coro_get() != i:
                    raise AssertionError("items out of order")

    try:
        with child(produce, channel) as conn:
            loop = asyncio.new_event_loop()
            try:

                def measure() -> float:
                    start = time.perf_counter()
                    conn.send(n)
                    loop.run_until_complete(receive())
                    return time.perf_counter() - start

                measure()
                yield measure
            finally:
                loop.run_until_complete(loop.shutdown_default_executor())
                loop.close()
    finally:
        close()


def throughput_benchmark(config: Config) -> Benchmark:
    n = config.size(20_000, 4_000, 400)
    return Benchmark(
        name="async_throughput",
        title=f"{n} small ints from a child process to an asyncio event loop, {START_METHOD}",
        kind="throughput",
        unit="items",
        reference="to_thread(mp.Queue.get)",
        contenders=(
            Contender(
                "ProcessChannel arecv",
                partial(throughput, "channel", n),
                items=n,
                note="ProcessChannel(256), await channel.arecv()",
            ),
            Contender(
                "to_thread(mp.Queue.get)",
                partial(throughput, "to_thread", n),
                items=n,
                note="multiprocessing.Queue(256), await asyncio.to_thread(queue.get)",
            ),
            Contender(
                "aioprocessing coro_get",
                partial(throughput, "aioprocessing", n),
                requires=("aioprocessing",),
                items=n,
                note="aioprocessing.AioQueue(256), await queue.coro_get()",
            ),
        ),
        targets=(
            Target("ProcessChannel arecv", "to_thread(mp.Queue.get)", 5.0),
            Target("ProcessChannel arecv", "aioprocessing coro_get", 2.0),
        ),
    )


# -- memory per waiting task ----------------------------------------------------------------


@contextmanager
def waiters(kind: str) -> Iterator[Measure]:
    """A round: start ``WAITERS`` tasks awaiting one empty channel (or an asyncio.Event);
    return the bytes allocated per task while they all wait (tracemalloc)."""
    from concurrency_kit import ChannelClosed, ProcessChannel, ThreadChannel

    async def scenario() -> float:
        channel: Any = ProcessChannel(256) if kind == "process" else ThreadChannel(256)
        event = asyncio.Event()

        async def wait_one() -> None:
            if kind == "event":
                await event.wait()
                return
            try:
                await channel.arecv()
            except ChannelClosed:
                pass

        try:
            await asyncio.sleep(0)  # the loop's own allocations happen before the snapshot
            threads = threading.active_count()
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            tasks = [asyncio.create_task(wait_one()) for _ in range(WAITERS)]
            for _ in range(3):
                await asyncio.sleep(0)  # every task is now waiting
            after = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
            if threading.active_count() != threads:
                raise AssertionError("waiting tasks started threads")
            channel.close()
            event.set()
            await asyncio.gather(*tasks)
            return (after - before) / WAITERS
        finally:
            channel.close()

    def measure() -> float:
        return asyncio.run(scenario())

    yield measure


def memory_benchmark(config: Config) -> Benchmark:
    return Benchmark(
        name="async_waiter_memory",
        title=f"bytes allocated per task while {WAITERS} asyncio tasks await one empty channel",
        kind="size",
        unit="B",
        reference="asyncio.Event",
        contenders=(
            Contender("ProcessChannel", partial(waiters, "process"), note="await arecv()"),
            Contender("ThreadChannel", partial(waiters, "thread"), note="await arecv()"),
            Contender("asyncio.Event", partial(waiters, "event"), note="await event.wait()"),
        ),
        targets=(
            Target("ProcessChannel", None, 2048.0),
            Target("ThreadChannel", None, 2048.0),
        ),
    )


def build(config: Config) -> list[Benchmark]:
    return [pingpong_benchmark(config), throughput_benchmark(config), memory_benchmark(config)]


if __name__ == "__main__":
    sys.exit(
        main(
            build,
            description=__doc__ or "",
            packages=("anyio", "trio", "aioprocessing"),
        )
    )

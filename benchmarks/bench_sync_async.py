"""The sync primitives' async face against asyncio's own primitives and the sync calls (issue 18).

Run ``python benchmarks/bench_sync_async.py --help`` for the options and see
``benchmarks/README.md`` for how to read the tables. Child processes use the ``forkserver``
start method.

Benchmarks (``--only NAME``):

* ``async_uncontended``: one ``async with primitive: pass`` in an asyncio event loop, nobody
  else using the primitive (the cost of the call itself, per block):
  ``ThreadLock``, ``ProcessLock``, ``ThreadSemaphore`` and ``ProcessSemaphore`` against
  :class:`asyncio.Lock` and :class:`asyncio.Semaphore`. A free lock is taken without a
  suspending ``await``, as asyncio's are.
* ``async_event_pingpong``: a round trip with a child process through two ProcessEvents
  (this side sets ``ping`` and waits for ``pong``; the child, with the sync calls, waits for
  ``ping``, clears it and sets ``pong``), one round trip timed per sample (latency). This side
  awaits ``pong.wait_async()`` in an asyncio event loop (and in a trio run when trio is
  installed): the child's ``set`` rings the primitive's bell, which the bell thread answers
  by waking the task through its loop; against the sync ``pong.wait()``. The ratio is what the
  bell and the loop's wake-up add to a cross-process wake-up.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import partial
from multiprocessing.connection import Connection
from typing import Any

from _runner import Benchmark, Config, Contender, Measure, main

START_METHOD = "forkserver"
DEADLOCK = 60.0


def run_async(backend: str, coro: Callable[[], Awaitable[Any]]) -> Any:
    if backend == "trio":
        import trio

        return trio.run(coro)
    return asyncio.run(coro())  # type: ignore[arg-type]


# -- uncontended async with -------------------------------------------------------------------


def make_primitive(kind: str) -> tuple[Any, Callable[[], None]]:
    """A primitive of ``kind`` (made inside the loop for asyncio's) and how to close it."""
    import concurrency_kit as ck

    if kind == "asyncio.Lock":
        return asyncio.Lock(), lambda: None
    if kind == "asyncio.Semaphore":
        return asyncio.Semaphore(1), lambda: None
    primitive = getattr(ck, kind)()
    return primitive, primitive.close


@contextmanager
def uncontended(kind: str, n: int) -> Iterator[Measure]:
    """``n`` blocks of ``async with primitive: pass`` per round, in one asyncio run."""

    async def rounds() -> float:
        primitive, close = make_primitive(kind)
        try:
            clock = time.perf_counter
            start = clock()
            for _ in range(n):
                async with primitive:
                    pass
            elapsed = clock() - start
        finally:
            close()
        return elapsed / n

    def measure() -> float:
        return asyncio.run(rounds())

    measure()
    yield measure


def uncontended_benchmark(config: Config) -> Benchmark:
    n = config.size(200_000, 20_000, 200)
    kinds = [
        ("ThreadLock", "ck.ThreadLock"),
        ("ProcessLock", "ck.ProcessLock"),
        ("ThreadSemaphore", "ck.ThreadSemaphore(1)"),
        ("ProcessSemaphore", "ck.ProcessSemaphore(1)"),
        ("asyncio.Lock", "asyncio.Lock()"),
        ("asyncio.Semaphore", "asyncio.Semaphore(1)"),
    ]
    return Benchmark(
        name="async_uncontended",
        title=f"one uncontended `async with primitive: pass`, asyncio, {n} blocks per round",
        kind="latency",
        unit="ns",
        reference="asyncio.Lock",
        contenders=tuple(
            Contender(kind, partial(uncontended, kind, n), note=f"async with {made}: pass")
            for kind, made in kinds
        ),
    )


# -- cross-process event ping-pong --------------------------------------------------------------


def event_echo(ping: Any, pong: Any, stop: Any, conn: Connection) -> None:
    """The child: for every ``ping``, clear it and set ``pong``, until ``stop`` is set."""
    conn.send("ready")
    while True:
        if not ping.wait(DEADLOCK):
            raise AssertionError("no ping for a minute")
        ping.clear()
        if stop.is_set():
            return
        pong.set()


@contextmanager
def event_pingpong(mode: str, k: int) -> Iterator[Measure]:
    """``k`` timed round trips per round: ``mode`` is ``sync``, ``asyncio`` or ``trio``."""
    from concurrency_kit import ProcessEvent

    ping, pong, stop = ProcessEvent(), ProcessEvent(), ProcessEvent()
    ctx: Any = multiprocessing.get_context(START_METHOD)
    conn, child_conn = ctx.Pipe()
    process = ctx.Process(target=event_echo, args=(ping, pong, stop, child_conn))
    process.start()
    child_conn.close()
    try:
        if not conn.poll(DEADLOCK) or conn.recv() != "ready":
            raise AssertionError("the child never started")
        if mode == "sync":

            def measure() -> list[float]:
                clock = time.perf_counter
                samples = []
                for _ in range(20 + k):
                    start = clock()
                    pong.clear()  # before the ping: the child sets it after
                    ping.set()
                    if not pong.wait(DEADLOCK):
                        raise AssertionError("the child did not answer")
                    samples.append(clock() - start)
                return samples[20:]

        else:

            async def rounds() -> list[float]:
                clock = time.perf_counter
                samples = []
                for _ in range(20 + k):
                    start = clock()
                    pong.clear()
                    ping.set()
                    if not await pong.wait_async(DEADLOCK):
                        raise AssertionError("the child did not answer")
                    samples.append(clock() - start)
                return samples[20:]

            def measure() -> list[float]:
                return run_async(mode, rounds)  # type: ignore[no-any-return]

        measure()
        yield measure
        stop.set()
        ping.set()
    finally:
        process.join(DEADLOCK)
        if process.exitcode is None:
            process.kill()
            process.join()
        process.close()
        conn.close()
        for event in (ping, pong, stop):
            event.close()


def event_pingpong_benchmark(config: Config) -> Benchmark:
    k = config.size(3_000, 500, 20)
    return Benchmark(
        name="async_event_pingpong",
        title=f"a round trip with a child process through two ProcessEvents, {k} samples per "
        f"round, {START_METHOD}",
        kind="latency",
        unit="us",
        reference="ProcessEvent sync",
        contenders=(
            Contender(
                "ProcessEvent sync",
                partial(event_pingpong, "sync", k),
                note="pong.clear(); ping.set(); pong.wait()",
            ),
            Contender(
                "ProcessEvent asyncio",
                partial(event_pingpong, "asyncio", k),
                note="pong.clear(); ping.set(); await pong.wait_async(), asyncio",
            ),
            Contender(
                "ProcessEvent trio",
                partial(event_pingpong, "trio", k),
                requires=("trio",),
                note="the same in trio.run",
            ),
        ),
    )


def build(config: Config) -> list[Benchmark]:
    return [uncontended_benchmark(config), event_pingpong_benchmark(config)]


if __name__ == "__main__":
    sys.exit(main(build, description=__doc__ or "", packages=("anyio", "trio")))

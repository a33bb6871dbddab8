"""An asyncio service that fans requests out to worker processes and streams results back.

A web-style service handles several requests at once in one event loop. Each request is
CPU-bound (counting primes), so it runs in a ``ProcessPool``, awaited with ``pool.arun``
(cancelling the request would kill its worker's task). While a worker computes, it streams
a progress message per chunk through one shared ``ProcessChannel``; a router task in the
event loop receives them with ``async for`` and hands each to the request it belongs to,
which passes it on to its client at once. Nothing blocks the loop: a ticker task keeps
ticking throughout, and waiting for the channel costs no thread (the loop watches the
channel's pipe).

Run it: ``python examples/22_async_service.py``
"""

from __future__ import annotations

import asyncio
from typing import Any

from concurrency_kit import ProcessChannel, ProcessPool

CHUNKS = 4


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    f = 2
    while f * f <= n:
        if n % f == 0:
            return False
        f += 1
    return True


def count_primes(request: int, start: int, stop: int, progress: Any) -> int:
    """In a worker process: count primes in [start, stop), one progress message per chunk."""
    total = 0
    step = (stop - start) // CHUNKS
    for chunk in range(CHUNKS):
        low = start + chunk * step
        high = stop if chunk == CHUNKS - 1 else low + step
        found = sum(1 for n in range(low, high) if is_prime(n))
        total += found
        progress.send((request, chunk + 1, found))
    return total


async def route(progress: Any, inboxes: dict[int, asyncio.Queue[tuple[int, int]]]) -> None:
    """Deliver every progress message to its request, until the channel is closed."""
    async for request, chunk, found in progress:
        inboxes[request].put_nowait((chunk, found))


async def handle(
    pool: ProcessPool,
    progress: Any,
    inboxes: dict[int, asyncio.Queue[tuple[int, int]]],
    request: int,
    start: int,
    stop: int,
) -> int:
    """One request: start the work in a process, stream its progress, return its answer."""
    inbox: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    inboxes[request] = inbox
    answer = asyncio.ensure_future(pool.arun(count_primes, request, start, stop, progress))
    for _ in range(CHUNKS):
        chunk, found = await inbox.get()
        print(f"  request {request}: chunk {chunk}/{CHUNKS} done, {found} primes")
    total = await answer
    del inboxes[request]
    print(f"request {request}: {total} primes in [{start}, {stop})")
    return total


async def tick(ticks: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        ticks.append(1)
        await asyncio.sleep(0.001)


async def main() -> None:
    requests = [(r, r * 30_000, (r + 1) * 30_000) for r in range(4)]
    ticks: list[int] = []
    done = asyncio.Event()
    ticker = asyncio.create_task(tick(ticks, done))
    with ProcessPool(2) as pool, ProcessChannel[Any]() as progress:
        inboxes: dict[int, asyncio.Queue[tuple[int, int]]] = {}
        router = asyncio.create_task(route(progress, inboxes))
        totals = await asyncio.gather(
            *(handle(pool, progress, inboxes, *request) for request in requests)
        )
        progress.close()  # the router's `async for` ends once the channel is drained
        await router
    done.set()
    await ticker
    expected = [sum(1 for n in range(a, b) if is_prime(n)) for _, a, b in requests]
    assert totals == expected, (totals, expected)
    print(f"all {len(requests)} answers check out; the event loop ticked {len(ticks)} times")


if __name__ == "__main__":
    asyncio.run(main())

"""The pools' async face against ``loop.run_in_executor`` (issue 18).

Run ``python benchmarks/bench_pools_async.py --help`` for the options and see
``benchmarks/README.md`` for how to read the tables. Every pool has 2 workers started with the
``forkserver`` method (ours and the standard library's), created and warmed up before timing.

Benchmarks (``--only NAME``):

* ``async_pool_roundtrip``: one tiny task (``inc(1)``) submitted and awaited, one round trip
  timed per sample (latency), in an asyncio event loop unless named otherwise:
  ``await pool.arun(inc, 1)`` on a ``ProcessPool`` (asyncio, and trio when installed), against
  ``await loop.run_in_executor(executor, inc, 1)`` on a
  :class:`concurrent.futures.ProcessPoolExecutor` (the reference) and on a ``ProcessPool``,
  and the synchronous ``pool.submit(inc, 1).result()`` for scale. Target: ``arun`` no slower
  than ``run_in_executor`` on the standard library's pool.
* ``async_pool_map``: ``n`` tiny tasks (``inc(i)``), all results awaited in order
  (throughput, tasks per second): ``async for r in pool.amap(inc, range(n))`` (asyncio, trio)
  and ``asyncio.gather`` over ``arun``, against ``asyncio.gather`` over ``run_in_executor`` on
  a ``ProcessPoolExecutor`` (the reference; it submits all ``n`` at once, where ``amap`` keeps
  at most ``buffersize`` in the pool: by default 8) and on a ``ProcessPool``. Target: ``amap``
  no slower than the reference.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any

from _runner import Benchmark, Config, Contender, Measure, Target, main
from _tasks import inc

START_METHOD = "forkserver"
WORKERS = 2
WARM_TASKS = 200


def make_pool(kind: str) -> Executor:
    if kind == "stdlib":
        return ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context(START_METHOD))
    from concurrency_kit import ProcessPool

    return ProcessPool(WORKERS, start_method=START_METHOD)


def run_async(backend: str, coro: Callable[[], Awaitable[Any]]) -> Any:
    if backend == "trio":
        import trio

        return trio.run(coro)
    return asyncio.run(coro())  # type: ignore[arg-type]


@contextmanager
def warm(kind: str) -> Iterator[Any]:
    """A pool of ``kind`` with every worker started and warm; shut down at the end."""
    pool = make_pool(kind)
    try:
        list(pool.map(inc, range(WARM_TASKS)))
        yield pool
    finally:
        pool.shutdown(wait=True)


# -- round trip -------------------------------------------------------------------------------


@contextmanager
def roundtrip(kind: str, how: str, k: int) -> Iterator[Measure]:
    """``k`` timed round trips per round: ``how`` is ``arun``, ``arun-trio``,
    ``run_in_executor`` or ``sync``."""
    with warm(kind) as pool:
        if how == "sync":

            def measure() -> list[float]:
                clock = time.perf_counter
                samples = []
                for _ in range(k):
                    start = clock()
                    if pool.submit(inc, 1).result() != 2:
                        raise AssertionError("wrong result")
                    samples.append(clock() - start)
                return samples

        else:

            async def rounds() -> list[float]:
                clock = time.perf_counter
                samples = []
                if how == "run_in_executor":
                    loop = asyncio.get_running_loop()

                    def call() -> Awaitable[int]:
                        return loop.run_in_executor(pool, inc, 1)

                else:

                    def call() -> Awaitable[int]:
                        return pool.arun(inc, 1)  # type: ignore[no-any-return]

                for _ in range(10 + k):
                    start = clock()
                    if await call() != 2:
                        raise AssertionError("wrong result")
                    samples.append(clock() - start)
                return samples[10:]

            def measure() -> list[float]:
                return run_async("trio" if how == "arun-trio" else "asyncio", rounds)  # type: ignore[no-any-return]

        measure()
        yield measure


def roundtrip_benchmark(config: Config) -> Benchmark:
    k = config.size(2_000, 400, 20)
    return Benchmark(
        name="async_pool_roundtrip",
        title=f"one tiny task submitted and awaited, {k} samples per round, "
        f"{WORKERS} workers, {START_METHOD}",
        kind="latency",
        unit="us",
        reference="ProcessPoolExecutor run_in_executor",
        contenders=(
            Contender(
                "ProcessPool arun",
                partial(roundtrip, "ours", "arun", k),
                note="await pool.arun(inc, 1), asyncio",
            ),
            Contender(
                "ProcessPool arun trio",
                partial(roundtrip, "ours", "arun-trio", k),
                requires=("trio",),
                note="the same in trio.run",
            ),
            Contender(
                "ProcessPool run_in_executor",
                partial(roundtrip, "ours", "run_in_executor", k),
                note="await loop.run_in_executor(pool, inc, 1)",
            ),
            Contender(
                "ProcessPoolExecutor run_in_executor",
                partial(roundtrip, "stdlib", "run_in_executor", k),
                note="await loop.run_in_executor(ProcessPoolExecutor(2), inc, 1)",
            ),
            Contender(
                "ProcessPool sync",
                partial(roundtrip, "ours", "sync", k),
                note="pool.submit(inc, 1).result(), no event loop (for scale)",
            ),
        ),
        targets=(Target("ProcessPool arun", "ProcessPoolExecutor run_in_executor", 1.0),),
    )


# -- map --------------------------------------------------------------------------------------


@contextmanager
def mapping(kind: str, how: str, n: int) -> Iterator[Measure]:
    """A round: ``n`` tasks, every result awaited in order. ``how`` is ``amap``,
    ``amap-trio``, ``gather-arun`` or ``gather-run_in_executor``."""
    expected = list(range(1, n + 1))
    with warm(kind) as pool:

        async def once() -> list[int]:
            if how.startswith("amap"):
                return [r async for r in pool.amap(inc, range(n))]
            if how == "gather-arun":
                return list(await asyncio.gather(*(pool.arun(inc, i) for i in range(n))))
            loop = asyncio.get_running_loop()
            return list(
                await asyncio.gather(*(loop.run_in_executor(pool, inc, i) for i in range(n)))
            )

        def measure() -> float:
            start = time.perf_counter()
            got = run_async("trio" if how == "amap-trio" else "asyncio", once)
            elapsed = time.perf_counter() - start
            if got != expected:
                raise AssertionError("wrong results")
            return elapsed

        measure()
        yield measure


def map_benchmark(config: Config) -> Benchmark:
    n = config.size(5_000, 1_000, 50)
    return Benchmark(
        name="async_pool_map",
        title=f"{n} tiny tasks, results awaited in order, {WORKERS} workers, {START_METHOD}",
        kind="throughput",
        unit="tasks",
        reference="ProcessPoolExecutor gather(run_in_executor)",
        contenders=(
            Contender(
                "ProcessPool amap",
                partial(mapping, "ours", "amap", n),
                items=n,
                note="async for r in pool.amap(inc, range(n)), asyncio (buffersize 8)",
            ),
            Contender(
                "ProcessPool amap trio",
                partial(mapping, "ours", "amap-trio", n),
                requires=("trio",),
                items=n,
                note="the same in trio.run",
            ),
            Contender(
                "ProcessPool gather(arun)",
                partial(mapping, "ours", "gather-arun", n),
                items=n,
                note="await asyncio.gather(*(pool.arun(inc, i) for i in range(n)))",
            ),
            Contender(
                "ProcessPool gather(run_in_executor)",
                partial(mapping, "ours", "gather-run_in_executor", n),
                items=n,
                note="asyncio.gather over loop.run_in_executor(pool, inc, i)",
            ),
            Contender(
                "ProcessPoolExecutor gather(run_in_executor)",
                partial(mapping, "stdlib", "gather-run_in_executor", n),
                items=n,
                note="asyncio.gather over loop.run_in_executor(ProcessPoolExecutor(2), inc, i)",
            ),
        ),
        targets=(Target("ProcessPool amap", "ProcessPoolExecutor gather(run_in_executor)", 1.0),),
    )


def build(config: Config) -> list[Benchmark]:
    return [roundtrip_benchmark(config), map_benchmark(config)]


if __name__ == "__main__":
    sys.exit(main(build, description=__doc__ or "", packages=("anyio", "trio")))

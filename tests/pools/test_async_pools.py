"""The pools' async face, ``arun`` and ``amap``: every pool, both event-loop libraries.

Every test takes ``backend`` (asyncio, trio) and runs its body in that event loop with
:func:`run`. The basics run over ``pool_model`` (PROCESS, THREAD and CLUSTER, the last skipped
without dask's ``distributed``); cancellation and buffering run over ``model`` (PROCESS,
THREAD). Tasks report that they have started by setting a :class:`~concurrency_kit.ProcessEvent`
(which works from threads and processes alike) and wait on another one: the test knows what
runs by states, never by sleeps; timeouts only catch deadlocks, except the short ones under test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import itertools
import math
import os
import random
import threading
from collections.abc import Callable, Iterator
from contextlib import aclosing
from typing import Any

import anyio
import pytest

import concurrency_kit as ck
from _event_loops import run
from concurrency_kit import Model, PoolModel

DEADLOCK = 60.0
SHORT = 0.05
"""The one timeout that expires on purpose in a test."""


@pytest.fixture
def event() -> Iterator[Callable[[], ck.ProcessEvent]]:
    """Make ProcessEvents, closed at the end of the test."""
    made: list[ck.ProcessEvent] = []

    def make() -> ck.ProcessEvent:
        made.append(ck.ProcessEvent())
        return made[-1]

    yield make
    for made_event in made:
        made_event.set()  # whatever still waits on it (a thread pool's task) goes home
        made_event.close()


async def until(predicate: Callable[[], bool], what: str = "") -> None:
    """Yield to the loop until ``predicate()`` (a deadlock bound, not a timing)."""
    with anyio.fail_after(DEADLOCK):
        while not predicate():
            await anyio.sleep(0.0005)
    assert predicate(), what


# -- tasks (importable by reference in every worker) ---------------------------------------------


def add(a: int, b: int = 0) -> int:
    return a + b


class CustomError(Exception):
    pass


def fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise CustomError(x)
    return x


def start_and_wait(
    started: ck.ProcessEvent, release: ck.ProcessEvent, value: object = None
) -> object:
    """Say "I run" by setting ``started``, then wait for ``release``."""
    started.set()
    if not release.wait(DEADLOCK):
        raise AssertionError("never released")
    return value


def mark(ran: ck.ProcessEvent) -> None:
    ran.set()


def first_or_wait(i: int, release: ck.ProcessEvent) -> int:
    """Item 0 returns at once; every other item waits for ``release``."""
    if i and not release.wait(DEADLOCK):
        raise AssertionError("never released")
    return i


class Counting:
    """An input that counts the items read from it."""

    def __init__(self, n: int | None) -> None:
        self.n = n
        self.read = 0

    def __iter__(self) -> Iterator[int]:
        for i in itertools.count() if self.n is None else range(self.n):
            self.read += 1
            yield i


# -- arun ----------------------------------------------------------------------------------------


def test_arun_returns_the_result(pool_model: PoolModel, backend: str) -> None:
    async def main() -> None:
        with pool_model.Pool(2) as pool:
            assert await pool.arun(add, 1, b=2) == 3
            assert await pool.arun(lambda x: x * 2, 21) == 42  # cloudpickle: lambdas too
            assert await pool.arun(add, 5) == 5

    run(backend, main)


def test_arun_raises_what_result_raises(pool_model: PoolModel, backend: str) -> None:
    async def main() -> None:
        with pool_model.Pool(2) as pool:
            with pytest.raises(CustomError) as sync_error:
                pool.submit(fail_on, 1, 1).result(DEADLOCK)
            with pytest.raises(CustomError) as async_error:
                await pool.arun(fail_on, 1, 1)
            assert type(async_error.value) is type(sync_error.value)
            assert async_error.value.args == (1,)
            if pool_model.name == "process":  # the worker's traceback rides along
                assert async_error.value.__cause__ is not None
            assert await pool.arun(add, 1, 1) == 2  # the pool goes on

    run(backend, main)


def test_arun_refuses_what_submit_refuses(model: Model, backend: str) -> None:
    async def main() -> None:
        pool = model.Pool(1)
        with pool, pytest.raises(TypeError, match="callable"):
            await pool.arun(42)  # type: ignore[arg-type]
        with pytest.raises(RuntimeError):
            await pool.arun(add, 1)

    run(backend, main)


def test_arun_of_a_crashing_process_task(backend: str) -> None:
    async def main() -> None:
        with ck.ProcessPool(1) as pool:
            with pytest.raises(ck.WorkerCrashedError) as error:
                await pool.arun(os._exit, 3)
            assert error.value.exitcode == 3
            assert await pool.arun(add, 2, 2) == 4  # a new worker took its place

    run(backend, main)


def test_many_concurrent_aruns(model: Model, backend: str) -> None:
    async def main() -> None:
        results: dict[int, int] = {}

        async def one(i: int) -> None:
            results[i] = await pool.arun(add, i, i)

        with model.Pool(2) as pool:
            async with anyio.create_task_group() as tg:
                for i in range(50):
                    tg.start_soon(one, i)
        assert results == {i: 2 * i for i in range(50)}

    run(backend, main)


def test_no_thread_per_awaiting_call(backend: str, event: Callable[[], ck.ProcessEvent]) -> None:
    """100 tasks await arun on a ThreadPool of 2 whose tasks block: 2 threads more, no more."""
    started, release = event(), event()

    async def main() -> None:
        baseline = threading.active_count()
        with ck.ThreadPool(2) as pool:
            async with anyio.create_task_group() as tg:
                for i in range(100):
                    tg.start_soon(pool.arun, start_and_wait, started, release, i)
                await until(
                    lambda: (s := pool.statistics()).workers_busy == 2 and s.tasks_queued == 98,
                    "two tasks run, 98 wait",
                )
                assert pool.statistics().workers_alive == 2
                assert threading.active_count() == baseline + 2
                release.set()
            assert pool.statistics().tasks_completed == 100

    run(backend, main)


def test_cancelling_arun_of_a_queued_task_means_it_never_runs(
    model: Model, backend: str, event: Callable[[], ck.ProcessEvent]
) -> None:
    started, release, ran = event(), event(), event()

    async def main() -> None:
        with model.Pool(1) as pool:
            async with anyio.create_task_group() as tg:
                tg.start_soon(pool.arun, start_and_wait, started, release)
                await until(started.is_set, "the first task runs")
                scope = anyio.CancelScope()

                async def queued() -> None:
                    with scope:
                        await pool.arun(mark, ran)
                    assert scope.cancelled_caught

                tg.start_soon(queued)
                await until(lambda: pool.statistics().tasks_queued == 1, "the second is queued")
                scope.cancel()
                await until(lambda: pool.statistics().tasks_cancelled == 1, "it is cancelled")
                release.set()
            stats = pool.statistics()
            assert (stats.tasks_completed, stats.tasks_cancelled) == (1, 1)
            assert await pool.arun(add, 1, 2) == 3
        assert not ran.is_set()  # the pool is shut down: the cancelled task never ran

    run(backend, main)


def test_cancelling_arun_kills_a_running_process_task(
    backend: str, event: Callable[[], ck.ProcessEvent]
) -> None:
    started, release = event(), event()

    async def main() -> None:
        with ck.ProcessPool(1) as pool:
            first_pid = await pool.arun(os.getpid)
            with anyio.CancelScope() as scope:

                async def cancel_once_started() -> None:
                    await until(started.is_set, "the task runs")
                    scope.cancel()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel_once_started)
                    await pool.arun(start_and_wait, started, release)
            assert scope.cancelled_caught
            assert pool.statistics().tasks_cancelled == 1
            # release is never set: only killing its worker ends the task
            await until(lambda: pool.statistics().workers_replaced == 1, "the worker is replaced")
            assert await pool.arun(os.getpid) != first_pid
            stats = pool.statistics()
            assert (stats.workers_busy, stats.tasks_queued) == (0, 0)

    run(backend, main)


def test_cancelling_arun_of_a_running_thread_task_drops_its_result(
    backend: str, event: Callable[[], ck.ProcessEvent]
) -> None:
    started, release = event(), event()

    async def main() -> None:
        with ck.ThreadPool(1) as pool:
            with anyio.move_on_after(DEADLOCK) as outer:
                with anyio.CancelScope() as scope:

                    async def cancel_once_started() -> None:
                        await until(started.is_set, "the task runs")
                        scope.cancel()

                    async with anyio.create_task_group() as tg:
                        tg.start_soon(cancel_once_started)
                        await pool.arun(start_and_wait, started, release, "dropped")
            assert scope.cancelled_caught
            assert not outer.cancelled_caught
            # a thread cannot be stopped: the task runs on until released, then completes
            assert pool.statistics().workers_busy == 1
            release.set()
            await until(lambda: pool.statistics().tasks_completed == 1, "the task ends")
            assert pool.statistics().tasks_cancelled == 0

    run(backend, main)


def test_asyncio_task_cancel_and_wait_for(event: Callable[[], ck.ProcessEvent]) -> None:
    """Plain asyncio cancellation (``task.cancel()``, ``wait_for``) cancels the process task."""
    started, release = event(), event()

    async def main() -> None:
        with ck.ProcessPool(1) as pool:
            task = asyncio.ensure_future(pool.arun(start_and_wait, started, release))
            await until(started.is_set, "the task runs")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await until(lambda: pool.statistics().workers_replaced == 1, "the worker replaced")
            with pytest.raises(asyncio.TimeoutError):  # queued or running: cancelled either way
                await asyncio.wait_for(pool.arun(start_and_wait, started, release), SHORT)
            assert pool.statistics().tasks_cancelled == 2
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(pool, add, 2, 3) == 5  # still an Executor

    asyncio.run(main())


def test_pools_stay_executors_and_pools(pool_model: PoolModel) -> None:
    with pool_model.Pool(1) as pool:
        assert isinstance(pool, concurrent.futures.Executor)
        assert isinstance(pool, ck.Pool)


# -- amap ----------------------------------------------------------------------------------------


def test_amap_results_in_order(pool_model: PoolModel, backend: str) -> None:
    async def main() -> None:
        with pool_model.Pool(2) as pool:
            assert [r async for r in pool.amap(add, range(20))] == list(range(20))
            assert [r async for r in pool.amap(add, range(5), range(10, 100))] == [
                10,
                12,
                14,
                16,
                18,
            ]  # stops at the shortest
            assert [r async for r in pool.amap(add, [])] == []
            got = [r async for r in pool.amap(add, range(20), ordered=False, buffersize=3)]
            assert sorted(got) == list(range(20))

    run(backend, main)


@pytest.mark.parametrize("ordered", [True, False])
def test_amap_raises_at_the_failed_item_and_cancels_the_rest(
    model: Model, backend: str, ordered: bool
) -> None:
    async def main() -> None:
        with model.Pool(1) as pool:
            got: list[int] = []
            results = pool.amap(
                fail_on, range(10), itertools.repeat(3), ordered=ordered, buffersize=2
            )
            with pytest.raises(CustomError) as error:
                await collect(results, got)
            assert error.value.args == (3,)
            assert got == [0, 1, 2]  # one worker: the order is kept either way
            with pytest.raises(StopAsyncIteration):
                await results.__anext__()  # the map is over
            await until(
                lambda: (s := pool.statistics()).workers_busy == 0 and s.tasks_queued == 0,
                "nothing runs on",
            )
            # 0..4 were submitted (two ahead); 4 is cancelled unless it was done already
            stats = pool.statistics()
            assert stats.tasks_failed == 1
            assert stats.tasks_completed + stats.tasks_cancelled == 4
            assert stats.tasks_completed in (3, 4)

    run(backend, main)


def test_amap_fails_at_the_position_of_a_call_that_cannot_be_sent(backend: str) -> None:
    async def main() -> None:
        lock = threading.Lock()
        with ck.ProcessPool(1) as pool:
            got: list[object] = []
            with pytest.raises(ck.SerializationError):
                await collect(pool.amap(add, [1, 2, lock, 4]), got)
            assert got == [1, 2]

    run(backend, main)


def test_amap_fails_at_the_position_of_an_input_that_raises(model: Model, backend: str) -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise CustomError("the input broke")

    async def main() -> None:
        with model.Pool(1) as pool:
            got: list[object] = []
            with pytest.raises(CustomError, match="the input broke"):
                await collect(pool.amap(add, source()), got)
            assert got == [1, 2]

    run(backend, main)


@pytest.mark.parametrize("timeout", [0, SHORT])
def test_amap_timeout(
    model: Model, backend: str, event: Callable[[], ck.ProcessEvent], timeout: float
) -> None:
    started, release = event(), event()

    async def main() -> None:
        with model.Pool(1) as pool:
            assert [r async for r in pool.amap(add, [], timeout=timeout)] == []
            results = pool.amap(start_and_wait, [started], [release], timeout=timeout)
            await until(started.is_set, "the task runs")  # it cannot be ready: not released
            with pytest.raises(TimeoutError):
                await results.__anext__()
            if model.name == "process":
                assert pool.statistics().tasks_cancelled == 1  # its worker was killed
                await until(lambda: pool.statistics().workers_replaced == 1, "replaced")
            else:
                release.set()  # a thread cannot be stopped: let it finish

    run(backend, main)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"buffersize": 0}, ValueError),
        ({"buffersize": -1}, ValueError),
        ({"buffersize": True}, TypeError),
        ({"buffersize": 2.0}, TypeError),
        ({"timeout": math.nan}, ValueError),
        ({"timeout": -1}, ValueError),
        ({"timeout": "1"}, TypeError),
    ],
)
def test_amap_bad_arguments(model: Model, kwargs: dict[str, Any], error: type[Exception]) -> None:
    source = Counting(5)
    with model.Pool(1) as pool:
        with pytest.raises(error):
            pool.amap(add, source, **kwargs)
        with pytest.raises(TypeError):
            pool.amap(add)
        with pytest.raises(TypeError):
            pool.amap(42, [1])  # type: ignore[arg-type]
    assert source.read == 0  # nothing was read, nothing submitted
    assert pool.statistics().tasks_completed == 0


def test_amap_on_a_shut_down_pool(model: Model) -> None:
    pool = model.Pool(1)
    pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.amap(add, [1])


@pytest.mark.parametrize("ordered", [True, False])
def test_amap_keeps_at_most_buffersize_tasks_ahead(
    model: Model, backend: str, ordered: bool
) -> None:
    async def main() -> None:
        with model.Pool(2) as pool:
            source = Counting(50)
            results = pool.amap(add, source, buffersize=3, ordered=ordered)
            assert source.read == 3  # submitted by the call, before any result is awaited
            got = 0
            async for _ in results:
                got += 1
                assert source.read == min(got + 3, 50)
            assert got == 50
            endless = Counting(None)
            async with aclosing(pool.amap(add, endless)) as results:
                assert endless.read == 8  # by default four per worker
                assert [r async for r in _take(results, 10)] == list(range(10))
            assert endless.read == 18

    run(backend, main)


async def _take(results: Any, n: int) -> Any:
    for _ in range(n):
        yield await results.__anext__()


@pytest.mark.parametrize("how", ["break", "aclose"])
def test_closing_amap_early_cancels_the_rest(
    model: Model, backend: str, event: Callable[[], ck.ProcessEvent], how: str
) -> None:
    release = event()

    async def main() -> None:
        def both_busy() -> bool:
            return pool.statistics().workers_busy == 2

        with model.Pool(2) as pool:
            inputs = (range(100), itertools.repeat(release))
            if how == "break":
                # the iterator is dropped at the break: collected at once, it cancels
                async for first in pool.amap(first_or_wait, *inputs, buffersize=4):
                    assert first == 0
                    await until(both_busy, "both busy")
                    break
            else:
                results = pool.amap(first_or_wait, *inputs, buffersize=4)
                async for first in results:
                    assert first == 0
                    await until(both_busy, "both busy")
                    await results.aclose()
                with pytest.raises(StopAsyncIteration):
                    await results.__anext__()
            await _check_cancelled(model, pool, release)

    run(backend, main)


async def collect(results: Any, into: list[Any]) -> None:
    async for result in results:
        into.append(result)


async def _check_cancelled(model: Model, pool: Any, release: ck.ProcessEvent) -> None:
    """Items 1..4 were in flight (4 was submitted when 0 was handed out), 1 and 2 running:
    all four are cancelled, the running ones killed (processes) or let finish (threads)."""
    # (a map dropped at a break has them cancelled at the event loop's next turn)
    if model.name == "process":
        await until(lambda: pool.statistics().tasks_cancelled == 4, "running ones killed")
        await until(
            lambda: (s := pool.statistics()).workers_busy == 0 and s.tasks_queued == 0,
            "nothing runs on",
        )
        assert pool.statistics().tasks_completed == 1
    else:
        await until(lambda: pool.statistics().tasks_cancelled == 2, "queued ones cancelled")
        stats = pool.statistics()
        assert (stats.tasks_cancelled, stats.tasks_queued) == (2, 0)
        release.set()  # the two running threads cannot be stopped
        await until(lambda: pool.statistics().workers_busy == 0, "the threads finish")
        assert pool.statistics().tasks_completed == 3
    assert await pool.arun(add, 1, 2) == 3  # the pool goes on


def test_cancelling_a_waiting_amap_cancels_the_rest(
    model: Model, backend: str, event: Callable[[], ck.ProcessEvent]
) -> None:
    release = event()

    async def main() -> None:
        with model.Pool(2) as pool:
            results = pool.amap(first_or_wait, range(100), itertools.repeat(release), buffersize=4)
            assert await results.__anext__() == 0
            with anyio.CancelScope() as scope:

                async def cancel_when_all_busy() -> None:
                    await until(lambda: pool.statistics().workers_busy == 2, "both busy")
                    scope.cancel()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel_when_all_busy)
                    await results.__anext__()  # waits for item 1, cancelled
            assert scope.cancelled_caught
            with pytest.raises(StopAsyncIteration):
                await results.__anext__()  # the map is closed
            await _check_cancelled(model, pool, release)

    run(backend, main)


def test_amap_progress(model: Model, backend: str) -> None:
    class Bar:
        count = 0

        def update(self, n: int = 1) -> None:
            self.count += n

    async def main() -> None:
        bar = Bar()
        with model.Pool(2) as pool:
            assert [r async for r in pool.amap(add, range(7), progress=bar)] == list(range(7))
        assert bar.count == 7

    run(backend, main)


def test_amap_refuses_a_second_waiting_task(
    model: Model, backend: str, event: Callable[[], ck.ProcessEvent]
) -> None:
    """As an async generator does: two tasks awaiting one map would steal each other's wake-up."""
    started, release = event(), event()

    async def main() -> None:
        with model.Pool(1) as pool:
            results = pool.amap(start_and_wait, [started], [release], ["done"])
            got: list[object] = []

            async def first() -> None:
                got.append(await results.__anext__())

            async with anyio.create_task_group() as tg:
                tg.start_soon(first)
                await until(lambda: results._running, "the first task awaits")  # type: ignore[attr-defined]
                with pytest.raises(RuntimeError, match="already being awaited"):
                    await results.__anext__()
                release.set()
            assert got == ["done"]
            with pytest.raises(StopAsyncIteration):
                await results.__anext__()

    run(backend, main)


STRESS = 60


@pytest.mark.parametrize("kind", ["arun", "amap"])
def test_random_cancellations_leave_the_books_balanced(
    model: Model, backend: str, kind: str
) -> None:
    """Cancel at random moments (before, during and after the wait): every task submitted is
    completed or cancelled, every result seen is right, nothing runs on, the pool goes on."""
    rng = random.Random(18)

    async def main() -> None:
        with model.Pool(2) as pool:
            seen = submitted = 0
            for i in range(STRESS):
                with anyio.move_on_after(rng.choice([0, 0.0001, 0.0005, 0.002, 0.01])):
                    if kind == "arun":
                        submitted += 1
                        assert await pool.arun(add, i, 1) == i + 1
                        seen += 1
                    else:
                        source = Counting(6)
                        expected = 0
                        try:
                            async for r in pool.amap(add, source, buffersize=3):
                                assert r == expected
                                expected += 1
                                seen += 1
                        finally:
                            submitted += source.read  # the input is read as tasks are sent
            await until(
                lambda: (s := pool.statistics()).workers_busy == 0 and s.tasks_queued == 0,
                "nothing runs on",
            )
            stats = pool.statistics()
            assert stats.tasks_completed + stats.tasks_cancelled == submitted
            assert stats.tasks_completed >= seen
            assert stats.tasks_failed == stats.tasks_crashed == 0
            assert await pool.arun(add, 1, 2) == 3

    run(backend, main)


def test_a_map_collected_under_the_pools_lock_cancels_in_the_event_loop(
    model: Model, backend: str, event: Callable[[], ck.ProcessEvent]
) -> None:
    """The garbage collector may drop a map while this thread holds the lock ``cancel()``
    takes (inside a submit, say): ``__del__`` must not wait for it, or the thread hangs."""
    release = event()

    async def main() -> None:
        with model.Pool(1) as pool:
            results = pool.amap(first_or_wait, range(1, 100), itertools.repeat(release))
            cycle: list[object] = [results]
            cycle.append(cycle)  # only the collector can free the map now
            await until(lambda: pool.statistics().workers_busy == 1, "the first runs")
            del results, cycle
            with pool._core.lock:  # type: ignore[attr-defined]
                gc.collect()  # runs the map's __del__ here, lock held: no cancel now
            await until(lambda: pool.statistics().tasks_queued == 0, "the queued ones cancelled")
            if model.name != "process":
                release.set()  # the running thread cannot be stopped
            await until(lambda: pool.statistics().workers_busy == 0, "nothing runs on")

    run(backend, main)

"""``worker_state()``: a task reads what its pool's initializer returned in its worker — per
thread (ThreadPool), per process (ProcessPool), per dask worker (ClusterPool) — with no global
of the user's; outside a pool worker it is a clear error."""

from __future__ import annotations

import os
import threading

import pytest

from concurrency_kit import PoolModel, ProcessPool, ThreadPool, worker_state


class Resource:
    """Stands for a connection: not picklable, built once per worker."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.lock = threading.Lock()  # cannot be pickled: it never leaves its worker

    def describe(self) -> str:
        return f"{self.tag}:{os.getpid()}:{id(self)}"


def make_resource(tag: str) -> Resource:
    return Resource(tag)


def use_resource(x: int) -> tuple[str, int]:
    state = worker_state()
    assert isinstance(state, Resource)
    return state.describe(), x * 2


def read_state(_: object = None) -> object:
    return worker_state()


def test_each_model_gives_the_initializer_result(pool_model: PoolModel) -> None:
    with pool_model.Pool(2, initializer=make_resource, initargs=("db",)) as pool:
        single = pool.submit(use_resource, 5).result()
        mapped = list(pool.map(use_resource, range(20)))
    assert single[1] == 10
    assert [value for _, value in mapped] == [x * 2 for x in range(20)]
    tags = {described.split(":")[0] for described, _ in [single, *mapped]}
    assert tags == {"db"}


def test_without_initializer_the_state_is_none(pool_model: PoolModel) -> None:
    with pool_model.Pool(1) as pool:
        assert pool.submit(read_state).result() is None
        assert list(pool.map(read_state, range(3))) == [None, None, None]


def test_timed_tasks_see_the_state(pool_model: PoolModel) -> None:
    with pool_model.Pool(1, initializer=make_resource, initargs=("t",)) as pool:
        described, value = pool.schedule(use_resource, (3,), timeout=60).result()
    assert described.startswith("t:")
    assert value == 6


def test_thread_pool_state_is_per_thread() -> None:
    # Two tasks held at a barrier run on two different threads at once: each sees the
    # object its own thread's initializer made.
    barrier = threading.Barrier(2)

    def held(_: int) -> int:
        barrier.wait(timeout=60)
        return id(worker_state())

    with ThreadPool(2, initializer=lambda: object()) as pool:
        ids = list(pool.map(held, range(2), chunksize=1))
    assert len(set(ids)) == 2


def test_process_pool_state_is_per_process_and_stays_there() -> None:
    # The initializer's result is never pickled (Resource holds a lock); one object per worker
    # process, the same one for every task of that worker.
    with ProcessPool(2, initializer=make_resource, initargs=("p",)) as pool:
        seen = {pool.submit(use_resource, i).result()[0] for i in range(10)}
    by_pid: dict[str, set[str]] = {}
    for described in seen:
        _, pid, obj = described.split(":")
        by_pid.setdefault(pid, set()).add(obj)
    assert all(len(objs) == 1 for objs in by_pid.values())


def test_process_pool_replacement_worker_has_its_own_state() -> None:
    with ProcessPool(1, initializer=make_resource, initargs=("r",), max_tasks_per_worker=1) as pool:
        first = pool.submit(use_resource, 1).result()[0]
        second = pool.submit(use_resource, 1).result()[0]
    assert first.split(":")[1] != second.split(":")[1]


def test_outside_a_worker_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match=r"only available in a task running on a pool worker"):
        worker_state()


def test_a_plain_thread_is_not_a_worker() -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker_state()
        except RuntimeError as exc:
            errors.append(exc)

    with ThreadPool(1, initializer=lambda: "x"):
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
    assert len(errors) == 1


def test_innermost_pool_wins() -> None:
    def inner() -> object:
        with ThreadPool(1, initializer=lambda: "inner") as pool:
            return pool.submit(read_state).result()

    with ProcessPool(1, initializer=lambda: "outer") as pool:
        assert pool.submit(read_state).result() == "outer"
        assert pool.submit(inner).result() == "inner"

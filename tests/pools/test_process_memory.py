"""``max_memory_per_worker``: a worker above the limit after a task is replaced once it has
delivered its result; a task that takes its worker over the limit while it runs fails with
``WorkerMemoryError``; bad limits are refused at the call."""

from __future__ import annotations

import math
import os

import _memory_tasks as tasks
import pytest

from concurrency_kit import (
    ProcessEvent,
    ProcessPool,
    WorkerCrashedError,
    WorkerMemoryError,
)
from concurrency_kit.pools import process

MiB = 1 << 20
LIMIT = 300 * MiB
"""Well above a fresh worker (about 30 MiB here), well below the machine."""


def test_worker_over_the_limit_after_a_task_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the check after each answer may act here: the periodic look at running tasks is
    # pushed out of reach, so the growing task cannot be caught mid-way (a race by design).
    monkeypatch.setattr(process, "MEMORY_CHECK_INTERVAL", 1e6)
    with ProcessPool(1, max_memory_per_worker=LIMIT) as pool:
        first = pool.submit(tasks.getpid).result()
        fat = pool.submit(tasks.grow_and_keep, LIMIT + 50 * MiB).result()  # delivered
        assert fat == first
        after = pool.submit(tasks.getpid).result()
        assert after != first  # a fresh worker took its place
        again = pool.submit(tasks.getpid).result()
        assert again == after  # the fresh one is under the limit: it stays
        stats = pool.statistics()
    assert stats.workers_replaced == 1
    assert stats.tasks_crashed == 0
    assert stats.tasks_completed == 4


def test_queued_tasks_survive_a_replacement(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "MEMORY_CHECK_INTERVAL", 1e6)
    with ProcessPool(1, max_memory_per_worker=LIMIT) as pool:
        fat = pool.submit(tasks.grow_and_keep, LIMIT + 50 * MiB)
        rest = [pool.submit(tasks.getpid) for _ in range(20)]
        fat_pid = fat.result()
        pids = [future.result() for future in rest]
    # Every task finished; none of them failed with the worker that was replaced.
    assert len(pids) == 20
    assert pids[-1] != fat_pid


def test_task_over_the_limit_while_running_fails() -> None:
    event = ProcessEvent()
    try:
        with ProcessPool(1, max_memory_per_worker=LIMIT) as pool:
            first = pool.submit(tasks.getpid).result()
            doomed = pool.submit(tasks.grow_and_wait, LIMIT + 100 * MiB, event)
            with pytest.raises(WorkerMemoryError) as caught:
                doomed.result(timeout=120)
            # The pool goes on with a fresh worker.
            assert pool.submit(tasks.getpid).result() != first
            stats = pool.statistics()
    finally:
        event.set()
        event.close()
    error = caught.value
    assert isinstance(error, WorkerCrashedError)
    assert isinstance(error, MemoryError)
    assert error.pid == first
    assert error.limit == LIMIT
    assert error.rss > LIMIT
    assert "max_memory_per_worker" in str(error)
    assert stats.tasks_crashed == 1
    assert stats.workers_replaced == 1


def test_limit_below_a_fresh_worker_breaks_the_pool_clearly() -> None:
    from concurrency_kit import BrokenPoolError

    with ProcessPool(1, max_memory_per_worker=1 * MiB) as pool:
        future = pool.submit(tasks.getpid)
        with pytest.raises(BrokenPoolError, match="a fresh worker already uses"):
            future.result(timeout=120)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (LIMIT, LIMIT),
        (float(LIMIT), LIMIT),
        ("512 MiB", 512 * MiB),
        ("512MiB", 512 * MiB),
        ("1.5 GiB", 3 * 512 * MiB),
        ("2 GB", 2 * 10**9),
        ("4096", 4096),
        (None, None),
    ],
)
def test_limit_values(value: object, expected: int | None) -> None:
    pool = ProcessPool(1, max_memory_per_worker=value)  # type: ignore[arg-type]
    try:
        assert pool.max_memory_per_worker == expected
    finally:
        pool.shutdown()


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0, ValueError),
        (-1, ValueError),
        ("0 MiB", ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        (1 << 80, ValueError),  # more than any machine's memory
        (10.5, ValueError),
        ("lots", ValueError),
        ("12 parsecs", ValueError),
        (True, TypeError),
        (False, TypeError),
        ([1], TypeError),
    ],
)
def test_bad_limits_are_refused_at_the_call(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_memory_per_worker"):
        ProcessPool(1, max_memory_per_worker=value)  # type: ignore[arg-type]


def test_no_limit_by_default() -> None:
    with ProcessPool(1) as pool:
        assert pool.max_memory_per_worker is None
        assert pool.submit(os.getpid).result() > 0

"""A thread of a pool never dies silently, and the pools' counters never drift.

If the pool's own code fails in one of its threads (the process pool's dispatcher, the thread
pool's watchdog or a worker thread), the pool breaks loudly: every unfinished and later call
fails with :class:`~concurrency_kit.BrokenPoolError` chained to the cause, nothing hangs, the
workers are stopped. The failures are injected by replacing an internal the thread calls; the
replacement waits on an event the test sets, so the order of events is the test's, not the
scheduler's. Time limits only turn a deadlock into a failure.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import _fault_tasks as tasks
import pytest

from concurrency_kit import BrokenPoolError, ProcessPool, ThreadPool
from concurrency_kit.pools import process as process_module
from concurrency_kit.pools import thread as thread_module

DEADLOCK = 30.0
"""Seconds after which a wait that should have ended is a deadlock (a failure, not a pass)."""


def assert_broken_by(future: Any, cause: BaseException) -> None:
    with pytest.raises(BrokenPoolError) as info:
        future.result(timeout=DEADLOCK)
    assert info.value.__cause__ is cause


# -- ProcessPool: the dispatcher thread --------------------------------------------------------


def test_dispatcher_failure_breaks_the_process_pool(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    injected = RuntimeError("injected dispatcher failure")

    def fail(self: object) -> None:
        raise injected

    pool = ProcessPool(2)
    try:
        assert pool.submit(tasks.square, 3).result(timeout=DEADLOCK) == 9  # one worker, idle
        running = pool.submit(tasks.wait_gate, str(gate))  # sent to it: it never returns
        # The next task finds no idle worker, so the dispatcher is woken to start one: that
        # is where it fails.
        monkeypatch.setattr(process_module._Core, "_spawn", fail)
        pending = pool.submit(tasks.square, 4)
        assert_broken_by(pending, injected)
        assert_broken_by(running, injected)
        with pytest.raises(BrokenPoolError) as info:
            pool.submit(tasks.square, 5)
        assert info.value.__cause__ is injected
        with pytest.raises(BrokenPoolError):
            pool.schedule(tasks.square, (5,), timeout=DEADLOCK)
        with pytest.raises(BrokenPoolError):
            pool.map(tasks.square, [1])
    finally:
        pool.shutdown(wait=True)
    stats = pool.statistics()
    assert (stats.workers_alive, stats.tasks_queued) == (0, 0)  # its worker was killed, reaped


# -- ThreadPool: the watchdog and the worker threads -------------------------------------------


def test_watchdog_failure_breaks_the_thread_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    injected = RuntimeError("injected watchdog failure")
    armed, gate, started = threading.Event(), threading.Event(), threading.Event()
    stuck: list[threading.Thread] = []

    def fail(self: object, item: object) -> None:  # the watchdog calls it at a deadline
        armed.wait(DEADLOCK)
        raise injected

    def hold() -> str:
        stuck.append(threading.current_thread())
        started.set()
        gate.wait(DEADLOCK)
        return "late"

    monkeypatch.setattr(thread_module._Core, "expire", fail)
    pool = ThreadPool(1)
    try:
        late = pool.schedule(hold, timeout=0.01)
        assert started.wait(DEADLOCK)
        queued = pool.submit(str, "never runs")
        armed.set()
        assert_broken_by(late, injected)  # the task it was timing does not hang
        assert_broken_by(queued, injected)
        with pytest.raises(BrokenPoolError):
            pool.submit(str, "refused")
    finally:
        gate.set()
        pool.shutdown(wait=True)
        for thread in stuck:
            thread.join(DEADLOCK)
    assert late.exception(timeout=0) is not None  # its late result did not overwrite the error
    assert pool.statistics().tasks_queued == 0


def test_worker_thread_failure_breaks_the_thread_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    injected = RuntimeError("injected worker failure")
    gate, started = threading.Event(), threading.Event()

    def hold() -> str:
        started.set()
        gate.wait(DEADLOCK)
        return "first"

    def fail(self: object, worker: object, item: object) -> None:
        raise injected

    monkeypatch.setattr(thread_module._Core, "_run_timed", fail)
    pool = ThreadPool(1)
    try:
        first = pool.submit(hold)
        assert started.wait(DEADLOCK)
        timed = pool.schedule(str, ("x",), timeout=DEADLOCK)  # the worker fails around it
        queued = pool.submit(str, "never runs")
        gate.set()
        assert first.result(timeout=DEADLOCK) == "first"
        assert_broken_by(timed, injected)
        assert_broken_by(queued, injected)
        with pytest.raises(BrokenPoolError):
            pool.submit(str, "refused")
    finally:
        gate.set()
        pool.shutdown(wait=True)
    stats = pool.statistics()
    assert (stats.workers_alive, stats.tasks_queued) == (0, 0)


def failing_initializer() -> None:
    raise OSError("no database")


def test_thread_pool_queued_count_after_a_broken_initializer() -> None:
    # The break wakes every possible worker with a sentinel on the queue; those used to be
    # counted as queued tasks (max_workers of them, minus the workers left).
    pool = ThreadPool(4, initializer=failing_initializer)
    future = pool.submit(str, 1)
    with pytest.raises(BrokenPoolError):
        future.result(timeout=DEADLOCK)
    pool.shutdown(wait=True)
    stats = pool.statistics()
    assert (stats.tasks_queued, stats.workers_alive) == (0, 0)

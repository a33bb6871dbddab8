"""A caller waiting in ``result()`` reads its worker's answers itself (``_Core.help``).

Whichever thread reads a frame — the dispatcher or a waiting caller — the pool must behave the
same. The risky frames are those that need the dispatcher afterwards: a START (its timer), the
end of a dead worker's pipe, and the last answer during a shutdown. To make the caller the
reader every time, the ``caller_reads`` fixture lets callers watch for as long as the task takes
(``HELP_SPIN`` raised to the deadlock limit) and keeps the dispatcher from reading event pipes
while a caller is watching; a spy records what callers read, so each test can check that it
exercised what it meant to. A missing wake-up of the dispatcher then shows as a hang, caught by
the deadlock timeout.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import _fault_tasks as tasks
import pytest

from concurrency_kit import ProcessPool, TaskTimeoutError, WorkerCrashedError
from concurrency_kit.pools import _frames
from concurrency_kit.pools import process as process_module

DEADLOCK = 20.0


Core = process_module._Core


def in_dispatcher() -> bool:
    return threading.current_thread().name.endswith("-dispatcher")


@pytest.fixture
def caller_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Callers read every frame while they wait; yields the kinds of frame they read."""
    monkeypatch.setattr(process_module, "HELP_SPIN", DEADLOCK)
    kinds: list[int] = []
    helping = threading.Event()
    real_help, real_read, real_on_frame = Core.help, Core._read_events_locked, Core._on_frame_locked

    def help(self: Core, future: process_module._ProcessFuture) -> None:
        helping.set()
        try:
            real_help(self, future)
        finally:
            helping.clear()

    def read(self: Core, worker: Any, actions: Any, seen: Any = None) -> None:
        if in_dispatcher() and helping.is_set():
            return  # stand aside: the caller reads it (epoll reports the pipe again)
        real_read(self, worker, actions, seen)

    def on_frame(self: Core, worker: Any, actions: Any, kind: int, *rest: Any) -> None:
        if not in_dispatcher():
            kinds.append(kind)
        real_on_frame(self, worker, actions, kind, *rest)

    monkeypatch.setattr(Core, "help", help)
    monkeypatch.setattr(Core, "_read_events_locked", read)
    monkeypatch.setattr(Core, "_on_frame_locked", on_frame)
    return kinds


def warm(pool: ProcessPool) -> None:
    """Run short tasks until the pool's average task is short, so that callers help.

    The first task's time includes the worker's start-up; the average forgets it gradually.
    """
    for x in range(1000):
        assert pool.submit(tasks.square, x).result(timeout=DEADLOCK) == x * x
        average = pool._core.avg_duration
        if average is not None and average < process_module.HELP_SHORTER_THAN:
            return
    raise AssertionError(f"tasks of x * x average {average} s: the machine is far too slow")


def test_answers_read_by_callers_are_delivered_in_order(caller_reads: list[int]) -> None:
    with ProcessPool(1) as pool:
        warm(pool)
        done_before = pool.statistics().tasks_completed
        # Fewer than PREFETCH: all are queued at the one worker, and waiting for the last
        # reads the answers of the others.
        futures = [pool.submit(tasks.square, x) for x in range(process_module.PREFETCH // 2)]
        assert futures[-1].result(timeout=DEADLOCK) == (len(futures) - 1) ** 2
        assert [f.result(timeout=DEADLOCK) for f in futures] == [x * x for x in range(32)]
        assert pool.statistics().tasks_completed == done_before + len(futures)
    assert _frames.OK in caller_reads


def test_a_start_read_by_a_caller_still_starts_the_timeout(caller_reads: list[int]) -> None:
    with ProcessPool(1) as pool:
        for _ in range(3):
            warm(pool)
            del caller_reads[:]
            future = pool.schedule(tasks.sleep_then, (3600, None), timeout=0.05)
            started = time.monotonic()
            with pytest.raises(TaskTimeoutError):
                future.result(timeout=DEADLOCK)
            assert time.monotonic() - started < DEADLOCK / 2
            assert caller_reads == [_frames.START]
        assert pool.submit(tasks.square, 3).result(timeout=DEADLOCK) == 9


@pytest.mark.usefixtures("caller_reads")
def test_a_crash_seen_by_a_caller_fails_only_its_task() -> None:
    with ProcessPool(1) as pool:
        warm(pool)
        crashing = pool.submit(tasks.crash_on, 1, 1)
        with pytest.raises(WorkerCrashedError) as caught:
            crashing.result(timeout=DEADLOCK)
        assert caught.value.exitcode == 3
        assert pool.submit(tasks.square, 4).result(timeout=DEADLOCK) == 16
        assert pool.statistics().workers_replaced == 1


def test_shutdown_ends_when_a_caller_reads_the_last_answer(caller_reads: list[int]) -> None:
    pool = ProcessPool(1)
    warm(pool)
    future = pool.submit(tasks.sleep_then, 0.05, "done")
    outcome: list[object] = []
    waiter = threading.Thread(target=lambda: outcome.append(future.result(timeout=DEADLOCK)))
    waiter.start()
    pool.shutdown(wait=True)  # returns only if the dispatcher learns that the task finished
    waiter.join(DEADLOCK)
    assert not waiter.is_alive()
    assert outcome == ["done"]
    assert caller_reads[-1] == _frames.OK


def test_callers_do_not_help_with_long_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    with ProcessPool(1) as pool:
        for _ in range(3):
            pool.submit(tasks.sleep_then, 0.01, None).result(timeout=DEADLOCK)
        calls: list[float] = []
        real = process_module.select.poll

        def counting_poll() -> object:
            calls.append(time.monotonic())
            return real()

        monkeypatch.setattr(process_module.select, "poll", counting_poll)
        assert pool.submit(tasks.sleep_then, 0.01, "slow").result(timeout=DEADLOCK) == "slow"
        assert calls == []  # the average task is 10 ms: the caller slept at once

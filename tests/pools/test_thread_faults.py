"""Fault tests for ThreadPool: timeouts (a thread cannot be killed), cancels, a broken
initializer, and exceptions.

Tasks block on :class:`threading.Event` objects the test controls, and every such event is set
on the way out (:func:`released`), so a failing test does not leave a thread stuck forever.
The time limits only turn a deadlock into a failure.
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import BrokenExecutor, CancelledError

import pytest

from concurrency_kit import BrokenPoolError, TaskTimeoutError, ThreadPool

DEADLOCK = 20.0
"""Seconds after which a wait that should have ended is a deadlock (a failure, not a pass)."""


class Holder:
    """A task that reports which thread runs it, then blocks until :meth:`release`."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.gate = threading.Event()
        self.thread: threading.Thread | None = None

    def __call__(self, value: object = None) -> object:
        self.thread = threading.current_thread()
        self.started.set()
        self.gate.wait()
        return value

    def wait_started(self) -> threading.Thread:
        assert self.started.wait(DEADLOCK), "the task never started (deadlock?)"
        assert self.thread is not None
        return self.thread

    def release(self) -> None:
        self.gate.set()


@contextlib.contextmanager
def released(*holders: Holder) -> Iterator[None]:
    """Whatever happens, let every holder's task finish on the way out."""
    try:
        yield
    finally:
        for holder in holders:
            holder.release()


def current_thread_name() -> str:
    return threading.current_thread().name


class CustomError(Exception):
    pass


def distinctive_inner_function(raised: list[BaseException]) -> None:
    error = CustomError("bad value 42")
    raised.append(error)
    raise error


def call_inner(raised: list[BaseException]) -> None:
    distinctive_inner_function(raised)


# -- timeouts ---------------------------------------------------------------------------------


def test_timeout_abandons_the_stuck_thread_and_replaces_it() -> None:
    stuck = Holder()
    with released(stuck):
        pool = ThreadPool(1)
        try:
            submitted = time.monotonic()
            late = pool.schedule(stuck, ("never returned",), timeout=0.3)
            stuck_thread = stuck.wait_started()
            with pytest.raises(TaskTimeoutError) as info:
                late.result(timeout=DEADLOCK)
            assert time.monotonic() - submitted >= 0.3  # never before its deadline
            assert isinstance(info.value, TimeoutError)
            assert "abandoned" in str(info.value)
            assert stuck_thread.is_alive()  # a thread cannot be killed: it is still blocked

            stats = pool.statistics()
            assert (stats.tasks_timed_out, stats.workers_abandoned) == (1, 1)
            assert stats.workers_replaced == 1
            # A replacement keeps the pool at full strength while the stuck thread is blocked.
            name = pool.submit(current_thread_name).result(timeout=DEADLOCK)
            assert name != stuck_thread.name
            assert stuck_thread.is_alive()
            assert pool.statistics().workers_alive == 1
        finally:
            # shutdown(wait=True) does not wait for the abandoned thread (it would hang).
            shutdown = threading.Thread(target=pool.shutdown, name="test-shutdown")
            shutdown.start()
            shutdown.join(DEADLOCK)
        assert not shutdown.is_alive(), "shutdown waited for the abandoned thread"
        assert stuck_thread.is_alive()
        stuck.release()
        stuck_thread.join(DEADLOCK)
        assert not stuck_thread.is_alive(), "the abandoned thread did not exit once released"
        assert stuck_thread not in threading.enumerate()
    assert late.exception(timeout=0) is info.value  # its late result did not overwrite it
    stats = pool.statistics()
    assert stats.workers_abandoned == 0
    assert stats.tasks_completed == 1  # the replacement's task; the late one is not counted


def test_task_within_its_timeout_succeeds() -> None:
    holder = Holder()
    with released(holder), ThreadPool(1) as pool:
        first = pool.schedule(holder, ("in time",), timeout=DEADLOCK)
        thread = holder.wait_started()
        holder.release()
        assert first.result(timeout=DEADLOCK) == "in time"
        assert pool.submit(current_thread_name).result(timeout=DEADLOCK) == thread.name
        stats = pool.statistics()
        assert (stats.tasks_timed_out, stats.workers_abandoned, stats.workers_replaced) == (0, 0, 0)


def test_timeout_counts_from_start_not_from_queueing() -> None:
    # The first task keeps the only thread busy for three times the second task's timeout;
    # the second, queued all that time, must not time out.
    timeout = 0.3
    with ThreadPool(1) as pool:
        first = pool.submit(time.sleep, 3 * timeout)
        second = pool.schedule(current_thread_name, timeout=timeout)
        assert first.result(timeout=DEADLOCK) is None
        assert second.result(timeout=DEADLOCK).startswith(pool.name)
        assert pool.statistics().tasks_timed_out == 0


# -- cancel -----------------------------------------------------------------------------------


def test_cancel_running_task_returns_false_and_it_completes() -> None:
    holder = Holder()
    with released(holder), ThreadPool(1) as pool:
        running = pool.submit(holder, "finished anyway")
        holder.wait_started()
        assert running.cancel() is False
        assert not running.cancelled()
        holder.release()
        assert running.result(timeout=DEADLOCK) == "finished anyway"
        assert pool.statistics().tasks_cancelled == 0


def test_cancel_queued_task_never_runs() -> None:
    holder = Holder()
    ran: list[int] = []
    with released(holder), ThreadPool(1) as pool:
        first = pool.submit(holder, "first")
        holder.wait_started()
        queued = [pool.submit(ran.append, i) for i in range(6)]
        for future in queued[0::2]:
            assert future.cancel() is True
            assert future.cancelled()
        holder.release()
        assert first.result(timeout=DEADLOCK) == "first"
        assert [f.result(timeout=DEADLOCK) for f in queued[1::2]] == [None] * 3
        for future in queued[0::2]:
            with pytest.raises(CancelledError):
                future.result(timeout=0)
        assert pool.statistics().tasks_cancelled == 3
    assert ran == [1, 3, 5]


def test_cancel_finished_task_returns_false() -> None:
    with ThreadPool(1) as pool:
        done = pool.submit(abs, -2)
        assert done.result(timeout=DEADLOCK) == 2
        failed = pool.submit(call_inner, [])
        with pytest.raises(CustomError):
            failed.result(timeout=DEADLOCK)
        for future in (done, failed):
            assert future.cancel() is False
            assert not future.cancelled()


# -- initializer and exceptions ---------------------------------------------------------------


def failing_initializer(message: str) -> None:
    raise RuntimeError(message)


def test_initializer_that_raises_breaks_the_pool() -> None:
    with ThreadPool(2, initializer=failing_initializer, initargs=("init boom",)) as pool:
        # The first task's future fails; a later submit may fail at once instead, depending
        # on how soon the pool notices. Either way: BrokenPoolError caused by the initializer.
        errors: list[BrokenPoolError] = []
        for i in range(4):
            try:
                future = pool.submit(abs, -i)
            except BrokenPoolError as exc:
                assert i > 0, "the pool was broken before any initializer ran"
                errors.append(exc)
                continue
            with pytest.raises(BrokenPoolError) as info:
                future.result(timeout=DEADLOCK)
            errors.append(info.value)
        with pytest.raises(BrokenPoolError) as later:
            pool.submit(abs, -1)
        for error in [*errors, later.value]:
            assert isinstance(error, BrokenExecutor)
            assert "initializer" in str(error)
            cause = error.__cause__
            assert isinstance(cause, RuntimeError)
            assert str(cause) == "init boom"
        assert pool.statistics().workers_replaced == 0  # no restart loop
    # (leaving the block returned: shutdown of a broken pool does not hang)


def test_exception_propagates_with_its_original_traceback() -> None:
    raised: list[BaseException] = []
    with ThreadPool(1) as pool:
        future = pool.submit(call_inner, raised)
        with pytest.raises(CustomError, match="bad value 42") as info:
            future.result(timeout=DEADLOCK)
    assert info.value is raised[0]  # the very object, not a copy
    frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert frames[-2:] == ["call_inner", "distinctive_inner_function"]


def exit_thread() -> None:
    raise SystemExit(3)


def test_system_exit_in_a_task_fails_only_its_future() -> None:
    with ThreadPool(1) as pool:
        name = pool.submit(current_thread_name).result(timeout=DEADLOCK)
        with pytest.raises(SystemExit) as info:
            pool.submit(exit_thread).result(timeout=DEADLOCK)
        assert info.value.code == 3
        assert pool.submit(current_thread_name).result(timeout=DEADLOCK) == name
        stats = pool.statistics()
        assert (stats.tasks_failed, stats.tasks_completed, stats.workers_alive) == (1, 2, 1)

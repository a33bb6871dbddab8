"""The contract of the supervisors' async face (issue 18), for both models and both event loops.

Every test takes ``model`` (PROCESS, THREAD) and ``backend`` (asyncio, trio) and runs its body
in that event loop with :func:`run`: ``wait_async`` returns when the supervisor stops, times out
as ``wait`` does, raises what ``wait`` raises, and a cancelled one leaves no listener behind;
``aevents`` replays, follows restarts, ends on stop, reports a slow consumer's loss, and
unsubscribes when left early; a hundred waiting tasks add no thread.

Synchronization, never sleeps: a task is known to wait once the supervisor lists its listener
(``_listeners``: looked at between checkpoints); a child's crash is known from the events
themselves. Children are the targets of ``_fault_targets`` and ``_log_targets``. The one
timeout that expires on purpose is :data:`SHORT`; every other limit only turns a deadlock into
a failure.

``stop()`` is called from the event loop's thread where a test needs the supervisor stopped:
it blocks that loop until the supervisor has stopped, while the supervisor's own thread records
the last events and wakes the waiting tasks (through ``call_soon_threadsafe`` or trio's token).
"""

from __future__ import annotations

import gc
import math
import os
import random
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from _event_loops import run
from concurrency_kit import (
    PROCESS,
    THREAD,
    ChildSpec,
    Model,
    ProcessSupervisor,
    SupervisorEvent,
    SupervisorEventsLost,
    SupervisorEventStream,
    SupervisorGaveUp,
    ThreadSupervisor,
)
from supervision import _fault_targets as fault_targets
from supervision import _log_targets as log_targets

DEADLOCK = 60.0
"""Seconds after which a wait that should have ended is a deadlock (a failure, not a pass)."""

SHORT = 0.05
"""The one timeout that expires on purpose in a test."""

WAITERS = 100

Supervisor = ProcessSupervisor | ThreadSupervisor


@pytest.fixture
def report(tmp_path: Path) -> Iterator[str]:
    """A FIFO children may report to: held open here (read and write), so a write never blocks."""
    path = tmp_path / "report"
    os.mkfifo(path)
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    try:
        yield str(path)
    finally:
        os.close(fd)


def quiet(model: Model, *children: str, **options: Any) -> Supervisor:
    """A supervisor of cooperative children that run until asked to stop."""
    supervisor: Supervisor = model.Supervisor(
        [ChildSpec(i, log_targets.run_until_stopped, shutdown=DEADLOCK) for i in children],
        **options,
    )
    return supervisor


def crashing(
    model: Model, tmp_path: Path, report: str, crashes: int, kind: str, **options: Any
) -> Supervisor:
    """A supervisor of one child ``"c"`` that dies the ``kind`` way on its first ``crashes``
    runs, then runs until asked to stop. Every restart counts (an infinite period)."""
    spec = ChildSpec(
        "c",
        fault_targets.crash_until,
        (str(tmp_path / "c.runs"), crashes, report, kind),
        shutdown=DEADLOCK,
    )
    options.setdefault("period", math.inf)
    supervisor: Supervisor = model.Supervisor([spec], **options)
    return supervisor


def pairs(events: Sequence[SupervisorEvent]) -> list[tuple[str, str | None]]:
    return [(e.kind, e.child_id) for e in events]


async def until(predicate: Callable[[], bool]) -> None:
    """Let the event loop run until ``predicate()`` holds (a failure after ``DEADLOCK``)."""
    with anyio.fail_after(DEADLOCK):
        while not predicate():
            await anyio.lowlevel.checkpoint()


def listeners(supervisor: Supervisor) -> int:
    """How many async waiters (``wait_async``) and streams (``aevents``) are registered."""
    return len(supervisor._listeners)


def os_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:  # pragma: no cover - not Linux
        return threading.active_count()


# -- wait_async ------------------------------------------------------------------------------


def test_wait_async_returns_when_the_supervisor_stops(model: Model, backend: str) -> None:
    supervisor = quiet(model, "a")

    async def main() -> None:
        with supervisor:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(supervisor.wait_async)
                tasks.start_soon(supervisor.wait_async, 10 * DEADLOCK)
                await until(lambda: listeners(supervisor) == 2)
                supervisor.stop()
        assert listeners(supervisor) == 0
        await supervisor.wait_async()  # stopped: at once, whatever the timeout
        await supervisor.wait_async(0)

    run(backend, main)


@pytest.mark.parametrize("timeout", [None, math.inf, 1e300, 10**400], ids=repr)
def test_wait_async_without_a_limit_waits_for_the_stop(
    model: Model, backend: str, timeout: float | None
) -> None:
    supervisor = quiet(model, "a")
    ended: list[bool] = []

    async def waiter() -> None:
        await supervisor.wait_async(timeout)
        ended.append(True)

    async def main() -> None:
        with supervisor:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(waiter)
                await until(lambda: listeners(supervisor) == 1)
                assert ended == []
                supervisor.stop()
        assert ended == [True]

    run(backend, main)


def test_wait_async_times_out_as_wait_does(model: Model, backend: str) -> None:
    supervisor = quiet(model, "a")

    async def main() -> None:
        with supervisor:
            with pytest.raises(TimeoutError, match="still running after 0 seconds"):
                await supervisor.wait_async(0)  # looks only
            with pytest.raises(TimeoutError, match=f"still running after {SHORT} seconds"):
                await supervisor.wait_async(SHORT)
            assert listeners(supervisor) == 0
            with pytest.raises(TimeoutError):
                supervisor.wait(0)  # the same answer as the synchronous wait

    run(backend, main)


@pytest.mark.parametrize(
    ("timeout", "error"),
    [(-1, ValueError), (-math.inf, ValueError), (math.nan, ValueError), ("1", TypeError)],
    ids=repr,
)
def test_wait_async_refuses_bad_timeouts(
    model: Model, backend: str, timeout: Any, error: type[Exception]
) -> None:
    supervisor = quiet(model, "a")

    async def main() -> None:
        with supervisor:
            with pytest.raises(error):
                await supervisor.wait_async(timeout)
            with pytest.raises(error):
                supervisor.wait(timeout)  # as wait() does
            with pytest.raises(TypeError):
                await supervisor.wait_async(True)
            assert listeners(supervisor) == 0

    run(backend, main)


def test_wait_async_raises_supervisor_gave_up(
    model: Model, backend: str, tmp_path: Path, report: str
) -> None:
    supervisor = crashing(model, tmp_path, report, crashes=5, kind="exception", intensity=0)

    async def main() -> None:
        supervisor.start()
        try:
            with pytest.raises(SupervisorGaveUp) as caught:
                await supervisor.wait_async(DEADLOCK)
        finally:
            supervisor.stop()
        assert pairs(caught.value.history) == [("start", "c"), ("exit", "c"), ("give_up", None)]
        assert caught.value.history[1].exception == "ValueError"
        with pytest.raises(SupervisorGaveUp):
            await supervisor.wait_async(0)  # and again, at once

    run(backend, main)


def test_a_cancelled_wait_async_leaves_nothing_behind(model: Model, backend: str) -> None:
    supervisor = quiet(model, "a")
    rng = random.Random(18)

    async def main() -> None:
        with supervisor:
            # cancelled while waiting, all at once
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as tasks:
                    for _ in range(10):
                        tasks.start_soon(supervisor.wait_async)
                    await until(lambda: listeners(supervisor) == 10)
                    scope.cancel()
            assert listeners(supervisor) == 0
            # cancelled wherever a deadline of zero or a few microseconds lands
            for _ in range(200):
                with anyio.move_on_after(rng.choice([0, 1e-6, 1e-5, 1e-4])):
                    await supervisor.wait_async()
                assert listeners(supervisor) == 0
            # timed out by asyncio's or trio's own timeout, on the way to a wait_async timeout
            with anyio.move_on_after(SHORT):
                await supervisor.wait_async(DEADLOCK)
            assert listeners(supervisor) == 0
        await supervisor.wait_async(0)  # stopped afterwards, as usual

    run(backend, main)


# -- aevents ---------------------------------------------------------------------------------


def test_aevents_sees_the_restarts_of_a_crashing_child_then_ends(
    model: Model, backend: str, tmp_path: Path, report: str
) -> None:
    supervisor = crashing(model, tmp_path, report, crashes=2, kind="exception", intensity=10)

    async def main() -> list[SupervisorEvent]:
        seen: list[SupervisorEvent] = []
        with supervisor:
            async for event in supervisor.aevents():
                seen.append(event)
                if pairs(seen).count(("start", "c")) == 3:  # two crashes, two restarts
                    supervisor.stop()  # the rest arrives meanwhile, then the iteration ends
        assert listeners(supervisor) == 0
        return seen

    seen = run(backend, main)
    assert pairs(seen) == [
        ("start", "c"),
        ("exit", "c"),
        ("restart", "c"),
        ("start", "c"),
        ("exit", "c"),
        ("restart", "c"),
        ("start", "c"),
        ("exit", "c"),
        ("stop", None),
    ]
    crashes = [e for e in seen if e.kind == "exit" and not e.normal]
    assert [e.exception for e in crashes] == ["ValueError", "ValueError"]
    assert seen[-2].normal is True  # asked to stop
    assert seen == supervisor.events()  # in order, none missed, none repeated


def test_aevents_replays_the_history_and_follows_each_new_event(model: Model, backend: str) -> None:
    supervisor = quiet(model, "a", "b")

    async def main() -> None:
        with supervisor:
            # started: the starts are replayed (as subscribe() does), unless replay=False
            everything = supervisor.aevents()
            new_only = supervisor.aevents(replay=False)
            assert pairs([await everything.__anext__() for _ in range(2)]) == [
                ("start", "a"),
                ("start", "b"),
            ]
            supervisor.terminate_child("b")
            assert pairs([await everything.__anext__()]) == [("exit", "b")]
            assert pairs([await new_only.__anext__()]) == [("exit", "b")]
            supervisor.restart_child("b")
        assert pairs([e async for e in everything]) == [
            ("start", "b"),
            ("exit", "b"),
            ("exit", "a"),
            ("stop", None),
        ]
        assert pairs([e async for e in new_only])[-1] == ("stop", None)
        # stopped: the history, and the end
        assert [e async for e in supervisor.aevents()] == supervisor.events()
        assert [e async for e in supervisor.aevents(replay=False)] == []
        assert listeners(supervisor) == 0

    run(backend, main)


def test_every_stream_sees_every_event(model: Model, backend: str) -> None:
    supervisor = quiet(model, "a")

    async def consume(into: list[SupervisorEvent]) -> None:
        async for event in supervisor.aevents():
            into.append(event)

    async def main() -> None:
        streams: list[list[SupervisorEvent]] = [[] for _ in range(3)]
        with supervisor:
            async with anyio.create_task_group() as tasks:
                for into in streams:
                    tasks.start_soon(consume, into)
                await until(lambda: listeners(supervisor) == 3)
                supervisor.stop()
        assert streams == [supervisor.events()] * 3

    run(backend, main)


def test_breaking_out_of_aevents_unsubscribes(model: Model, backend: str) -> None:
    supervisor = quiet(model, "a")

    async def main() -> None:
        with supervisor:
            async for event in supervisor.aevents():
                assert event.kind == "start"
                assert listeners(supervisor) == 1
                break
            gc.collect()  # at once on CPython; other interpreters collect later
            assert listeners(supervisor) == 0

            stream = supervisor.aevents()
            assert listeners(supervisor) == 1
            await stream.aclose()
            assert listeners(supervisor) == 0
            assert [e async for e in stream] == []  # closed: ends at once
            await stream.aclose()  # idempotent

            async with supervisor.aevents() as events:
                assert (await events.__anext__()).kind == "start"
                assert listeners(supervisor) == 1
            assert listeners(supervisor) == 0

    run(backend, main)


def test_a_stream_collected_while_the_supervisor_is_busy_is_forgotten_at_the_next_event(
    model: Model, backend: str
) -> None:
    """A stream's ``__del__`` never waits for the supervisor's lock (the garbage collector may
    run it inside another lock): it marks the stream abandoned, and the next event forgets it."""
    supervisor = quiet(model, "a")
    held = threading.Event()
    release = threading.Event()

    def hold_the_lock() -> None:
        with supervisor._notify_lock:
            held.set()
            release.wait(DEADLOCK)

    async def main() -> None:
        with supervisor:
            stream = supervisor.aevents()
            holder = threading.Thread(target=hold_the_lock)
            holder.start()
            try:
                assert held.wait(DEADLOCK)
                del stream  # collected now, while another thread holds the lock
                gc.collect()
            finally:
                release.set()
                holder.join(DEADLOCK)
            assert listeners(supervisor) == 1  # marked, not yet forgotten
            supervisor.terminate_child("a")  # the next event
            assert listeners(supervisor) == 0

    run(backend, main)


def test_a_cancelled_aevents_consumer_unsubscribes_and_loses_nothing(
    model: Model, backend: str
) -> None:
    supervisor = quiet(model, "a")

    async def consume(stream: SupervisorEventStream, into: list[SupervisorEvent]) -> None:
        async for event in stream:
            into.append(event)

    async def consume_fresh() -> None:
        async for _ in supervisor.aevents(replay=False):
            pass

    async def main() -> None:
        with supervisor:
            # a task iterating over its own stream, cancelled while waiting: unsubscribed
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(consume_fresh)
                    await until(lambda: listeners(supervisor) == 1)
                    scope.cancel()
            gc.collect()
            assert listeners(supervisor) == 0

            # a cancelled step takes nothing: the event waits for the next one
            stream = supervisor.aevents(replay=False)
            with anyio.CancelScope() as scope:
                scope.cancel()
                await stream.__anext__()
            seen: list[SupervisorEvent] = []
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(consume, stream, seen)
                await until(lambda: bool(stream._feed.wakers))  # it waits now
                supervisor.terminate_child("a")
                await until(lambda: len(seen) == 1)
                tasks.cancel_scope.cancel()
            assert pairs(seen) == [("exit", "a")]
            assert listeners(supervisor) == 1  # the stream is still open
            await stream.aclose()
            assert listeners(supervisor) == 0

    run(backend, main)


def test_random_cancellations_during_a_stream_lose_no_event(model: Model, backend: str) -> None:
    """Another thread makes events (a child terminated and restarted, then the stop) while the
    consumer's steps are cancelled at random, by deadlines that land before, during or after
    the wait: every event is received once, in order."""
    supervisor = quiet(model, "a")
    cycles = 200 if model is THREAD else 15
    rng = random.Random(1818)

    def produce() -> None:
        for _ in range(cycles):
            supervisor.terminate_child("a")
            supervisor.restart_child("a")
        supervisor.stop()

    async def main() -> tuple[list[SupervisorEvent], int]:
        seen: list[SupervisorEvent] = []
        cancelled = 0
        supervisor.start()
        stream = supervisor.aevents()
        producer = threading.Thread(target=produce)
        producer.start()
        try:
            with anyio.fail_after(DEADLOCK):
                while True:
                    with anyio.move_on_after(rng.choice([0, 1e-6, 1e-5, 1e-4, 1e-3])) as scope:
                        try:
                            seen.append(await stream.__anext__())
                        except StopAsyncIteration:
                            break
                    cancelled += scope.cancelled_caught
        finally:
            producer.join(DEADLOCK)
            supervisor.stop()
        return seen, cancelled

    seen, cancelled = run(backend, main)
    assert seen == supervisor.events()
    assert len(seen) == 1 + 2 * cycles + 2  # start; (exit, start) per cycle; exit, stop
    assert cancelled > 0  # the deadlines did land (the point of the test)


def test_a_consumer_that_falls_behind_is_told_how_many_events_it_lost(
    model: Model, backend: str
) -> None:
    supervisor = quiet(model, "a", "b", "c")
    with supervisor:
        pass
    events = supervisor.events()
    assert len(events) == 7  # three starts, three exits, the stop

    async def main() -> None:
        stream = supervisor.aevents(max_buffered=2)
        with pytest.raises(SupervisorEventsLost, match="5 unread events") as caught:
            await stream.__anext__()
        assert caught.value.count == 5
        assert [e async for e in stream] == events[-2:]  # the newest, the stop included

        with pytest.raises(ValueError, match="max_buffered must be >= 1"):
            supervisor.aevents(max_buffered=0)
        with pytest.raises(TypeError):
            supervisor.aevents(max_buffered=True)
        with pytest.raises(TypeError):
            supervisor.aevents(max_buffered=2.0)  # type: ignore[arg-type]

    run(backend, main)


def test_a_slow_live_consumer_loses_the_oldest_events_and_is_told(
    model: Model, backend: str
) -> None:
    supervisor = quiet(model, "a")

    async def main() -> None:
        with supervisor:
            stream = supervisor.aevents(replay=False, max_buffered=3)
            for _ in range(3):  # six events, none taken
                supervisor.terminate_child("a")
                supervisor.restart_child("a")
            with pytest.raises(SupervisorEventsLost) as caught:
                await stream.__anext__()
            assert caught.value.count == 3
            kept = [await stream.__anext__() for _ in range(3)]
            assert kept == supervisor.events()[-3:]
        assert pairs([e async for e in stream]) == [("exit", "a"), ("stop", None)]

    run(backend, main)


def test_aevents_rejects_a_direct_construction() -> None:
    with pytest.raises(TypeError, match="aevents"):
        SupervisorEventStream()


# -- no thread per waiting task --------------------------------------------------------------


def test_a_hundred_waiting_tasks_add_no_thread(model: Model, backend: str) -> None:
    supervisor = quiet(model, "a")

    async def consume() -> None:
        async for _ in supervisor.aevents():
            pass

    async def main() -> None:
        with supervisor:
            before = os_threads()
            async with anyio.create_task_group() as tasks:
                for _ in range(WAITERS):
                    tasks.start_soon(supervisor.wait_async)
                    tasks.start_soon(consume)
                await until(lambda: listeners(supervisor) == 2 * WAITERS)
                assert os_threads() == before
                supervisor.stop()
        assert listeners(supervisor) == 0

    run(backend, main)


# -- faults ----------------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("intensity", [1, 0], ids=["restarted", "gives-up"])
def test_a_child_killed_with_sigkill_is_seen_by_an_awaiting_consumer(
    backend: str, intensity: int
) -> None:
    supervisor = quiet(PROCESS, "a", intensity=intensity, period=math.inf)

    async def main() -> list[SupervisorEvent]:
        seen: list[SupervisorEvent] = []
        outcome: list[BaseException | None] = []

        async def waiter() -> None:
            try:
                await supervisor.wait_async(DEADLOCK)
                outcome.append(None)
            except SupervisorGaveUp as exc:
                outcome.append(exc)

        supervisor.start()
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(waiter)
                async for event in supervisor.aevents():
                    seen.append(event)
                    if event.kind != "start":
                        continue
                    (child,) = supervisor.which_children()
                    assert child.pid is not None
                    if pairs(seen).count(("start", "a")) == 1:
                        os.kill(child.pid, signal.SIGKILL)
                    else:
                        supervisor.stop()  # restarted: done
        finally:
            supervisor.stop()
        if intensity == 0:
            assert isinstance(outcome[0], SupervisorGaveUp)
            assert outcome[0].history == tuple(seen)
        else:
            assert outcome == [None]
        return seen

    seen = run(backend, main)
    killed = seen[1]
    assert (killed.kind, killed.child_id, killed.normal) == ("exit", "a", False)
    assert (killed.exitcode, killed.signal) == (-signal.SIGKILL, signal.SIGKILL)
    if intensity == 0:
        assert pairs(seen) == [("start", "a"), ("exit", "a"), ("give_up", None)]
    else:
        assert pairs(seen) == [
            ("start", "a"),
            ("exit", "a"),
            ("restart", "a"),
            ("start", "a"),
            ("exit", "a"),
            ("stop", None),
        ]

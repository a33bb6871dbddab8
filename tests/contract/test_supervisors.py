"""The supervisor contract: one behaviour suite run over both models (the ``model`` fixture).

OTP semantics, as issue #7 states them: start order and reverse stop order, the three
strategies, the three restart types, restart intensity and giving up, normal and abnormal
exits, ``auto_shutdown``, dynamic children, events and statistics, :func:`current_child`,
shutdown, and a supervision tree.

Synchronization, never sleeps: children are the targets of ``supervision/_targets.py``. Each
writes ``start <id> <pid>`` to the channel's log FIFO once it runs and listens, then waits at
its gate FIFO for a command from the test (crash, return, ...) or a stop request, and writes
``stop <id>`` when it stops on request (:class:`Channel`). The test waits for those lines, and
for the supervisor's own events through :meth:`subscribe` (:class:`Watch`). A supervisor asks
the children it stops to stop all at once (issue #15), so their ``stop`` lines come in any
order: the stop order is read from the supervisor's ``exit`` events, recorded in reverse
order. Children start one after the other, but a child may *run* its first line before an
earlier sibling does, so the start order is read from the supervisor's ``start`` events.
Every time limit only turns a deadlock into a failure.
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

from concurrency_kit import (
    ALL_SIGNIFICANT,
    ANY_SIGNIFICANT,
    BRUTAL_KILL,
    NEVER,
    ONE_FOR_ALL,
    ONE_FOR_ONE,
    PERMANENT,
    PROCESS,
    REST_FOR_ONE,
    TEMPORARY,
    THREAD,
    TRANSIENT,
    Backoff,
    ChildContext,
    ChildCounts,
    ChildSpec,
    Model,
    ProcessSupervisor,
    Restart,
    Strategy,
    SupervisorEvent,
    SupervisorGaveUp,
    SupervisorStatistics,
    ThreadSupervisor,
    current_child,
)
from supervision import _targets as targets

DEADLOCK = 30.0
"""Seconds after which a wait that should have ended is a deadlock (a failure, not a pass)."""

Supervisor = ProcessSupervisor | ThreadSupervisor


# -- helpers ----------------------------------------------------------------------------------


class Channel:
    """The test's side of a channel directory (see ``_targets``): the log FIFO and the gates.

    The test holds the log FIFO open for reading and writing, so a child's ``open`` never
    blocks and reading never sees end-of-file.
    """

    def __init__(self, directory: Path) -> None:
        self.dir = str(directory)
        path = directory / targets.LOG
        os.mkfifo(path)
        self._fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self._buffer = b""
        self._lines: collections.deque[str] = collections.deque()
        self.pids: dict[str, int] = {}
        """The process id each child reported in its last ``start`` line."""

    def _take(self, data: bytes) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            words = raw.decode().split()
            if words[0] == "start":  # "start <id> <pid>": keep the pid aside
                self.pids[words[1]] = int(words[2])
                words = words[:2]
            self._lines.append(" ".join(words))

    def _read_available(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            self._take(data)

    def read(self, n: int) -> list[str]:
        """Wait for the next ``n`` lines the children write, and return them (pids removed)."""
        deadline = time.monotonic() + DEADLOCK
        while len(self._lines) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"waited for {n} lines, got only {list(self._lines)}")
            ready, _, _ = select.select([self._fd], [], [], remaining)
            if ready:
                self._read_available()
        return [self._lines.popleft() for _ in range(n)]

    def drain(self) -> list[str]:
        """Return every line written so far and not read yet (without waiting)."""
        self._read_available()
        lines = list(self._lines)
        self._lines.clear()
        return lines

    def poke(self, child_id: str, command: str) -> None:
        """Send ``command`` to the running child ``child_id`` (see ``_targets.act``)."""
        assert targets.poke(targets.gate_path(self.dir, child_id), command.encode()), child_id

    def spec(self, child_id: str, **options: object) -> ChildSpec:
        """A :func:`_targets.child` reporting to this channel."""
        return ChildSpec(child_id, targets.child, (self.dir, child_id), **options)  # type: ignore[arg-type]

    def close(self) -> None:
        os.close(self._fd)


class Watch:
    """The events of a supervisor as they happen (:meth:`subscribe`), to wait for."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._condition = threading.Condition()
        self._events: list[SupervisorEvent] = []
        supervisor.subscribe(self._on_event)

    def _on_event(self, event: SupervisorEvent) -> None:
        with self._condition:
            self._events.append(event)
            self._condition.notify_all()

    def until(self, predicate: Callable[[list[SupervisorEvent]], bool]) -> None:
        """Wait until ``predicate(events so far)`` holds.

        The callback runs while the supervisor holds its lock, so once this returns, the
        supervisor's methods (which take that lock) see everything that followed the event.
        """
        with self._condition:
            if not self._condition.wait_for(lambda: predicate(self._events), DEADLOCK):
                raise AssertionError(f"still waiting; events so far: {pairs(self._events)}")

    def until_seen(self, kind: str, child_id: str | None, times: int = 1) -> None:
        """Wait until ``times`` events ``(kind, child_id)`` happened."""
        self.until(lambda events: pairs(events).count((kind, child_id)) >= times)


def pairs(events: Sequence[SupervisorEvent]) -> list[tuple[str, str | None]]:
    """Events as ``(kind, child_id)`` pairs."""
    return [(e.kind, e.child_id) for e in events]


def exits(events: Sequence[SupervisorEvent], child_id: str) -> list[SupervisorEvent]:
    return [e for e in events if e.kind == "exit" and e.child_id == child_id]


def restarted(ids: Sequence[str]) -> list[tuple[str, str | None]]:
    """The events of restarting ``ids``, in order."""
    return [pair for i in ids for pair in (("restart", i), ("start", i))]


def ids_of(supervisor: Supervisor) -> list[str]:
    return [info.id for info in supervisor.which_children()]


def stats(
    children: int,
    running: int,
    restarts: int = 0,
    crashes: int = 0,
    abandoned: int = 0,
    gave_up: bool = False,
) -> SupervisorStatistics:
    return SupervisorStatistics(
        children=children,
        running=running,
        restarts=restarts,
        crashes=crashes,
        abandoned=abandoned,
        gave_up=gave_up,
    )


def model_name(model: Model) -> str:
    return "process" if model is PROCESS else "thread"


class Clock:
    """A clock for a supervisor's restart intensity, moved by the test (never by time)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def with_clock(supervisor: Supervisor) -> Clock:
    """Give ``supervisor`` a :class:`Clock` for its restart intensity (its testing switch)."""
    clock = Clock()
    supervisor._clock = clock  # type: ignore[method-assign]
    return clock


def recording(model: Model, log: list[tuple[str, str]]) -> type[Supervisor]:
    """``model.Supervisor``, recording each stop request and kill its runner makes in ``log``."""

    def recorded(name: str, method: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def call(handle: Any) -> Any:
            log.append((name, handle.spec.id))
            return method(handle)

        return call

    class Recording(model.Supervisor):  # type: ignore[name-defined,misc]
        def _make_runner(self) -> Any:
            runner = super()._make_runner()
            for name in ("request_stop", "kill"):
                setattr(runner, name, recorded(name, getattr(runner, name)))
            return runner

    return Recording  # type: ignore[no-any-return]


@pytest.fixture
def chan(tmp_path: Path) -> Iterator[Channel]:
    channel = Channel(tmp_path)
    yield channel
    channel.close()


# -- start and stop order ---------------------------------------------------------------------


def test_children_start_in_order_and_stop_in_reverse(model: Model, chan: Channel) -> None:
    supervisor = model.Supervisor([chan.spec(i) for i in "abc"], name="order")
    with supervisor:
        assert sorted(chan.read(3)) == ["start a", "start b", "start c"]
        assert pairs(supervisor.events()) == [("start", "a"), ("start", "b"), ("start", "c")]
        assert ids_of(supervisor) == ["a", "b", "c"]
        assert all(info.running for info in supervisor.which_children())
    assert sorted(chan.drain()) == sorted(["stop c", "stop b", "stop a"])
    events = supervisor.events()
    assert pairs(events)[3:] == [("exit", "c"), ("exit", "b"), ("exit", "a"), ("stop", None)]
    assert all(e.normal is True for e in events if e.kind == "exit")
    assert [e.time for e in events] == sorted(e.time for e in events)
    assert supervisor.statistics() == stats(children=3, running=0)


# -- strategies -------------------------------------------------------------------------------

# strategy: (children stopped when "b" crashes, in stop order; children restarted, in order)
STRATEGIES = {
    ONE_FOR_ONE: ([], ["b"]),
    ONE_FOR_ALL: (["d", "c", "a"], ["a", "b", "c", "d"]),
    REST_FOR_ONE: (["d", "c"], ["b", "c", "d"]),
}


@pytest.mark.parametrize("strategy", list(STRATEGIES), ids=lambda s: s.name)
def test_strategy_stops_in_reverse_and_restarts_in_order(
    model: Model, chan: Channel, strategy: Strategy
) -> None:
    stopped, restarts = STRATEGIES[strategy]
    # intensity=1: restarting several children after one crash is *one* restart of the
    # supervisor (OTP), so it does not give up.
    supervisor = model.Supervisor(
        [chan.spec(i) for i in "abcd"], strategy=strategy, intensity=1, period=60
    )
    watch = Watch(supervisor)
    with supervisor:
        chan.read(4)
        first_pids = dict(chan.pids)
        chan.poke("b", "e")
        lines = chan.read(len(stopped) + len(restarts))
        # The siblings are asked to stop together (their exits recorded in reverse order,
        # below); once all are gone, the restarted ones run again (their "start" lines in
        # any order: see the module docstring).
        assert sorted(lines[: len(stopped)]) == sorted(f"stop {i}" for i in stopped)
        assert sorted(lines[len(stopped) :]) == [f"start {i}" for i in restarts]
        watch.until_seen("start", restarts[-1], times=2)
        events = supervisor.events()[4:]
        assert pairs(events) == [
            ("exit", "b"),
            *[("exit", i) for i in stopped],
            *restarted(restarts),
        ]
        crash = events[0]
        assert crash.normal is False
        assert crash.exception == "ValueError"
        assert crash.traceback is not None
        assert "crash on command" in crash.traceback
        assert all(e.normal is True for e in events[1 : 1 + len(stopped)])
        assert supervisor.statistics() == stats(
            children=4, running=4, restarts=len(restarts), crashes=1
        )
        pids = {info.id: info.pid for info in supervisor.which_children()}
        if model is PROCESS:
            assert pids == chan.pids  # restarted children: new processes
            for i in "abcd":
                assert (pids[i] == first_pids[i]) == (i not in restarts)
        else:
            assert set(pids.values()) == {None}
    assert sorted(chan.drain()) == sorted(["stop d", "stop c", "stop b", "stop a"])


def test_temporary_child_is_not_restarted_by_a_sibling(model: Model, chan: Channel) -> None:
    supervisor = model.Supervisor(
        [chan.spec("a"), chan.spec("t", restart=TEMPORARY), chan.spec("b")],
        strategy=ONE_FOR_ALL,
    )
    watch = Watch(supervisor)
    with supervisor:
        chan.read(3)
        chan.poke("b", "e")
        lines = chan.read(4)
        assert sorted(lines[:2]) == ["stop a", "stop t"]
        assert sorted(lines[2:]) == ["start a", "start b"]
        watch.until_seen("start", "b", times=2)
        assert pairs(supervisor.events())[3:] == [
            ("exit", "b"),
            ("exit", "t"),
            ("exit", "a"),
            *restarted(["a", "b"]),
        ]
        assert ids_of(supervisor) == ["a", "b"]  # the temporary child is removed
        assert supervisor.count_children() == ChildCounts(specs=2, active=2)
        assert supervisor.statistics() == stats(children=2, running=2, restarts=2, crashes=1)
    assert sorted(chan.drain()) == sorted(["stop b", "stop a"])


# -- restart types and exit classification ----------------------------------------------------

# (restart type, command, restarted?): "r" returns, "h" raises Shutdown, "e" raises ValueError
RESTART_CASES = [
    (PERMANENT, "r", True),
    (PERMANENT, "h", True),
    (PERMANENT, "e", True),
    (TRANSIENT, "r", False),
    (TRANSIENT, "h", False),
    (TRANSIENT, "e", True),
    (TEMPORARY, "r", False),
    (TEMPORARY, "h", False),
    (TEMPORARY, "e", False),
]


@pytest.mark.parametrize(
    ("restart", "command", "is_restarted"),
    RESTART_CASES,
    ids=[f"{r.name}-{c}" for r, c, _ in RESTART_CASES],
)
def test_restart_type_decides_after_an_exit(
    model: Model, chan: Channel, restart: Restart, command: str, is_restarted: bool
) -> None:
    supervisor = model.Supervisor([chan.spec("x", restart=restart), chan.spec("y")])
    watch = Watch(supervisor)
    with supervisor:
        chan.read(2)
        chan.poke("x", command)
        watch.until_seen("exit", "x")
        children = {info.id: info for info in supervisor.which_children()}
        if restart is TEMPORARY:
            assert "x" not in children  # removed when it exits
        else:
            assert children["x"].running is is_restarted
        statistics = supervisor.statistics()
        assert statistics.restarts == int(is_restarted)
        assert statistics.crashes == int(command == "e")
        if is_restarted:
            assert chan.read(1) == ["start x"]
        assert pairs(supervisor.events())[2:] == [
            ("exit", "x"),
            *(restarted(["x"]) if is_restarted else []),
        ]
    assert sorted(chan.drain()) == (["stop x", "stop y"] if is_restarted else ["stop y"])


# (command, normal, process exit code, exception) for exits both models share
EXITS = [
    ("r", True, 0, None),
    ("h", True, 0, None),
    ("e", False, 1, "ValueError"),
]


@pytest.mark.parametrize(("command", "normal", "exitcode", "exception"), EXITS)
def test_exit_classification(
    model: Model,
    chan: Channel,
    command: str,
    normal: bool,
    exitcode: int,
    exception: str | None,
) -> None:
    supervisor = model.Supervisor([chan.spec("x", restart=TEMPORARY)])
    watch = Watch(supervisor)
    with supervisor:
        chan.read(1)
        chan.poke("x", command)
        watch.until_seen("exit", "x")
        (event,) = exits(supervisor.events(), "x")
    assert event.normal is normal
    assert event.exitcode == (exitcode if model is PROCESS else None)
    assert event.signal is None
    assert event.exception == exception
    if exception is None:
        assert event.traceback is None
    else:
        assert event.traceback is not None
        assert exception in event.traceback
    assert chan.drain() == []


# (command, normal, exit code, signal): process children only: in a thread child these would
# end the test process (the crash-impact row; see tests/supervision for that, sandboxed).
PROCESS_EXITS = [
    ("0", True, 0, None),
    ("3", False, 3, None),
    ("k", False, -signal.SIGKILL, signal.SIGKILL),
]


@pytest.mark.parametrize(("command", "normal", "exitcode", "signum"), PROCESS_EXITS)
def test_process_exit_code_and_signal_classification(
    chan: Channel, command: str, normal: bool, exitcode: int, signum: int | None
) -> None:
    # TRANSIENT: restarted exactly when the exit is abnormal.
    supervisor = ProcessSupervisor([chan.spec("x", restart=TRANSIENT)])
    watch = Watch(supervisor)
    with supervisor:
        chan.read(1)
        chan.poke("x", command)
        watch.until_seen("exit", "x")
        (event,) = exits(supervisor.events(), "x")
        assert (event.normal, event.exitcode, event.signal) == (normal, exitcode, signum)
        assert event.exception is None
        assert supervisor.statistics().restarts == int(not normal)
        if not normal:
            assert chan.read(1) == ["start x"]
    assert chan.drain() == ([] if normal else ["stop x"])


# -- restart intensity ------------------------------------------------------------------------


def test_intensity_exceeded_gives_up(model: Model, chan: Channel) -> None:
    supervisor = model.Supervisor(
        [chan.spec(i) for i in "abc"], intensity=2, period=60, name="fragile"
    )
    with_clock(supervisor)  # stopped: every restart falls within the period, however slow
    with supervisor:
        chan.read(3)
        # Counted per supervisor, not per child: crashes of different children add up.
        for victim in ["b", "c"]:
            chan.poke(victim, "e")
            assert chan.read(1) == [f"start {victim}"]
        chan.poke("b", "e")  # the third restart within the period: one too many
        with pytest.raises(SupervisorGaveUp) as info:
            supervisor.wait(timeout=DEADLOCK)
        # Every child is stopped, in reverse order, before it gives up.
        assert sorted(chan.drain()) == sorted(["stop c", "stop a"])
        history = info.value.history
        assert isinstance(history, tuple)
        assert pairs(history)[-4:] == [
            ("exit", "b"),
            ("exit", "c"),
            ("exit", "a"),
            ("give_up", None),
        ]
        crashes = [e for e in history if e.kind == "exit" and e.normal is False]
        assert [e.child_id for e in crashes] == ["b", "c", "b"]
        assert all(e.exception == "ValueError" for e in crashes)
        assert supervisor.statistics() == stats(
            children=3, running=0, restarts=2, crashes=3, gave_up=True
        )
        assert not any(info.running for info in supervisor.which_children())
        supervisor.stop()  # nothing left to stop: a no-op
    with pytest.raises(SupervisorGaveUp):
        supervisor.wait(timeout=0)  # still says so
    assert pairs(supervisor.events()) == pairs(history)  # stopping again added nothing
    assert chan.drain() == []


def test_restarts_older_than_the_period_do_not_count(model: Model, chan: Channel) -> None:
    # The supervisor's clock moves only when the test moves it: each crash comes one whole
    # period after the previous restart, so none counts against the next, on any machine.
    supervisor = model.Supervisor([chan.spec("a")], intensity=1, period=10)
    clock = with_clock(supervisor)
    with supervisor:
        chan.read(1)
        for _ in range(3):
            clock.now += 10
            chan.poke("a", "e")
            assert chan.read(1) == ["start a"]
        assert supervisor.statistics() == stats(children=1, running=1, restarts=3, crashes=3)
        clock.now += 9.9  # within the period of the last restart: one too many
        chan.poke("a", "e")
        with pytest.raises(SupervisorGaveUp):
            supervisor.wait(timeout=DEADLOCK)
    assert chan.drain() == []
    assert supervisor.statistics() == stats(
        children=1, running=0, restarts=3, crashes=4, gave_up=True
    )


def test_an_infinite_period_counts_every_restart(model: Model, chan: Channel) -> None:
    supervisor = model.Supervisor([chan.spec("a")], intensity=1, period=math.inf)
    clock = with_clock(supervisor)
    with supervisor:
        chan.read(1)
        chan.poke("a", "e")
        assert chan.read(1) == ["start a"]
        clock.now += 1e12
        chan.poke("a", "e")
        with pytest.raises(SupervisorGaveUp):
            supervisor.wait(timeout=DEADLOCK)


@pytest.mark.parametrize("command", ["e", "r"], ids=["crash", "normal-exit"])
def test_intensity_zero_means_no_restart(model: Model, chan: Channel, command: str) -> None:
    supervisor = model.Supervisor([chan.spec("a"), chan.spec("b")], intensity=0)
    with supervisor:
        chan.read(2)
        chan.poke("b", command)  # a PERMANENT child: even a normal exit needs a restart
        with pytest.raises(SupervisorGaveUp):
            supervisor.wait(timeout=DEADLOCK)
        assert chan.drain() == ["stop a"]
        assert supervisor.statistics() == stats(
            children=2, running=0, crashes=int(command == "e"), gave_up=True
        )
        assert "restart" not in [kind for kind, _ in pairs(supervisor.events())]


# -- auto_shutdown ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("restart", "command"), [(TRANSIENT, "r"), (TEMPORARY, "e")], ids=["transient", "temporary"]
)
def test_auto_shutdown_any_significant(
    model: Model, chan: Channel, restart: Restart, command: str
) -> None:
    supervisor = model.Supervisor(
        [
            chan.spec("w"),
            chan.spec("s1", restart=restart, significant=True),
            chan.spec("s2", restart=TRANSIENT, significant=True),
        ],
        auto_shutdown=ANY_SIGNIFICANT,
    )
    with supervisor:
        chan.read(3)
        chan.poke("s1", command)  # exits by itself and is not restarted: the supervisor stops
        supervisor.wait(timeout=DEADLOCK)  # stopped, and did not give up: no exception
        assert sorted(chan.drain()) == sorted(["stop s2", "stop w"])
        assert pairs(supervisor.events())[3:] == [
            ("exit", "s1"),
            ("exit", "s2"),
            ("exit", "w"),
            ("stop", None),
        ]
        statistics = supervisor.statistics()
        assert (statistics.running, statistics.restarts, statistics.gave_up) == (0, 0, False)


def test_auto_shutdown_all_significant(model: Model, chan: Channel) -> None:
    supervisor = model.Supervisor(
        [
            chan.spec("w"),
            chan.spec("s1", restart=TRANSIENT, significant=True),
            chan.spec("s2", restart=TRANSIENT, significant=True),
        ],
        auto_shutdown=ALL_SIGNIFICANT,
    )
    watch = Watch(supervisor)
    with supervisor:
        chan.read(3)
        chan.poke("s1", "e")  # abnormal: a TRANSIENT child is restarted, nothing stops
        assert chan.read(1) == ["start s1"]
        chan.poke("s1", "r")  # s1 is done; s2 still runs: the supervisor goes on
        watch.until_seen("exit", "s1", times=2)
        with pytest.raises(TimeoutError):
            supervisor.wait(timeout=0)
        assert supervisor.statistics().running == 2
        chan.poke("s2", "h")  # the last significant child is done: now it stops
        supervisor.wait(timeout=DEADLOCK)
        assert chan.drain() == ["stop w"]
        assert supervisor.statistics() == stats(children=3, running=0, restarts=1, crashes=1)


# -- dynamic children -------------------------------------------------------------------------


def test_dynamic_children(model: Model, chan: Channel) -> None:
    supervisor = model.Supervisor([chan.spec("a")])
    watch = Watch(supervisor)
    with supervisor:
        chan.read(1)
        supervisor.start_child(chan.spec("b"))
        assert chan.read(1) == ["start b"]
        with pytest.raises(ValueError, match="'b'"):
            supervisor.start_child(chan.spec("b"))
        supervisor.start_child(chan.spec("c"))
        assert chan.read(1) == ["start c"]
        assert ids_of(supervisor) == ["a", "b", "c"]  # added at the end
        assert supervisor.count_children() == ChildCounts(specs=3, active=3)

        supervisor.terminate_child("b")  # returns once it has stopped
        assert chan.drain() == ["stop b"]
        info = {i.id: i for i in supervisor.which_children()}["b"]
        assert (info.running, info.pid) == (False, None)
        assert supervisor.count_children() == ChildCounts(specs=3, active=2)
        (event,) = exits(supervisor.events(), "b")
        assert event.normal is True
        supervisor.terminate_child("b")  # already terminated: nothing to do
        with pytest.raises(RuntimeError):
            supervisor.restart_child("a")  # running
        with pytest.raises(RuntimeError):
            supervisor.delete_child("a")  # running: terminate it first
        supervisor.restart_child("b")
        assert chan.read(1) == ["start b"]
        assert supervisor.count_children() == ChildCounts(specs=3, active=3)

        supervisor.terminate_child("c")
        supervisor.delete_child("c")
        assert chan.drain() == ["stop c"]
        assert ids_of(supervisor) == ["a", "b"]
        for method in (
            supervisor.terminate_child,
            supervisor.restart_child,
            supervisor.delete_child,
        ):
            with pytest.raises(KeyError):
                method("c")

        supervisor.start_child(chan.spec("t", restart=TEMPORARY))
        assert chan.read(1) == ["start t"]
        supervisor.terminate_child("t")  # a TEMPORARY child's spec goes with it
        assert chan.drain() == ["stop t"]
        assert ids_of(supervisor) == ["a", "b"]

        # Terminated on purpose: none of that was a restart or a crash.
        watch.until_seen("exit", "t")
        assert supervisor.statistics() == stats(children=2, running=2)
    assert sorted(chan.drain()) == ["stop a", "stop b"]
    # b was restarted last, and still stops first: the stop order is the list's, reversed.
    assert pairs(supervisor.events())[-3:] == [("exit", "b"), ("exit", "a"), ("stop", None)]
    with pytest.raises(RuntimeError):
        supervisor.start_child(chan.spec("late"))
    with pytest.raises(RuntimeError):
        supervisor.restart_child("a")


def test_which_children_and_count_children(model: Model, chan: Channel) -> None:
    supervisor = model.Supervisor(
        [
            chan.spec("a"),
            chan.spec("b", restart=TRANSIENT, significant=True),
            chan.spec("c", restart=TEMPORARY),
        ],
        auto_shutdown=ALL_SIGNIFICANT,
    )
    assert supervisor.count_children() == ChildCounts(specs=3, active=0)
    assert not any(info.running for info in supervisor.which_children())
    with supervisor:
        chan.read(3)
        infos = supervisor.which_children()
        assert [(i.id, i.running, i.restart, i.significant) for i in infos] == [
            ("a", True, PERMANENT, False),
            ("b", True, TRANSIENT, True),
            ("c", True, TEMPORARY, False),
        ]
        if model is PROCESS:
            assert {i.id: i.pid for i in infos} == chan.pids
            assert len(set(chan.pids.values()) | {os.getpid()}) == 4
        else:
            assert all(i.pid is None for i in infos)
        assert supervisor.count_children() == ChildCounts(specs=3, active=3)
    assert supervisor.count_children() == ChildCounts(specs=3, active=0)
    assert sorted(chan.drain()) == sorted(["stop c", "stop b", "stop a"])


# -- observability ----------------------------------------------------------------------------


def test_events_and_subscribers(model: Model, chan: Channel) -> None:
    supervisor = model.Supervisor([chan.spec("a")])
    seen: list[SupervisorEvent] = []
    supervisor.subscribe(seen.append)

    def broken(event: SupervisorEvent) -> None:
        raise RuntimeError("a broken subscriber does not break supervision")

    supervisor.subscribe(broken)
    before = time.monotonic()
    with supervisor:
        chan.read(1)
        chan.poke("a", "e")
        assert chan.read(1) == ["start a"]
    after = time.monotonic()
    assert chan.drain() == ["stop a"]
    events = supervisor.events()
    assert seen == events  # the subscriber got every event, in order
    assert pairs(events) == [
        ("start", "a"),
        ("exit", "a"),
        ("restart", "a"),
        ("start", "a"),
        ("exit", "a"),
        ("stop", None),
    ]
    assert all(before <= e.time <= after for e in events)
    assert [e.time for e in events] == sorted(e.time for e in events)
    for event in events:
        if event.kind != "exit":
            assert (event.normal, event.exitcode, event.signal, event.exception) == (
                None,
                None,
                None,
                None,
            )
    crash, stop = events[1], events[4]
    assert crash.normal is False
    assert crash.exception == "ValueError"
    assert crash.traceback is not None
    assert "crash on command" in crash.traceback
    assert crash.exitcode == (1 if model is PROCESS else None)
    assert stop.normal is True
    assert stop.exception is None
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        crash.kind = "start"  # type: ignore[misc]
    assert supervisor.statistics() == stats(children=1, running=0, restarts=1, crashes=1)


# -- current_child and stop requests ----------------------------------------------------------


def test_current_child_in_a_child(model: Model, chan: Channel) -> None:
    with pytest.raises(RuntimeError):
        current_child()  # not in a child
    spec = ChildSpec("a", targets.child_checking_context, (chan.dir, "a"))
    with model.Supervisor([spec]) as supervisor:
        assert chan.read(2) == ["context a False False", "start a"]
    assert chan.drain() == ["context a True True", "stop a"]
    (event,) = exits(supervisor.events(), "a")
    assert event.normal is True


def test_process_child_sigterm_is_a_stop_request(chan: Channel) -> None:
    supervisor = ProcessSupervisor([chan.spec("a")])
    watch = Watch(supervisor)
    with supervisor:
        chan.read(1)
        os.kill(chan.pids["a"], signal.SIGTERM)  # from outside the supervisor
        # current_child() saw the stop request: the child stopped cooperatively and exited
        # normally; it stopped by itself, so the PERMANENT child is restarted.
        assert chan.read(2) == ["stop a", "start a"]
        watch.until_seen("start", "a", times=2)
        (event,) = exits(supervisor.events(), "a")
        assert (event.normal, event.exitcode, event.signal) == (True, 0, None)
        assert supervisor.statistics() == stats(children=1, running=1, restarts=1)
    assert chan.drain() == ["stop a"]


def test_child_that_ignores_stop(model: Model, chan: Channel) -> None:
    release = threading.Event()
    args: tuple[object, ...] = (chan.dir, "x", release) if model is THREAD else (chan.dir, "x")
    supervisor = model.Supervisor(
        [ChildSpec("x", targets.ignore_stop, args, shutdown=0.05), chan.spec("a")]
    )
    try:
        with supervisor:
            chan.read(2)
        assert chan.drain() == ["stop a"]
        (event,) = exits(supervisor.events(), "x")
        statistics = supervisor.statistics()
        if model is THREAD:
            # A thread cannot be killed: it is reported abandoned, and left running.
            assert (event.normal, event.exception) == (False, "AbandonedThread")
            assert statistics.abandoned == 1
        else:
            # A process is killed once its shutdown time has passed.
            assert (event.exitcode, event.signal) == (-signal.SIGKILL, signal.SIGKILL)
            assert statistics.abandoned == 0
    finally:
        release.set()
    for thread in threading.enumerate():
        if thread.name.endswith(":x"):
            thread.join(DEADLOCK)
            assert not thread.is_alive()


# -- lifecycle --------------------------------------------------------------------------------


def test_stop_is_idempotent_and_wait_follows_it(model: Model, chan: Channel) -> None:
    supervisor = model.Supervisor([chan.spec("a"), chan.spec("b")], name="lifecycle")
    assert "not started" in repr(supervisor)
    supervisor.start()
    try:
        chan.read(2)
        assert "running" in repr(supervisor)
        with pytest.raises(RuntimeError):
            supervisor.start()
        with pytest.raises(TimeoutError):
            supervisor.wait(timeout=0)
    finally:
        supervisor.stop(timeout=DEADLOCK)
    supervisor.stop()
    supervisor.stop(timeout=0)
    supervisor.wait(timeout=0)  # stopped: returns at once
    assert "stopped" in repr(supervisor)
    assert sorted(chan.drain()) == sorted(["stop b", "stop a"])
    assert pairs(supervisor.events()).count(("stop", None)) == 1
    assert supervisor.statistics() == stats(children=2, running=0)
    with pytest.raises(RuntimeError):
        supervisor.start_child(chan.spec("c"))

    with model.Supervisor([chan.spec("c")]) as other:
        assert isinstance(other, model.Supervisor)
        assert chan.read(1) == ["start c"]
    other.wait(timeout=0)
    other.stop()
    assert chan.drain() == ["stop c"]


# -- validation -------------------------------------------------------------------------------


def noop() -> None:
    pass


@pytest.mark.parametrize(
    ("shutdown", "error"),
    [(-1.0, ValueError), (float("nan"), ValueError), ("5", TypeError), (True, TypeError)],
)
def test_child_spec_rejects_a_bad_shutdown(shutdown: object, error: type[Exception]) -> None:
    # The library's one timeout rule (concurrency_kit._core.deadline.check_timeout).
    with pytest.raises(error, match="shutdown"):
        ChildSpec("a", noop, shutdown=shutdown)  # type: ignore[arg-type]


@pytest.mark.parametrize("shutdown", [0, 0.5, None, math.inf, 1e300])
def test_child_spec_takes_any_timeout(shutdown: float | None) -> None:
    # 0: ask, then kill at once; None, inf and huge values: wait as long as it takes.
    assert ChildSpec("a", noop, shutdown=shutdown).shutdown == shutdown


def test_child_spec_values() -> None:
    spec = ChildSpec("a", noop, [1, 2])  # type: ignore[arg-type]
    assert (spec.args, spec.kwargs, spec.restart, spec.significant) == (
        (1, 2),
        None,
        PERMANENT,
        False,
    )
    assert ChildSpec("b", noop, shutdown=BRUTAL_KILL).shutdown is BRUTAL_KILL
    assert ChildSpec("c", noop, shutdown=0.5) == ChildSpec("c", noop, shutdown=0.5)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        spec.id = "b"  # type: ignore[misc]
    with pytest.raises(TypeError):
        ChildSpec("", noop)
    with pytest.raises(TypeError):
        ChildSpec(3, noop)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ChildSpec("a", 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ChildSpec("a", noop, restart="permanent")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="significant"):
        ChildSpec("a", noop, restart=PERMANENT, significant=True)


def test_supervisor_rejects_bad_children_and_policies(model: Model) -> None:
    with pytest.raises(ValueError, match="'a'"):
        model.Supervisor([ChildSpec("a", noop), ChildSpec("b", noop), ChildSpec("a", noop)])
    significant = ChildSpec("s", noop, restart=TRANSIENT, significant=True)
    with pytest.raises(ValueError, match="significant"):
        model.Supervisor([significant], auto_shutdown=NEVER)
    model.Supervisor([significant], auto_shutdown=ANY_SIGNIFICANT)  # fine: never started
    with pytest.raises(TypeError):
        model.Supervisor([noop])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        model.Supervisor([], strategy="one_for_one")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="intensity"):
        model.Supervisor([], intensity=-1)
    with pytest.raises(ValueError, match="period"):
        model.Supervisor([], period=0)


def test_thread_supervisor_rejects_brutal_kill(chan: Channel) -> None:
    brutal = chan.spec("b", shutdown=BRUTAL_KILL)
    with pytest.raises(ValueError, match="BRUTAL_KILL"):
        ThreadSupervisor([brutal])
    with ThreadSupervisor([chan.spec("a")]) as supervisor:
        chan.read(1)
        with pytest.raises(ValueError, match="BRUTAL_KILL"):
            supervisor.start_child(brutal)
        assert ids_of(supervisor) == ["a"]
    assert chan.drain() == ["stop a"]


def test_process_supervisor_brutal_kill(chan: Channel) -> None:
    supervisor = ProcessSupervisor([chan.spec("a"), chan.spec("b", shutdown=BRUTAL_KILL)])
    with supervisor:
        chan.read(2)
    assert chan.drain() == ["stop a"]  # b was killed at once: no chance to say anything
    (event,) = exits(supervisor.events(), "b")
    assert (event.exitcode, event.signal) == (-signal.SIGKILL, signal.SIGKILL)


# -- trees ------------------------------------------------------------------------------------


def test_supervision_tree(model: Model, chan: Channel) -> None:
    sub = ChildSpec("sub", targets.subtree, (model_name(model), chan.dir, 1))
    parent = model.Supervisor([sub, chan.spec("a")], name="parent")
    watch = Watch(parent)
    with parent:
        assert sorted(chan.read(2)) == ["start a", "start leaf"]
        sub_pid = {i.id: i.pid for i in parent.which_children()}["sub"]
        if model is PROCESS:
            # The nested supervisor lives in the child process: the leaf descends from it
            # (through the forkserver that child process started), not from the test.
            assert sub_pid is not None
            assert sub_pid in _ancestors(chan.pids["leaf"])
            assert _parent_of(chan.pids["leaf"]) != os.getpid()
        chan.poke("leaf", "e")  # the subtree restarts its leaf; the parent sees nothing
        assert chan.read(1) == ["start leaf"]
        assert parent.statistics() == stats(children=2, running=2)
        chan.poke("leaf", "e")  # the subtree's second restart: more than intensity=1
        # ... so the subtree gives up: an abnormal exit of "sub", which the parent restarts.
        assert chan.read(1) == ["start leaf"]
        watch.until_seen("start", "sub", times=2)
        (gave_up,) = exits(parent.events(), "sub")
        assert gave_up.normal is False
        assert gave_up.exception == "SupervisorGaveUp"
        assert gave_up.traceback is not None
        assert "SupervisorGaveUp" in gave_up.traceback
        assert parent.statistics() == stats(children=2, running=2, restarts=1, crashes=1)
    # Stopping the parent stops the subtree, which stops its leaf first.
    assert sorted(chan.drain()) == sorted(["stop a", "stop leaf"])
    last = exits(parent.events(), "sub")[-1]
    assert last.normal is True


def _parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def _ancestors(pid: int) -> list[int]:
    """The process ids from ``pid``'s parent up to init."""
    chain = []
    while pid > 1:
        pid = _parent_of(pid)
        chain.append(pid)
    return chain


# -- issue #15: stopping together, restarts that do not lie, timeouts ------------------------


@pytest.mark.parametrize("via", ["stop", "restart"])
def test_children_are_all_asked_to_stop_before_any_is_killed(
    model: Model, chan: Channel, via: str
) -> None:
    # Three children that ignore stop requests: each is killed (a thread: abandoned) after its
    # shutdown time. They are asked together, so the stop takes the longest shutdown, not the
    # sum: every request comes before the first kill (read from the runner's calls, in order).
    log: list[tuple[str, str]] = []
    release = threading.Event()
    extra: tuple[object, ...] = (release,) if model is THREAD else ()
    stubborn = [
        ChildSpec(i, targets.ignore_stop, (chan.dir, i, *extra), shutdown=0.2) for i in "abc"
    ]
    crasher = [chan.spec("x")] if via == "restart" else []
    supervisor = recording(model, log)([*stubborn, *crasher], strategy=ONE_FOR_ALL)
    watch = Watch(supervisor)
    try:
        with supervisor:
            chan.read(len(stubborn) + len(crasher))
            if via == "restart":
                chan.poke("x", "e")  # ONE_FOR_ALL: the three are stopped, then restarted
                watch.until_seen("start", "x", times=2)
                calls = list(log)
        if via == "stop":
            calls = list(log)
        assert calls == [
            ("request_stop", "c"),
            ("request_stop", "b"),
            ("request_stop", "a"),
            ("kill", "c"),
            ("kill", "b"),
            ("kill", "a"),
        ]
        events = supervisor.events()
        stopped = [e for e in events if e.kind == "exit" and e.child_id in "abc"][:3]
        assert [e.child_id for e in stopped] == ["c", "b", "a"]  # recorded in stop order
        if model is PROCESS:
            assert {(e.exitcode, e.signal) for e in stopped} == {(-signal.SIGKILL, signal.SIGKILL)}
        else:
            assert {(e.normal, e.exception) for e in stopped} == {(False, "AbandonedThread")}
    finally:
        release.set()  # thread children: the abandoned ones end now
    for thread in threading.enumerate():
        if thread.name.rsplit(":", 1)[-1] in ("a", "b", "c"):
            thread.join(DEADLOCK)
            assert not thread.is_alive()


# (strategy, children in start order): the first crashes at once on its first run, and the
# restart must stop "b" (killed after its shutdown time if it ignores the request) first.
RESTART_SCENARIOS = {
    ONE_FOR_ALL: ["b", "a"],  # issue #15's report: b PERMANENT, then a crashing TRANSIENT
    REST_FOR_ONE: ["a", "b"],
}
ROUNDS = 3
"""Restarts per test: each a fresh supervisor, so each start and stop races anew."""


@contextlib.contextmanager
def cpu_burner() -> Iterator[None]:
    """A process spinning beside the test: the children and the supervisor compete for CPU."""
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        burner.kill()
        burner.wait(DEADLOCK)


@pytest.mark.parametrize("strategy", list(RESTART_SCENARIOS), ids=lambda s: s.name)
def test_after_a_restart_the_old_child_is_gone_and_the_new_one_runs(
    model: Model, chan: Channel, strategy: Strategy
) -> None:
    # What the events say must be true: when "exit b" is recorded the old b is gone (a
    # process: exited, seen through a pidfd taken when it started; a thread: finished), and
    # the b recorded as started runs its target (it writes its start line, with its pid). A
    # process b ignores SIGTERM, so the restart kills it; a thread b stops when asked. The
    # first a crashes at once, so the restart races the children's starts, under load.
    order = RESTART_SCENARIOS[strategy]
    with cpu_burner():
        for round_ in range(ROUNDS):
            _restart_round(model, chan, strategy, order, round_)


def _restart_round(
    model: Model, chan: Channel, strategy: Strategy, order: list[str], round_: int
) -> None:
    """One supervisor, one crash and restart of ``order``, and the checks (see above)."""
    chan.pids.clear()
    crasher = ChildSpec(
        "a",
        targets.crash_on_first_run,
        (chan.dir, f"a{round_}", model is PROCESS),
        restart=TRANSIENT,
    )
    if model is PROCESS:
        b = ChildSpec("b", targets.stubborn, (chan.dir, "b"), shutdown=0.1)
    else:
        b = ChildSpec("b", targets.child_run, (chan.dir, "b"), shutdown=DEADLOCK)
    specs = {"a": crasher, "b": b}
    supervisor = model.Supervisor(
        [specs[i] for i in order], strategy=strategy, intensity=1, period=math.inf
    )
    watch = Watch(supervisor)
    pidfds: list[int] = []

    def on_start(
        event: SupervisorEvent,
        supervisor: Supervisor = supervisor,
        pidfds: list[int] = pidfds,
    ) -> None:
        # Runs with the supervisor's lock held (re-entrant): b as it was just started.
        if model is PROCESS and (event.kind, event.child_id) == ("start", "b"):
            pid = {i.id: i.pid for i in supervisor.which_children()}["b"]
            assert pid is not None
            pidfds.append(os.pidfd_open(pid))  # this process, and no later one

    supervisor.subscribe(on_start)
    try:
        with supervisor:
            watch.until_seen("start", "a", times=2)
            events = supervisor.events()
            assert pairs(events) == [
                *[("start", i) for i in order],
                ("exit", "a"),
                ("exit", "b"),
                *restarted(order),
            ]
            if model is PROCESS:
                (old_b,) = exits(events, "b")
                assert (old_b.exitcode, old_b.signal) == (-signal.SIGKILL, signal.SIGKILL)
                old, new = pidfds
                assert select.select([old], [], [], 0)[0] == [old]  # gone, not running
                assert select.select([new], [], [], 0)[0] == []  # running
                current = {i.id: i.pid for i in supervisor.which_children()}["b"]
                # The old b may have been killed before it wrote its line.
                while chan.read(1) != ["start b"] or chan.pids["b"] != current:
                    pass  # until the new b's own line, with its own pid
            else:
                old_run, new_run = targets.RUNS["b"]
                assert not old_run.is_alive()  # finished before "exit b" was recorded
                # A thread b always writes its start line (a stop request does not skip it):
                # the second one is the new b's, which runs its target.
                starts = 0
                while starts < 2:
                    starts += chan.read(1) == ["start b"]
                assert new_run.is_alive()
    finally:
        for fd in pidfds:
            os.close(fd)
        targets.RUNS.clear()
    chan.drain()


@pytest.mark.parametrize(
    ("timeout", "error"),
    [(-1, ValueError), (float("nan"), ValueError), ("1", TypeError), (True, TypeError)],
)
def test_timeouts_follow_the_one_rule(
    model: Model, chan: Channel, timeout: object, error: type[Exception]
) -> None:
    supervisor = model.Supervisor([chan.spec("a")])
    with supervisor:
        chan.read(1)
        with pytest.raises(error, match="timeout"):
            supervisor.wait(timeout=timeout)  # type: ignore[arg-type]
        with pytest.raises(error, match="timeout"):
            supervisor.stop(timeout=timeout)  # type: ignore[arg-type]
        with pytest.raises(TimeoutError):
            supervisor.wait(timeout=0)
        assert supervisor.statistics().running == 1  # the bad calls changed nothing
    supervisor.wait(timeout=1e300)  # huge: no limit (and no overflow); stopped: returns
    supervisor.stop(timeout=math.inf)
    with pytest.raises(error, match="period"):
        model.Supervisor([], period=timeout)  # type: ignore[arg-type]
    context = ChildContext("x")
    with pytest.raises(error, match="timeout"):
        context.wait_stop(timeout)  # type: ignore[arg-type]
    assert context.wait_stop(0) is False
    context.request_stop()
    assert context.wait_stop(1e300) is True
    assert context.wait_stop(None) is True


def test_a_stop_ends_a_backoff_wait(model: Model, chan: Channel) -> None:
    # The restart after the crash waits an hour (the backoff); stopping the supervisor ends
    # that wait at once, and the child is not restarted.
    hour = Backoff(min=3600.0, max=3600.0, jitter=0.0)
    supervisor = model.Supervisor([chan.spec("a")], backoff=hour)
    watch = Watch(supervisor)
    supervisor.start()
    try:
        chan.read(1)
        chan.poke("a", "e")
        watch.until_seen("exit", "a")  # the loop waits for the restart now (or is about to)
    finally:
        supervisor.stop(timeout=DEADLOCK)
    assert pairs(supervisor.events()) == [("start", "a"), ("exit", "a"), ("stop", None)]
    assert chan.drain() == []

"""InterpreterSupervisor (Python 3.14+): children in subinterpreters, restarted fresh.

What the interpreter column adds to the supervision row: a child runs in an interpreter of its
own, so a restarted child starts from fresh modules (a global the crashed run set is gone,
where a thread child would still see it); the stop request reaches ``current_child()`` inside
the child's interpreter; an interpreter cannot be killed, so a child that ignores its stop is
abandoned (and does not hold the program's exit) and ``BRUTAL_KILL`` is refused. Before 3.14
the class imports and its construction raises the :class:`ImportError` naming the version.

Synchronization, never sleeps: children report on an :class:`~concurrency_kit.InterpreterChannel`
(``("start", id)``, ``("stop", id)``) and wait on :class:`~concurrency_kit.ProcessEvent`
objects (shared memory: they work across interpreters); the supervisor's own events reach the
test through :meth:`subscribe`. Every time limit only turns a deadlock into a failure.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import concurrency_kit as ck
from concurrency_kit import (
    BRUTAL_KILL,
    ONE_FOR_ALL,
    ONE_FOR_ONE,
    REST_FOR_ONE,
    TEMPORARY,
    TRANSIENT,
    ChildSpec,
    Shutdown,
    Strategy,
    SupervisorEvent,
    SupervisorGaveUp,
)
from concurrency_kit.supervision.interpreter import InterpreterSupervisor

needs_314 = pytest.mark.skipif(
    sys.version_info < (3, 14), reason="subinterpreters (concurrent.interpreters) need 3.14+"
)

DEADLOCK = 60.0
"""Seconds after which a wait that should have ended is a deadlock (a failure, not a pass)."""


# -- child targets (they run in the child's interpreter: no pytest there) ---------------------

_corrupted: list[str] = []
"""A module global a child "corrupts" before it crashes: fresh in a restarted interpreter."""


def member(log: Any, crash: Any) -> None:
    """Report ``start``, then wait for ``crash`` (raise) or a stop request (report ``stop``)."""
    context = ck.current_child()
    crash.clear()  # this run's command: the test sets it only after seeing this run start
    context.on_stop(crash.set)  # a stop request wakes the wait below too
    log.send(("start", context.id))
    if not crash.wait(DEADLOCK):
        raise TimeoutError("no command came")
    if context.should_stop():
        log.send(("stop", context.id))
        return
    raise RuntimeError(f"{context.id} crashed on command")


def corrupt_then_crash(log: Any) -> None:
    """Report what this module's global held at the start, set it, and crash.

    Also reports whether the function runs in its module (pickled by reference, the module
    imported where it runs) rather than as a copy with copied globals (pickled by value).
    """
    module = sys.modules.get(__name__)
    in_module = module is not None and globals() is vars(module)
    log.send(("seen", list(_corrupted), in_module))
    _corrupted.append("corrupted by a crashed run")
    raise ValueError("crashed after corrupting a global")


def cooperative(log: Any) -> None:
    """Report what current_child() says, from this thread and from another thread of the
    interpreter, then wait for the stop request."""
    context = ck.current_child()
    seen: list[Any] = []
    other = threading.Thread(target=lambda: seen.append(ck.current_child().id))
    other.start()
    other.join()
    called = threading.Event()
    context.on_stop(called.set)
    log.send(("ready", context.id, seen[0], context.should_stop()))
    stopped = context.wait_stop(DEADLOCK)
    log.send(("stopped", stopped, context.should_stop(), called.wait(DEADLOCK)))


def end_with(command: str) -> None:
    """End the way ``command`` says."""
    if command == "return":
        return
    if command == "shutdown":
        raise Shutdown
    if command == "exit":
        sys.exit()
    if command == "exit0":
        sys.exit(0)
    if command == "exit3":
        sys.exit(3)
    raise KeyError(f"bad command {command!r}")


def ignore_stop(started: Any, release: Any) -> None:
    """Start, then ignore every stop request until ``release`` is set."""
    started.set()
    release.wait(DEADLOCK)


def return_at_once() -> None:
    return None


def interpreter_subtree(log: Any) -> None:
    """Run an interpreter supervisor of one reporting leaf until this child is asked to stop."""
    stop = ck.ProcessEvent()
    try:
        inner = InterpreterSupervisor([ChildSpec("leaf", leaf, (log, stop))], name="inner")
        inner.run()  # stops when current_child() (this thread child) is asked to
    finally:
        stop.close()


def thread_subtree() -> None:
    """A supervisor inside an interpreter child: refused there (its threads are daemons)."""
    ck.ThreadSupervisor([ChildSpec("leaf", return_at_once)]).run()


def leaf(log: Any, stop: Any) -> None:
    context = ck.current_child()  # the thread child's own context, in the interpreter
    context.on_stop(stop.set)
    log.send(("start", context.id))
    stop.wait(DEADLOCK)
    log.send(("stop", context.id))


# -- helpers ----------------------------------------------------------------------------------


def new_log() -> Any:
    """A channel the children report on. Made by each test, not by a fixture: a channel's
    names are removed when its handle is garbage (``close()`` does not), and pytest keeps a
    fixture's value until the leak check has looked."""
    return ck.InterpreterChannel()


@pytest.fixture
def events() -> Iterator[list[Any]]:
    """ProcessEvents made by the test (``events.append(make())``), closed at its end."""
    made: list[Any] = []
    yield made
    for event in made:
        event.close()


def make_event(events: list[Any]) -> Any:
    event = ck.ProcessEvent()
    events.append(event)
    return event


def receive(log: Any, count: int) -> list[Any]:
    return [log.recv(timeout=DEADLOCK) for _ in range(count)]


class Watch:
    """The supervisor's events, as they happen (a subscriber)."""

    def __init__(self, supervisor: InterpreterSupervisor) -> None:
        self._queue: queue.SimpleQueue[SupervisorEvent] = queue.SimpleQueue()
        supervisor.subscribe(self._queue.put, replay=True)

    def until(self, kind: str, child_id: str | None = None) -> SupervisorEvent:
        """The next event of that kind (for that child), skipping the others."""
        while True:
            event = self._queue.get(timeout=DEADLOCK)
            if event.kind == kind and (child_id is None or event.child_id == child_id):
                return event


def pairs(events: list[SupervisorEvent]) -> list[tuple[str, str | None]]:
    return [(e.kind, e.child_id) for e in events]


def interpreters() -> Any:
    """The ``concurrent.interpreters`` module (3.14+; this module imports everywhere)."""
    return importlib.import_module("concurrent.interpreters")


def join_child_thread(name: str) -> None:
    """Wait for an abandoned child's thread (named ``supervisor:child``) to end."""
    for thread in threading.enumerate():
        if thread.name == name:
            thread.join(DEADLOCK)
            assert not thread.is_alive()


# -- before 3.14 ------------------------------------------------------------------------------


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="the error of Pythons before 3.14")
def test_before_314_it_imports_and_construction_names_the_version() -> None:
    assert ck.InterpreterSupervisor is InterpreterSupervisor
    with pytest.raises(ImportError, match=r"InterpreterSupervisor .*needs Python 3\.14"):
        InterpreterSupervisor([ChildSpec("a", return_at_once)])
    with pytest.raises(ImportError, match=r"3\.14"):
        InterpreterSupervisor()


# -- restarts -----------------------------------------------------------------------------------

AFTER_B_CRASHES = {
    ONE_FOR_ONE: (["b"], []),
    ONE_FOR_ALL: (["a", "b", "c"], ["c", "a"]),
    REST_FOR_ONE: (["b", "c"], ["c"]),
}
"""By strategy, after ``b`` crashes: the children started again, and those stopped first."""


@needs_314
@pytest.mark.parametrize("strategy", list(AFTER_B_CRASHES), ids=lambda s: s.name)
def test_a_crash_in_a_child_interpreter_is_restarted_by_the_strategy(
    strategy: Strategy, events: list[Any]
) -> None:
    log = new_log()
    interpreters_before = len(interpreters().list_all())
    crash = {i: make_event(events) for i in "abc"}
    specs = [ChildSpec(i, member, (log, crash[i]), shutdown=DEADLOCK) for i in "abc"]
    supervisor = InterpreterSupervisor(specs, strategy=strategy, name=f"s-{strategy.name}")
    with supervisor:
        watch = Watch(supervisor)
        assert sorted(receive(log, 3)) == [("start", "a"), ("start", "b"), ("start", "c")]
        crash["b"].set()
        restarted, stopped = AFTER_B_CRASHES[strategy]
        for child_id in restarted:  # each restarted child starts again, in its fresh interpreter
            watch.until("restart", child_id)
        messages = receive(log, len(restarted) + len(stopped))
        assert sorted(messages) == sorted(
            [("start", i) for i in restarted] + [("stop", i) for i in stopped]
        )
        assert supervisor.count_children() == ck.ChildCounts(specs=3, active=3)
    history = supervisor.events()
    crashed = [e for e in history if e.kind == "exit" and not e.normal]
    assert [(e.child_id, e.exception) for e in crashed] == [("b", "RuntimeError")]
    assert "b crashed on command" in (crashed[0].traceback or "")
    # Siblings stop in reverse order, then the affected children start in order.
    after = pairs(history[history.index(crashed[0]) + 1 :])
    expected = [("exit", i) for i in stopped]
    for child_id in restarted:
        expected += [("restart", child_id), ("start", child_id)]
    assert after[: len(expected)] == expected
    assert after[-4:] == [("exit", "c"), ("exit", "b"), ("exit", "a"), ("stop", None)]
    stats = supervisor.statistics()
    assert (stats.restarts, stats.crashes, stats.abandoned) == (len(restarted), 1, 0)
    # Every child's interpreter, and the spare made ahead of need, is closed by now.
    assert len(interpreters().list_all()) == interpreters_before


@needs_314
def test_a_restarted_child_sees_fresh_module_state() -> None:
    log = new_log()
    # The crashed run set a global of its module; the restarted one runs in a new interpreter,
    # where that module is imported afresh. A thread child sees the corruption: that is the
    # difference between the two columns.
    spec = ChildSpec("c", corrupt_then_crash, (log,))
    with InterpreterSupervisor([spec], intensity=2, name="fresh") as supervisor:
        assert receive(log, 3) == [("seen", [], True)] * 3
        with pytest.raises(SupervisorGaveUp):
            supervisor.wait(DEADLOCK)
    assert _corrupted == []  # nothing ran in this interpreter
    try:
        with ck.ThreadSupervisor([spec], intensity=1, name="shared") as threads:
            assert receive(log, 2) == [
                ("seen", [], True),
                ("seen", ["corrupted by a crashed run"], True),
            ]
            with pytest.raises(SupervisorGaveUp):
                threads.wait(DEADLOCK)
    finally:
        _corrupted.clear()


@needs_314
def test_intensity_exceeded_gives_up_with_the_history() -> None:
    log = new_log()
    spec = ChildSpec("c", corrupt_then_crash, (log,))
    supervisor = InterpreterSupervisor([spec], intensity=2, period=DEADLOCK * 10, name="gives-up")
    supervisor.start()
    try:
        with pytest.raises(SupervisorGaveUp) as raised:
            supervisor.wait(DEADLOCK)
    finally:
        supervisor.stop()
    receive(log, 3)
    crashes = [e for e in raised.value.history if e.kind == "exit"]
    assert [(e.normal, e.exception) for e in crashes] == [(False, "ValueError")] * 3
    assert pairs(raised.value.history)[-1] == ("give_up", None)
    stats = supervisor.statistics()
    assert (stats.restarts, stats.crashes, stats.gave_up) == (2, 3, True)


# -- stopping ---------------------------------------------------------------------------------


@needs_314
def test_the_stop_request_reaches_current_child_in_the_interpreter() -> None:
    log = new_log()
    with InterpreterSupervisor([ChildSpec("coop", cooperative, (log,))], name="coop") as sup:
        # current_child() works from any thread of the child's interpreter.
        assert receive(log, 1) == [("ready", "coop", "coop", False)]
        sup.terminate_child("coop")
        # wait_stop() returned True, should_stop() says so, the on_stop callback ran.
        assert receive(log, 1) == [("stopped", True, True, True)]
        assert sup.count_children() == ck.ChildCounts(specs=1, active=0)
    with pytest.raises(RuntimeError, match="only available inside a supervised child"):
        ck.current_child()  # the supervising interpreter runs no child
    exits = [e for e in sup.events() if e.kind == "exit"]
    assert [(e.child_id, e.normal, e.exception) for e in exits] == [("coop", True, None)]


@needs_314
def test_an_interpreter_supervisor_as_a_subtree() -> None:
    # A thread child runs an interpreter supervisor: the stop request climbs down the tree to
    # the leaf, inside its interpreter.
    log = new_log()
    spec = ChildSpec("subtree", interpreter_subtree, (log,), shutdown=DEADLOCK)
    with ck.ThreadSupervisor([spec], name="outer") as supervisor:
        assert receive(log, 1) == [("start", "leaf")]
        supervisor.terminate_child("subtree")
        assert receive(log, 1) == [("stop", "leaf")]
    exits = [e for e in supervisor.events() if e.kind == "exit"]
    assert [(e.child_id, e.normal) for e in exits] == [("subtree", True)]


@needs_314
def test_a_supervisor_inside_a_child_interpreter_is_refused_there() -> None:
    # A subinterpreter refuses daemon threads, and a supervisor's threads are daemons: the
    # child's run ends at once, with the runtime's error (the docs say so).
    spec = ChildSpec("subtree", thread_subtree, restart=TEMPORARY)
    with InterpreterSupervisor([spec], name="nested") as supervisor:
        exit_ = Watch(supervisor).until("exit", "subtree")
    assert (exit_.normal, exit_.exception) == (False, "RuntimeError")
    assert "daemon threads are disabled" in (exit_.traceback or "")


EXITS = [
    ("return", True, None),
    ("shutdown", True, None),
    ("exit", True, None),
    ("exit0", True, None),
    ("exit3", False, "SystemExit"),
    ("bad", False, "KeyError"),
]


@needs_314
@pytest.mark.parametrize(("command", "normal", "exception"), EXITS)
def test_exit_classification(command: str, normal: bool, exception: str | None) -> None:
    spec = ChildSpec("c", end_with, (command,), restart=TEMPORARY)
    with InterpreterSupervisor([spec], name="exits") as supervisor:
        exit_ = Watch(supervisor).until("exit", "c")
    assert (exit_.normal, exit_.exception, exit_.exitcode, exit_.signal) == (
        normal,
        exception,
        None,
        None,
    )
    if exception == "KeyError":
        assert exit_.traceback is not None
        assert "bad command 'bad'" in exit_.traceback
    assert supervisor.statistics().crashes == (0 if normal else 1)


@needs_314
def test_a_child_that_ignores_its_stop_is_abandoned(events: list[Any]) -> None:
    started, release = make_event(events), make_event(events)
    spec = ChildSpec("stubborn", ignore_stop, (started, release), shutdown=0)
    supervisor = InterpreterSupervisor([spec], name="abandons")
    try:
        with supervisor:
            assert started.wait(DEADLOCK)
        # stop() returned without the child: abandoned, reported as a thread child's is.
        exit_ = [e for e in supervisor.events() if e.kind == "exit"][-1]
        assert (exit_.child_id, exit_.normal, exit_.exception) == (
            "stubborn",
            False,
            "AbandonedThread",
        )
        assert supervisor.statistics().abandoned == 1
    finally:
        release.set()  # the target returns, its interpreter is closed, its thread ends
        join_child_thread("abandons:stubborn")


_STUCK_AT_EXIT_SCRIPT = """
import sys
import time

import concurrency_kit as ck


def stuck(started, how):
    started.set()
    if how == "sleep":
        time.sleep(3600)  # in C code
    while True:  # in Python code, ignoring the request
        time.sleep(0.01)


if __name__ == "__main__":
    started = ck.ProcessEvent()
    spec = ck.ChildSpec("stuck", stuck, (started, sys.argv[1]), shutdown=0.1)
    with ck.InterpreterSupervisor([spec]) as supervisor:
        started.wait(60)
    print(supervisor.statistics().abandoned, flush=True)
    started.close()
    print("leaving", flush=True)
"""


@needs_314
@pytest.mark.parametrize("how", ["sleep", "loop"])
def test_an_abandoned_child_does_not_hold_the_exit(tmp_path: Path, how: str) -> None:
    script = tmp_path / "stuck_script.py"
    script.write_text(_STUCK_AT_EXIT_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), how],
        capture_output=True,
        text=True,
        timeout=DEADLOCK,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "leaving"]


# -- what it refuses --------------------------------------------------------------------------


@needs_314
def test_brutal_kill_is_refused() -> None:
    spec = ChildSpec("k", return_at_once, shutdown=BRUTAL_KILL)
    with pytest.raises(ValueError, match="an interpreter cannot be killed"):
        InterpreterSupervisor([spec])
    with InterpreterSupervisor(name="dynamic") as supervisor:
        with pytest.raises(ValueError, match="an interpreter cannot be killed"):
            supervisor.start_child(spec)
        assert supervisor.count_children() == ck.ChildCounts(specs=0, active=0)


@needs_314
def test_bad_input_is_refused() -> None:
    lock = threading.Lock()
    with pytest.raises(ck.SerializationError, match=r"child 'u'.*argument 0.*child interpreter"):
        InterpreterSupervisor([ChildSpec("u", return_at_once, (lock,))])
    with pytest.raises(TypeError, match="ChildSpec"):
        InterpreterSupervisor([return_at_once])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="already exists"):
        InterpreterSupervisor([ChildSpec("a", return_at_once)] * 2)
    with pytest.raises(ValueError, match="intensity"):
        InterpreterSupervisor(intensity=-1)
    with pytest.raises(TypeError, match="strategy"):
        InterpreterSupervisor(strategy="one_for_one")  # type: ignore[arg-type]


@needs_314
def test_a_target_that_cannot_load_in_an_interpreter_ends_its_run() -> None:
    # faulthandler refuses to load in a subinterpreter: unpickling the call imports it there.
    import faulthandler

    spec = ChildSpec("f", faulthandler.is_enabled, restart=TEMPORARY)
    with InterpreterSupervisor([spec], name="refused") as supervisor:
        exit_ = Watch(supervisor).until("exit", "f")
    assert (exit_.normal, exit_.exception) == (False, "ImportError")
    assert "subinterpreters" in (exit_.traceback or "")


# -- the same API: async, auto_shutdown ------------------------------------------------------


@needs_314
def test_wait_async_and_aevents() -> None:
    spec = ChildSpec("once", return_at_once, restart=TRANSIENT, significant=True)
    supervisor = InterpreterSupervisor([spec], auto_shutdown=ck.ANY_SIGNIFICANT, name="async")

    async def main() -> list[tuple[str, str | None]]:
        supervisor.start()
        await supervisor.wait_async(DEADLOCK)
        return [(e.kind, e.child_id) async for e in supervisor.aevents()]

    try:
        seen = asyncio.run(main())
    finally:
        supervisor.stop()
    assert seen == [("start", "once"), ("exit", "once"), ("stop", None)]
    assert "stopped" in repr(supervisor)

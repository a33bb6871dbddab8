"""Fault tests for supervisors: real segfaults, SIGKILL, ``os._exit``, a supervising process
killed, children that will not stop, and what a hard crash does to a thread supervisor.

Synchronization: children report to the test and wait for it through named FIFOs
(:class:`Fifo`, :mod:`_fault_targets`); the test waits for a process to exit with a pidfd.
Nothing here sleeps to let something happen: every time limit only turns a deadlock into a
failure with a message, and a long run (the crash loop) is limited per step of progress, not
as a whole (:class:`Progress`). The one timing assertion is a lower bound (a child ignoring
SIGTERM is not killed *before* its shutdown timeout), which no slow machine can break.

The thread model appears once, honestly: a hard crash in a thread child ends the whole process,
supervisor included. Those runs happen in a sandbox, a Python subprocess, so the test survives.
"""

from __future__ import annotations

import math
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import _fault_targets as targets
import pytest

from _children import descendants
from concurrency_kit import (
    BRUTAL_KILL,
    ChildSpec,
    ProcessSupervisor,
    SupervisorEvent,
)

DEADLOCK = 20.0
"""Seconds after which a wait that should have ended is a deadlock (a failure, not a pass)."""
TARGETS_DIR = Path(targets.__file__).resolve().parent
CRASHES = {
    # kind: (exitcode, signal, exception) of the exit event
    "segfault": (-signal.SIGSEGV, signal.SIGSEGV, None),
    "exit3": (3, None, None),
    "killed-from-outside": (-signal.SIGKILL, signal.SIGKILL, None),
    "exception": (1, None, "ValueError"),
}


# -- helpers ----------------------------------------------------------------------------------


class Fifo:
    """A named FIFO the test holds open for reading *and* writing.

    Holding both ends means a child's ``open`` never blocks. Children write lines to it
    (:func:`_fault_targets.report`), read by :meth:`read_line`; or wait at it
    (:func:`_fault_targets.wait_gate_or_stop`) until :meth:`release` writes a byte.
    """

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = str(path)
        self._fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self._buffer = b""

    def release(self, count: int = 1) -> None:
        os.write(self._fd, b"!" * count)

    def _fill(self, timeout: float) -> bool:
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if ready:
            self._buffer += os.read(self._fd, 4096)
        return bool(ready)

    def read_line(
        self, timeout: float = DEADLOCK, child: subprocess.Popen[str] | None = None
    ) -> str:
        """The next line a child wrote; fails after ``timeout`` or when ``child`` exits."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no report on {self.path} within {timeout} s (deadlock?)")
            # With a child program to watch, wake up now and then to see whether it died.
            if not self._fill(remaining if child is None else min(remaining, 0.25)) and (
                child is not None and child.poll() is not None
            ):
                raise AssertionError(f"the child program exited early ({child.returncode})")
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def read_pid(self) -> int:
        return int(self.read_line())

    def pending(self) -> bytes:
        """Whatever was written and not read yet, without waiting."""
        self._fill(0)
        return self._buffer

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Callable[[str], Fifo]]:
    """Make FIFOs in ``tmp_path``; all are closed when the test ends."""
    made: list[Fifo] = []

    def make(name: str) -> Fifo:
        made.append(Fifo(tmp_path / name))
        return made[-1]

    yield make
    for f in made:
        f.close()


def wait_exited(pids: list[int], timeout: float) -> set[int]:
    """Wait until every process of ``pids`` has exited (pidfds) or ``timeout``; the living."""
    pidfds = {}
    for pid in pids:
        try:
            pidfds[pid] = os.pidfd_open(pid)
        except ProcessLookupError:  # gone already
            pass
    try:
        alive = dict(pidfds)
        deadline = time.monotonic() + timeout
        while alive:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ready, _, _ = select.select(list(alive.values()), [], [], remaining)
            for pid in [pid for pid, fd in alive.items() if fd in ready]:
                del alive[pid]
        return set(alive)
    finally:
        for fd in pidfds.values():
            os.close(fd)


class Progress:
    """Counts a supervisor's events of one kind as they happen (subscribe before start)."""

    def __init__(self, supervisor: ProcessSupervisor, kind: str) -> None:
        self._kind = kind
        self._count = 0
        self._condition = threading.Condition()
        supervisor.subscribe(self._on_event)

    def _on_event(self, event: SupervisorEvent) -> None:
        if event.kind == self._kind:
            with self._condition:
                self._count += 1
                self._condition.notify_all()

    def until(self, count: int) -> None:
        """Wait for ``count`` events; a failure only after ``DEADLOCK`` s without a new one."""
        with self._condition:
            while self._count < count:
                seen = self._count
                if not self._condition.wait_for(partial(self._beyond, seen), DEADLOCK):
                    raise AssertionError(
                        f"no {self._kind!r} event for {DEADLOCK} s after {seen} (deadlock?)"
                    )

    def _beyond(self, seen: int) -> bool:
        return self._count > seen


def history(supervisor: ProcessSupervisor) -> list[tuple[str, str | None]]:
    """The supervisor's events as ``(kind, child_id)`` pairs."""
    return [(e.kind, e.child_id) for e in supervisor.events()]


def exits_of(supervisor: ProcessSupervisor, child_id: str) -> list[SupervisorEvent]:
    return [e for e in supervisor.events() if e.kind == "exit" and e.child_id == child_id]


def pids_of(supervisor: ProcessSupervisor) -> dict[str, int | None]:
    return {info.id: info.pid for info in supervisor.which_children()}


def sandbox_env() -> dict[str, str]:
    """The environment of a sandbox program: ours, with ``_fault_targets`` importable."""
    path = os.pathsep.join(p for p in (str(TARGETS_DIR), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


def run_sandboxed(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (Python source) in a fresh interpreter, in a session of its own.

    The script can ``import _fault_targets``. If it hangs, its whole process group (its
    forkserver and children included) is killed and the test fails.
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=sandbox_env(),
    )
    try:
        out, err = proc.communicate(timeout=DEADLOCK)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"deadlock? the sandbox did not exit within {DEADLOCK} s\n{out}\n{err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


# -- a child that dies ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(CRASHES))
def test_crash_is_reported_and_only_that_child_restarted(
    kind: str, fifo: Callable[[str], Fifo]
) -> None:
    reports, gate = fifo("reports"), fifo("gate")
    how = "exit3" if kind == "killed-from-outside" else kind  # the victim waits for either
    victim = ChildSpec("victim", targets.crash_at_gate, (how, reports.path, gate.path))
    bystander = ChildSpec("bystander", targets.run_until_stopped, (reports.path,))
    with ProcessSupervisor([victim, bystander], intensity=3, period=60.0) as supervisor:
        first = {reports.read_pid(), reports.read_pid()}
        before = pids_of(supervisor)
        assert set(before.values()) == first
        victim_pid, bystander_pid = before["victim"], before["bystander"]
        assert victim_pid is not None

        if kind == "killed-from-outside":  # what the OOM killer does
            os.kill(victim_pid, signal.SIGKILL)
        else:
            gate.release()
        replacement = reports.read_pid()  # the victim again, in a new process

        assert replacement not in first
        assert pids_of(supervisor) == {"victim": replacement, "bystander": bystander_pid}
        (crash,) = exits_of(supervisor, "victim")
        exitcode, signum, exception = CRASHES[kind]
        assert (crash.normal, crash.exitcode, crash.signal) == (False, exitcode, signum)
        assert crash.exception == exception
        if exception is not None:
            assert crash.traceback is not None
            assert "ValueError: the child failed" in crash.traceback
            assert "crash_at_gate" in crash.traceback  # the child's own frames
        else:
            assert crash.traceback is None
        assert history(supervisor) == [
            ("start", "victim"),
            ("start", "bystander"),
            ("exit", "victim"),
            ("restart", "victim"),
            ("start", "victim"),
        ]
        stats = supervisor.statistics()
        assert (stats.restarts, stats.crashes, stats.running, stats.gave_up) == (1, 1, 2, False)
    # Both stopped cooperatively on the way out: normal exits with code 0, in reverse order.
    assert history(supervisor)[-3:] == [("exit", "bystander"), ("exit", "victim"), ("stop", None)]
    stops = [exits_of(supervisor, cid)[-1] for cid in ("victim", "bystander")]
    assert [(e.normal, e.exitcode, e.signal) for e in stops] == [(True, 0, None)] * 2


def test_crash_and_restart_cycles_leave_nothing_behind(
    fifo: Callable[[str], Fifo], tmp_path: Path
) -> None:
    # The 1,000 cycles run in benchmarks/bench_supervision.py; here 100 quick cycles
    # of every kind of death in turn, then the leak check (autouse) and an explicit fd count.
    # No deadline for the whole loop (a loaded machine may take long): the test fails only if
    # a restart does not come within DEADLOCK seconds of the previous one, and the period is
    # infinite, so how long the loop takes decides nothing.
    cycles = 100
    reports, count = fifo("reports"), tmp_path / "runs"
    fds_before = sorted(os.listdir("/proc/self/fd"))
    spec = ChildSpec("crasher", targets.crash_until, (str(count), cycles, reports.path, "mixed"))
    supervisor = ProcessSupervisor([spec], intensity=cycles, period=math.inf)
    restarts = Progress(supervisor, "restart")
    with supervisor:
        restarts.until(cycles)
        line = reports.read_line()
        assert line.startswith("up "), line
        assert pids_of(supervisor) == {"crasher": int(line.split()[1])}
        stats = supervisor.statistics()
        assert (stats.restarts, stats.crashes, stats.gave_up) == (cycles, cycles, False)
        crashes = exits_of(supervisor, "crasher")
    assert count.stat().st_size == cycles + 1  # every run ran once, none was lost
    assert len(crashes) == cycles
    expected = {
        "exit3": (3, None),
        "segfault": (-11, 11),
        "sigkill": (-9, 9),
        "exception": (1, None),
    }
    for index, event in enumerate(crashes):
        kind = targets.MIXED[index % len(targets.MIXED)]
        assert (event.normal, event.exitcode, event.signal) == (False, *expected[kind]), index
    assert sorted(os.listdir("/proc/self/fd")) == fds_before


# -- the supervising process dies -------------------------------------------------------------

SUPERVISE_AND_BLOCK = textwrap.dedent(
    """
    import sys

    import _fault_targets as targets
    from concurrency_kit import ChildSpec, ProcessSupervisor

    if __name__ == "__main__":
        reports = sys.argv[1]
        specs = [ChildSpec(f"c{i}", targets.run_until_stopped, (reports,)) for i in range(3)]
        supervisor = ProcessSupervisor(specs)
        supervisor.start()
        targets.report(reports, "ready")
        supervisor.wait()
    """
)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_children_exit_when_the_supervising_process_dies(
    how: int, fifo: Callable[[str], Fifo]
) -> None:
    reports = fifo("reports")
    proc = subprocess.Popen(
        [sys.executable, "-c", SUPERVISE_AND_BLOCK, reports.path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=sandbox_env(),
    )
    try:
        lines = {reports.read_line(child=proc) for _ in range(4)}
        assert "ready" in lines, lines
        children = [int(line) for line in lines - {"ready"}]
        # Its children, its standby, its forkserver and resource tracker: all must go.
        family = descendants(proc.pid)
        assert set(children) <= set(family), (children, family)

        os.kill(proc.pid, how)  # SIGTERM: not handled by the script, so it dies of it too
        proc.communicate(timeout=DEADLOCK)
        assert proc.returncode == -how

        # They exit at once (the lifeline), but how soon on a loaded machine decides
        # nothing here: only a deadlock fails.
        alive = wait_exited(family, DEADLOCK)
        assert not alive, f"still alive {DEADLOCK} s after their supervisor died: {alive}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of its group, on failure
        except ProcessLookupError:
            pass


# -- stopping children that will not stop -----------------------------------------------------


@pytest.mark.parametrize("via", ["terminate_child", "stop"])
def test_a_child_ignoring_sigterm_is_killed_after_its_shutdown_timeout(
    via: str, fifo: Callable[[str], Fifo]
) -> None:
    reports, shutdown = fifo("reports"), 0.5
    spec = ChildSpec("stubborn", targets.ignore_sigterm, (reports.path,), shutdown=shutdown)
    with ProcessSupervisor([spec]) as supervisor:
        pid = reports.read_pid()  # SIGTERM is ignored from here on
        asked = time.monotonic()
        if via == "terminate_child":
            supervisor.terminate_child("stubborn")
        else:
            supervisor.stop()
        waited = time.monotonic() - asked
        assert wait_exited([pid], 0) == set()
        assert waited >= shutdown  # a lower bound: never killed before its time
        (stopped,) = exits_of(supervisor, "stubborn")
        assert (stopped.exitcode, stopped.signal) == (-signal.SIGKILL, signal.SIGKILL)
        if via == "terminate_child":
            # Terminated on purpose: not a crash, not restarted, its spec kept.
            assert [(i.id, i.running, i.pid) for i in supervisor.which_children()] == [
                ("stubborn", False, None)
            ]
            stats = supervisor.statistics()
            assert (stats.restarts, stats.crashes) == (0, 0)


@pytest.mark.parametrize("shutdown", [5.0, BRUTAL_KILL], ids=["timeout", "BRUTAL_KILL"])
def test_brutal_kill_kills_at_once_a_timeout_asks_first(
    shutdown: float | object, fifo: Callable[[str], Fifo]
) -> None:
    # The same cooperative child: asked to stop (SIGTERM), it says so and returns, exit code 0.
    # With BRUTAL_KILL it is SIGKILLed without being asked, so it never says so.
    reports = fifo("reports")
    spec = ChildSpec("child", targets.stop_aware, (reports.path,), shutdown=shutdown)  # type: ignore[arg-type]
    with ProcessSupervisor([spec]) as supervisor:
        pid = reports.read_pid()
        supervisor.terminate_child("child")
        assert wait_exited([pid], 0) == set()
        (stopped,) = exits_of(supervisor, "child")
    if shutdown is BRUTAL_KILL:
        assert (stopped.exitcode, stopped.signal) == (-signal.SIGKILL, signal.SIGKILL)
        assert reports.pending() == b""
    else:
        assert (stopped.normal, stopped.exitcode, stopped.signal) == (True, 0, None)
        assert reports.read_line() == "stopping"


# -- the same crash under both supervisors ----------------------------------------------------

SUPERVISE_ONE_CRASH = textwrap.dedent(
    """
    import sys

    import _fault_targets as targets
    import concurrency_kit as ck

    if __name__ == "__main__":
        model, kind, count_path, reports = sys.argv[1:]
        Supervisor = ck.ProcessSupervisor if model == "process" else ck.ThreadSupervisor
        fragile = ck.ChildSpec(
            "fragile",
            targets.crash_once_then_return,
            (count_path, kind, reports),
            restart=ck.TRANSIENT,  # restarted after its crash, not after it returns
            significant=True,  # and when it returns, the supervisor is done
        )
        with Supervisor([fragile], auto_shutdown=ck.ANY_SIGNIFICANT) as supervisor:
            supervisor.wait()
        for e in supervisor.events():
            if e.kind == "exit":
                print("exit", e.normal, e.exitcode, e.signal, e.exception)
        print("the supervising process survived")
    """
)
SURVIVED = "the supervising process survived"


@pytest.mark.parametrize(("kind", "returncode"), [("segfault", -signal.SIGSEGV), ("exit3", 3)])
def test_a_hard_crash_in_a_thread_child_takes_the_whole_process_down(
    kind: str, returncode: int, fifo: Callable[[str], Fifo], tmp_path: Path
) -> None:
    # The crash-impact row of the table, shown rather than claimed: the thread supervisor
    # cannot contain a segfault or os._exit in one of its children. Its process dies with the
    # child's fate, and nothing after the crash runs; the child never gets restarted.
    reports = fifo("reports")
    count = tmp_path / "runs"
    proc = run_sandboxed(SUPERVISE_ONE_CRASH, "thread", kind, str(count), reports.path)
    assert proc.returncode == returncode, proc.stdout + proc.stderr
    assert SURVIVED not in proc.stdout
    assert count.stat().st_size == 1  # it ran once, and never again
    assert reports.pending() == b""


@pytest.mark.parametrize(
    ("model", "kind", "exit_line"),
    [
        ("process", "segfault", "exit False -11 11 None"),
        ("process", "exit3", "exit False 3 None None"),
        ("process", "exception", "exit False 1 None ValueError"),
        # An exception is the one crash a thread supervisor contains.
        ("thread", "exception", "exit False None None ValueError"),
    ],
)
def test_a_contained_crash_is_restarted_and_the_supervisor_lives_on(
    model: str, kind: str, exit_line: str, fifo: Callable[[str], Fifo], tmp_path: Path
) -> None:
    reports = fifo("reports")
    count = tmp_path / "runs"
    proc = run_sandboxed(SUPERVISE_ONE_CRASH, model, kind, str(count), reports.path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    normal_exit = "exit True 0 None None" if model == "process" else "exit True None None None"
    assert proc.stdout.splitlines() == [exit_line, normal_exit, SURVIVED], proc.stdout
    assert count.stat().st_size == 2  # crashed, restarted, returned
    assert reports.read_line() == "back"


# -- Ctrl-C (issue #15) -------------------------------------------------------------------------

SUPERVISE_STUBBORN_CHILDREN = textwrap.dedent(
    """
    import signal
    import sys

    # Ctrl-C raises KeyboardInterrupt whatever this program inherited: a job started in the
    # background by a non-interactive shell starts with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    import _fault_targets as targets
    from concurrency_kit import ChildSpec, ProcessSupervisor, ThreadSupervisor

    if __name__ == "__main__":
        model, reports = sys.argv[1:]
        Supervisor = ProcessSupervisor if model == "process" else ThreadSupervisor
        target = targets.report_sigterm if model == "process" else targets.report_stop_request
        # An hour each to stop: only a kill (a thread: abandoning it) ends them in time.
        specs = [ChildSpec(f"c{i}", target, (reports,), shutdown=3600.0) for i in range(3)]
        with Supervisor(specs) as supervisor:
            targets.report(reports, "ready")
            supervisor.wait()
    """
)


@pytest.mark.parametrize("model", ["process", "thread"])
def test_ctrl_c_stops_children_together_and_a_second_ctrl_c_kills_them(
    model: str, fifo: Callable[[str], Fifo]
) -> None:
    # Three children that ignore stop requests, with an hour's shutdown each. The first
    # Ctrl-C ends wait(), and the with block stops the supervisor: all three are asked at
    # once (three "term" lines; stopped one after the other, only the first would be asked
    # within the hour). The second Ctrl-C, while stop() waits, kills them at once (threads:
    # abandons them); the program ends with KeyboardInterrupt and leaves no process behind.
    reports = fifo("reports")
    proc = subprocess.Popen(
        [sys.executable, "-c", SUPERVISE_STUBBORN_CHILDREN, model, reports.path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=sandbox_env(),
    )
    try:
        lines = {reports.read_line(child=proc) for _ in range(4)}
        assert "ready" in lines, lines
        children = sorted(int(line) for line in lines - {"ready"})
        family = descendants(proc.pid)
        if model == "process":
            assert set(children) <= set(family), (children, family)

        os.kill(proc.pid, signal.SIGINT)
        asked = sorted(int(reports.read_line(child=proc).split()[1]) for _ in range(3))
        assert asked == children  # every child asked to stop, none killed yet
        if model == "process":
            assert wait_exited(children, 0) == set(children)

        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=DEADLOCK)
        assert proc.returncode == -signal.SIGINT, err
        assert "KeyboardInterrupt" in err
        assert not wait_exited(family, DEADLOCK), "processes left behind"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of its group, on failure
        except ProcessLookupError:
            pass

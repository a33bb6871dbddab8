"""A pytest plugin that fails every test which leaks processes, threads, fds or /dev/shm entries.

Loaded by ``tests/conftest.py`` (``pytest_plugins = ["ck_leakcheck"]``) and, in the self-test,
with ``-p ck_leakcheck``. The flow for one test::

    session start   start multiprocessing's lazy singletons (forkserver, resource tracker)
    test setup      higher-scoped fixtures ── snapshot A (this plugin's autouse fixture)
                    ── the test's other fixtures ── the test
    test teardown   the test's other fixtures are torn down ── snapshot B
                    B has nothing A lacks?  yes: pass
                                            no:  gc.collect(), poll B again until it has
                                                 nothing new or the deadline passes, then
                                                 fail with the list of what is still new

A snapshot records:

* processes: the descendants of the test process (``/proc/*/stat`` parent links, so the
  workers of a ``forkserver`` pool, children of the forkserver, count), plus every process whose
  environment carries this session's marker variable and their descendants: a grandchild that
  outlived its parent is reparented to init and leaves the tree, but it keeps the environment it
  was exec'd with. Processes are keyed by (pid, start time), so a reused pid is a new process.
  Zombies (exited, never reaped) count: an unreaped child is a leak too;
* threads: ``threading.enumerate()``;
* file descriptors: ``/proc/self/fd`` with their ``readlink`` targets;
* ``/dev/shm`` entries made by this library: ``ck_<creator pid>_<hex>`` segments (``_core/shm.py``);
* the pids of every other process on the machine (to tell whose a segment is, below).

Only what is *new* is reported: a test may close things that existed before it.

/dev/shm is shared by every program on the machine, so a new entry is charged to the test only
if the test's process tree made it. The name says who did (``shm.create`` puts the creator's
pid in it)::

    new since snapshot A, named ck_<pid>_<hex>?   no: not ours (another program's, or not a
                                                      segment of this library): ignored
    <pid> is one of the session's processes,      yes: charged
    seen at A, at B or at any poll?
    <pid> is alive now, or was seen as another    yes: another program's: ignored
    program's process at any look?
    otherwise: a creator that came and went       charged (a child of the test, say, that
    during the test without being seen               created a segment and exited)

and a charged entry stays charged only while it is still there and charged at every later
poll: an entry another program makes and removes during the poll is never reported.

The fixture is function-scoped and autouse, so it is set up before the test's other
function-scoped fixtures and torn down after them, while session-, module- and class-scoped
fixtures are set up before snapshot A and torn down after snapshot B: a module-scoped pool is
not charged to the first test that uses it. A failure is reported as an error in the teardown of
the leaking test ("ERROR at teardown of test_x"), with the list of leaks as its message.

The deadline (``leakcheck_deadline`` ini option, 5 s by default) is a bound on *asynchronous*
cleanup, not a sleep that makes a test pass: a clean test is checked once and passes at once.
Cleanup legitimately finishes a little after the test returns: a pool's thread sets its last
future and then exits; a killed worker is reaped by a watcher thread; an object dropped in a
reference cycle is finalized by the garbage collector (hence the one ``gc.collect()``). A real
leak is still there at the deadline and fails.

Limits: a process that left the tree *and* was exec'd with a cleared environment is not seen.
Only this library's segments are checked: a ``multiprocessing.shared_memory`` segment or a named
semaphore a test leaks is not seen (nothing in their names says who made them). A segment left
for more than the deadline by a process of another program that was born and died during the
test, unseen by any look, would be charged to the test; so would one whose creator's pid was
reused meanwhile (the last case in the chart cannot tell them from ours).
"""

from __future__ import annotations

import faulthandler
import gc
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO

import pytest

from concurrency_kit._core.shm import SHM_DIR, creator_pid

SESSION_ENV = "CK_LEAKCHECK_SESSION"
"""Environment variable that marks every process exec'd by this test session."""

DEFAULT_DEADLINE = 5.0
_MAX_CMDLINE = 300
_STACK_FRAMES = 4
_THREAD_BOOTSTRAP = {"_bootstrap", "_bootstrap_inner", "run"}
_PLURALS = {"process": "processes", "/dev/shm entry": "/dev/shm entries"}

_session_marker: bytes | None = None
_dump_file: IO[str] | None = None


# -- pytest hooks and fixtures ------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "leakcheck_deadline",
        "seconds to wait for asynchronous cleanup before a leak fails the test "
        f"(default {DEFAULT_DEADLINE})",
        default=str(DEFAULT_DEADLINE),
    )


def pytest_configure(config: pytest.Config) -> None:
    global _session_marker, _dump_file
    # Every process exec'd from now on inherits the marker, so a descendant that outlives its
    # parent (and is reparented to init) is still recognised as ours. A fresh value per
    # session: a nested pytest run (the self-test) marks its own processes only.
    token = uuid.uuid4().hex
    os.environ[SESSION_ENV] = token
    _session_marker = f"{SESSION_ENV}={token}".encode()
    # A hang: pytest's faulthandler_timeout (pyproject) dumps every thread's stack, and
    # pytest-timeout dumps them again when it fails the test. `kill -USR1 <pytest pid>` dumps
    # them on demand without stopping the run. The file is a duplicate of the real stderr,
    # taken now, while pytest is not capturing fd 2.
    if hasattr(faulthandler, "register") and signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL:
        _dump_file = os.fdopen(os.dup(2), "w")
        faulthandler.register(signal.SIGUSR1, file=_dump_file, all_threads=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    global _dump_file
    if _dump_file is not None:
        faulthandler.unregister(signal.SIGUSR1)
        _dump_file.close()
        _dump_file = None


@pytest.fixture(scope="session", autouse=True)
def _ck_multiprocessing_singletons() -> None:
    """Start the processes multiprocessing starts once, on first use, and keeps for good.

    The forkserver process (and the pipe end the test process holds to it) and the resource
    tracker process (and its pipe end) are started lazily by the first pool or shared-memory
    segment, then live until the interpreter exits. They are not leaks: starting them here,
    before the first test's snapshot, puts them in every baseline. (They are also recognised
    at check time, so a test that makes multiprocessing restart them is not blamed either.)
    A fixture rather than a session hook, so that they start while pytest captures output:
    what workers print lands in the captured output of the test that is running.
    """
    multiprocessing.resource_tracker.ensure_running()
    if "forkserver" in multiprocessing.get_all_start_methods():
        multiprocessing.forkserver.ensure_running()


@pytest.fixture(autouse=True)
def _ck_leakcheck(
    request: pytest.FixtureRequest, _ck_multiprocessing_singletons: None
) -> Iterator[None]:
    """Fail the test if it leaves processes, threads, fds or /dev/shm entries behind."""
    deadline = float(request.config.getini("leakcheck_deadline"))
    before = take_snapshot()
    yield
    leaks = wait_for_cleanup(before, deadline)
    if leaks:
        pytest.fail(leaks.describe(deadline), pytrace=False)


# -- snapshots ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    """A process as seen in ``/proc/PID/stat``."""

    pid: int
    ppid: int
    state: str
    start: int  # clock ticks after boot: with the pid, identifies the process

    def describe(self) -> str:
        state = "zombie: exited, never reaped" if self.state == "Z" else f"state {self.state}"
        return f"pid {self.pid} (parent {self.ppid}, {state}): {_cmdline(self.pid)}"


@dataclass
class Snapshot:
    """What a test could leak, at one moment."""

    processes: dict[tuple[int, int], Proc] = field(default_factory=dict)
    threads: set[threading.Thread] = field(default_factory=set)
    fds: dict[int, str] = field(default_factory=dict)
    shm: set[str] = field(default_factory=set)
    others: set[int] = field(default_factory=set)  # every other live process on the machine


@dataclass
class PidHistory:
    """Whose pids were seen at any look during one check: the session's, and everyone else's."""

    ours: set[int] = field(default_factory=lambda: {os.getpid()})
    theirs: set[int] = field(default_factory=set)

    def add(self, snapshot: Snapshot) -> None:
        self.ours.update(pid for pid, _ in snapshot.processes)
        self.theirs.update(snapshot.others)


@dataclass
class Leaks:
    """What a snapshot has that the baseline had not."""

    processes: list[Proc]
    threads: list[threading.Thread]
    fds: dict[int, str]
    shm: list[str]

    def __bool__(self) -> bool:
        return bool(self.processes or self.threads or self.fds or self.shm)

    def describe(self, deadline: float) -> str:
        counts = ", ".join(
            _plural(n, kind)
            for n, kind in (
                (len(self.processes), "process"),
                (len(self.threads), "thread"),
                (len(self.fds), "file descriptor"),
                (len(self.shm), "/dev/shm entry"),
            )
            if n
        )
        lines = [
            f"LEAK: the test leaked {counts} "
            f"(still there {deadline:g} s after the test; compared with before it)"
        ]
        if self.processes:
            lines.append("processes:")
            lines.extend(f"    {p.describe()}" for p in self.processes)
        if self.threads:
            lines.append("threads:")
            frames = sys._current_frames()
            for t in self.threads:
                kind = "daemon" if t.daemon else "non-daemon"
                lines.append(f"    {t.name!r} ({kind}, ident {t.ident}), at:")
                frame = frames.get(t.ident) if t.ident is not None else None
                stack = [
                    s
                    for s in (traceback.extract_stack(frame) if frame else [])
                    if not (s.filename == threading.__file__ and s.name in _THREAD_BOOTSTRAP)
                ][-_STACK_FRAMES:]
                lines.extend(
                    f"        {s.filename}:{s.lineno} in {s.name}: {s.line or ''}".rstrip()
                    for s in stack
                )
        if self.fds:
            lines.append("file descriptors:")
            lines.extend(f"    fd {fd} -> {target}" for fd, target in sorted(self.fds.items()))
        if self.shm:
            lines.append("/dev/shm entries:")
            lines.extend(f"    {SHM_DIR}/{name}" for name in self.shm)
        return "\n".join(lines)


def take_snapshot() -> Snapshot:
    """Record the processes, threads, fds and /dev/shm segments of the session now."""
    shm = _shm_segments()  # before the processes: a creator seen alive is never "gone"
    processes, others = _processes()
    return Snapshot(
        processes=processes,
        threads=set(threading.enumerate()),
        fds=_open_fds(),
        shm=shm,
        others=others,
    )


def find_leaks(before: Snapshot, after: Snapshot, history: PidHistory | None = None) -> Leaks:
    """What ``after`` has that ``before`` had not, minus multiprocessing's singletons.

    ``history`` holds the pids seen at every look of this check (by default: ``before`` and
    ``after``); it decides whose a new segment is (the module docstring).
    """
    if history is None:
        history = PidHistory()
        history.add(before)
        history.add(after)
    singleton_pids, singleton_fds = _multiprocessing_singletons()
    alive = {pid for pid, _ in after.processes} | after.others | {os.getpid()}
    return Leaks(
        processes=[
            p
            for key, p in sorted(after.processes.items())
            if key not in before.processes and p.pid not in singleton_pids
        ],
        threads=sorted(after.threads - before.threads, key=lambda t: t.name),
        fds={
            fd: target
            for fd, target in after.fds.items()
            if before.fds.get(fd) != target and fd not in singleton_fds
        },
        shm=sorted(_charged_segments(after.shm - before.shm, alive, history)),
    )


def _charged_segments(new: Iterable[str], alive: set[int], history: PidHistory) -> set[str]:
    """The segments of ``new`` that the session's processes made (the module docstring)."""
    charged = set()
    for name in new:
        pid = creator_pid(name)
        if pid is None:
            continue  # another program's entry, or not a segment of this library
        if pid in history.ours or (pid not in alive and pid not in history.theirs):
            charged.add(name)
    return charged


def wait_for_cleanup(before: Snapshot, deadline: float) -> Leaks:
    """Poll until nothing is new compared with ``before`` or ``deadline`` seconds pass.

    The deadline bounds asynchronous cleanup (see the module docstring); a test that cleans up
    synchronously returns after one snapshot.
    """
    history = PidHistory()
    history.add(before)

    def look() -> Leaks:
        after = take_snapshot()
        history.add(after)
        return find_leaks(before, after, history)

    leaks = look()
    if not leaks:
        return leaks
    gc.collect()  # run the finalizers of resources dropped in reference cycles
    suspects = set(leaks.shm)  # a segment must be charged at every look to stay charged
    end = time.monotonic() + deadline
    pause = 0.001
    while True:
        leaks = look()
        suspects.intersection_update(leaks.shm)
        leaks.shm = sorted(suspects)
        if not leaks or time.monotonic() >= end:
            return leaks
        time.sleep(pause)  # a poll interval, not a synchronisation
        pause = min(pause * 2, 0.05)


# -- /proc readers ------------------------------------------------------------------------------


def _read_stat(pid: int) -> Proc | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:  # gone, or not ours to read
        return None
    # The command name (field 2) is in parentheses and may contain spaces and parentheses.
    fields = data[data.rindex(b")") + 2 :].split()
    return Proc(pid=pid, ppid=int(fields[1]), state=fields[0].decode(), start=int(fields[19]))


def _carries_marker(pid: int) -> bool:
    if _session_marker is None:
        return False
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read()
    except OSError:
        return False
    return _session_marker in environ.split(b"\0")


def _processes() -> tuple[dict[tuple[int, int], Proc], set[int]]:
    """The session's processes, and the pids of all the others on the machine.

    The session: the descendants of this process and of every process that carries the
    session marker (this process itself is in neither set).
    """
    me = os.getpid()
    table: dict[int, Proc] = {}
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            proc = _read_stat(int(name))
            if proc is not None:
                table[proc.pid] = proc
                children.setdefault(proc.ppid, []).append(proc.pid)
    roots = [me] + [pid for pid in table if pid != me and _carries_marker(pid)]
    found: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    found.discard(me)
    session = {(pid, table[pid].start): table[pid] for pid in found if pid in table}
    return session, table.keys() - found - {me}


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return "<gone>"
    text = raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    text = text.replace("\n", "\\n")  # one line per process, even for `python -c` scripts
    if not text:
        return "<no command line>"
    return text if len(text) <= _MAX_CMDLINE else text[: _MAX_CMDLINE - 3] + "..."


def _open_fds() -> dict[int, str]:
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the descriptor listdir used for the directory, closed since
            pass
    return fds


def _shm_segments() -> set[str]:
    """The names in /dev/shm that are segments of this library (``ck_<pid>_<hex>``)."""
    try:
        names = os.listdir(SHM_DIR)
    except FileNotFoundError:
        return set()
    return {name for name in names if creator_pid(name) is not None}


def _multiprocessing_singletons() -> tuple[set[int], set[int]]:
    """Pids and fds of this process's current forkserver and resource tracker, if running.

    Private attributes of CPython's multiprocessing (stable since 3.4); if they change, nothing
    is excluded here and the singletons are still covered by being started before any test.
    """
    pids: set[int] = set()
    fds: set[int] = set()
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    tracker = getattr(multiprocessing.resource_tracker, "_resource_tracker", None)
    for obj, pid_attr, fd_attr in (
        (server, "_forkserver_pid", "_forkserver_alive_fd"),
        (tracker, "_pid", "_fd"),
    ):
        pid = getattr(obj, pid_attr, None)
        fd = getattr(obj, fd_attr, None)
        if isinstance(pid, int):
            pids.add(pid)
        if isinstance(fd, int):
            fds.add(fd)
    return pids, fds


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun if n == 1 else _PLURALS.get(noun, noun + 's')}"

"""Child processes in tests: one the test talks to over a pipe, a fixture that cleans such
children up, :func:`descendants` to find every process a child left behind, and
:func:`creator` to kill a process that created shared memory, and :func:`asleep` to see that a
child blocks in the kernel.

``children(target, *args)`` starts a ``forkserver`` process running ``target(conn, *args)``;
the test reads what it reports with :meth:`Child.recv`, kills it with :meth:`Child.kill`, and
the fixture kills and reaps whatever is left when the test ends (a folder's ``conftest.py``
imports ``children`` to offer the fixture, as ``tests/state/conftest.py`` does).
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

DEADLOCK = 60.0
"""Seconds after which a child that has not answered or exited is a deadlock (a failure)."""

CTX = multiprocessing.get_context("forkserver")


class Child:
    """A child process running ``target(conn, *args)`` and talking over a pipe."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        self.conn, child_conn = CTX.Pipe()
        self.process = CTX.Process(target=target, args=(child_conn, *args))
        self.process.start()
        child_conn.close()

    def recv(self) -> Any:
        assert self.conn.poll(DEADLOCK), "the child did not answer (deadlock?)"
        return self.conn.recv()

    def join(self) -> int | None:
        self.process.join(DEADLOCK)
        assert not self.process.is_alive(), "the child did not exit"
        return self.process.exitcode

    def kill(self) -> None:
        self.process.kill()
        assert self.join() == -signal.SIGKILL

    def finish(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(DEADLOCK)
        self.process.close()
        self.conn.close()


@pytest.fixture
def children() -> Iterator[Callable[..., Child]]:
    started: list[Child] = []

    def start(target: Callable[..., None], *args: Any) -> Child:
        child = Child(target, *args)
        started.append(child)
        return child

    yield start
    for child in started:
        child.finish()


def descendants(root: int) -> list[int]:
    """Every live descendant of process ``root``, from ``/proc`` parent links."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if fields[0] != b"Z":
            children[int(fields[1])].append(int(name))
    found: list[int] = []
    todo = list(children[root])
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children[pid])
    return found


class Creator:
    """A new interpreter running a script that created shared memory (see :func:`creator`).

    Attributes:
        words: the first line the script printed, split: the names of what it created.
    """

    def __init__(self, proc: subprocess.Popen[str], words: list[str]) -> None:
        self.proc = proc
        self.words = words

    def kill(self) -> str:
        """SIGKILL the script and wait until its resource tracker has finished; return its
        stderr. (The tracker inherited our pipes from it: their end-of-file means it is done.)
        """
        self.proc.kill()
        _, err = self.proc.communicate(timeout=DEADLOCK)
        assert self.proc.returncode == -signal.SIGKILL
        return err


@contextmanager
def creator(code: str) -> Iterator[Creator]:
    """Run ``code`` in a new interpreter, which prints one line and then reads stdin until
    killed; yield it once the line is read. Whatever happens, it is gone when the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        words = proc.stdout.readline().split()
        assert words, proc.stderr.read() if proc.stderr else ""
        yield Creator(proc, words)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def asleep(pid: int) -> bool:
    """Whether process ``pid`` sleeps in the kernel (state ``S``) or is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return True
    return stat[stat.rindex(b")") + 2 :].split()[0] in (b"S", b"Z")


def wait_until(predicate: Callable[[], object], what: str, deadline: float = 60.0) -> None:
    """Poll ``predicate`` until it holds: for a state another thread or process reaches.

    A deadlock catch, not a delay that makes a test pass: it fails with ``what`` if the state
    is not reached within ``deadline`` seconds.
    """
    end = time.monotonic() + deadline
    while not predicate():
        assert time.monotonic() < end, f"never happened: {what}"
        time.sleep(0.001)

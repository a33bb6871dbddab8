"""A child process the test talks to over a pipe, and a fixture that cleans such children up.

``children(target, *args)`` starts a ``forkserver`` process running ``target(conn, *args)``;
the test reads what it reports with :meth:`Child.recv`, kills it with :meth:`Child.kill`, and
the fixture kills and reaps whatever is left when the test ends. Import both names into a test
module (``from _children import Child, children``) to use the fixture there.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterator
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

"""The other parties of the sync-primitive contract: threads or processes, driven over a pipe.

A peer gets the primitives of a test (a dict, passed as a ``Process`` argument, so process
handles are pickled and attached in the child) and runs a command loop. A command is one of the
module-level functions below, sent by reference, with its arguments::

    test ── send(wait_on, "cond", 60) ───────> peer: with cond: cond.wait(60)
         <── ("ok", True) ────────────────────  (once it has been notified)

The test decides exactly when each party acts; when it must know a peer is *blocked*, it polls
``statistics().waiters`` (a state, not a time). This module imports nothing heavy, so a
``forkserver`` child starts quickly.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from _children import wait_until

DEADLOCK = 60.0
"""Seconds after which a wait that should have ended is a deadlock (a failure, not a pass)."""

Prims = dict[str, Any]


def waiting(primitive: Any) -> int:
    """How many parties are blocked on ``primitive`` now (a barrier counts ``n_waiting``)."""
    if hasattr(primitive, "n_waiting"):
        return int(primitive.n_waiting)
    return int(primitive.statistics().waiters)


# -- the commands a peer runs (each takes the primitives first) ------------------------------


def whoami(prims: Prims) -> tuple[int, int]:
    return os.getpid(), threading.get_native_id()


def call(prims: Prims, name: str, method: str, *args: Any) -> Any:
    """``prims[name].method(*args)``."""
    return getattr(prims[name], method)(*args)


def wait_on(prims: Prims, cond: str, timeout: float | None) -> bool:
    """``with cond: return cond.wait(timeout)``."""
    with prims[cond]:
        result: bool = prims[cond].wait(timeout)
        return result


def wait_for_flag(prims: Prims, cond: str, flag: str, calls: str, timeout: float | None) -> Any:
    """``cond.wait_for`` an event's flag; every evaluation of the predicate releases ``calls``
    (a semaphore), so the test can count them."""
    condition, event, counter = prims[cond], prims[flag], prims[calls]

    def predicate() -> bool:
        counter.release()
        return bool(event.is_set())

    with condition:
        return condition.wait_for(predicate, timeout)


def wait_holding_twice(prims: Prims, cond: str, timeout: float | None) -> tuple[bool, int]:
    """Wait on a condition over an RLock held twice; answer the result and the recursion
    depth the waiter has once ``wait`` returns."""
    condition = prims[cond]
    condition.acquire()
    condition.acquire()
    try:
        result = condition.wait(timeout)
        return result, condition.statistics().lock.recursion
    finally:
        condition.release()
        condition.release()


def notify_under_lock(prims: Prims, cond: str, n: int | None) -> None:
    """``with cond: cond.notify(n)`` (``notify_all()`` when ``n`` is None)."""
    condition = prims[cond]
    with condition:
        if n is None:
            condition.notify_all()
        else:
            condition.notify(n)


def when_waiting(prims: Prims, watched: str, count: int, name: str, method: str, *args: Any) -> Any:
    """Once ``count`` parties are blocked on ``prims[watched]``, call ``prims[name].method``.

    Lets a peer wake the *test's* thread: the test sends this, then blocks itself.
    """
    wait_until(lambda: waiting(prims[watched]) == count, f"{count} waiter(s) on {watched}")
    if method == "notify_under_lock":
        return notify_under_lock(prims, name, *args)
    if method == "set_and_notify":  # set the event ``args[0]``, then notify the condition
        prims[args[0]].set()
        return notify_under_lock(prims, name, None)
    return getattr(prims[name], method)(*args)


def barrier_round(prims: Prims, name: str, rounds: int) -> list[int]:
    """Pass the barrier ``rounds`` times; answer the indices."""
    barrier = prims[name]
    return [barrier.wait(DEADLOCK) for _ in range(rounds)]


# -- the loop ---------------------------------------------------------------------------------


def peer_loop(prims: Prims, conn: Connection, own_handles: bool) -> None:
    """Run commands until told to stop, answering each with its outcome."""
    try:
        while True:
            command = conn.recv()
            if command is None:
                return
            fn, args = command
            try:
                result = fn(prims, *args)
            except Exception as exc:
                names = [f"{cls.__module__}.{cls.__qualname__}" for cls in type(exc).__mro__]
                conn.send(("raised", names, str(exc)))
            else:
                conn.send(("ok", result))
    finally:
        conn.close()
        if own_handles:
            for primitive in prims.values():
                primitive.close()


def interpreter_peer_loop(prims: Prims, fd: int) -> None:
    """:func:`peer_loop` in another interpreter: its end of the pipe arrives as a descriptor
    (a number valid in every interpreter of the process), wrapped in a connection there."""
    peer_loop(prims, Connection(fd), True)


def _run_interpreter_peer(interp: Any, prims: Prims, fd: int, failed: list[BaseException]) -> None:
    try:
        interp.call(interpreter_peer_loop, prims, fd)
    except BaseException as exc:  # reported by Peer.stop
        failed.append(exc)


class PeerRaised(Exception):
    """The peer's command raised: ``names`` are its exception's class and bases, each as
    ``module.qualname``."""

    def __init__(self, names: list[str], message: str) -> None:
        super().__init__(names[0], message)
        self.names = names
        self.message = message

    @property
    def type_name(self) -> str:
        return self.names[0]


class Peer:
    """Another party sharing ``prims``: a thread (``kind="thread"``), another interpreter of
    this process run by a thread of this one (``kind="interpreter"``, Python 3.14+; the
    primitives are pickled into it), or a process started by the ``kind`` multiprocessing start
    method ("forkserver", "spawn", ...)."""

    def __init__(self, kind: str, prims: Prims) -> None:
        self.kind = kind
        self.pending = False
        self.conn, child = multiprocessing.Pipe()
        self._child: Connection | None = child
        self.runner: threading.Thread | multiprocessing.process.BaseProcess
        self._interp: Any = None
        self._failed: list[BaseException] = []
        if kind == "thread":
            self.runner = threading.Thread(
                target=peer_loop, args=(prims, child, False), name="sync-peer", daemon=True
            )
            self.runner.start()
        elif kind == "interpreter":
            from concurrent import interpreters

            self._interp = interpreters.create()
            self._interp.exec(f"import sys\nsys.path[:] = {sys.path!r}")
            fd = os.dup(child.fileno())  # the peer's own, closed by its connection there
            child.close()
            self._child = None
            self.runner = threading.Thread(
                target=_run_interpreter_peer,
                args=(self._interp, prims, fd, self._failed),
                name="sync-peer-interpreter",
            )
            self.runner.start()
        else:
            ctx: Any = multiprocessing.get_context(kind)
            self.runner = ctx.Process(target=peer_loop, args=(prims, child, True), name="sync-peer")
            self.runner.start()
            child.close()
            self._child = None
        self.pid = self.native_id = 0

    def ready(self) -> Peer:
        """Wait until the peer runs its loop (started peers start up in parallel)."""
        self.pid, self.native_id = self.call(whoami)
        return self

    def send(self, fn: Callable[..., Any], *args: Any) -> None:
        assert not self.pending, "the previous command has not been answered"
        self.conn.send((fn, args))
        self.pending = True

    def answered(self) -> bool:
        """Whether the pending command has an answer (without waiting)."""
        return self.conn.poll()

    def answer(self) -> Any:
        """The pending command's result; :class:`PeerRaised` if it raised."""
        assert self.conn.poll(DEADLOCK), "the peer did not answer (deadlock?)"
        self.pending = False
        status, *rest = self.conn.recv()
        if status == "raised":
            raise PeerRaised(*rest)
        return rest[0]

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.send(fn, *args)
        return self.answer()

    def stop(self) -> None:
        """End the loop and join the peer; a process stuck in a command is killed."""
        if isinstance(self.runner, multiprocessing.process.BaseProcess):
            if self.pending and self.runner.is_alive():
                self.runner.kill()  # the test failed with the peer blocked
            else:
                with contextlib.suppress(OSError):
                    self.conn.send(None)
            self.runner.join(DEADLOCK)
            alive = self.runner.is_alive()
            if alive:
                self.runner.kill()
                self.runner.join()
            self.runner.close()
        else:
            with contextlib.suppress(OSError):
                self.conn.send(None)
            self.runner.join(DEADLOCK)
            alive = self.runner.is_alive()
            if self._child is not None and not alive:
                self._child.close()
            if self._interp is not None and not alive:
                self._interp.close()
        self.conn.close()
        assert not alive, "the peer did not stop (blocked in a command?)"
        assert not self._failed, f"the peer interpreter failed: {self._failed[0]}"

"""The RWLock contract: one behaviour suite over ThreadRWLock and ProcessRWLock (``model.RWLock``).

Every test that needs other parties gets them from the ``peers`` fixture: threads in the thread
model, ``forkserver`` processes (the lock passed as a ``Process`` argument, so a pickled handle)
in the process model. A peer runs a command loop over a pipe (:func:`peer_loop`), so the test
decides exactly when each party acquires and releases::

    test ── conn.send(("acquire_write", (True, 60))) ──> peer: rw.acquire_write(True, 60)
         <── ("ok", True) ────────────────────────────── (once it has the write side)

When the test must know that a peer is *blocked*, it polls the lock's state
(``statistics().writers_waiting == 1``), never a sleep. :data:`DEADLOCK` only turns a hang into
a failure; a timeout that expires on purpose is the one under test, and short.

Semantics: many readers or one writer; writer-preferring (a new reader waits while a writer
holds *or waits*), except that a thread already reading may read again at once; the write side
is not re-entrant and cannot be taken by a reader (``RuntimeError`` instead of a deadlock);
releasing a side the caller does not hold raises ``RuntimeError``; ``acquire_*`` take the
arguments of :meth:`threading.Lock.acquire`; ``read()``/``write()`` raise
:exc:`~concurrency_kit.LockTimeoutError` (a :exc:`TimeoutError`) on timeout.

On Python 3.14+ the suite also runs over INTERPRETER, whose ``RWLock`` is the process one: its
peers and parties are other interpreters of this process (a ``concurrent.interpreters``
interpreter run by a thread of this one, the lock pickled into it).

The :class:`Peer` helper is shared with ``test_guarded.py``.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import multiprocessing
import os
import pickle
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import attrs
import pytest
from _models import is_process, with_interpreter_model

import concurrency_kit as ck
from _children import wait_until
from concurrency_kit import LockTimeoutError, Model, RWLockStatistics

DEADLOCK = 60.0
"""Seconds after which a wait that should have ended is a deadlock (a failure, not a pass)."""

SHORT = 0.1
"""A timeout that is meant to expire (the one under test)."""


# -- the peer: another thread or another process, driven over a pipe ---------------------------


def _run(obj: Any, op: str, args: tuple[Any, ...], entered: list[tuple[Any, Any]]) -> Any:
    if op == "whoami":
        return os.getpid(), threading.get_native_id()
    if op == "enter":  # enter a context manager: ("enter", (method, *args)) -> what it yields
        method, *rest = args
        manager = getattr(obj, method)(*rest)
        value = manager.__enter__()
        entered.append((manager, value))
        return value
    if op == "exit":  # leave the innermost entered block normally
        manager, _ = entered.pop()
        return manager.__exit__(None, None, None)
    if op == "fail":  # leave the innermost entered block with an exception
        manager, _ = entered.pop()
        error = KeyError("the block failed")
        return manager.__exit__(KeyError, error, None)
    if op == "mutate":  # call a method of the innermost block's value: ("mutate", (name, *a))
        method, *rest = args
        return getattr(entered[-1][1], method)(*rest)
    return getattr(obj, op)(*args)


def peer_loop(obj: Any, conn: Connection, own_handle: bool) -> None:
    """Run ``obj`` methods as the test commands, answering each with its outcome."""
    entered: list[tuple[Any, Any]] = []
    try:
        while True:
            op, args = conn.recv()
            if op == "stop":
                return
            try:
                result = _run(obj, op, args, entered)
            except Exception as exc:
                try:
                    conn.send(("raised", exc))
                except Exception:  # an exception that does not pickle: its name and text
                    conn.send(("raised", RuntimeError(f"{type(exc).__name__}: {exc}")))
            else:
                conn.send(("ok", result))
    finally:
        conn.close()
        if own_handle:
            obj.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    with_interpreter_model(metafunc)


def _interpreter(interpreters: Any) -> Any:
    """A new interpreter of this process that imports what this one can."""
    interp = interpreters.create()
    interp.exec(f"import sys\nsys.path[:] = {sys.path!r}")
    return interp


def interpreter_peer_loop(obj: Any, fd: int) -> None:
    """:func:`peer_loop` in another interpreter: its end of the pipe arrives as a descriptor
    (a number valid in every interpreter of the process), wrapped in a connection there."""
    peer_loop(obj, Connection(fd), True)


class Peer:
    """The other party: sends commands to :func:`peer_loop` and reads the answers.

    ``call`` re-raises, in the test, an exception the peer's call raised (same type).
    """

    def __init__(self, obj: Any, kind: str, method: str = "forkserver") -> None:
        self.runner: threading.Thread | multiprocessing.process.BaseProcess
        self._interp: Any = None
        self._failed: list[BaseException] = []
        if kind == "thread":
            self.conn, self._child = multiprocessing.Pipe()
            self.runner = threading.Thread(
                target=peer_loop, args=(obj, self._child, False), name="peer", daemon=True
            )
            self.runner.start()
        elif kind == "interpreter":
            from concurrent import interpreters

            self.conn, self._child = multiprocessing.Pipe()
            self._interp = _interpreter(interpreters)
            fd = os.dup(self._child.fileno())  # the peer's own, closed by its connection there
            self.runner = threading.Thread(
                target=_catching,
                args=(self._interp.call, self._failed, interpreter_peer_loop, obj, fd),
                name="peer-interpreter",
            )
            self.runner.start()
        else:
            ctx = multiprocessing.get_context(method)
            self.conn, self._child = ctx.Pipe()
            self.runner = ctx.Process(target=peer_loop, args=(obj, self._child, True))
            self.runner.start()
            self._child.close()
        self.pid, self.native_id = self.call("whoami")

    def send(self, op: str, *args: object) -> None:
        self.conn.send((op, args))

    def answer(self) -> Any:
        assert self.conn.poll(DEADLOCK), "the peer did not answer (deadlock?)"
        status, result = self.conn.recv()
        if status == "raised":
            raise result
        return result

    def call(self, op: str, *args: object) -> Any:
        self.send(op, *args)
        return self.answer()

    def answered(self) -> bool:
        """Whether an answer is waiting (a peer still blocked in a call has not answered)."""
        return self.conn.poll()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.send("stop")
        self.runner.join(DEADLOCK)
        alive = self.runner.is_alive()
        if isinstance(self.runner, multiprocessing.process.BaseProcess):
            if alive:
                self.runner.kill()
                self.runner.join()
            self.runner.close()
        else:
            self._child.close()
        if self._interp is not None and not alive:
            self._interp.close()
        self.conn.close()
        assert not alive, "the peer did not stop (blocked in a call?)"
        assert not self._failed, f"the peer interpreter failed: {self._failed[0]}"


PeerFactory = Callable[..., Peer]


def peer_factory(model: Model) -> Iterator[PeerFactory]:
    """The body of a ``peers`` fixture (here and in ``test_guarded.py``): yields a function
    that starts a peer of the model sharing an object, and stops every peer afterwards."""
    started: list[Peer] = []

    def start(obj: Any, method: str = "forkserver") -> Peer:
        peer = Peer(obj, model.name, method)
        started.append(peer)
        return peer

    yield start
    for peer in reversed(started):
        peer.stop()


@pytest.fixture
def peers(model: Model) -> Iterator[PeerFactory]:
    """Start peers of the model: ``peers(obj)`` (process model: ``peers(obj, "spawn")`` too)."""
    yield from peer_factory(model)


def _catching(target: Callable[..., None], errors: list[BaseException], *args: Any) -> None:
    try:
        target(*args)
    except BaseException as exc:
        errors.append(exc)


def run_parties(model: Model, target: Callable[..., None], *arg_lists: tuple[Any, ...]) -> None:
    """Run ``target(*args)`` for each of ``arg_lists`` in parallel parties of the model (threads,
    or ``forkserver`` processes) and check that every one finished without an error."""
    errors: list[BaseException] = []
    parties: list[Any]
    interps: list[Any] = []
    if model.name == "interpreter":
        from concurrent import interpreters

        interps = [_interpreter(interpreters) for _ in arg_lists]
        parties = [
            threading.Thread(target=_catching, args=(interp.call, errors, target, *args))
            for interp, args in zip(interps, arg_lists, strict=True)
        ]
    elif model.name == "process":
        ctx = multiprocessing.get_context("forkserver")
        parties = [ctx.Process(target=target, args=args) for args in arg_lists]
    else:
        parties = [
            threading.Thread(target=_catching, args=(target, errors, *args)) for args in arg_lists
        ]
    for party in parties:
        party.start()
    try:
        for party in parties:
            party.join(DEADLOCK)
            assert not party.is_alive(), "a party did not finish (deadlock?)"
    finally:
        for interp in interps:
            interp.close()
        if model.name == "process":
            for party in parties:
                if party.is_alive():
                    party.kill()
                    party.join()
            codes = [party.exitcode for party in parties]
            for party in parties:
                party.close()
    if errors:
        raise errors[0]
    if model.name == "process":
        assert codes == [0] * len(parties), "a party failed (its traceback is on stderr)"


# -- fixtures and helpers of this suite --------------------------------------------------------


@pytest.fixture
def rw(model: Model) -> Iterator[Any]:
    lock = model.RWLock()
    yield lock
    lock.close()


def me() -> tuple[int, int]:
    return os.getpid(), threading.get_native_id()


def wait_writers(rw: Any, n: int) -> None:
    wait_until(lambda: rw.statistics().writers_waiting == n, f"{n} writer(s) waiting")


def wait_readers(rw: Any, n: int) -> None:
    wait_until(lambda: rw.statistics().readers_waiting == n, f"{n} reader(s) waiting")


# -- many readers, one writer -------------------------------------------------------------------


def test_readers_hold_the_read_side_at_the_same_time(rw: Any, peers: PeerFactory) -> None:
    first, second = peers(rw), peers(rw)
    assert first.call("acquire_read") is True
    assert second.call("acquire_read", False) is True  # did not wait: shared with `first`
    with rw.read():  # and a third party, through the context manager
        assert rw.statistics().readers == 3
    assert rw.statistics().readers == 2
    assert rw.acquire_write(False) is False
    first.call("release_read")
    second.call("release_read")
    stats = rw.statistics()
    assert (stats.readers, stats.read_acquisitions, stats.contentions) == (0, 3, 1)


def test_writer_excludes_readers_and_writers(rw: Any, peers: PeerFactory) -> None:
    writer = peers(rw)
    assert writer.call("acquire_write") is True
    stats = rw.statistics()
    assert (stats.writer_pid, stats.writer_thread) == (writer.pid, writer.native_id)
    assert rw.acquire_read(False) is False
    assert rw.acquire_write(False) is False
    assert rw.acquire_read(timeout=0) is False
    assert rw.acquire_write(True, 0) is False
    stats = rw.statistics()
    assert (stats.readers, stats.writers_waiting, stats.readers_waiting) == (0, 0, 0)
    assert stats.contentions == 4
    writer.call("release_write")
    assert rw.statistics().writer_pid is None
    with rw.write():
        assert rw.statistics().writer_thread == threading.get_native_id()


def test_readers_exclude_a_writer(rw: Any, peers: PeerFactory) -> None:
    reader = peers(rw)
    assert reader.call("acquire_read") is True
    assert rw.acquire_write(False) is False
    assert rw.statistics().writer_pid is None
    reader.call("release_read")
    assert rw.acquire_write(False) is True
    assert reader.call("acquire_read", False) is False  # and a writer excludes the reader
    rw.release_write()


def test_blocked_writer_gets_the_lock_when_the_last_reader_leaves(
    rw: Any, peers: PeerFactory
) -> None:
    reader, writer = peers(rw), peers(rw)
    assert rw.acquire_read()
    reader.call("acquire_read")
    writer.send("acquire_write", True, DEADLOCK)
    wait_writers(rw, 1)
    rw.release_read()
    assert rw.statistics().writers_waiting == 1  # one reader left: still waiting
    assert not writer.answered()
    reader.call("release_read")
    assert writer.answer() is True
    stats = rw.statistics()
    assert (stats.writer_pid, stats.writer_thread) == (writer.pid, writer.native_id)
    assert (stats.readers, stats.writers_waiting) == (0, 0)
    writer.call("release_write")


def test_blocked_readers_all_get_in_when_the_writer_leaves(rw: Any, peers: PeerFactory) -> None:
    first, second = peers(rw), peers(rw)
    assert rw.acquire_write()
    first.send("acquire_read", True, DEADLOCK)
    second.send("acquire_read", True, DEADLOCK)
    wait_readers(rw, 2)
    rw.release_write()
    assert first.answer() is True
    assert second.answer() is True
    stats = rw.statistics()
    assert (stats.readers, stats.readers_waiting, stats.writer_pid) == (2, 0, None)
    first.call("release_read")
    second.call("release_read")


def test_writers_take_turns(rw: Any, peers: PeerFactory) -> None:
    writer = peers(rw)
    assert rw.acquire_write()
    writer.send("acquire_write", True, DEADLOCK)
    wait_writers(rw, 1)
    rw.release_write()
    assert writer.answer() is True
    assert rw.acquire_write(False) is False
    writer.call("release_write")
    assert rw.statistics().write_acquisitions == 2


# -- writer preference ----------------------------------------------------------------------------


def test_a_waiting_writer_holds_back_new_readers(rw: Any, peers: PeerFactory) -> None:
    old_reader, writer, new_reader = peers(rw), peers(rw), peers(rw)
    assert old_reader.call("acquire_read") is True
    writer.send("acquire_write", True, DEADLOCK)
    wait_writers(rw, 1)
    # Only readers hold the lock, yet a new reader may not join them: a writer waits.
    assert rw.acquire_read(False) is False
    new_reader.send("acquire_read", True, DEADLOCK)
    wait_readers(rw, 1)
    stats = rw.statistics()
    assert (stats.readers, stats.writers_waiting, stats.readers_waiting) == (1, 1, 1)

    old_reader.call("release_read")
    assert writer.answer() is True  # the writer goes first ...
    stats = rw.statistics()
    assert (stats.writer_pid, stats.writer_thread) == (writer.pid, writer.native_id)
    assert (stats.readers, stats.writers_waiting, stats.readers_waiting) == (0, 0, 1)
    assert not new_reader.answered()  # ... while the new reader still waits

    writer.call("release_write")
    assert new_reader.answer() is True
    stats = rw.statistics()
    assert (stats.readers, stats.readers_waiting, stats.writer_pid) == (1, 0, None)
    new_reader.call("release_read")


def test_a_reader_may_read_again_while_a_writer_waits(rw: Any, peers: PeerFactory) -> None:
    writer = peers(rw)
    assert rw.acquire_read()
    writer.send("acquire_write", True, DEADLOCK)
    wait_writers(rw, 1)
    # Re-entry never blocks, or the reader would wait for a writer that waits for it.
    assert rw.acquire_read(False) is True
    with rw.read(timeout=0):
        assert rw.acquire_read(True, DEADLOCK) is True
    stats = rw.statistics()
    assert (stats.readers, stats.writers_waiting) == (1, 1)  # one reader, holding three times
    assert stats.read_acquisitions == 4
    rw.release_read()
    rw.release_read()
    assert not writer.answered()  # still one hold left
    assert rw.statistics().readers == 1
    rw.release_read()
    assert writer.answer() is True
    with pytest.raises(RuntimeError):
        rw.release_read()  # every hold has been released
    writer.call("release_write")


def test_readers_held_back_by_a_writer_that_gives_up_get_in(rw: Any, peers: PeerFactory) -> None:
    # The writer's timeout must expire *after* the new reader queued behind it. A VM too slow to
    # queue the reader within the timeout retries with a longer one; the outcome is checked
    # every time, whatever happened.
    old_reader, writer, new_reader = peers(rw), peers(rw), peers(rw)
    assert old_reader.call("acquire_read") is True
    for timeout in (SHORT, 0.4, 1.6, 6.4):
        writer.send("acquire_write", True, timeout)
        wait_until(
            lambda: rw.statistics().writers_waiting == 1 or writer.answered(), "writer waits"
        )
        new_reader.send("acquire_read", True, DEADLOCK)
        seen = False
        while not (seen or new_reader.answered()):
            stats = rw.statistics()
            seen = stats.readers_waiting == 1 and stats.writers_waiting == 1
        assert writer.answer() is False  # timed out: the old reader never left
        assert new_reader.answer() is True  # let in when the writer gave up
        stats = rw.statistics()
        assert (stats.readers, stats.writers_waiting, stats.readers_waiting) == (2, 0, 0)
        new_reader.call("release_read")
        if seen:
            break
    else:
        pytest.fail("the reader never queued behind the waiting writer")
    old_reader.call("release_read")


# -- what would deadlock raises instead ------------------------------------------------------------


def test_upgrading_a_read_lock_raises(rw: Any) -> None:
    assert rw.acquire_read()
    with pytest.raises(RuntimeError, match="read side"):
        rw.acquire_write()
    with pytest.raises(RuntimeError):
        rw.acquire_write(False)
    with pytest.raises(RuntimeError), rw.write():
        pytest.fail("the block must not run")
    stats = rw.statistics()
    assert (stats.readers, stats.writer_pid, stats.writers_waiting) == (1, None, 0)
    assert stats.write_acquisitions == 0
    rw.release_read()
    assert rw.acquire_write(False) is True
    rw.release_write()


def test_write_side_is_not_reentrant(rw: Any) -> None:
    with rw.write():
        with pytest.raises(RuntimeError, match="not re-entrant"):
            rw.acquire_write()
        with pytest.raises(RuntimeError):
            rw.acquire_write(True, DEADLOCK)
        with pytest.raises(RuntimeError):
            rw.acquire_read()  # the writer reading too: not allowed either
        with pytest.raises(RuntimeError), rw.read():
            pytest.fail("the block must not run")
        stats = rw.statistics()
        assert (stats.writer_thread, stats.readers, stats.write_acquisitions) == (
            threading.get_native_id(),
            0,
            1,
        )
    assert rw.statistics().writer_pid is None


def test_releasing_what_you_do_not_hold_raises(rw: Any, peers: PeerFactory) -> None:
    with pytest.raises(RuntimeError):
        rw.release_read()
    with pytest.raises(RuntimeError):
        rw.release_write()
    with rw.read(), pytest.raises(RuntimeError):
        rw.release_write()
    with rw.write(), pytest.raises(RuntimeError):
        rw.release_read()
    peer = peers(rw)
    peer.call("acquire_write")
    with pytest.raises(RuntimeError):
        rw.release_write()
    assert rw.statistics().writer_thread == peer.native_id  # still the peer's
    peer.call("release_write")
    peer.call("acquire_read")
    with pytest.raises(RuntimeError):
        rw.release_read()
    assert rw.statistics().readers == 1
    with pytest.raises(RuntimeError):
        peer.call("release_write")  # and the peer cannot release what it does not hold
    peer.call("release_read")
    assert rw.statistics().readers == 0


# -- timeouts and arguments -------------------------------------------------------------------


def test_timeouts_return_false_and_leave_no_trace(rw: Any, peers: PeerFactory) -> None:
    reader = peers(rw)
    reader.call("acquire_read")
    start = time.monotonic()
    assert rw.acquire_write(timeout=SHORT) is False
    assert time.monotonic() - start >= SHORT * 0.6
    stats = rw.statistics()
    assert (stats.writers_waiting, stats.writer_pid, stats.readers) == (0, None, 1)
    assert rw.acquire_read(False) is True  # no writer left waiting: readers may join
    rw.release_read()
    reader.call("release_read")

    reader.call("acquire_write")
    assert rw.acquire_read(True, SHORT) is False
    assert rw.statistics().readers_waiting == 0
    reader.call("release_write")
    assert rw.acquire_read(False) is True
    rw.release_read()


def test_context_managers_raise_lock_timeout_error(rw: Any, peers: PeerFactory) -> None:
    writer = peers(rw)
    writer.call("acquire_write")
    with pytest.raises(LockTimeoutError, match="read side") as info, rw.read(timeout=SHORT):
        pytest.fail("the block must not run")
    assert isinstance(info.value, TimeoutError)
    with pytest.raises(TimeoutError), rw.write(timeout=SHORT):
        pytest.fail("the block must not run")
    with pytest.raises(LockTimeoutError), rw.read(timeout=0):
        pytest.fail("the block must not run")
    stats = rw.statistics()
    assert (stats.readers, stats.readers_waiting, stats.writers_waiting) == (0, 0, 0)
    writer.call("release_write")
    with rw.write(timeout=0), pytest.raises(LockTimeoutError):
        writer.call("enter", "read", SHORT)  # the peer's read() times out as well


NOT_A_TIMEOUT = [math.nan, -0.5, -math.inf]
NOT_A_NUMBER = ["1", [1], True]
HUGE = [math.inf, 1e10, 1e300]
BAD_TIMEOUTS = pytest.mark.parametrize(
    ("timeout", "error"),
    [(t, ValueError) for t in NOT_A_TIMEOUT] + [(t, TypeError) for t in NOT_A_NUMBER],
    ids=repr,
)


@BAD_TIMEOUTS
@pytest.mark.parametrize("side", ["read", "write"])
def test_bad_timeouts_raise_before_anything_changes(
    rw: Any, side: str, timeout: object, error: type[Exception]
) -> None:
    # The library's timeout rule (concurrency_kit._core.deadline); -1 stays threading's "wait
    # for as long as it takes" for acquire_*, as every lock's.
    acquire = getattr(rw, f"acquire_{side}")
    with pytest.raises(error, match="timeout"):
        acquire(True, timeout)
    with pytest.raises(error, match="timeout"):
        acquire(timeout=timeout)
    with pytest.raises(error, match="timeout"):
        getattr(rw, side)(timeout)  # at the call, before any ``with``
    with pytest.raises(ValueError, match="timeout"):
        getattr(rw, side)(-1)  # the context managers take None, not -1, for no limit
    stats = rw.statistics()
    assert (stats.readers, stats.writer_pid, stats.contentions) == (0, None, 0)
    assert stats.read_acquisitions == stats.write_acquisitions == 0


@pytest.mark.parametrize("timeout", HUGE, ids=repr)
@pytest.mark.parametrize("how", ["acquire", "with"])
@pytest.mark.parametrize("side", ["read", "write"])
def test_huge_timeouts_wait_until_released(
    rw: Any, peers: PeerFactory, side: str, how: str, timeout: float
) -> None:
    peer = peers(rw)
    assert rw.acquire_write()
    if how == "acquire":
        peer.send(f"acquire_{side}", True, timeout)
    else:
        peer.send("enter", side, timeout)
    (wait_readers if side == "read" else wait_writers)(rw, 1)  # the handshake: it waits
    assert not peer.answered()
    rw.release_write()
    assert peer.answer() in (True, None)
    stats = rw.statistics()
    assert (stats.readers, stats.writer_pid) == ((1, None) if side == "read" else (0, peer.pid))
    peer.call(f"release_{side}" if how == "acquire" else "exit")


def test_context_managers_release_on_exception(rw: Any) -> None:
    with pytest.raises(KeyError), rw.read():
        raise KeyError("inside")
    with pytest.raises(KeyError), rw.write():
        raise KeyError("inside")
    stats = rw.statistics()
    assert (stats.readers, stats.writer_pid) == (0, None)
    assert rw.acquire_write(False) is True
    rw.release_write()


@pytest.mark.parametrize("side", ["read", "write"])
@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((False, 1), {}),
        ((False, 0), {}),
        ((), {"blocking": False, "timeout": 0.5}),
        ((True, -2), {}),
        ((), {"timeout": -0.5}),
    ],
)
def test_bad_arguments_raise_value_error_like_threading(
    rw: Any, side: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="timeout"):
        threading.Lock().acquire(*args, **kwargs)
    with pytest.raises(ValueError, match="timeout"):
        getattr(rw, f"acquire_{side}")(*args, **kwargs)
    stats = rw.statistics()
    assert (stats.readers, stats.writer_pid, stats.contentions) == (0, None, 0)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), ((True,), {}), ((False,), {}), ((True, 0), {}), ((), {"timeout": 5.5})],
)
@pytest.mark.parametrize("side", ["read", "write"])
def test_stdlib_arguments_are_accepted(
    rw: Any, side: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    assert getattr(rw, f"acquire_{side}")(*args, **kwargs) is True
    assert getattr(rw, f"release_{side}")() is None


# -- statistics, close, pickling --------------------------------------------------------------


def test_statistics(rw: Any, peers: PeerFactory) -> None:
    assert rw.statistics() == RWLockStatistics(
        readers=0,
        writer_pid=None,
        writer_thread=None,
        readers_waiting=0,
        writers_waiting=0,
        read_acquisitions=0,
        write_acquisitions=0,
        contentions=0,
        owner_deaths_recovered=0,
    )
    with rw.write():
        stats = rw.statistics()
        assert (stats.writer_pid, stats.writer_thread) == me()
        with pytest.raises(AttributeError):
            stats.readers = 5  # a frozen value
    with rw.read(), rw.read():
        assert rw.statistics().readers == 1  # one reader, twice
    peer = peers(rw)
    peer.call("acquire_read")
    assert rw.acquire_write(False) is False  # a contention that gives up
    peer.call("release_read")
    assert attrs.asdict(rw.statistics()) == {
        "readers": 0,
        "writer_pid": None,
        "writer_thread": None,
        "readers_waiting": 0,
        "writers_waiting": 0,
        "read_acquisitions": 3,
        "write_acquisitions": 1,
        "contentions": 1,
        "owner_deaths_recovered": 0,
    }


def test_close_is_idempotent(model: Model) -> None:
    rw = model.RWLock()
    with rw.read():
        pass
    rw.close()
    rw.close()
    if is_process(model):
        with pytest.raises(ValueError, match="closed"):
            rw.acquire_read()
        with pytest.raises(ValueError, match="closed"):
            pickle.dumps(rw)
        assert "closed" in repr(rw)
    else:  # nothing to release: the thread lock goes on working
        with rw.write():
            pass


def test_pickling(model: Model, rw: Any, peers: PeerFactory) -> None:
    if not is_process(model):
        with pytest.raises(TypeError, match="pickle"):
            pickle.dumps(rw)
        return
    handle = pickle.loads(pickle.dumps(rw))  # another handle in this process
    try:
        with rw.write():
            assert handle.statistics().writer_thread == threading.get_native_id()
            with pytest.raises(RuntimeError):
                handle.acquire_read(False)  # this thread is the writer, whichever the handle
    finally:
        handle.close()
    peer = peers(rw, "spawn")  # a handle rebuilt by a fresh interpreter
    assert peer.call("acquire_read") is True
    assert rw.statistics().readers == 1
    assert rw.acquire_write(False) is False
    peer.call("release_read")
    with rw.write():
        assert peer.call("acquire_read", False) is False
        assert peer.call("statistics").writer_pid == os.getpid()


# -- a property: whatever the interleaving, never a writer together with anyone -------------------

READERS_IN, WRITERS_IN, OVERLAPS, COUNTER, MAX_READERS, WRITES = range(6)
"""Fields of the gauge: a file every party maps (so no lock of the library is involved);
``WRITES + i`` counts the writes of party ``i``."""


@contextlib.contextmanager
def mapped_gauge(path: str, n: int) -> Iterator[Any]:
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), 8 * (WRITES + n)) as mm:
        gauge = memoryview(mm).cast("q")
        try:
            yield gauge
        finally:
            gauge.release()  # the mapping cannot close while a view exports it


def rw_party(rw: Any, path: str, gauge_lock: Any, i: int, n: int, rounds: int) -> None:
    """Do ``rounds`` random reads and writes; count in the gauge any overlap it sees."""
    rng = random.Random(i)
    with mapped_gauge(path, n) as gauge:

        def enter(field: int) -> None:
            with gauge_lock:
                gauge[field] += 1
                if gauge[WRITERS_IN] > 1 or (gauge[WRITERS_IN] and gauge[READERS_IN]):
                    gauge[OVERLAPS] += 1
                gauge[MAX_READERS] = max(gauge[MAX_READERS], gauge[READERS_IN])

        def leave(field: int) -> None:
            with gauge_lock:
                gauge[field] -= 1

        def write() -> None:
            enter(WRITERS_IN)
            value = gauge[COUNTER]
            os.sched_yield()  # invite a switch inside: only the lock keeps others out
            gauge[COUNTER] = value + 1
            gauge[WRITES + i] += 1
            leave(WRITERS_IN)

        def read(nested: bool) -> None:
            enter(READERS_IN)
            os.sched_yield()
            if nested:
                with rw.read():
                    os.sched_yield()
            leave(READERS_IN)

        for _ in range(rounds):
            op = rng.choice(["read", "nested", "write", "try_write", "timed_read"])
            if op in ("read", "nested"):
                with rw.read():
                    read(op == "nested")
            elif op == "timed_read":
                if rw.acquire_read(True, DEADLOCK):
                    try:
                        read(False)
                    finally:
                        rw.release_read()
            elif op == "write":
                with rw.write():
                    write()
            elif rw.acquire_write(False):
                try:
                    write()
                finally:
                    rw.release_write()


def test_property_no_writer_overlaps_anyone(model: Model, rw: Any, tmp_path: Path) -> None:
    n, rounds = 3, 150
    path = tmp_path / "gauge"
    path.write_bytes(bytes(8 * (WRITES + n)))
    # The gauge's own lock, independent of the lock under test: multiprocessing's, which does
    # not cross into another interpreter, where it is the library's plain process lock.
    gauge_lock: Any
    if model.name == "interpreter":
        gauge_lock = ck.ProcessLock()
    else:
        gauge_lock = multiprocessing.get_context("forkserver").Lock()
    try:
        args = [(rw, str(path), gauge_lock, i, n, rounds) for i in range(n)]
        run_parties(model, rw_party, *args)
    finally:
        if model.name == "interpreter":
            gauge_lock.close()
    with mapped_gauge(str(path), n) as gauge:
        assert gauge[OVERLAPS] == 0
        assert (gauge[READERS_IN], gauge[WRITERS_IN]) == (0, 0)
        writes = sum(gauge[WRITES + i] for i in range(n))
        assert gauge[COUNTER] == writes > 0
    stats = rw.statistics()
    assert stats.write_acquisitions == writes
    assert (stats.readers, stats.writer_pid, stats.readers_waiting, stats.writers_waiting) == (
        0,
        None,
        0,
        0,
    )

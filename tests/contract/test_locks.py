"""The lock contract: one behaviour suite over ThreadLock, ThreadRLock, ProcessLock, ProcessRLock.

Every test takes a ``flavor`` (a lock class and what it is: thread or process, plain or
re-entrant). Tests that need a second party take a ``peer`` too: another thread for every
flavor, and for the process locks another process (``forkserver``, the lock passed as a
``Process`` argument) and, on Python 3.14+, another interpreter of this process (the
interpreter model's locks are the process ones: ``INTERPRETER.Lock is ProcessLock``; the lock
is pickled into a ``concurrent.interpreters`` interpreter run by a thread of this one). A peer
runs a command loop over a pipe, so the test decides exactly when it acquires and releases::

    test ── conn.send(("acquire", (True, 60))) ──> peer: lock.acquire(True, 60)
         <── ("ok", True) ──────────────────────── (blocks until it has the lock)

When the test must know that the peer is *blocked* inside ``acquire``, it waits for
``statistics().waiters`` to say so (polling a state, not sleeping for a time). The time limits
only turn a deadlock into a failure; the one timeout that expires on purpose is the one under
test (``acquire(timeout=...)`` while the peer holds the lock).

Semantics are those of :class:`threading.Lock` and :class:`threading.RLock`, with the one
deliberate difference of issue 6: releasing a lock you do not hold raises :exc:`RuntimeError`,
for ``Lock`` too. Several tests follow the ideas of CPython's ``Lib/test/lock_tests.py``.

Until the lead adds ``Lock``/``RLock`` to :class:`~concurrency_kit.Model`, the flavors are the
classes themselves; the process ones are imported lazily and skipped while
``concurrency_kit.sync.process`` does not exist.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import inspect
import math
import multiprocessing
import os
import pickle
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

import pytest

from _children import wait_until
from concurrency_kit.sync._base import LockStatistics
from concurrency_kit.sync.thread import ThreadLock, ThreadRLock

DEADLOCK = 60.0
"""Seconds after which a wait that should have ended is a deadlock (a failure, not a pass)."""

PROCESS_MODULE = "concurrency_kit.sync.process"


class AnyLock(Protocol):
    """What every lock of the suite offers (the four classes share this shape)."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...
    def release(self) -> None: ...
    def locked(self) -> bool: ...
    def statistics(self) -> LockStatistics: ...
    def __enter__(self) -> bool: ...
    def __exit__(self, *exc: object) -> None: ...


@dataclass(frozen=True)
class Flavor:
    """One lock class under test."""

    model: str  # "thread" or "process"
    name: str  # "Lock" or "RLock"
    cls: type[Any]

    @property
    def reentrant(self) -> bool:
        return self.name == "RLock"

    @property
    def stdlib(self) -> Callable[[], Any]:
        return threading.RLock if self.reentrant else threading.Lock


def _process_class(name: str) -> type[Any]:
    try:
        module = importlib.import_module(PROCESS_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != PROCESS_MODULE:
            raise
        pytest.skip(
            f"{PROCESS_MODULE} does not exist yet (being written in parallel); "
            "the lead removes this skip when it lands"
        )
    cls: type[Any] = getattr(module, name)
    return cls


@pytest.fixture(
    params=[
        ("thread", "Lock"),
        ("thread", "RLock"),
        ("process", "Lock"),
        ("process", "RLock"),
    ],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def flavor(request: pytest.FixtureRequest) -> Flavor:
    model, name = request.param
    if model == "thread":
        return Flavor(model, name, ThreadRLock if name == "RLock" else ThreadLock)
    return Flavor(model, name, _process_class("ProcessRLock" if name == "RLock" else "ProcessLock"))


@pytest.fixture
def make_lock(flavor: Flavor) -> Iterator[Callable[[], Any]]:
    """A factory of locks of the flavor; process locks are closed at teardown."""
    made: list[Any] = []

    def make() -> Any:
        lock = flavor.cls()
        made.append(lock)
        return lock

    yield make
    for lock in made:
        close = getattr(lock, "close", None)
        if close is not None:
            close()


@pytest.fixture
def lock(make_lock: Callable[[], Any]) -> Any:
    return make_lock()


# -- the peer: another thread or another process, driven over a pipe ---------------------------


def peer_loop(lock: Any, conn: Connection, own_handle: bool) -> None:
    """Run ``lock`` methods as the test commands, answering each with its outcome."""
    try:
        while True:
            op, args = conn.recv()
            if op == "stop":
                return
            try:
                if op == "whoami":
                    result: object = (os.getpid(), threading.get_native_id())
                elif op == "hold_twice":  # RLock: acquire twice, answer the recursion seen
                    lock.acquire()
                    lock.acquire()
                    result = lock.statistics().recursion
                else:
                    result = getattr(lock, op)(*args)
            except Exception as exc:
                conn.send(("raised", type(exc).__name__, str(exc)))
            else:
                conn.send(("ok", result))
    finally:
        conn.close()
        if own_handle and hasattr(lock, "close"):
            lock.close()


def interpreter_peer_loop(lock: Any, fd: int) -> None:
    """:func:`peer_loop` in another interpreter: its end of the pipe arrives as a descriptor
    (a number valid in every interpreter of the process), wrapped in a connection there."""
    peer_loop(lock, Connection(fd), True)


def _run_interpreter_peer(interp: Any, lock: Any, fd: int, failed: list[BaseException]) -> None:
    try:
        interp.call(interpreter_peer_loop, lock, fd)
    except BaseException as exc:  # reported by Peer.stop
        failed.append(exc)


class PeerRaised(Exception):
    """The peer's call raised: ``args`` are the exception's type name and message."""


class Peer:
    """The other party: sends commands to :func:`peer_loop` and reads the answers."""

    def __init__(self, lock: Any, kind: str) -> None:
        self.kind = kind
        self.conn, child = multiprocessing.Pipe()
        self._child = child
        self.runner: threading.Thread | multiprocessing.process.BaseProcess
        self._interp: Any = None
        self._failed: list[BaseException] = []
        if kind == "thread":
            self.runner = threading.Thread(
                target=peer_loop, args=(lock, child, False), name="lock-peer", daemon=True
            )
            self.runner.start()
        elif kind == "interpreter":
            from concurrent import interpreters

            self._interp = interpreters.create()
            self._interp.exec(f"import sys\nsys.path[:] = {sys.path!r}")
            fd = os.dup(child.fileno())  # the peer's own, closed by its connection there
            child.close()
            self.runner = threading.Thread(
                target=_run_interpreter_peer,
                args=(self._interp, lock, fd, self._failed),
                name="lock-peer-interpreter",
            )
            self.runner.start()
        else:
            ctx = multiprocessing.get_context("forkserver")
            self.runner = ctx.Process(target=peer_loop, args=(lock, child, True), name="lock-peer")
            self.runner.start()
            child.close()
        self.pid, self.native_id = self.call("whoami")

    def send(self, op: str, *args: object) -> None:
        self.conn.send((op, args))

    def answer(self) -> Any:
        assert self.conn.poll(DEADLOCK), "the peer did not answer (deadlock?)"
        status, *rest = self.conn.recv()
        if status == "raised":
            raise PeerRaised(*rest)
        return rest[0]

    def call(self, op: str, *args: object) -> Any:
        self.send(op, *args)
        return self.answer()

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
        assert not alive, "the peer did not stop (blocked in a lock call?)"
        assert not self._failed, f"the peer interpreter failed: {self._failed[0]}"


@pytest.fixture(
    params=["thread", "process", "interpreter"],
    ids=["peer=thread", "peer=process", "peer=interpreter"],
)
def peer(request: pytest.FixtureRequest, flavor: Flavor, lock: Any) -> Iterator[Peer]:
    """Another party sharing ``lock``: a thread, or (process locks only) a process or another
    interpreter (Python 3.14+)."""
    if request.param != "thread" and flavor.model == "thread":
        pytest.skip(f"a thread lock cannot be shared with another {request.param}")
    if request.param == "interpreter" and sys.version_info < (3, 14):
        pytest.skip("subinterpreters (concurrent.interpreters) need Python 3.14+")
    p = Peer(lock, request.param)
    yield p
    p.stop()


def wait_for_waiters(lock: Any, n: int) -> None:
    wait_until(lambda: lock.statistics().waiters == n, f"{n} waiter(s) blocked in acquire")


# -- construction and signatures -----------------------------------------------------------------


def test_constructor_takes_no_arguments(flavor: Flavor, make_lock: Callable[[], Any]) -> None:
    lock = make_lock()
    assert not lock.locked()
    required = [
        p
        for p in inspect.signature(flavor.cls).parameters.values()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    assert required == []


def test_acquire_has_the_stdlib_signature(flavor: Flavor) -> None:
    params = inspect.signature(flavor.cls.acquire).parameters
    assert [(p.name, p.default) for p in params.values()] == [
        ("self", inspect.Parameter.empty),
        ("blocking", True),
        ("timeout", -1),
    ]
    assert list(inspect.signature(flavor.cls.release).parameters) == ["self"]
    assert list(inspect.signature(flavor.cls.locked).parameters) == ["self"]


# -- acquire and release: the stdlib's return values --------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((), {}),
        ((True,), {}),
        ((False,), {}),
        ((True, 0), {}),
        ((True, 5.5), {}),
        ((), {"timeout": 0}),
        ((), {"blocking": True, "timeout": -1}),
        ((), {"blocking": False}),
    ],
)
def test_acquire_free_lock_returns_true(
    flavor: Flavor, lock: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    reference = flavor.stdlib()
    assert reference.acquire(*args, **kwargs) is True
    assert lock.acquire(*args, **kwargs) is True
    assert lock.locked()
    assert lock.release() is None
    assert not lock.locked()


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
    flavor: Flavor, lock: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="timeout"):
        flavor.stdlib().acquire(*args, **kwargs)
    with pytest.raises(ValueError, match="timeout"):
        lock.acquire(*args, **kwargs)
    assert not lock.locked()
    # ... also while the caller holds it (the re-entrant path checks its arguments too).
    assert lock.acquire()
    with pytest.raises(ValueError, match="timeout"):
        lock.acquire(*args, **kwargs)
    assert lock.statistics().recursion == 1
    lock.release()
    assert not lock.locked()


# -- the library's timeout rule (concurrency_kit._core.deadline), on top of threading's -1 --------

NOT_A_TIMEOUT = [math.nan, -0.5, -2, -math.inf]
HUGE = [math.inf, 1e10, 1e300]


def assert_untouched(lock: Any, *, locked: bool, contentions: int = 0) -> None:
    stats = lock.statistics()
    assert (stats.locked, stats.waiters, stats.contentions) == (locked, 0, contentions)


@pytest.mark.parametrize("timeout", NOT_A_TIMEOUT, ids=repr)
def test_nan_and_negative_timeouts_raise_before_anything_changes(
    flavor: Flavor, lock: Any, timeout: float
) -> None:
    with pytest.raises(ValueError, match="timeout"):
        lock.acquire(True, timeout)
    with pytest.raises(ValueError, match="timeout"):
        lock.acquire(timeout=timeout)
    assert not lock.locked()  # a free lock stays free
    assert_untouched(lock, locked=False)
    assert lock.statistics().acquisitions == 0
    assert lock.acquire()  # ... and the holder's re-entry path checks too
    with pytest.raises(ValueError, match="timeout"):
        lock.acquire(True, timeout)
    assert lock.statistics().recursion == 1
    lock.release()
    assert not lock.locked()


@pytest.mark.parametrize("timeout", ["1", b"1", [1], object(), True], ids=repr)
def test_a_timeout_that_is_not_a_number_raises_type_error(lock: Any, timeout: object) -> None:
    with pytest.raises(TypeError, match="timeout"):
        lock.acquire(True, timeout)
    with pytest.raises(TypeError, match="timeout"):
        lock.acquire(timeout=timeout)
    assert_untouched(lock, locked=False)


@pytest.mark.parametrize("timeout", [*HUGE, None], ids=repr)
def test_huge_timeouts_on_a_free_lock_acquire_it(lock: Any, timeout: float | None) -> None:
    assert lock.acquire(True, timeout) is True
    lock.release()
    with pytest.raises(ValueError, match="non-blocking"):
        lock.acquire(False, timeout if timeout is not None else math.inf)
    assert not lock.locked()


@pytest.mark.parametrize("timeout", HUGE, ids=repr)
def test_huge_timeouts_wait_until_released(lock: Any, peer: Peer, timeout: float) -> None:
    # threading.Lock raises OverflowError above threading.TIMEOUT_MAX; ours waits, in bounded
    # slices, for as long as it takes.
    assert lock.acquire()
    peer.send("acquire", True, timeout)
    wait_for_waiters(lock, 1)  # the handshake: the peer is blocked in acquire
    assert not peer.conn.poll()
    lock.release()
    assert peer.answer() is True
    stats = lock.statistics()
    assert (stats.owner_pid, stats.owner_thread) == (peer.pid, peer.native_id)
    peer.call("release")


def test_a_lock_is_not_reentrant_an_rlock_is(flavor: Flavor, lock: Any) -> None:
    assert lock.acquire()
    if flavor.reentrant:
        assert lock.acquire(False) is True
        assert lock.acquire(timeout=0.01) is True
        assert lock.statistics().recursion == 3
        lock.release()
        lock.release()
    else:
        # Like threading.Lock: the holder's second acquire waits; it fails at once without
        # blocking and at the deadline with a timeout (no error: EDEADLK is not a result).
        assert lock.acquire(False) is False
        assert lock.acquire(timeout=0.01) is False
        assert lock.statistics().recursion == 1
    assert lock.locked()
    lock.release()
    assert not lock.locked()


def test_rlock_counts_its_recursion(flavor: Flavor, lock: Any) -> None:
    if not flavor.reentrant:
        pytest.skip("recursion is an RLock feature")
    for depth in range(1, 6):
        assert lock.acquire()
        assert lock.statistics().recursion == depth
    for depth in range(4, -1, -1):
        lock.release()
        assert lock.statistics().recursion == depth
        assert lock.locked() is (depth > 0)
    with pytest.raises(RuntimeError):
        lock.release()


# -- owner-checked release: the one deliberate difference -------------------------------------


def test_release_unheld_lock_raises_runtime_error(flavor: Flavor, lock: Any) -> None:
    with pytest.raises(RuntimeError):
        flavor.stdlib().release()
    with pytest.raises(RuntimeError, match=r"release|un-acquired|unlocked"):
        lock.release()
    assert not lock.locked()
    assert lock.acquire()
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()  # once too often


def test_release_lock_held_by_peer_raises_and_keeps_it_held(
    flavor: Flavor, lock: Any, peer: Peer
) -> None:
    assert peer.call("acquire") is True
    with pytest.raises(RuntimeError):
        lock.release()
    with pytest.raises(RuntimeError):
        lock.__exit__(None, None, None)
    assert lock.locked()
    assert lock.acquire(False) is False
    assert peer.call("release") is None
    assert lock.acquire(False) is True
    lock.release()


def test_peer_cannot_release_our_lock(flavor: Flavor, lock: Any, peer: Peer) -> None:
    assert lock.acquire()
    with pytest.raises(PeerRaised) as info:
        peer.call("release")
    assert info.value.args[0] == "RuntimeError"
    assert lock.locked()
    assert lock.statistics().owner_thread == threading.get_native_id()
    lock.release()


def test_rlock_held_twice_by_peer_needs_two_releases_by_peer(
    flavor: Flavor, lock: Any, peer: Peer
) -> None:
    if not flavor.reentrant:
        pytest.skip("recursion is an RLock feature")
    assert peer.call("hold_twice") == 2
    assert lock.acquire(False) is False
    with pytest.raises(RuntimeError):
        lock.release()
    peer.call("release")
    assert lock.acquire(False) is False
    peer.call("release")
    assert lock.acquire(False) is True
    lock.release()


# -- blocking and timeouts ---------------------------------------------------------------------


def test_try_acquire_fails_while_peer_holds(flavor: Flavor, lock: Any, peer: Peer) -> None:
    assert peer.call("acquire") is True
    assert lock.locked()
    assert lock.acquire(False) is False
    assert lock.acquire(blocking=False) is False
    assert lock.acquire(timeout=0) is False
    assert lock.locked()
    peer.call("release")
    assert not lock.locked()


def test_timeout_expires_while_peer_holds(flavor: Flavor, lock: Any, peer: Peer) -> None:
    assert peer.call("acquire") is True
    timeout = 0.1
    start = time.monotonic()
    assert lock.acquire(timeout=timeout) is False
    elapsed = time.monotonic() - start
    assert elapsed >= timeout * 0.6  # CPython's lock_tests allow the same slack
    # The failed wait leaves everything as it was (lock_tests: test_state_after_timeout).
    assert lock.statistics().waiters == 0
    assert peer.call("release") is None
    assert lock.acquire(timeout=0) is True
    lock.release()


def test_blocked_acquire_succeeds_when_released(flavor: Flavor, lock: Any, peer: Peer) -> None:
    assert lock.acquire()
    peer.send("acquire", True, DEADLOCK)
    wait_for_waiters(lock, 1)
    assert not peer.conn.poll()  # still waiting
    lock.release()
    assert peer.answer() is True
    stats = lock.statistics()
    assert stats.locked
    assert (stats.owner_pid, stats.owner_thread) == (peer.pid, peer.native_id)
    assert stats.waiters == 0
    peer.call("release")


def test_untimed_blocking_acquire_waits_for_release(flavor: Flavor, lock: Any, peer: Peer) -> None:
    assert lock.acquire()
    peer.send("acquire")
    wait_for_waiters(lock, 1)
    lock.release()
    assert peer.answer() is True
    assert lock.acquire(False) is False
    peer.call("release")


def test_many_threads_contend_and_each_gets_the_lock(flavor: Flavor, lock: Any) -> None:
    # lock_tests: test_acquire_contended / test_thread_leak: N threads block, then get the lock
    # one at a time; nobody is lost, nobody gets it twice.
    n = 5
    got: list[int] = []
    got_lock = threading.Lock()
    lock.acquire()

    def take(i: int) -> None:
        assert lock.acquire(True, DEADLOCK)
        with got_lock:
            got.append(i)
        lock.release()

    threads = [threading.Thread(target=take, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    wait_for_waiters(lock, n)
    assert lock.statistics().contentions == n
    lock.release()
    for t in threads:
        t.join(DEADLOCK)
        assert not t.is_alive()
    assert sorted(got) == list(range(n))
    stats = lock.statistics()
    assert (stats.acquisitions, stats.waiters, stats.locked) == (n + 1, 0, False)


def test_mutual_exclusion_under_load(flavor: Flavor, lock: Any) -> None:
    # Whatever the interleaving, never two threads inside at once and no update lost.
    n_threads, rounds = 4, 300
    state = {"inside": 0, "counter": 0, "overlaps": 0}
    start = threading.Barrier(n_threads)

    def work() -> None:
        start.wait(DEADLOCK)
        for _ in range(rounds):
            with lock:
                state["inside"] += 1
                if state["inside"] != 1:
                    state["overlaps"] += 1
                value = state["counter"]
                os.sched_yield()  # invite a switch inside the critical section
                state["counter"] = value + 1
                state["inside"] -= 1

    threads = [threading.Thread(target=work) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLOCK)
        assert not t.is_alive()
    assert state == {"inside": 0, "counter": n_threads * rounds, "overlaps": 0}
    assert lock.statistics().acquisitions == n_threads * rounds


# -- with ---------------------------------------------------------------------------------------


def test_with_acquires_and_releases(flavor: Flavor, lock: Any) -> None:
    with lock as entered:
        assert entered is True
        assert lock.locked()
        assert lock.statistics().owner_thread == threading.get_native_id()
    assert not lock.locked()


def test_with_releases_on_exception(flavor: Flavor, lock: Any) -> None:
    with pytest.raises(KeyError), lock:
        raise KeyError("inside")
    assert not lock.locked()
    assert lock.acquire(False)
    lock.release()


def test_nested_with(flavor: Flavor, lock: Any) -> None:
    if not flavor.reentrant:
        pytest.skip("a Lock cannot be entered twice by its holder")
    with lock, lock:
        assert lock.statistics().recursion == 2
    assert not lock.locked()


# -- locked() and statistics() ----------------------------------------------------------------


def test_locked_is_true_when_anyone_holds_it(flavor: Flavor, lock: Any, peer: Peer) -> None:
    assert lock.locked() is False
    peer.call("acquire")
    assert lock.locked() is True
    assert peer.call("locked") is True
    peer.call("release")
    assert lock.locked() is False
    assert peer.call("locked") is False


def test_statistics_of_a_fresh_lock(lock: Any) -> None:
    assert lock.statistics() == LockStatistics(
        locked=False,
        owner_pid=None,
        owner_thread=None,
        recursion=0,
        waiters=0,
        acquisitions=0,
        contentions=0,
        owner_deaths_recovered=0,
    )


def test_statistics_while_held_and_after(flavor: Flavor, lock: Any) -> None:
    lock.acquire()
    held = lock.statistics()
    assert held.locked
    assert held.owner_pid == os.getpid()
    assert held.owner_thread == threading.get_native_id()
    assert (held.recursion, held.acquisitions, held.contentions) == (1, 1, 0)
    lock.release()
    with lock:
        pass
    assert lock.acquire(False)
    lock.release()
    after = lock.statistics()
    assert (after.locked, after.owner_pid, after.owner_thread, after.recursion) == (
        False,
        None,
        None,
        0,
    )
    assert (after.acquisitions, after.contentions, after.waiters) == (3, 0, 0)
    assert after.owner_deaths_recovered == 0


def test_statistics_count_contentions_and_failed_attempts(
    flavor: Flavor, lock: Any, peer: Peer
) -> None:
    peer.call("acquire")
    assert lock.statistics().owner_thread == peer.native_id
    assert lock.statistics().owner_pid == peer.pid
    assert lock.acquire(False) is False  # a contention that gives up at once
    assert lock.acquire(timeout=0.01) is False  # one that gives up at its deadline
    stats = lock.statistics()
    assert (stats.acquisitions, stats.contentions, stats.waiters) == (1, 2, 0)
    peer.call("release")
    assert lock.acquire()  # uncontended: no contention counted
    lock.release()
    stats = lock.statistics()
    assert (stats.acquisitions, stats.contentions) == (2, 2)


def test_statistics_count_a_contention_that_waits(flavor: Flavor, lock: Any, peer: Peer) -> None:
    lock.acquire()
    peer.send("acquire")
    wait_for_waiters(lock, 1)
    waiting = lock.statistics()
    assert (waiting.contentions, waiting.waiters, waiting.acquisitions) == (1, 1, 1)
    lock.release()
    assert peer.answer() is True
    peer.call("release")
    done = lock.statistics()
    assert (done.contentions, done.waiters, done.acquisitions, done.locked) == (1, 0, 2, False)


def test_rlock_reentry_counts_as_acquisition(flavor: Flavor, lock: Any) -> None:
    if not flavor.reentrant:
        pytest.skip("recursion is an RLock feature")
    with lock, lock, lock:
        assert lock.statistics().recursion == 3
    stats = lock.statistics()
    assert (stats.acquisitions, stats.contentions, stats.recursion) == (3, 0, 0)


def test_statistics_is_a_frozen_value(lock: Any) -> None:
    stats = lock.statistics()
    assert isinstance(stats, LockStatistics)
    with pytest.raises(AttributeError):
        stats.locked = True


# -- repr, weakref, pickling ---------------------------------------------------------------------


def test_repr_shows_state_and_owner(flavor: Flavor, lock: Any) -> None:
    assert flavor.cls.__name__ in repr(lock)
    assert "unlocked" in repr(lock)
    with lock:
        text = repr(lock)
        assert "unlocked" not in text
        assert "locked" in text
        assert str(threading.get_native_id()) in text
    assert "unlocked" in repr(lock)


def test_weakref(flavor: Flavor, make_lock: Callable[[], Any]) -> None:
    lock = make_lock()
    ref = weakref.ref(lock)
    assert ref() is lock


def test_pickling(flavor: Flavor, lock: Any) -> None:
    if flavor.model == "thread":
        # Like threading.Lock: a thread lock means nothing in another process.
        with pytest.raises(TypeError):
            pickle.dumps(flavor.stdlib())
        with pytest.raises(TypeError, match="process lock"):
            pickle.dumps(lock)
        return
    handle = pickle.loads(pickle.dumps(lock))
    try:
        assert lock.acquire()
        assert handle.locked()
        # The same lock, the same owner rules: a second Lock acquire fails; an RLock lets its
        # owner thread in again through either handle.
        assert handle.acquire(False) is flavor.reentrant
        if flavor.reentrant:
            handle.release()
        lock.release()
        assert not handle.locked()
    finally:
        handle.close()


# -- code written for threading runs unchanged --------------------------------------------------


def test_threading_condition_accepts_the_lock(flavor: Flavor, lock: Any) -> None:
    condition = threading.Condition(lock)
    ready = threading.Event()
    items: list[int] = []

    def consumer() -> None:
        with condition:
            ready.set()
            assert condition.wait_for(lambda: items, DEADLOCK)
            items.append(-items[0])

    thread = threading.Thread(target=consumer)
    thread.start()
    assert ready.wait(DEADLOCK)
    with condition:  # the consumer is inside wait_for: it has released the lock
        items.append(7)
        condition.notify()
    thread.join(DEADLOCK)
    assert not thread.is_alive()
    assert items == [7, -7]
    assert not lock.locked()


def test_garbage_collected_lock_leaves_nothing(flavor: Flavor) -> None:
    # The leak check fails this test if a dropped (never closed) lock leaves anything behind.
    lock = flavor.cls()
    with lock:
        pass
    del lock
    gc.collect()

"""The contract of Semaphore, BoundedSemaphore, Event, Condition and Barrier, for both models.

Every test takes ``model`` and builds its primitives as ``model.Semaphore(...)``,
``model.Event()``, ...: the same behaviour suite runs over the thread and the process classes.
The semantics are those of :mod:`threading` (same results, same errors), plus ``statistics()``
and ``close()``; several tests follow the ideas of CPython's ``Lib/test/lock_tests.py``.

A second party is a *peer* (``_sync_peers.py``): another thread for the thread model, another
process for the process model (``forkserver``; one test uses ``spawn``), the primitives passed
as ``Process`` arguments. The test sends each peer one command at a time, and learns that a peer
is blocked from ``statistics().waiters`` (or ``n_waiting``), never from a sleep::

    test ─ send(call, "sem", "acquire", True, 60) ─> peer blocks in sem.acquire
         ─ wait until sem.statistics().waiters == 1
         ─ sem.release() ───────────────────────────> peer returns
         <─ ("ok", True) ─────────────────────────────

Time limits only turn a deadlock into a failure; a timeout that expires on purpose is the one
under test, and short.
"""

from __future__ import annotations

import inspect
import math
import os
import pickle
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

import attrs
import pytest
from _models import is_process, with_interpreter_model
from _sync_peers import (
    DEADLOCK,
    Peer,
    PeerRaised,
    barrier_round,
    call,
    wait_for_flag,
    wait_holding_twice,
    wait_on,
    wait_until,
    waiting,
    when_waiting,
)

import concurrency_kit as ck
from concurrency_kit import LockStatistics, Model

P = TypeVar("P")


class Closer(Protocol):
    """The ``closing`` fixture: registers a primitive to close at teardown, returns it."""

    def __call__(self, primitive: P, /) -> P: ...


StartPeers = Callable[..., list[Peer]]

SHORT = 0.1
"""The one timeout that expires on purpose in a test."""

KINDS = ["Semaphore", "BoundedSemaphore", "Event", "Condition", "Barrier"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    with_interpreter_model(metafunc)  # INTERPRETER too, on Python 3.14+


def make(model: Model, kind: str) -> Any:
    """A primitive of each kind with default-ish arguments."""
    return getattr(model, kind)(2) if kind == "Barrier" else getattr(model, kind)()


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture
def peers(model: Model) -> Iterator[StartPeers]:
    """``peers(n, **prims)``: ``n`` other parties sharing ``prims``, threads or processes."""
    started: list[Peer] = []

    def start(n: int, kind: str | None = None, **prims: Any) -> list[Peer]:
        default = {"process": "forkserver", "interpreter": "interpreter"}
        kind = kind or default.get(model.name, "thread")
        new = [Peer(kind, prims) for _ in range(n)]  # processes start up in parallel
        started.extend(new)
        for p in new:
            p.ready()
            # the party the model promises
            assert (p.pid != os.getpid()) is (kind not in ("thread", "interpreter"))
            assert p.native_id != threading.get_native_id()
        return new

    yield start
    for p in started:
        p.stop()


def wait_for_waiters(primitive: Any, n: int) -> None:
    wait_until(lambda: waiting(primitive) == n, f"{n} waiter(s) blocked")


def woken(group: list[Peer], n: int) -> list[Peer]:
    """Wait until ``n`` of the group's pending commands have answered; return who answered."""
    wait_until(lambda: sum(p.pending and p.answered() for p in group) >= n, f"{n} answer(s)")
    return [p for p in group if p.pending and p.answered()]


def still_blocked(group: list[Peer]) -> list[Peer]:
    return [p for p in group if p.pending and not p.answered()]


def broken_barrier_raised(info: pytest.ExceptionInfo[PeerRaised]) -> bool:
    """The peer raised concurrency_kit's BrokenBarrierError, a threading.BrokenBarrierError."""
    names = info.value.names
    return (
        names[0].endswith(".BrokenBarrierError")
        and names[0].startswith("concurrency_kit")
        and "threading.BrokenBarrierError" in names
    )


def lock_stats(cond: Any) -> LockStatistics:
    """The statistics of a condition's lock (a ck lock: never None)."""
    stats = cond.statistics().lock
    assert isinstance(stats, LockStatistics)
    return stats


def lock_is_held(lock: Any) -> bool:
    if hasattr(lock, "locked"):
        return bool(lock.locked())
    return repr(lock).startswith("<locked")  # threading.RLock has no locked() before 3.14


# -- the stdlib's signatures and argument errors ---------------------------------------------------

SIGNATURES = [
    ("Semaphore", None),
    ("Semaphore", "acquire"),
    ("Semaphore", "release"),
    ("BoundedSemaphore", None),
    ("BoundedSemaphore", "acquire"),
    ("BoundedSemaphore", "release"),
    ("Event", None),
    ("Event", "is_set"),
    ("Event", "set"),
    ("Event", "clear"),
    ("Event", "wait"),
    ("Condition", None),
    ("Condition", "wait"),
    ("Condition", "wait_for"),
    ("Condition", "notify"),
    ("Condition", "notify_all"),
    ("Barrier", None),
    ("Barrier", "wait"),
    ("Barrier", "reset"),
    ("Barrier", "abort"),
]


@pytest.mark.parametrize(("kind", "method"), SIGNATURES, ids=lambda x: x or "init")
def test_signatures_are_threading_s(model: Model, kind: str, method: str | None) -> None:
    ours, theirs = getattr(model, kind), getattr(threading, kind)
    if method is not None:
        ours, theirs = getattr(ours, method), getattr(theirs, method)

    def shape(fn: Any) -> list[tuple[str, object]]:
        return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()]

    assert shape(ours) == shape(theirs)


@pytest.mark.parametrize(
    ("kind", "args"),
    [("Semaphore", (-1,)), ("BoundedSemaphore", (-1,)), ("Barrier", (0,)), ("Barrier", (-3,))],
)
def test_constructor_value_errors(model: Model, kind: str, args: tuple[int, ...]) -> None:
    if kind != "Barrier":  # threading.Barrier refuses parties < 1 only from Python 3.13
        with pytest.raises(ValueError, match="must be >= 0"):
            getattr(threading, kind)(*args)
    with pytest.raises(ValueError, match=r"must be >= [01]"):
        getattr(model, kind)(*args)


def test_process_condition_needs_a_process_lock(model: Model, closing: Closer) -> None:
    thread_locks: list[Any] = [
        threading.Lock(),
        threading.RLock(),
        ck.ThreadLock(),
        ck.ThreadRLock(),
    ]
    if is_process(model):
        for foreign in thread_locks:
            with pytest.raises(TypeError):
                model.Condition(foreign)
    else:  # like threading.Condition: any lock with acquire/release will do
        for lock in thread_locks:
            with closing(model.Condition(lock)) as entered:
                assert entered is True


# -- Semaphore and BoundedSemaphore ----------------------------------------------------------------

SEMAPHORES = pytest.mark.parametrize("kind", ["Semaphore", "BoundedSemaphore"])


@SEMAPHORES
def test_semaphore_counts_down_and_up(model: Model, kind: str, closing: Closer) -> None:
    default = closing(getattr(model, kind)())
    assert default.statistics().value == 1
    assert default.acquire() is True
    assert default.acquire(False) is False
    default.release()

    sem = closing(getattr(model, kind)(3))
    assert [sem.acquire(False) for _ in range(4)] == [True, True, True, False]
    assert sem.acquire(timeout=0) is False
    assert sem.statistics().value == 0
    sem.release(2)  # lock_tests: test_multirelease_acquire
    assert sem.statistics().value == 2
    assert [sem.acquire(blocking=False) for _ in range(3)] == [True, True, False]
    sem.release()
    sem.release(2)
    assert sem.statistics().value == 3


@SEMAPHORES
def test_semaphore_initial_values(model: Model, kind: str, closing: Closer) -> None:
    empty = closing(getattr(model, kind)(0))
    assert empty.acquire(False) is False
    huge = closing(getattr(model, kind)(sys.maxsize))  # lock_tests: test_constructor
    assert huge.acquire(False) is True
    assert huge.statistics().value == sys.maxsize - 1
    huge.release()


@SEMAPHORES
@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((False, 1), {}), ((False, 0), {}), ((), {"blocking": False, "timeout": 5})],
)
def test_semaphore_acquire_argument_errors(
    model: Model,
    kind: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    closing: Closer,
) -> None:
    with pytest.raises(ValueError, match="can't specify timeout") as stdlib:
        getattr(threading, kind)(1).acquire(*args, **kwargs)
    sem = closing(getattr(model, kind)(1))
    with pytest.raises(ValueError, match="can't specify timeout") as ours:
        sem.acquire(*args, **kwargs)
    assert str(ours.value) == str(stdlib.value)  # "can't specify timeout for non-blocking ..."
    assert sem.statistics().value == 1


@SEMAPHORES
@pytest.mark.parametrize("n", [0, -1])
def test_release_n_must_be_positive(model: Model, kind: str, n: int, closing: Closer) -> None:
    with pytest.raises(ValueError, match="n must be one or more"):
        getattr(threading, kind)(1).release(n)  # lock_tests: test_release_negative
    sem = closing(getattr(model, kind)(1))
    assert sem.acquire()
    with pytest.raises(ValueError, match="n must be one or more"):
        sem.release(n)
    assert sem.statistics().value == 0
    sem.release()


def test_semaphore_may_be_released_above_its_initial_value(model: Model, closing: Closer) -> None:
    sem = closing(model.Semaphore(1))
    sem.release()
    assert sem.statistics().value == 2
    sem.release(3)
    assert sem.statistics().value == 5
    assert [sem.acquire(False) for _ in range(6)] == [True] * 5 + [False]


def test_bounded_semaphore_refuses_to_exceed_its_initial_value(
    model: Model, closing: Closer
) -> None:
    with pytest.raises(ValueError, match="Semaphore released too many times"):
        threading.BoundedSemaphore(2).release()
    sem = closing(model.BoundedSemaphore(2))
    with pytest.raises(ValueError, match="Semaphore released too many times"):
        sem.release()
    assert sem.statistics().value == 2
    assert sem.acquire()
    with pytest.raises(ValueError, match="Semaphore released too many times"):
        sem.release(2)  # would end at 3: refused whole, not half-done
    assert sem.statistics().value == 1
    sem.release()
    assert sem.statistics().value == 2
    zero = closing(model.BoundedSemaphore(0))
    with pytest.raises(ValueError, match="Semaphore released too many times"):
        zero.release()
    assert zero.statistics().value == 0


@SEMAPHORES
def test_semaphore_with(model: Model, kind: str, closing: Closer) -> None:
    sem = closing(getattr(model, kind)(2))
    with sem as entered:
        assert entered is True
        assert sem.statistics().value == 1
    assert sem.statistics().value == 2
    with pytest.raises(KeyError), sem:
        raise KeyError("inside")
    assert sem.statistics().value == 2


def test_semaphore_timeout_returns_false(model: Model, closing: Closer) -> None:
    sem = closing(model.Semaphore(0))
    start = time.monotonic()
    assert sem.acquire(timeout=SHORT) is False
    assert time.monotonic() - start >= SHORT * 0.6  # lock_tests allow the same slack
    assert sem.acquire(True, 0) is False
    stats = sem.statistics()
    assert (stats.value, stats.waiters, stats.acquisitions) == (0, 0, 0)


def test_blocked_acquire_wakes_when_released(
    model: Model, closing: Closer, peers: StartPeers
) -> None:
    sem = closing(model.Semaphore(0))
    (peer,) = peers(1, sem=sem)
    peer.send(call, "sem", "acquire", True, DEADLOCK)
    wait_for_waiters(sem, 1)
    assert not peer.answered()
    sem.release()
    assert peer.answer() is True
    assert sem.statistics().value == 0
    # ... and the other way round: the test blocks, the peer releases.
    peer.send(when_waiting, "sem", 1, "sem", "release")
    assert sem.acquire(timeout=DEADLOCK) is True
    assert peer.answer() is None
    stats = sem.statistics()
    assert (stats.value, stats.waiters, stats.acquisitions, stats.contentions) == (0, 0, 2, 2)


def test_release_n_wakes_n_waiters(model: Model, closing: Closer, peers: StartPeers) -> None:
    sem = closing(model.Semaphore(0))
    group = peers(3, sem=sem)
    for p in group:
        p.send(call, "sem", "acquire", True, DEADLOCK)
    wait_for_waiters(sem, 3)
    sem.release(2)
    first = woken(group, 2)
    assert len(first) == 2
    assert [p.answer() for p in first] == [True, True]
    assert len(still_blocked(group)) == 1
    assert (sem.statistics().value, sem.statistics().waiters) == (0, 1)
    sem.release()
    (last,) = woken(group, 1)
    assert last.answer() is True
    stats = sem.statistics()
    assert (stats.value, stats.waiters, stats.acquisitions, stats.contentions) == (0, 0, 3, 3)


def test_semaphore_has_no_owner(model: Model, closing: Closer, peers: StartPeers) -> None:
    sem = closing(model.BoundedSemaphore(1))
    (peer,) = peers(1, sem=sem)
    assert peer.call(call, "sem", "acquire") is True
    assert sem.acquire(False) is False
    sem.release()  # released by a party that did not acquire it: allowed, as in threading
    assert sem.acquire(False) is True
    assert peer.call(call, "sem", "release") is None
    assert sem.statistics().value == 1


def test_semaphore_statistics(model: Model, closing: Closer) -> None:
    sem = closing(model.Semaphore(2))
    assert sem.statistics() == ck.SemaphoreStatistics(
        value=2, waiters=0, acquisitions=0, contentions=0
    )
    assert sem.acquire()
    assert sem.acquire()
    assert sem.acquire(False) is False  # contention that gives up at once
    assert sem.acquire(timeout=0.01) is False  # ... and one that gives up at its deadline
    assert sem.statistics() == ck.SemaphoreStatistics(
        value=0, waiters=0, acquisitions=2, contentions=2
    )


# -- the library's timeout rule (concurrency_kit._core.deadline), every primitive ----------------

NOT_A_TIMEOUT = [math.nan, -0.5, -1, -math.inf]
NOT_A_NUMBER = ["1", [1], object(), True]
HUGE = [math.inf, 1e10, 1e300]
TIMED = [
    "Semaphore.acquire",
    "BoundedSemaphore.acquire",
    "Event.wait",
    "Condition.wait",
    "Condition.wait_for",
    "Barrier.wait",
    "Barrier(timeout=)",
]


def timed_call(model: Model, op: str, closing: Closer) -> tuple[Any, Callable[[object], Any]]:
    """A fresh primitive for ``op`` (a semaphore at zero) and a function calling ``op`` with a
    given timeout (``Condition``'s caller must hold the lock, ``wait_for``'s predicate is
    false)."""
    kind, _, method = op.partition(".")
    if op == "Barrier(timeout=)":
        return None, lambda timeout: closing(model.Barrier(2, timeout=timeout)).wait()
    primitive = closing(model.Barrier(2) if kind == "Barrier" else getattr(model, kind)())
    if "Semaphore" in kind:
        assert primitive.acquire(False)  # at zero, below the bound: release() is allowed
    if method == "wait_for":
        return primitive, lambda timeout: primitive.wait_for(lambda: False, timeout)
    return primitive, lambda timeout: getattr(primitive, method)(timeout=timeout)


@pytest.mark.parametrize("op", TIMED)
@pytest.mark.parametrize(
    ("timeout", "error"),
    [(t, ValueError) for t in NOT_A_TIMEOUT] + [(t, TypeError) for t in NOT_A_NUMBER],
    ids=repr,
)
def test_bad_timeouts_raise_before_anything_changes(
    model: Model, op: str, timeout: object, error: type[Exception], closing: Closer
) -> None:
    primitive, timed = timed_call(model, op, closing)
    holding = op.startswith("Condition")
    if holding:
        primitive.acquire()
    before = None if primitive is None else primitive.statistics()
    with pytest.raises(error, match="timeout"):
        timed(timeout)
    if primitive is not None:  # a Condition's lock still held, once: not released to wait
        assert primitive.statistics() == before
    if holding:
        primitive.release()
    if op == "Semaphore.acquire":
        with pytest.raises(error, match="timeout"):
            primitive.acquire(False, timeout)  # the value is checked first, blocking or not


@pytest.mark.parametrize("op", TIMED)
@pytest.mark.parametrize("timeout", HUGE, ids=repr)
def test_huge_timeouts_wait_until_another_party_acts(
    model: Model, op: str, timeout: float, closing: Closer, peers: StartPeers
) -> None:
    # threading refuses timeouts above threading.TIMEOUT_MAX (OverflowError); these wait, in
    # bounded slices, until the peer acts once it sees the test blocked (the handshake).
    kind, _, method = op.partition(".")
    if kind == "Barrier(timeout=)":
        barrier = closing(model.Barrier(2, timeout=timeout))
        (peer,) = peers(1, barrier=barrier)
        peer.send(when_waiting, "barrier", 1, "barrier", "wait", DEADLOCK)
        assert sorted([barrier.wait(), peer.answer()]) == [0, 1]
        return
    primitive, timed = timed_call(model, op, closing)
    event = closing(model.Event())
    (peer,) = peers(1, p=primitive, event=event)
    if kind == "Barrier":
        peer.send(when_waiting, "p", 1, "p", "wait", DEADLOCK)
        assert sorted([timed(timeout), peer.answer()]) == [0, 1]
        return
    if kind == "Event":
        peer.send(when_waiting, "p", 1, "p", "set")
        assert timed(timeout) is True
    elif method == "acquire":
        peer.send(when_waiting, "p", 1, "p", "release")
        assert timed(timeout) is True
        assert primitive.statistics().value == 0
    else:
        with primitive:
            if method == "wait":
                peer.send(when_waiting, "p", 1, "p", "notify_under_lock", 1)
                assert timed(timeout) is True
            else:
                peer.send(when_waiting, "p", 1, "p", "set_and_notify", "event")
                assert primitive.wait_for(event.is_set, timeout) is True
    assert peer.answer() is None


@pytest.mark.parametrize("op", TIMED)
def test_zero_timeout_does_not_wait(model: Model, op: str, closing: Closer) -> None:
    primitive, timed = timed_call(model, op, closing)
    if op.startswith("Barrier"):
        with pytest.raises(ck.BrokenBarrierError):  # expired at once: breaks it, as threading
            timed(0)
        return
    if op.startswith("Condition"):
        with primitive:
            assert not timed(0)
            assert lock_stats(primitive).recursion == 1
    else:
        assert timed(0) is False
    assert waiting(primitive) == 0


# -- Event -----------------------------------------------------------------------------------------


def test_event_set_clear_wait(model: Model, closing: Closer) -> None:
    event = closing(model.Event())
    assert event.is_set() is False
    assert event.wait(0) is False
    assert event.set() is None
    assert event.is_set() is True
    assert event.wait() is True
    assert event.wait(0) is True
    assert event.wait(DEADLOCK) is True
    event.set()  # idempotent
    assert event.is_set() is True
    assert event.clear() is None
    assert event.is_set() is False
    assert event.wait(0) is False
    event.clear()
    assert event.is_set() is False


def test_event_wait_timeout_returns_false(model: Model, closing: Closer) -> None:
    event = closing(model.Event())
    start = time.monotonic()
    assert event.wait(SHORT) is False
    assert time.monotonic() - start >= SHORT * 0.6
    assert event.statistics() == ck.EventStatistics(is_set=False, waiters=0)


def test_set_wakes_every_waiter(model: Model, closing: Closer, peers: StartPeers) -> None:
    event = closing(model.Event())
    group = peers(3, event=event)
    group[0].send(call, "event", "wait")  # no timeout
    for p in group[1:]:
        p.send(call, "event", "wait", DEADLOCK)
    wait_for_waiters(event, 3)
    assert event.statistics() == ck.EventStatistics(is_set=False, waiters=3)
    assert still_blocked(group) == group
    event.set()
    assert [p.answer() for p in group] == [True, True, True]
    assert event.statistics() == ck.EventStatistics(is_set=True, waiters=0)


def test_waiters_woken_by_set_even_if_cleared_at_once(
    model: Model, closing: Closer, peers: StartPeers
) -> None:
    # lock_tests: test_set_and_clear. A wait that saw the flag go up returns True.
    event = closing(model.Event())
    group = peers(2, event=event)
    for p in group:
        p.send(call, "event", "wait", DEADLOCK)
    wait_for_waiters(event, 2)
    event.set()
    event.clear()
    assert [p.answer() for p in group] == [True, True]
    assert event.is_set() is False
    assert event.wait(0) is False


def test_peer_sets_the_event_the_test_waits_for(
    model: Model, closing: Closer, peers: StartPeers
) -> None:
    event = closing(model.Event())
    (peer,) = peers(1, event=event)
    peer.send(when_waiting, "event", 1, "event", "set")
    assert event.wait(DEADLOCK) is True
    assert peer.answer() is None
    assert peer.call(call, "event", "is_set") is True
    peer.call(call, "event", "clear")
    assert event.is_set() is False


# -- Condition -------------------------------------------------------------------------------------


def test_condition_acquire_and_release_are_the_lock_s(
    model: Model, closing: Closer, peers: StartPeers
) -> None:
    cond = closing(model.Condition())  # over a new RLock
    (peer,) = peers(1, cond=cond)
    assert cond.acquire() is True
    lock = lock_stats(cond)
    assert (lock.locked, lock.owner_pid, lock.owner_thread, lock.recursion) == (
        True,
        os.getpid(),
        threading.get_native_id(),
        1,
    )
    assert peer.call(call, "cond", "acquire", False) is False
    with cond as entered:  # re-entrant
        assert entered is True
        assert lock_stats(cond).recursion == 2
    cond.release()
    assert lock_stats(cond).locked is False
    assert peer.call(call, "cond", "acquire", False) is True
    with pytest.raises(RuntimeError):
        cond.release()  # held by the peer
    peer.call(call, "cond", "release")


@pytest.mark.parametrize("held_by", ["nobody", "peer"])
def test_unheld_condition_raises_runtime_error(
    model: Model, held_by: str, closing: Closer, peers: StartPeers
) -> None:
    reference = threading.Condition()
    cond = closing(model.Condition())
    (peer,) = peers(1, cond=cond)
    if held_by == "peer":
        peer.call(call, "cond", "acquire")
    operations: list[Callable[[Any], object]] = [
        lambda c: c.wait(),
        lambda c: c.wait(0),
        lambda c: c.wait_for(lambda: False),
        lambda c: c.wait_for(lambda: False, SHORT),
        lambda c: c.notify(),
        lambda c: c.notify(2),
        lambda c: c.notify_all(),
    ]
    for operation in operations:
        with pytest.raises(RuntimeError):
            operation(reference)
        with pytest.raises(RuntimeError):
            operation(cond)
    assert cond.statistics().waiters == 0
    if held_by == "peer":
        peer.call(call, "cond", "release")


@pytest.mark.parametrize("timeout", [0, 0.0])
def test_wait_for_with_no_time_left_still_requires_the_lock(
    model: Model, timeout: float, closing: Closer
) -> None:
    # threading.Condition.wait_for always calls wait() once when the predicate is false, so an
    # unheld condition raises even with no time to wait.
    with pytest.raises(RuntimeError):
        threading.Condition().wait_for(lambda: False, timeout)
    cond = closing(model.Condition())
    with pytest.raises(RuntimeError):
        cond.wait_for(lambda: False, timeout)


def test_wait_timeout_returns_false_holding_the_lock_again(model: Model, closing: Closer) -> None:
    cond = closing(model.Condition())
    with cond:
        start = time.monotonic()
        assert cond.wait(SHORT) is False
        assert time.monotonic() - start >= SHORT * 0.6
        assert cond.statistics().waiters == 0
        stats = lock_stats(cond)
        assert (stats.owner_thread, stats.recursion) == (threading.get_native_id(), 1)
        assert cond.wait(0) is False
    assert lock_stats(cond).locked is False


def test_notify_wakes_a_waiter_that_returns_once_the_lock_is_free(
    model: Model, closing: Closer, peers: StartPeers
) -> None:
    cond = closing(model.Condition())
    (peer,) = peers(1, cond=cond)
    peer.send(wait_on, "cond", DEADLOCK)
    wait_for_waiters(cond, 1)
    with cond:
        cond.notify()
        assert cond.statistics().waiters == 0
        assert not peer.answered()  # it needs the lock back, which we hold
    assert peer.answer() is True
    # ... and the other way round: the test waits, the peer notifies.
    peer.send(when_waiting, "cond", 1, "cond", "notify_under_lock", 1)
    with cond:
        assert cond.wait(DEADLOCK) is True
    assert peer.answer() is None


def test_notify_n_wakes_at_most_n(model: Model, closing: Closer, peers: StartPeers) -> None:
    # lock_tests: test_notify / test_notify_n, with counted wake-ups instead of sleeps.
    cond = closing(model.Condition())
    group = peers(4, cond=cond)
    for p in group:
        p.send(wait_on, "cond", DEADLOCK)
    wait_for_waiters(cond, 4)
    left = 4
    for n in (0, 2, 1, 5):  # 5: more than are waiting wakes the rest
        with cond:
            cond.notify(n)
            expected = min(n, left)
            left -= expected
            assert cond.statistics().waiters == left
            assert not any(p.answered() for p in group if p.pending)  # we hold the lock
        if expected:
            returned = woken(group, expected)
            assert len(returned) == expected
            assert [p.answer() for p in returned] == [True] * expected
        assert len(still_blocked(group)) == left
        assert cond.statistics().waiters == left
    assert left == 0
    assert lock_stats(cond).locked is False


def test_notify_all_wakes_every_waiter(model: Model, closing: Closer, peers: StartPeers) -> None:
    cond = closing(model.Condition())
    group = peers(3, cond=cond)
    for p in group:
        p.send(wait_on, "cond", DEADLOCK)
    wait_for_waiters(cond, 3)
    with cond:
        cond.notify_all()
        assert cond.statistics().waiters == 0
    assert [p.answer() for p in group] == [True, True, True]
    with cond:
        cond.notify_all()  # nobody waiting: nothing happens
        cond.notify()


def test_notify_wakes_the_longest_waiting_first(
    model: Model, closing: Closer, peers: StartPeers
) -> None:
    cond = closing(model.Condition())
    group = peers(3, cond=cond)
    for i, p in enumerate(group, 1):  # one at a time, so the order of waiting is known
        p.send(wait_on, "cond", DEADLOCK)
        wait_for_waiters(cond, i)
    for i, p in enumerate(group):
        with cond:
            cond.notify()
        assert woken(group, 1) == [p], f"waiter {i} is the longest-waiting"
        assert p.answer() is True


def test_wait_for_rechecks_the_predicate_on_each_notify(
    model: Model, closing: Closer, peers: StartPeers
) -> None:
    cond = closing(model.Condition())
    flag = closing(model.Event())  # the shared state the predicate reads
    calls = closing(model.Semaphore(0))  # the predicate releases it at each call: a counter
    (peer,) = peers(1, cond=cond, flag=flag, calls=calls)
    peer.send(wait_for_flag, "cond", "flag", "calls", DEADLOCK)

    def evaluated(n: int) -> Callable[[], bool]:
        # The count first: once the n-th evaluation is done, a waiter is the *next* wait.
        return lambda: calls.statistics().value == n and cond.statistics().waiters == 1

    wait_until(evaluated(1), "the first evaluation, then a wait")
    with cond:
        cond.notify()  # the flag is still clear: the peer must wait again
    wait_until(evaluated(2), "a second evaluation, then a wait again")
    assert not peer.answered()
    with cond:
        flag.set()
        cond.notify()
    assert peer.answer() is True
    assert calls.statistics().value == 3


def test_wait_for_returns_the_predicate_s_value(model: Model, closing: Closer) -> None:
    cond = closing(model.Condition())
    with cond:
        assert cond.wait_for(lambda: 42) == 42  # true at once: no wait, no timeout needed
        assert cond.wait_for(lambda: "yes", 0) == "yes"
        assert cond.wait_for(list, 0) == []
        start = time.monotonic()
        assert cond.wait_for(lambda: 0, SHORT) == 0  # lock_tests: test_waitfor_timeout
        assert time.monotonic() - start >= SHORT * 0.6
        assert lock_stats(cond).owner_thread == threading.get_native_id()


LOCKS = pytest.mark.parametrize("lock_kind", ["Lock", "RLock", "threading.Lock", "threading.RLock"])


@LOCKS
def test_condition_over_a_lock_passed_in(
    model: Model,
    lock_kind: str,
    closing: Closer,
    peers: StartPeers,
) -> None:
    if lock_kind.startswith("threading."):
        if is_process(model):
            pytest.skip("a process condition needs a process lock")
        lock: Any = getattr(threading, lock_kind.split(".")[1])()
    else:
        lock = closing(getattr(model, lock_kind)())
    cond = closing(model.Condition(lock))
    (peer,) = peers(1, cond=cond, lock=lock)
    with cond:
        assert lock_is_held(lock)
        if hasattr(lock, "statistics"):
            assert cond.statistics().lock == lock.statistics()
    assert not lock_is_held(lock)
    peer.send(wait_on, "cond", DEADLOCK)
    wait_for_waiters(cond, 1)
    assert lock.acquire(False) is True  # the waiter let go of *this* lock
    cond.notify()
    assert not peer.answered()
    lock.release()
    assert peer.answer() is True
    assert peer.call(call, "lock", "acquire", False) is True  # the waiter let go on return
    peer.call(call, "lock", "release")
    # The test waits on the given lock, the peer notifies through it.
    peer.send(when_waiting, "cond", 1, "cond", "notify_under_lock", None)
    with lock:
        assert cond.wait(DEADLOCK) is True
    assert peer.answer() is None
    # Closing the condition does not close a lock the caller passed in.
    cond.close()
    with lock:
        assert lock_is_held(lock)
    assert not lock_is_held(lock)


def test_rlock_held_twice_is_released_whole_by_wait(
    model: Model, closing: Closer, peers: StartPeers
) -> None:
    rlock: Any = closing(model.RLock())
    cond = closing(model.Condition(rlock))
    (peer,) = peers(1, cond=cond)
    peer.send(wait_holding_twice, "cond", DEADLOCK)
    wait_for_waiters(cond, 1)
    assert cond.acquire(False) is True  # the peer's two levels were both released
    stats = lock_stats(cond)
    assert (stats.owner_thread, stats.recursion) == (threading.get_native_id(), 1)
    cond.notify()
    cond.release()
    assert peer.answer() == (True, 2)  # and both restored on return
    assert lock_stats(cond).locked is False
    # The same in the test's own thread, through a timeout.
    with cond, cond:
        assert cond.wait(0.01) is False
        assert lock_stats(cond).recursion == 2
    assert lock_stats(cond).locked is False


def test_condition_statistics(model: Model, closing: Closer) -> None:
    lock: Any = closing(model.Lock())
    cond = closing(model.Condition(lock))
    stats = cond.statistics()
    assert stats == ck.ConditionStatistics(waiters=0, lock=lock.statistics())
    assert stats.lock is not None
    assert stats.lock.locked is False
    with cond:
        assert lock_stats(cond).locked is True


# -- Barrier ---------------------------------------------------------------------------------------


def test_barrier_properties_and_a_single_party(model: Model, closing: Closer) -> None:
    barrier = closing(model.Barrier(3))
    assert (barrier.parties, barrier.n_waiting, barrier.broken) == (3, 0, False)
    single = closing(model.Barrier(1))  # lock_tests: test_single_thread
    assert [single.wait() for _ in range(3)] == [0, 0, 0]
    assert single.wait(0) == 0
    assert single.statistics() == ck.BarrierStatistics(
        parties=1, n_waiting=0, broken=False, passes=4
    )


def test_barrier_indices_are_distinct_in_every_generation(
    model: Model, closing: Closer, peers: StartPeers
) -> None:
    rounds = 4
    barrier = closing(model.Barrier(3))
    group = peers(2, barrier=barrier)
    for p in group:
        p.send(barrier_round, "barrier", rounds)
    mine = [barrier.wait(DEADLOCK) for _ in range(rounds)]
    theirs = [p.answer() for p in group]
    for r in range(rounds):
        assert sorted([mine[r], theirs[0][r], theirs[1][r]]) == [0, 1, 2], f"generation {r}"
    assert barrier.statistics() == ck.BarrierStatistics(
        parties=3, n_waiting=0, broken=False, passes=rounds
    )


def test_barrier_action_runs_once_per_generation_in_the_last_party(
    model: Model, closing: Closer, peers: StartPeers
) -> None:
    ran = closing(model.Semaphore(0))  # released once per run, seen by every process
    seen_here: list[int] = []  # appended to only where the test's own objects live

    def action() -> None:
        seen_here.append(os.getpid())
        ran.release()

    barrier = closing(model.Barrier(3, action=action))
    first, second = peers(2, barrier=barrier)
    # Generation 1: the peers arrive first, the test last: the action runs here, before any
    # party returns.
    for p in (first, second):
        p.send(call, "barrier", "wait", DEADLOCK)
    wait_for_waiters(barrier, 2)
    assert ran.statistics().value == 0
    mine = barrier.wait(DEADLOCK)
    assert seen_here == [os.getpid()]
    assert ran.statistics().value == 1
    assert sorted([mine, first.answer(), second.answer()]) == [0, 1, 2]
    # Generation 2: the second peer arrives last, so the action runs in its party.
    first.send(call, "barrier", "wait", DEADLOCK)
    second.send(when_waiting, "barrier", 2, "barrier", "wait", DEADLOCK)
    barrier.wait(DEADLOCK)
    first.answer()
    second.answer()
    assert ran.statistics().value == 2
    expected_here = 1 if is_process(model) else 2  # another process appends to its own copy
    assert seen_here == [os.getpid()] * expected_here
    assert barrier.statistics().passes == 2


def test_abort_breaks_the_barrier_until_reset(
    model: Model, closing: Closer, peers: StartPeers
) -> None:
    barrier = closing(model.Barrier(3))
    group = peers(2, barrier=barrier)
    for p in group:
        p.send(call, "barrier", "wait", DEADLOCK)
    wait_for_waiters(barrier, 2)
    barrier.abort()
    for p in group:
        with pytest.raises(PeerRaised) as info:
            p.answer()
        assert broken_barrier_raised(info), info.value.names
    assert barrier.broken is True
    with pytest.raises(ck.BrokenBarrierError) as raised:
        barrier.wait(DEADLOCK)
    assert isinstance(raised.value, threading.BrokenBarrierError)
    with pytest.raises(PeerRaised) as info:  # a new arrival fails at once
        group[0].call(call, "barrier", "wait", DEADLOCK)
    assert broken_barrier_raised(info)
    assert barrier.n_waiting == 0
    barrier.reset()  # lock_tests: test_abort_and_reset
    assert barrier.broken is False
    for p in group:
        p.send(call, "barrier", "wait", DEADLOCK)
    indices = [barrier.wait(DEADLOCK)] + [p.answer() for p in group]
    assert sorted(indices) == [0, 1, 2]


def test_reset_breaks_the_waiting_parties_then_the_barrier_works(
    model: Model, closing: Closer, peers: StartPeers
) -> None:
    barrier = closing(model.Barrier(3))
    group = peers(2, barrier=barrier)
    for p in group:
        p.send(call, "barrier", "wait", DEADLOCK)
    wait_for_waiters(barrier, 2)
    barrier.reset()
    for p in group:
        with pytest.raises(PeerRaised) as info:
            p.answer()
        assert broken_barrier_raised(info), info.value.names
    assert barrier.broken is False
    assert barrier.n_waiting == 0
    for p in group:
        p.send(call, "barrier", "wait", DEADLOCK)
    indices = [barrier.wait(DEADLOCK)] + [p.answer() for p in group]
    assert sorted(indices) == [0, 1, 2]
    assert barrier.statistics().passes == 1


def test_wait_timeout_breaks_the_barrier_for_everyone(
    model: Model, closing: Closer, peers: StartPeers
) -> None:
    barrier = closing(model.Barrier(3))
    (peer,) = peers(1, barrier=barrier)
    peer.send(call, "barrier", "wait", DEADLOCK)
    wait_for_waiters(barrier, 1)
    start = time.monotonic()
    with pytest.raises(ck.BrokenBarrierError):
        barrier.wait(SHORT)
    assert time.monotonic() - start >= SHORT * 0.6
    with pytest.raises(PeerRaised) as info:
        peer.answer()
    assert broken_barrier_raised(info)
    assert barrier.broken is True
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait(0)
    barrier.reset()
    assert barrier.broken is False


def test_default_timeout_breaks_the_barrier(model: Model, closing: Closer) -> None:
    # lock_tests: test_default_timeout
    barrier = closing(model.Barrier(2, timeout=SHORT))
    start = time.monotonic()
    with pytest.raises(ck.BrokenBarrierError):
        barrier.wait()
    assert time.monotonic() - start >= SHORT * 0.6
    assert barrier.broken is True
    assert barrier.statistics() == ck.BarrierStatistics(
        parties=2, n_waiting=0, broken=True, passes=0
    )


def test_failing_action_breaks_the_barrier(
    model: Model, closing: Closer, peers: StartPeers
) -> None:
    def action() -> None:
        raise ZeroDivisionError("in the action")

    barrier = closing(model.Barrier(2, action=action))
    (peer,) = peers(1, barrier=barrier)
    peer.send(call, "barrier", "wait", DEADLOCK)
    wait_for_waiters(barrier, 1)
    with pytest.raises(ZeroDivisionError, match="in the action"):
        barrier.wait(DEADLOCK)  # the last party runs the action and gets its error
    with pytest.raises(PeerRaised) as info:
        peer.answer()
    assert broken_barrier_raised(info)
    assert barrier.broken is True


def test_barrier_statistics(model: Model, closing: Closer, peers: StartPeers) -> None:
    barrier = closing(model.Barrier(2))
    assert barrier.statistics() == ck.BarrierStatistics(
        parties=2, n_waiting=0, broken=False, passes=0
    )
    (peer,) = peers(1, barrier=barrier)
    peer.send(call, "barrier", "wait", DEADLOCK)
    wait_for_waiters(barrier, 1)
    assert barrier.statistics() == ck.BarrierStatistics(
        parties=2, n_waiting=1, broken=False, passes=0
    )
    barrier.wait(DEADLOCK)
    peer.answer()
    assert barrier.statistics() == ck.BarrierStatistics(
        parties=2, n_waiting=0, broken=False, passes=1
    )
    barrier.abort()
    assert barrier.statistics().broken is True


# -- every kind: statistics values, close, pickling ------------------------------------------------

FIELDS = {
    "Semaphore": (ck.SemaphoreStatistics, ["value", "waiters", "acquisitions", "contentions"]),
    "BoundedSemaphore": (
        ck.SemaphoreStatistics,
        ["value", "waiters", "acquisitions", "contentions"],
    ),
    "Event": (ck.EventStatistics, ["is_set", "waiters"]),
    "Condition": (ck.ConditionStatistics, ["waiters", "lock"]),
    "Barrier": (ck.BarrierStatistics, ["parties", "n_waiting", "broken", "passes"]),
}


@pytest.mark.parametrize("kind", KINDS)
def test_statistics_is_a_frozen_value(model: Model, kind: str, closing: Closer) -> None:
    cls, fields = FIELDS[kind]
    stats = closing(make(model, kind)).statistics()
    assert type(stats) is cls
    assert [f.name for f in attrs.fields(cls)] == fields
    with pytest.raises(AttributeError):
        setattr(stats, fields[0], None)


@pytest.mark.parametrize("kind", KINDS)
def test_close_is_idempotent(model: Model, kind: str) -> None:
    # The leak check fails the test if a closed process primitive leaves its segment (or a
    # Condition's default lock) behind.
    primitive = make(model, kind)
    primitive.close()
    primitive.close()


@pytest.mark.parametrize("kind", KINDS)
def test_pickling(model: Model, kind: str, closing: Closer) -> None:
    primitive = closing(make(model, kind))
    if not is_process(model):
        with pytest.raises(TypeError):
            pickle.dumps(getattr(threading, kind)(*([2] if kind == "Barrier" else [])))
        with pytest.raises(TypeError):
            pickle.dumps(primitive)
        return
    handle = closing(pickle.loads(pickle.dumps(primitive)))
    assert type(handle) is type(primitive)
    assert handle is not primitive
    if kind in ("Semaphore", "BoundedSemaphore"):
        assert handle.acquire(False) is True
        assert primitive.statistics().value == 0
        primitive.release()
        assert handle.statistics().value == 1
    elif kind == "Event":
        handle.set()
        assert primitive.is_set()
        primitive.clear()
        assert not handle.is_set()
    elif kind == "Condition":
        with handle:  # the same lock, the same owner
            assert lock_stats(primitive).owner_thread == threading.get_native_id()
            with primitive:
                assert lock_stats(handle).recursion == 2
            assert handle.wait(0) is False
    else:
        other = threading.Thread(target=handle.wait, args=(DEADLOCK,))
        other.start()
        wait_for_waiters(primitive, 1)
        assert primitive.wait(DEADLOCK) in (0, 1)
        other.join(DEADLOCK)
        assert not other.is_alive()
        assert handle.statistics().passes == 1


# -- crossing process boundaries: spawn, pool tasks ------------------------------------------------


def test_spawned_process_shares_every_primitive(
    model: Model, closing: Closer, peers: StartPeers
) -> None:
    if not is_process(model):
        pytest.skip("start methods concern processes")
    prims: dict[str, Any] = {
        "sem": closing(model.BoundedSemaphore(1)),
        "event": closing(model.Event()),
        "lock": closing(model.Lock()),
        "barrier": closing(model.Barrier(2)),
    }
    prims["cond"] = closing(model.Condition(prims["lock"]))
    (peer,) = peers(1, kind="spawn", **prims)
    assert peer.pid != os.getpid()
    peer.send(call, "barrier", "wait", DEADLOCK)
    assert sorted([prims["barrier"].wait(DEADLOCK), peer.answer()]) == [0, 1]
    assert peer.call(call, "sem", "acquire", False) is True
    assert prims["sem"].acquire(False) is False
    peer.call(call, "sem", "release")
    peer.send(call, "event", "wait", DEADLOCK)
    wait_for_waiters(prims["event"], 1)
    prims["event"].set()
    assert peer.answer() is True
    peer.send(wait_on, "cond", DEADLOCK)
    wait_for_waiters(prims["cond"], 1)
    with prims["cond"]:
        prims["cond"].notify()
    assert peer.answer() is True


def test_primitives_as_pool_task_arguments(model: Model, closing: Closer) -> None:
    # Process primitives go to ProcessPool workers as (cloudpickled) task arguments.
    sem = closing(model.Semaphore(0))
    event = closing(model.Event())
    barrier = closing(model.Barrier(3))
    cond = closing(model.Condition())

    def task(sem: Any, event: Any, barrier: Any, cond: Any) -> tuple[int, int, int]:
        index = barrier.wait(DEADLOCK)
        sem.release()
        assert event.wait(DEADLOCK)
        with cond:
            cond.notify()
        return index, os.getpid(), threading.get_native_id()

    with model.Pool(2) as pool:
        futures = [pool.submit(task, sem, event, barrier, cond) for _ in range(2)]
        mine = barrier.wait(DEADLOCK)  # both tasks run at once: three parties meet
        assert sem.acquire(timeout=DEADLOCK)
        assert sem.acquire(timeout=DEADLOCK)
        with cond:
            event.set()
            assert cond.wait(DEADLOCK) is True
        results = [f.result(DEADLOCK) for f in futures]
    assert sorted([mine] + [index for index, _, _ in results]) == [0, 1, 2]
    workers = {(pid, tid) for _, pid, tid in results}
    assert len(workers) == 2
    assert (os.getpid(), threading.get_native_id()) not in workers
    if model.name == "process":
        assert os.getpid() not in {pid for pid, _ in workers}

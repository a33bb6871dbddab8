"""The Guarded contract: one suite over ThreadGuarded and ProcessGuarded (``model.Guarded``).

A guarded value is owned by a re-entrant lock (Rust's ``Mutex<T>``): ``with g.lock() as value``
gives the value; what the block does to it is committed when the block ends (the thread model
shares the very object; the process model pickles it back into shared memory, where every
process sees it); ``get``/``set``/``update`` are one-shot accesses under the lock. A block that
raises poisons the value: later accesses raise :exc:`~concurrency_kit.PoisonedError` carrying
the value as the block left it, until ``clear_poison()``.

Other parties are the peers of ``test_rwlock.py`` (threads, ``forkserver`` processes that get
a pickled handle, or for INTERPRETER on Python 3.14+ other interpreters of this process), driven
over a pipe; ``peer.call("enter", "lock")`` opens a block in the peer and
``peer.call("exit")``/``peer.call("fail")`` closes it normally or with an exception. A peer
known to be blocked is seen in ``statistics().lock.waiters``, never guessed with a sleep.
"""

from __future__ import annotations

import functools
import math
import operator
import os
import pickle
import random
import threading
import typing
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from _models import is_process, with_interpreter_model
from test_rwlock import SHORT, PeerFactory, peer_factory, run_parties, wait_until

from concurrency_kit import (
    GuardedStatistics,
    LockStatistics,
    LockTimeoutError,
    Model,
    PoisonedError,
    SerializationError,
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    with_interpreter_model(metafunc)  # INTERPRETER too, on Python 3.14+


Make = Callable[..., Any]


@pytest.fixture
def guard(model: Model) -> Iterator[Make]:
    """``guard(value, **options)`` makes a guarded value of the model, closed at teardown."""
    made: list[Any] = []

    def make(value: Any, **options: Any) -> Any:
        guarded = model.Guarded(value, **options)
        made.append(guarded)
        return guarded

    yield make
    for guarded in made:
        guarded.close()


@pytest.fixture
def peers(model: Model) -> Iterator[PeerFactory]:
    yield from peer_factory(model)


def unlocked(g: Any) -> bool:
    return not g.statistics().lock.locked


# -- the value, its changes, and who sees them ---------------------------------------------------


def test_lock_yields_the_value_and_keeps_the_block_changes(guard: Make, peers: PeerFactory) -> None:
    g = guard([1, 2])
    with g.lock() as value:
        assert value == [1, 2]
        assert g.statistics().lock.locked
        value.append(3)
    assert unlocked(g)
    assert g.get() == [1, 2, 3]
    peer = peers(g)
    assert peer.call("get") == [1, 2, 3]  # another party (process: another process) sees it
    assert peer.call("enter", "lock") == [1, 2, 3]
    peer.call("mutate", "append", 4)
    peer.call("exit")
    assert g.get() == [1, 2, 3, 4]  # and its changes come back
    assert not g.is_poisoned()


def test_a_block_keeps_other_parties_out(guard: Make, peers: PeerFactory) -> None:
    g = guard({"n": 0})
    holder, other = peers(g), peers(g)
    assert holder.call("enter", "lock") == {"n": 0}
    other.send("get")
    wait_until(lambda: g.statistics().lock.waiters == 1, "the other party waits for the lock")
    holder.call("mutate", "__setitem__", "n", 1)
    assert not other.answered()
    holder.call("exit")
    assert other.answer() == {"n": 1}  # got in only after the block, and saw its change
    assert unlocked(g)


def test_lock_timeout_raises_lock_timeout_error(guard: Make, peers: PeerFactory) -> None:
    g = guard("value")
    holder = peers(g)
    holder.call("enter", "lock")
    with pytest.raises(LockTimeoutError) as info, g.lock(timeout=SHORT):
        pytest.fail("the block must not run")
    assert isinstance(info.value, TimeoutError)
    with pytest.raises(LockTimeoutError), g.lock(timeout=0):
        pytest.fail("the block must not run")
    stats = g.statistics()
    assert (stats.poisoned, stats.lock.waiters) == (False, 0)  # a timeout poisons nothing
    holder.call("exit")
    with g.lock(timeout=0) as value:
        assert value == "value"


@pytest.mark.parametrize(
    ("timeout", "error"),
    [(math.nan, ValueError), (-0.5, ValueError), (-1, ValueError), ("1", TypeError)],
    ids=repr,
)
def test_bad_timeouts_raise_at_the_call(
    guard: Make, timeout: object, error: type[Exception]
) -> None:
    # The library's timeout rule (concurrency_kit._core.deadline): raised by lock() itself,
    # before any ``with``, the lock untouched.
    g = guard("value")
    with pytest.raises(error, match="timeout"):
        g.lock(timeout)
    with pytest.raises(error, match="timeout"):
        g.lock(timeout=timeout, ignore_poison=True)
    stats = g.statistics()
    assert (stats.poisoned, stats.lock.locked, stats.lock.acquisitions) == (False, False, 0)


@pytest.mark.parametrize("timeout", [math.inf, 1e10, 1e300], ids=repr)
def test_huge_timeouts_wait_until_the_block_ends(
    guard: Make, peers: PeerFactory, timeout: float
) -> None:
    g = guard({"n": 0})
    other = peers(g)
    with g.lock() as value:
        other.send("enter", "lock", timeout)
        wait_until(lambda: g.statistics().lock.waiters == 1, "the peer waits for the lock")
        assert not other.answered()
        value["n"] = 1
    assert other.answer() == {"n": 1}
    other.call("exit")
    assert unlocked(g)


def test_set_inside_a_block_replaces_the_committed_value(guard: Make) -> None:
    g = guard([1])
    with g.lock() as value:
        g.set({"new": True})
        assert g.get() == {"new": True}  # the block's value from now on
        value.append(2)  # the old object is no longer the one committed
    assert g.get() == {"new": True}


def test_get_set_update_outside_a_block(guard: Make, peers: PeerFactory) -> None:
    g = guard(1)
    assert g.get() == 1
    assert g.set(2) is None
    assert g.get() == 2
    assert g.update(functools.partial(operator.mul, 10)) == 20
    assert g.get() == 20
    peer = peers(g)
    assert peer.call("update", functools.partial(operator.add, 1)) == 21
    assert g.get() == 21
    peer.call("set", "text")
    assert g.get() == "text"
    assert unlocked(g)
    assert g.statistics().lock.recursion == 0


def test_reentrant_for_its_holder(guard: Make) -> None:
    g = guard([])
    with g.lock() as value:
        assert g.get() is value  # the block's own value, not a fresh copy
        with g.lock() as inner:
            assert inner is value
            assert g.statistics().lock.recursion == 2
            inner.append(1)
        assert g.statistics().lock.locked  # the outer block still holds it
        assert g.update(lambda v: [*v, 2]) == [1, 2]
        assert g.get() == [1, 2]
    assert g.get() == [1, 2]
    assert unlocked(g)


# -- poisoning -----------------------------------------------------------------------------------


def assert_poisoned(g: Any, value: Any) -> None:
    """Every access raises PoisonedError carrying ``value``, and leaves the lock free."""
    assert g.is_poisoned()
    assert g.statistics().poisoned
    accesses: list[Callable[[], object]] = [
        g.get,
        lambda: g.set("replaced"),
        lambda: g.update(lambda v: "updated"),
        lambda: g.lock().__enter__(),
        lambda: g.lock(timeout=0).__enter__(),
    ]
    for access in accesses:
        with pytest.raises(PoisonedError, match="poisoned") as info:
            access()
        assert info.value.value == value
        assert unlocked(g)


def fail_in_block(g: Any, change: Callable[[Any], object]) -> None:
    """Lock ``g``, apply ``change`` to the block's value, then raise KeyError."""
    with g.lock() as value:
        change(value)
        raise KeyError("half-way")


def test_a_block_that_raises_poisons_the_value(guard: Make, peers: PeerFactory) -> None:
    g = guard([1])
    with pytest.raises(KeyError):
        fail_in_block(g, lambda value: value.append(2))
    assert unlocked(g)
    assert_poisoned(g, [1, 2])  # the value as the block left it
    peer = peers(g)
    with pytest.raises(PoisonedError) as info:
        peer.call("get")  # poisoned for every party
    assert info.value.value == [1, 2]
    g.clear_poison()
    assert not g.is_poisoned()
    assert g.get() == [1, 2]
    assert peer.call("update", functools.partial(operator.add, [3])) == [3, 1, 2]
    g.clear_poison()  # clearing a sound value changes nothing
    assert g.get() == [3, 1, 2]


def test_a_peer_block_that_raises_poisons_the_value(guard: Make, peers: PeerFactory) -> None:
    g = guard({"a": 1})
    peer = peers(g)
    peer.call("enter", "lock")
    peer.call("mutate", "__setitem__", "b", 2)
    assert peer.call("fail") is False  # the exception went on (not suppressed)
    assert_poisoned(g, {"a": 1, "b": 2})
    g.clear_poison()
    assert peer.call("get") == {"a": 1, "b": 2}


def test_a_nested_block_that_raises_poisons_the_value(guard: Make) -> None:
    g = guard(0)
    with g.lock():
        with pytest.raises(KeyError):
            fail_in_block(g, lambda value: g.set(1))
        assert g.get() == 1  # the holder goes on
    assert_poisoned(g, 1)


def test_an_update_that_raises_poisons_the_value(guard: Make) -> None:
    g = guard([1])

    def fail(value: list[int]) -> list[int]:
        value.append(2)
        raise KeyError("half-way")

    with pytest.raises(KeyError):
        g.update(fail)
    assert_poisoned(g, [1, 2])


# -- what cannot be stored ------------------------------------------------------------------------


def test_max_bytes(model: Model, guard: Make) -> None:
    big = b"x" * 5000
    if not is_process(model):
        # A thread value is never serialized: max_bytes is accepted and ignored.
        g = guard(big, max_bytes=10)
        g.set(big * 2)
        assert g.get() == big * 2
        return
    with pytest.raises(ValueError, match="max_bytes"):
        guard(big, max_bytes=1000)
    g = guard(b"small", max_bytes=1000)
    with pytest.raises(ValueError, match="max_bytes"):
        g.set(big)
    with pytest.raises(ValueError, match="max_bytes"):
        g.update(lambda value: big)
    with pytest.raises(ValueError, match="max_bytes"), g.lock():
        g.set(big)  # refused when the block stores it
    assert unlocked(g)
    g.clear_poison()  # whether a refused store poisons is not part of the contract
    assert g.get() == b"small"  # never changed
    g.set(b"y" * 900)  # what fits is stored
    assert len(g.get()) == 900


def test_unpicklable_values(model: Model, guard: Make) -> None:
    unpicklable = threading.Lock()
    if not is_process(model):
        g = guard(unpicklable)  # the threads share the very object
        assert g.get() is unpicklable
        return
    with pytest.raises(SerializationError):
        guard(unpicklable)
    g = guard([1])
    with pytest.raises(SerializationError):
        g.set(unpicklable)
    with pytest.raises(SerializationError):
        g.update(lambda value: [*value, unpicklable])
    with pytest.raises(SerializationError), g.lock() as value:
        value.append(unpicklable)
    assert unlocked(g)
    g.clear_poison()
    assert g.get() == [1]


# -- typing, statistics, close, pickling ----------------------------------------------------------


def test_generic_subscript(model: Model, guard: Make) -> None:
    alias = model.Guarded[int]
    assert typing.get_origin(alias) is model.Guarded
    assert typing.get_args(alias) == (int,)
    g = alias(3)
    try:
        assert isinstance(g, model.Guarded)
        assert g.update(lambda v: v + 1) == 4
    finally:
        g.close()


def test_statistics(guard: Make) -> None:
    g = guard(0)
    stats = g.statistics()
    assert isinstance(stats, GuardedStatistics)
    assert stats.poisoned is False
    assert isinstance(stats.lock, LockStatistics)
    assert (stats.lock.locked, stats.lock.acquisitions) == (False, 0)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        stats.poisoned = True  # type: ignore[misc]
    with g.lock():
        held = g.statistics().lock
        assert (held.locked, held.owner_pid, held.owner_thread) == (
            True,
            os.getpid(),
            threading.get_native_id(),
        )
    with pytest.raises(KeyError), g.lock():
        raise KeyError
    assert g.statistics().poisoned is True


def test_close_is_idempotent(model: Model) -> None:
    g = model.Guarded([1])
    g.close()
    g.close()
    if is_process(model):
        with pytest.raises(ValueError, match="closed"):
            g.get()
        with pytest.raises(ValueError, match="closed"):
            pickle.dumps(g)
    else:  # nothing to release: the value stays usable
        assert g.get() == [1]


def test_pickling(model: Model, guard: Make, peers: PeerFactory) -> None:
    g = guard([1])
    if not is_process(model):
        with pytest.raises(TypeError, match="pickle"):
            pickle.dumps(g)
        return
    peer = peers(g, "spawn")  # a handle rebuilt by a fresh interpreter
    assert peer.call("update", functools.partial(operator.add, [0])) == [0, 1]
    assert g.get() == [0, 1]
    handle = pickle.loads(pickle.dumps(g))  # a second handle in this process
    try:
        assert handle.get() == [0, 1]
        handle.set([2])
        assert g.get() == [2]
    finally:
        handle.close()
    assert g.get() == [2]  # the creator's handle is unaffected by the other's close


def test_another_handle_in_the_holder_thread_is_reentrant_too(model: Model, guard: Make) -> None:
    # The lock is re-entrant for the thread that holds it, whichever handle it goes through
    # (a handle unpickled in the holder's process: e.g. passed back to it in a task).
    g = guard([1])
    if not is_process(model):
        pytest.skip("a thread guarded value has a single handle")
    handle = pickle.loads(pickle.dumps(g))
    try:
        with g.lock() as value:
            value.append(2)
            assert handle.get() == [1, 2]  # the block's value
        assert not g.is_poisoned()  # nobody died and no block raised
        assert g.get() == [1, 2]
    finally:
        handle.close()


# -- an invariant under load ---------------------------------------------------------------------

ACCOUNTS, BALANCE = 5, 100


def transfer_party(g: Any, seed: int, rounds: int) -> None:
    """Move money between accounts; inside every block the books must balance."""
    rng = random.Random(seed)
    for _ in range(rounds):
        with g.lock() as books:
            balances = books["balances"]
            assert sum(balances) == ACCOUNTS * BALANCE, "a party saw a half-done transfer"
            source, target = rng.sample(range(ACCOUNTS), 2)
            amount = rng.randint(0, balances[source])
            balances[source] -= amount
            os.sched_yield()  # half-way: only the lock keeps the others from seeing it
            balances[target] += amount
            books["transfers"] += 1


def test_bank_transfers_conserve_the_total(model: Model, guard: Make) -> None:
    parties, rounds = 3, 100
    g = guard({"balances": [BALANCE] * ACCOUNTS, "transfers": 0})
    run_parties(model, transfer_party, *[(g, seed, rounds) for seed in range(parties)])
    books = g.get()
    assert sum(books["balances"]) == ACCOUNTS * BALANCE
    assert min(books["balances"]) >= 0
    assert books["transfers"] == parties * rounds  # no block's commit was lost
    assert not g.is_poisoned()
    assert g.statistics().lock.acquisitions >= parties * rounds + 1

"""The contract of SharedDict: one suite over ``ThreadSharedDict`` and ``ProcessSharedDict``.

Every test takes the ``model`` fixture (``tests/conftest.py``) and builds its dicts with the
``make`` fixture (``model.SharedDict``, closed at teardown), so it runs once per model. A plain
:class:`dict` is the reference: every ``MutableMapping`` method, with its ``KeyError`` cases,
gives what the dict gives, and a Hypothesis state machine drives both side by side.

Where the models differ by design, the test asserts each model's documented behaviour: a
process dict stores pickles (a value read back is a copy; ``1`` and ``1.0`` are two keys; an
unpicklable key or value is a :exc:`~concurrency_kit.SerializationError`), a thread dict the
objects themselves.

Concurrency tests start their workers with :func:`run_parallel`: threads for the thread model,
``forkserver`` processes for the process model (the dict travels as a pickled handle), lined up
on a barrier of the model so that they really overlap. Nothing sleeps; :data:`DEADLOCK` only
turns a hang into a failure.

What only a process dict does when processes die (SIGKILL mid-update, creator death, attachers
that exit) is in ``tests/state/test_shared_dict_faults.py``.
"""

from __future__ import annotations

import math
import multiprocessing
import pickle
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

import attrs
import pytest
from _models import is_process, with_interpreter_model
from _parallel import run_child, run_parallel
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from concurrency_kit import (
    LockTimeoutError,
    Model,
    ProcessSharedDict,
    SerializationError,
    SharedDictStatistics,
)

DEADLOCK = 60.0
"""Seconds after which a wait that should have ended is a deadlock (a failure, not a pass)."""


@pytest.fixture
def make(model: Model) -> Iterator[Callable[..., Any]]:
    """``make(data)``: a SharedDict of the model, closed at teardown."""
    made: list[Any] = []

    def build(*args: Any) -> Any:
        d = model.SharedDict(*args)
        made.append(d)
        return d

    yield build
    for d in made:
        d.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    with_interpreter_model(metafunc)  # INTERPRETER too, on Python 3.14+


# -- workers: threads or processes lined up on a barrier -----------------------------------------


def workers(model: Model) -> int:
    """How many workers a concurrency test runs: 2-3 processes, more threads."""
    return 3 if is_process(model) else 6


def mutate_until_stopped(barrier: Any, d: Any, stop: Any) -> int:
    """Insert and delete the keys ``("tmp", i)`` until ``stop`` is set; return the rounds.

    ``d["rounds"]`` counts the rounds done, so that the iterating side can wait for them.
    """
    barrier.wait(DEADLOCK)
    rounds = 0
    while not stop.is_set():
        for i in range(50):
            d["tmp", i] = i
        for i in range(0, 50, 2):
            del d["tmp", i]
        if rounds % 7 == 6:
            d.clear()
        for i in range(1, 50, 2):
            d.pop(("tmp", i), None)
        rounds += 1
        d["rounds"] = rounds
    return rounds


def iterate_while_mutated(barrier: Any, d: Any, stop: Any, rounds: int) -> list[str]:
    """Iterate over ``d`` (keys, items) until ``rounds`` iterations *and* ``rounds // 10``
    rounds of the mutating worker are done; return what went wrong."""
    barrier.wait(DEADLOCK)
    problems = []
    deadline = time.monotonic() + DEADLOCK
    done = 0
    try:
        while done < rounds or d.get("rounds", 0) < rounds // 10:
            assert time.monotonic() < deadline, "the mutating worker made no progress"
            done += 1
            seen = list(d)
            if len(seen) != len(set(seen)):
                problems.append(f"a key twice in one iteration: {seen}")
            for key in seen:
                if key != "rounds" and not (isinstance(key, tuple) and key[0] == "tmp"):
                    problems.append(f"a key nobody stored: {key!r}")
            pairs = list(d.items())
            if any(key != "rounds" and value != key[1] for key, value in pairs):
                problems.append(f"an item with a wrong value: {pairs}")
    finally:
        stop.set()
    return problems


def mutate_or_iterate(barrier: Any, d: Any, stop: Any, kind: str) -> Any:
    if kind == "mutate":
        return mutate_until_stopped(barrier, d, stop)
    return iterate_while_mutated(barrier, d, stop, 300)


def increment_in_transactions(barrier: Any, d: Any, rounds: int) -> None:
    """Read-modify-write several keys in one transaction: a transfer that keeps the total."""
    barrier.wait(DEADLOCK)
    for i in range(rounds):
        with d.transaction() as t:
            assert t is d
            a, b = d["a"], d["b"]
            d["a"] = a + 1
            d["b"] = b + 2
            d["total"] = d["a"] + d["b"]
            with d.transaction():  # re-entrant
                d.update_item("moves", lambda n: n + 1, default=0)
            if i % 3 == 0:
                d["gone"] = d.pop("gone", 0) + 1


def update_items(barrier: Any, d: Any, rounds: int, keys: list[Any]) -> None:
    barrier.wait(DEADLOCK)
    for _ in range(rounds):
        for key in keys:
            d.update_item(key, lambda n: n + 1, default=0)


def count_word(d: Any, word: str) -> int:
    return int(d.update_item(word, lambda n: n + 1, default=0))


def set_remotely(d: Any, key: Any, value: Any) -> Any:
    """In another process (or thread): store, then read back what is there."""
    d[key] = value
    return d.to_dict()


# -- the MutableMapping methods, against a plain dict ------------------------------------------


def test_single_item_methods_match_a_dict(make: Callable[..., Any]) -> None:
    d = make()
    ref: dict[Any, Any] = {}
    assert len(d) == 0
    assert not d
    assert "a" not in d
    for key, value in [("a", 1), (2, "two"), (b"k", [1, 2]), (("t", 1), None), (None, 1.5)]:
        d[key] = value
        ref[key] = value
        assert d[key] == value
        assert key in d
        assert len(d) == len(ref)
    d["a"] = "overwritten"
    ref["a"] = "overwritten"
    assert d["a"] == "overwritten"
    assert len(d) == len(ref)
    assert d.get("a") == "overwritten"
    assert d.get("missing") is None
    assert d.get("missing", 7) == 7
    assert d.get((None, "t"), "dflt") == "dflt"
    with pytest.raises(KeyError) as info:
        d["missing"]
    assert info.value.args == ("missing",)
    with pytest.raises(KeyError):
        del d["missing"]
    del d[2]
    del ref[2]
    assert 2 not in d
    with pytest.raises(KeyError):
        d[2]
    assert d == ref
    assert d.to_dict() == ref
    assert type(d.to_dict()) is dict


def test_pop_popitem_setdefault_match_a_dict(make: Callable[..., Any]) -> None:
    d = make({"a": 1, "b": 2})
    ref = {"a": 1, "b": 2}
    assert d.pop("a") == ref.pop("a") == 1
    with pytest.raises(KeyError):
        d.pop("a")
    assert d.pop("a", "dflt") == "dflt"
    assert d.pop("a", None) is None
    assert d == ref

    assert d.setdefault("b", 99) == 2  # present: unchanged
    assert d.setdefault("c", 3) == 3  # absent: stored
    assert d.setdefault("n") is None  # the default default is None, stored
    ref.update(c=3, n=None)
    assert d == ref
    assert "n" in d

    d.clear()
    with pytest.raises(KeyError):
        d.popitem()
    for key in ("x", "y", "z"):  # fresh inserts: popitem is LIFO, as in a dict
        d[key] = key.upper()
    assert d.popitem() == ("z", "Z")
    assert d.popitem() == ("y", "Y")
    assert d.popitem() == ("x", "X")
    assert len(d) == 0
    with pytest.raises(KeyError):
        d.popitem()


def test_update_and_constructor_match_a_dict(make: Callable[..., Any]) -> None:
    pairs = [("a", 1), ("b", 2), ("a", 3)]
    assert make(pairs) == dict(pairs)  # later pairs win
    assert make({"k": [1]}) == {"k": [1]}
    assert make(iter(pairs)) == dict(pairs)  # any iterable of pairs
    assert make() == {}
    source = make({"s": 1})
    assert make(source) == {"s": 1}  # another SharedDict is a Mapping
    with pytest.raises((TypeError, ValueError)):
        make([("too", "many", "items")])

    d = make()
    ref: dict[Any, Any] = {}
    updates: list[tuple[Any, dict[str, Any]]] = [
        ({"a": 1, "b": 2}, {}),  # a mapping
        ([("b", 20), ("c", 30)], {}),  # pairs
        ((), {"e": 5, "a": 10}),  # keywords
        ({"f": 6}, {"g": 7}),  # both
        (source, {}),  # another SharedDict
    ]
    for other, kwargs in updates:
        d.update(other, **kwargs)
        ref.update(other, **kwargs)
        assert d == ref
    d.update(("h", i) for i in range(3))  # a generator of pairs
    ref["h"] = 2
    assert d == ref
    d.update()
    assert d == ref
    with pytest.raises(TypeError):
        d.update(1)
    assert d == ref


def test_equality_with_any_mapping(make: Callable[..., Any]) -> None:
    d = make({"a": 1, (1, 2): b"x"})
    assert d == {"a": 1, (1, 2): b"x"}
    assert {"a": 1, (1, 2): b"x"} == d  # noqa: SIM300 - the reflected comparison, on purpose
    assert d != {"a": 1}
    assert d != {"a": 2, (1, 2): b"x"}
    assert d != {"a": 1, (1, 2): b"x", "c": 3}
    assert d == make([((1, 2), b"x"), ("a", 1)])  # order does not matter
    assert d != make({"a": 1})
    assert d != [("a", 1), ((1, 2), b"x")]  # not a Mapping
    assert d != "a"
    assert make() == {}
    with pytest.raises(TypeError):
        hash(d)  # mutable, like a dict


def test_views_and_iteration_are_snapshots(make: Callable[..., Any]) -> None:
    d = make({"a": 1, "b": 2, "c": 3})
    keys, values, items = d.keys(), d.values(), d.items()
    assert set(keys) == {"a", "b", "c"}
    assert sorted(values) == [1, 2, 3]
    assert set(items) == {("a", 1), ("b", 2), ("c", 3)}
    assert "a" in keys
    assert ("a", 1) in items
    d["z"] = 26
    del d["a"]
    assert set(keys) == {"a", "b", "c"}  # taken before the changes
    assert set(d.keys()) == {"b", "c", "z"}
    # Deleting every key while iterating works: the iteration is over a snapshot.
    for key in d:
        del d[key]
    assert len(d) == 0
    d.update({"x": 1, "y": 2})
    for key in d:
        d[key + key] = 0  # growing while iterating too
    assert d == {"x": 1, "y": 2, "xx": 0, "yy": 0}


def test_iteration_while_another_worker_mutates(model: Model, make: Callable[..., Any]) -> None:
    d = make()
    stop = model.Event()
    try:
        rounds, problems = run_parallel(
            model, mutate_or_iterate, [(d, stop, "mutate"), (d, stop, "iterate")]
        )
    finally:
        close = getattr(stop, "close", None)
        if close is not None:
            close()
    assert rounds >= 30
    assert problems == []


# -- update_item and transaction ---------------------------------------------------------------


def test_update_item(make: Callable[..., Any]) -> None:
    d = make({"n": 1, "b": 10})
    assert d.update_item("n", lambda v: v + 1) == 2
    assert d["n"] == 2
    assert d.update_item("new", lambda v: [*v, 1], default=[]) == [1]
    assert d["new"] == [1]
    assert d.update_item("new", lambda v: [*v, 2], default=[]) == [1, 2]  # present: no default
    assert d.update_item("none", lambda v: (v,), default=None) == (None,)  # None is a default
    with pytest.raises(KeyError):
        d.update_item("missing", lambda v: 0)
    assert "missing" not in d
    before = d.to_dict()

    def boom(value: Any) -> Any:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        d.update_item("n", boom)
    with pytest.raises(ZeroDivisionError):
        d.update_item("other", boom, default=0)
    assert d == before  # fn raised: nothing stored
    # fn runs under the dict's (re-entrant) lock and may use the dict itself.
    assert d.update_item("n", lambda v: v + d["b"]) == 12
    d["b"] = 0
    d.update({"n": 12})  # the lock was released
    assert d.to_dict() == {**before, "n": 12, "b": 0}


def test_update_item_is_atomic_across_workers(model: Model, make: Callable[..., Any]) -> None:
    d = make()
    n, rounds, keys = workers(model), 300, ["x", ("y", 1), 7]
    run_parallel(model, update_items, [(d, rounds, keys)] * n)
    assert d == dict.fromkeys(keys, n * rounds)


def test_transaction_is_atomic_across_workers(model: Model, make: Callable[..., Any]) -> None:
    d = make({"a": 0, "b": 0, "total": 0})
    n, rounds = workers(model), 200
    run_parallel(model, increment_in_transactions, [(d, rounds)] * n)
    done = n * rounds
    assert d == {
        "a": done,
        "b": 2 * done,
        "total": 3 * done,
        "moves": done,
        "gone": n * len(range(0, rounds, 3)),
    }


def test_transaction_allows_every_operation_and_releases_on_error(
    model: Model, make: Callable[..., Any]
) -> None:
    d = make({"a": 1})
    with d.transaction() as t:
        assert t is d
        d["b"] = 2
        assert d["a"] + d["b"] == 3
        assert d.get("c") is None
        assert "b" in d
        assert sorted(d) == ["a", "b"]
        assert len(d) == 2
        assert d.setdefault("c", 3) == 3
        assert d.pop("c") == 3
        d.update(c=4)
        assert d.update_item("c", lambda v: v * 10) == 40
        assert d.to_dict() == {"a": 1, "b": 2, "c": 40}
        assert d.popitem() == ("c", 40)
        assert d == {"a": 1, "b": 2}
        assert d.statistics().length == 2
        del d["b"]
        with d.transaction():
            d["nested"] = True
    assert d == {"a": 1, "nested": True}

    def partial() -> None:
        with d.transaction():
            d["partial"] = 1
            raise RuntimeError("inside the block")

    with pytest.raises(RuntimeError, match="inside"):
        partial()
    assert d["partial"] == 1  # what the block did before raising stays
    d.clear()
    assert d == {}
    # The lock is free: another worker can write.
    assert run_parallel(model, _set_after_barrier, [(d, "other", 2)]) == [{"other": 2}]


def _set_after_barrier(barrier: Any, d: Any, key: Any, value: Any) -> Any:
    barrier.wait(DEADLOCK)
    return set_remotely(d, key, value)


def test_transaction_excludes_other_workers(model: Model, make: Callable[..., Any]) -> None:
    """A worker's write waits for the transaction: inside it the value stays ours."""
    d = make({"k": "mine"})
    ctx_event = model.Event()
    try:
        with d.transaction():
            results: list[Any] = []
            if is_process(model):
                ctx = multiprocessing.get_context("forkserver")
                recv, send = ctx.Pipe(duplex=False)
                p = ctx.Process(target=run_child, args=(_announce_then_set, (d, ctx_event), send))
                p.start()
                send.close()
            else:
                t = threading.Thread(
                    target=lambda: results.append(("ok", _announce_then_set(d, ctx_event)))
                )
                t.start()
            assert ctx_event.wait(DEADLOCK)  # the worker is about to write
            for _ in range(200):
                assert d["k"] == "mine"
            d["k"] = "still mine"
        if is_process(model):
            assert recv.poll(DEADLOCK)
            results.append(recv.recv())
            p.join(DEADLOCK)
            assert p.exitcode == 0
            p.close()
            recv.close()
        else:
            t.join(DEADLOCK)
            assert not t.is_alive()
        assert results == [("ok", "still mine")]  # the worker saw our committed write
        assert d["k"] == "theirs"
    finally:
        close = getattr(ctx_event, "close", None)
        if close is not None:
            close()


def _announce_then_set(d: Any, event: Any) -> Any:
    event.set()
    with d.transaction():
        before = d["k"]
        d["k"] = "theirs"
    return before


def _try_transactions(barrier: Any, d: Any) -> list[str]:
    """Enter ``d.transaction()`` with short timeouts; what happened to each."""
    barrier.wait(DEADLOCK)
    outcomes = []
    for timeout in (0, 0.05):
        try:
            with d.transaction(timeout=timeout) as t:
                assert t is d
                outcomes.append("entered")
        except LockTimeoutError as exc:
            is_timeout = isinstance(exc, TimeoutError) and "transaction()" in str(exc)
            outcomes.append("timed out" if is_timeout else f"bad error: {exc!r}")
    return outcomes


def test_transaction_timeout(model: Model, make: Callable[..., Any]) -> None:
    """A transaction that cannot get the lock in time raises LockTimeoutError and runs nothing."""
    d = make({"k": 1})
    with d.transaction():
        assert run_parallel(model, _try_transactions, [(d,)]) == [["timed out", "timed out"]]
        with d.transaction(timeout=0):  # re-entrant: the holder never waits
            d["k"] = 2
    assert run_parallel(model, _try_transactions, [(d,)]) == [["entered", "entered"]]
    assert d == {"k": 2}


@pytest.mark.parametrize("timeout", [None, 0, 0.0, 1, 2.5, math.inf, 1e300, 2**80])
def test_transaction_timeouts_that_wait_or_not(
    make: Callable[..., Any], timeout: float | None
) -> None:
    d = make()
    with d.transaction(timeout=timeout):
        d["in"] = True
    assert d == {"in": True}


@pytest.mark.parametrize(
    ("timeout", "error"),
    [
        (-1, ValueError),
        (-0.001, ValueError),
        (-math.inf, ValueError),
        (math.nan, ValueError),
        ("1", TypeError),
        (True, TypeError),
        ([], TypeError),
    ],
)
def test_transaction_refuses_a_bad_timeout_at_the_call(
    model: Model, make: Callable[..., Any], timeout: Any, error: type[Exception]
) -> None:
    d = make()
    with pytest.raises(error, match="timeout"):
        d.transaction(timeout=timeout)  # at the call, before any ``with``
    with d.transaction(timeout=0):  # the lock was not taken
        d["free"] = True
    assert run_parallel(model, _try_transactions, [(d,)]) == [["entered", "entered"]]


# -- values and keys: what each model stores ---------------------------------------------------


def test_values_are_copies_for_processes_the_objects_for_threads(
    model: Model, make: Callable[..., Any]
) -> None:
    stored = [1, 2]
    d = make({"list": stored})
    got = d["list"]
    got.append(3)
    if is_process(model):
        assert got is not stored
        assert d["list"] == [1, 2]  # mutating a read value does not change the dict
        assert d["list"] is not d["list"]
        stored.append(4)
        assert d["list"] == [1, 2]  # nor does mutating the stored object
        d.update_item("list", lambda v: [*v, 3])  # the way to change it
        assert d["list"] == [1, 2, 3]
    else:
        assert got is stored
        assert d["list"] is stored
        assert d["list"] == [1, 2, 3]
        assert d.to_dict()["list"] is stored
        assert next(iter(d.values())) is stored


def test_the_key_rule(model: Model, make: Callable[..., Any]) -> None:
    d = make()
    d[1] = "int"
    d[1.0] = "float"
    d[True] = "bool"
    if is_process(model):
        # Documented (docs/state.rst): True is the key 1, as in a dict; 1.0 is another key.
        assert len(d) == 2
        assert d[1] == d[True] == "bool"
        assert d[1.0] == "float"
        del d[1.0]
        assert 1 in d
        assert 1.0 not in d
        assert d == {1: "bool"}
    else:
        assert len(d) == 1
        assert d[1] == d[1.0] == d[True] == "bool"
    d.clear()
    # str, bytes, int, None and tuples of those behave exactly as in a dict.
    a1 = "ab"
    a2 = "".join(["a", "b"])
    assert a1 == a2
    d[(a1, a1)] = "one"
    assert d[(a1, a2)] == "one"  # the same key whether built from one string object or two
    keys = ["", "ü€", b"", b"\x00\xff", 0, -1, 2**63, -(2**70), 10**18, 10**18 - 1, None]
    keys += [(), ((),), ("a", (b"b", (None, 5))), (1, "1", b"1")]
    for i, key in enumerate(keys):
        d[key] = i
    assert len(d) == len(keys) + 1
    for i, key in enumerate(keys):
        assert d[key] == i
        assert key in d
    ref = {key: i for i, key in enumerate(keys)}
    ref[(a1, a1)] = "one"
    assert d == ref
    assert set(d) == set(ref)
    assert "1" not in d  # close relatives stay apart
    assert b"1" not in d
    assert (1, "1") not in d


@pytest.mark.parametrize("key", [[], {}, {1}, ([],), bytearray(b"x")])
def test_unhashable_key_is_a_type_error(key: Any, model: Model, make: Callable[..., Any]) -> None:
    d = make({"a": 1})
    calls: list[Callable[[], object]] = [
        lambda: d[key],
        lambda: d.__setitem__(key, 1),
        lambda: d.__delitem__(key),
        lambda: key in d,
        lambda: d.get(key),
        lambda: d.pop(key),
        lambda: d.pop(key, None),
        lambda: d.setdefault(key, 1),
        lambda: d.update_item(key, lambda v: v, default=0),
        lambda: d.update([(key, 1)]),
    ]
    for call in calls:
        with pytest.raises(TypeError):
            call()
    assert d == {"a": 1}
    assert len(d) == 1


def test_unpicklable_key_or_value(model: Model, make: Callable[..., Any]) -> None:
    d = make({"a": 1, "b": [2]})
    before = d.to_dict()
    lock = threading.Lock()  # hashable, not picklable (by pickle or cloudpickle)
    calls: list[Callable[[], object]] = [
        lambda: d.__setitem__(lock, 1),
        lambda: d.__setitem__("new", lock),
        lambda: d.__setitem__("a", lock),  # an overwrite keeps the old value
        lambda: d.__setitem__("c", [1, lock]),
        lambda: d.setdefault("new", lock),
        lambda: d.update_item("a", lambda v: lock),
        lambda: d.update_item("new", lambda v: lock, default=0),
    ]
    if is_process(model):
        for call in calls:
            with pytest.raises(SerializationError, match="lock"):
                call()
            assert len(d) == 2
            assert d == before
        try:  # a lookup of an unpicklable key: not there, or refused clearly
            assert lock not in d
        except SerializationError:
            pass
        with pytest.raises(SerializationError):
            ProcessSharedDict([("x", 1), ("y", lock)])  # nothing leaks (the leak check)
    else:
        d[lock] = "a lock as a key"
        d["new"] = lock
        assert d[lock] == "a lock as a key"
        assert d["new"] is lock


# -- values and keys that cannot be unpickled -------------------------------------------------


def _refuse_to_load(tag: str) -> Any:
    raise RuntimeError(f"{tag} refuses to be unpickled")


class FailsInSetstate:
    """Pickles fine; unpickling it raises in ``__setstate__``. Hashable: usable as a key."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __getstate__(self) -> dict[str, str]:
        return {"tag": self.tag}

    def __setstate__(self, state: dict[str, str]) -> None:
        raise RuntimeError(f"{state['tag']} refuses to be unpickled")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FailsInSetstate) and other.tag == self.tag

    def __hash__(self) -> int:
        return hash(self.tag)


class FailsInReduce:
    """Pickles as a call of a function that raises when it is called, at unpickling."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _refuse_to_load, (self.tag,)


def unloadable(how: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Callable[[], None]]:
    """A value that cannot be unpickled once ``gone()`` has been called (for "missing class":
    its class's module is removed from ``sys.modules``, as in a process that never imported
    the module that another process's value comes from)."""
    if how == "setstate":
        return FailsInSetstate("bad"), lambda: None
    if how == "reduce":
        return FailsInReduce("bad"), lambda: None
    module = types.ModuleType("ck_contract_gone")
    gone_cls = type("Gone", (), {"__module__": module.__name__})
    module.Gone = gone_cls  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return gone_cls(), lambda: monkeypatch.delitem(sys.modules, module.__name__)


def _get_after_barrier(barrier: Any, d: Any, write: Any, read: Any) -> Any:
    barrier.wait(DEADLOCK)
    d[write] = "written"
    return d[read], d[write], len(d)


def fails_naming_bad(call: Callable[[], object]) -> SerializationError:
    with pytest.raises(SerializationError, match=r"'bad'") as info:
        call()
    assert info.value.__cause__ is not None
    return info.value


@pytest.mark.parametrize("how", ["setstate", "reduce", "missing class"])
def test_a_value_that_cannot_be_unpickled(
    model: Model, make: Callable[..., Any], how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only what reads the bad value fails, with its key named; the rest works, lock free."""
    bad, gone = unloadable(how, monkeypatch)
    d = make({"a": 1, "b": 2})
    d["bad"] = bad
    d["c"] = 3
    gone()
    if not is_process(model):  # a thread dict keeps the object: nothing is unpickled
        assert d["bad"] is bad
        assert list(d.items()) == [("a", 1), ("b", 2), ("bad", bad), ("c", 3)]
        assert d.pop("bad") is bad
        return

    error = fails_naming_bad(lambda: d["bad"])
    assert isinstance(error.__cause__, (RuntimeError, ImportError, AttributeError))
    calls: list[Callable[[], object]] = [
        lambda: d["bad"],
        lambda: d.get("bad"),
        lambda: d.get("bad", 0),
        lambda: d.setdefault("bad", 0),
        lambda: d.pop("bad"),
        lambda: d.pop("bad", None),
        lambda: d.update_item("bad", lambda v: 0),
        lambda: d.update_item("bad", lambda v: 0, default=0),
        d.to_dict,
        lambda: d == {},
        lambda: dict(d.items()),
    ]
    for call in calls:
        fails_naming_bad(call)
        assert len(d) == 4  # nothing removed, nothing stored
        assert "bad" in d  # ``in`` does not unpickle the value
    # Iteration: the good entries before and after come out; the bad one raises where it is.
    assert list(d) == list(d.keys()) == ["a", "b", "bad", "c"]
    for view, expected in ((d.items(), [("a", 1), ("b", 2)]), (d.values(), [1, 2])):
        it = iter(view)
        assert [next(it), next(it)] == expected
        fails_naming_bad(lambda it=it: next(it))
        assert next(it) == (("c", 3) if expected[0] == ("a", 1) else 3)
        with pytest.raises(StopIteration):
            next(it)
        assert len(view) == 4
    assert ("a", 1) in d.items()  # a lookup in the view unpickles that value only
    fails_naming_bad(lambda: ("bad", None) in d.items())
    assert 1 in d.values()
    assert list(reversed(d.keys())) == ["c", "bad", "b", "a"]
    # Inside a transaction: the error is the same, and the lock is released however it ends.
    with d.transaction():
        fails_naming_bad(lambda: d["bad"])
        d["t"] = "in the transaction"
    with pytest.raises(SerializationError), d.transaction():
        d.update_item("bad", lambda v: v)
    assert run_parallel(model, _get_after_barrier, [(d, "w", "a")]) == [(1, "written", 6)]
    # popitem needs the last pair: it raises and keeps the pair; then the others come out.
    del d["t"], d["w"], d["c"]
    fails_naming_bad(d.popitem)
    assert len(d) == 3
    del d["bad"]  # ``del`` does not unpickle it
    assert d.popitem() == ("b", 2)
    d["c"] = bad if how != "missing class" else FailsInReduce("c")
    d["c"] = "fixed"  # an overwrite does not unpickle the old value
    assert d.to_dict() == {"a": 1, "c": "fixed"}


def test_a_key_that_cannot_be_unpickled(model: Model, make: Callable[..., Any]) -> None:
    """Such a key is found by lookup (keys are compared pickled); iteration raises at it."""
    key = FailsInSetstate("key")
    d = make({"a": 1})
    d[key] = "value of the bad key"
    d["z"] = 26
    assert d[key] == "value of the bad key"
    assert key in d
    assert len(d) == 3
    if not is_process(model):
        assert list(d) == ["a", key, "z"]
        return
    for view in (d, d.keys(), d.items()):
        it = iter(view)
        assert next(it) in ("a", ("a", 1))
        with pytest.raises(SerializationError, match="key") as info:
            next(it)
        assert isinstance(info.value.__cause__, RuntimeError)
        assert next(it) in ("z", ("z", 26))
    assert list(d.values()) == [1, "value of the bad key", 26]  # values need no key
    with pytest.raises(SerializationError):
        d.to_dict()
    del d[key]
    assert d == {"a": 1, "z": 26}


# -- size: many keys, big values, space reuse --------------------------------------------------


def test_many_keys(model: Model, make: Callable[..., Any]) -> None:
    d = make()
    n = 20_000
    for i in range(n):
        d[i] = f"v{i}"
    assert len(d) == n
    assert all(d[i] == f"v{i}" for i in range(0, n, 7))
    assert d == {i: f"v{i}" for i in range(n)}
    stats = d.statistics()
    assert stats.length == n
    if is_process(model):
        assert stats.growths >= 3  # grown well past its initial size, by itself
        assert stats.capacity_bytes >= stats.used_bytes > n * 8
    for i in range(0, n, 2):
        del d[i]
    assert len(d) == n // 2
    assert d == {i: f"v{i}" for i in range(1, n, 2)}
    with pytest.raises(KeyError):
        d[0]


def test_big_values(model: Model, make: Callable[..., Any]) -> None:
    d = make({"small": 1})
    mib = bytes(range(256)) * 4096
    assert len(mib) == 1 << 20
    for i in range(6):
        d["big", i] = mib[i:] + mib[:i]
    d["text"] = "é" * (1 << 20)
    d["list"] = list(range(100_000))
    for i in range(6):
        assert d["big", i] == mib[i:] + mib[:i]
    assert d["text"] == "é" * (1 << 20)
    assert d["list"] == list(range(100_000))
    d["big", 0] = b"shrunk"
    d[b"k" * (1 << 20)] = "a big key"
    assert d[b"k" * (1 << 20)] == "a big key"
    assert d["big", 0] == b"shrunk"
    assert d["small"] == 1
    assert len(d) == 10
    if is_process(model):
        stats = d.statistics()
        assert stats.used_bytes > 8 << 20
        assert stats.capacity_bytes >= stats.used_bytes


def test_deletes_then_reinserts_reuse_space(model: Model, make: Callable[..., Any]) -> None:
    d = make()
    keys = [f"key-{i}" for i in range(2_000)]
    value = b"v" * 200
    used, capacity = [], []
    for cycle in range(20):
        for key in keys:
            d[key] = value
        assert len(d) == len(keys)
        stats = d.statistics()
        used.append(stats.used_bytes)
        capacity.append(stats.capacity_bytes)
        for key in keys[: len(keys) // 2]:
            del d[key]
        for key in keys[len(keys) // 2 :]:
            assert d.pop(key) == value
        assert len(d) == 0
        assert d.get(keys[0]) is None
        assert d.statistics().used_bytes == 0
        d[cycle] = cycle  # still works
        del d[cycle]
    if is_process(model):
        assert len(set(used)) == 1  # the same live content, the same bytes, every cycle
        assert used[0] >= len(keys) * len(value)
        assert max(capacity[10:]) <= 2 * max(capacity[:3])  # the freed space is reused
    else:
        assert used == capacity == [0] * 20


# -- handles in other processes (and in pools of both models) ----------------------------------


def test_handles_as_pool_task_arguments(model: Model, make: Callable[..., Any]) -> None:
    if model.name == "interpreter":  # (test_interpreter_rows.py passes handles to such tasks)
        pytest.skip(
            "the tasks are functions of this module, which imports hypothesis: an extension "
            "module that cannot be loaded in an InterpreterPool worker"
        )
    d = make({"the": 0})
    words = ["the", "cat", "the", "hat", "cat", "the"] * 20
    with model.Pool(2) as pool:
        assert sorted(pool.map(count_word, [d] * len(words), words))[-1] == 60
        assert pool.submit(set_remotely, d, "from a task", [1]).result(DEADLOCK)["the"] == 60
    assert d == {"the": 60, "cat": 40, "hat": 20, "from a task": [1]}


def _child_use(d: Any, conn: Connection) -> None:
    try:
        conn.send(sorted(d.items(), key=repr))
        d["child"] = ("was", "here")
        d.update_item("n", lambda n: n + 1)
        with d.transaction():
            d["in transaction"] = d.pop("delete me")
        conn.send("done")
    finally:
        conn.close()


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_handle_pickled_to_a_child_process(method: str, model: Model) -> None:
    if not is_process(model):
        pytest.skip("a thread dict is not picklable: it lives in one process")
    ctx = multiprocessing.get_context(method)
    with model.SharedDict({"n": 1, "delete me": b"x"}) as d:
        recv, send = ctx.Pipe()
        p = ctx.Process(target=_child_use, args=(d, send))
        p.start()
        send.close()
        try:
            assert recv.poll(DEADLOCK)
            assert recv.recv() == [("delete me", b"x"), ("n", 1)]
            assert recv.poll(DEADLOCK)
            assert recv.recv() == "done"
            p.join(DEADLOCK)
            assert p.exitcode == 0
        finally:
            if p.is_alive():
                p.kill()
                p.join()
            p.close()
            recv.close()
        assert d == {"n": 2, "child": ("was", "here"), "in transaction": b"x"}


def test_pickling_per_model(model: Model, make: Callable[..., Any]) -> None:
    d = make({"a": 1})
    if is_process(model):
        other = pickle.loads(pickle.dumps(d))
        try:
            assert type(other) is type(d)
            other["b"] = 2
            assert d == {"a": 1, "b": 2}
            d["a"] = 10
            assert other["a"] == 10  # the change is seen at once through the other handle
        finally:
            other.close()
        assert d["a"] == 10  # closing an attached handle leaves the dict alone
    else:
        with pytest.raises(TypeError, match="Process"):
            pickle.dumps(d)


# -- close, context manager, statistics --------------------------------------------------------


def test_close_and_context_manager(model: Model) -> None:
    with model.SharedDict({"a": 1}) as d:
        assert d["a"] == 1
    d.close()  # idempotent
    d.close()
    if is_process(model):
        assert "closed" in repr(d)
        calls: list[Callable[[], object]] = [
            lambda: d["a"],
            lambda: d.__setitem__("a", 2),
            lambda: d.__delitem__("a"),
            lambda: "a" in d,
            lambda: len(d),
            lambda: list(d),
            lambda: d.get("a"),
            lambda: d.update_item("a", lambda v: v, default=0),
            lambda: d.to_dict(),
            lambda: d.statistics(),
            lambda: d.clear(),
            lambda: pickle.dumps(d),
        ]
        for call in calls:
            with pytest.raises(ValueError, match="closed"):
                call()
    else:
        assert d["a"] == 1  # nothing to release: a thread dict keeps working


def test_statistics(model: Model, make: Callable[..., Any]) -> None:
    d = make()
    empty = d.statistics()
    assert isinstance(empty, SharedDictStatistics)
    assert attrs.has(type(empty))
    assert set(attrs.asdict(empty)) == {
        "length",
        "capacity_bytes",
        "used_bytes",
        "growths",
        "mutex_recoveries",
    }
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        empty.length = 5  # type: ignore[misc]
    assert empty.length == 0
    assert empty.mutex_recoveries == 0
    for i in range(1000):
        d[i] = "x" * 20
    full = d.statistics()
    assert full.length == 1000
    assert full.mutex_recoveries == 0
    if is_process(model):
        assert empty.capacity_bytes > 0
        assert empty.used_bytes == 0
        assert full.used_bytes > 1000 * 20
        assert full.capacity_bytes >= full.used_bytes
        assert full.growths > empty.growths
    else:
        assert (full.capacity_bytes, full.used_bytes, full.growths) == (0, 0, 0)
    assert d.statistics() == full


# -- a Hypothesis state machine against a plain dict -------------------------------------------


KEYS = st.sampled_from(
    ["a", "b", "", "ü", 0, 1, -7, 2**70, b"", b"a", (), ("a", 1), (None, b"z"), None]
)
VALUES = st.one_of(
    st.integers(),
    st.text(max_size=10),
    st.binary(max_size=300),
    st.floats(allow_nan=False),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=5),
    st.tuples(st.text(max_size=3), st.integers()),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
    st.frozensets(st.integers(), max_size=3),
)


class SharedDictMachine(RuleBasedStateMachine):
    """A SharedDict of :attr:`model` driven side by side with a plain dict."""

    model: Model

    def __init__(self) -> None:
        super().__init__()
        self.d = self.model.SharedDict()
        self.ref: dict[Any, Any] = {}

    @rule(key=KEYS, value=VALUES)
    def set(self, key: Any, value: Any) -> None:
        self.d[key] = value
        self.ref[key] = value

    @rule(key=KEYS)
    def get(self, key: Any) -> None:
        if key in self.ref:
            assert self.d[key] == self.ref[key]
        else:
            with pytest.raises(KeyError):
                self.d[key]
        assert self.d.get(key, "dflt") == self.ref.get(key, "dflt")
        assert (key in self.d) == (key in self.ref)

    @rule(key=KEYS)
    def delete(self, key: Any) -> None:
        if key in self.ref:
            del self.d[key]
            del self.ref[key]
        else:
            with pytest.raises(KeyError):
                del self.d[key]

    @rule(key=KEYS, default=st.none() | st.just("dflt"))
    def pop(self, key: Any, default: Any) -> None:
        if default is None and key not in self.ref:
            with pytest.raises(KeyError):
                self.d.pop(key)
        elif default is None:
            assert self.d.pop(key) == self.ref.pop(key)
        else:
            assert self.d.pop(key, default) == self.ref.pop(key, default)

    @rule()
    def popitem(self) -> None:
        if not self.ref:
            with pytest.raises(KeyError):
                self.d.popitem()
            return
        key, value = self.d.popitem()
        assert key in self.ref
        assert self.ref.pop(key) == value

    @rule(key=KEYS, value=VALUES)
    def setdefault(self, key: Any, value: Any) -> None:
        assert self.d.setdefault(key, value) == self.ref.setdefault(key, value)

    @rule(pairs=st.lists(st.tuples(KEYS, VALUES), max_size=6), as_mapping=st.booleans())
    def update(self, pairs: list[tuple[Any, Any]], as_mapping: bool) -> None:
        other: Any = dict(pairs) if as_mapping else pairs
        self.d.update(other)
        self.ref.update(other)

    @rule(key=KEYS, with_default=st.booleans())
    def update_item(self, key: Any, with_default: bool) -> None:
        def wrap(value: Any) -> Any:
            return ("wrapped", value)

        if with_default:
            self.ref[key] = wrap(self.ref.get(key, 0))
            assert self.d.update_item(key, wrap, default=0) == self.ref[key]
        elif key in self.ref:
            self.ref[key] = wrap(self.ref[key])
            assert self.d.update_item(key, wrap) == self.ref[key]
        else:
            with pytest.raises(KeyError):
                self.d.update_item(key, wrap)

    @rule(pairs=st.lists(st.tuples(KEYS, VALUES), max_size=4), drop=KEYS)
    def transaction(self, pairs: list[tuple[Any, Any]], drop: Any) -> None:
        with self.d.transaction():
            for key, value in pairs:
                self.d[key] = value
                self.ref[key] = value
            assert self.d.pop(drop, "none") == self.ref.pop(drop, "none")

    @precondition(lambda self: len(self.ref) > 2)
    @rule()
    def clear(self) -> None:
        self.d.clear()
        self.ref.clear()

    @invariant()
    def same_content(self) -> None:
        assert len(self.d) == len(self.ref)
        assert self.d == self.ref
        assert self.d.to_dict() == self.ref
        assert sorted(map(repr, self.d)) == sorted(map(repr, self.ref))
        assert self.d.statistics().length == len(self.ref)

    def teardown(self) -> None:
        self.d.close()


def test_state_machine_against_a_dict(model: Model) -> None:
    machine = type(f"{model.name.title()}SharedDictMachine", (SharedDictMachine,), {})
    machine.model = model
    run_state_machine_as_test(
        machine,
        settings=settings(max_examples=60, stateful_step_count=40, deadline=None),
    )

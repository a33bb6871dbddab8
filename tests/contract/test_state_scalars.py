"""The contract of the shared counter, value and array: one suite over both models.

Every test takes the ``model`` fixture (``tests/conftest.py``) and builds its containers with
:func:`kinds`, so it runs once with the thread classes and once with the process classes.
Concurrency tests start their workers with :func:`run_parallel`: threads for the thread
model, ``forkserver`` processes for the process model (the handles travel as pickled
``Process`` arguments), lined up on a barrier of the model so that they really overlap.
Results come back over pipes (processes) or a list (threads); nothing sleeps, and
:data:`DEADLOCK` only turns a hang into a failure.

What only processes do (pickling, segment lifecycle, start methods, SIGKILL) is in
``tests/state/test_process_state_faults.py``.

Until the lead adds ``SharedCounter``/``SharedValue``/``SharedArray`` to
:class:`~concurrency_kit.Model`, the classes come from a local table keyed by the model name.
"""

from __future__ import annotations

import array
import math
import pickle
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import numpy
import pytest
from _models import with_interpreter_model
from _parallel import run_parallel
from hypothesis import given, settings
from hypothesis import strategies as st

from _children import wait_until
from concurrency_kit import Model, ProcessRLock, ThreadRLock
from concurrency_kit.state import (
    ProcessSharedArray,
    ProcessSharedCounter,
    ProcessSharedValue,
    SharedArrayStatistics,
    SharedCounterStatistics,
    SharedValueStatistics,
    ThreadSharedArray,
    ThreadSharedCounter,
    ThreadSharedValue,
)

DEADLOCK = 60.0
"""Seconds after which a wait that should have ended is a deadlock (a failure, not a pass)."""

TYPECODES = ("b", "B", "h", "H", "i", "I", "l", "L", "q", "Q", "f", "d")
INT_CODES = tuple(tc for tc in TYPECODES if tc not in "fd")
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1

_CLASSES = {
    "process": SimpleNamespace(
        SharedCounter=ProcessSharedCounter,
        SharedValue=ProcessSharedValue,
        SharedArray=ProcessSharedArray,
        RLock=ProcessRLock,
    ),
    "thread": SimpleNamespace(
        SharedCounter=ThreadSharedCounter,
        SharedValue=ThreadSharedValue,
        SharedArray=ThreadSharedArray,
        RLock=ThreadRLock,
    ),
}


def kinds(model: Model) -> SimpleNamespace:
    """The model's container classes (from :class:`Model` once it has them); INTERPRETER's are
    the process ones."""
    return _CLASSES["process" if model.name == "interpreter" else model.name]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    with_interpreter_model(metafunc)  # INTERPRETER too, on Python 3.14+


@pytest.fixture
def make(model: Model) -> Iterator[Callable[..., Any]]:
    """``make("SharedCounter", 5)``: a container of the model, closed at teardown."""
    made: list[Any] = []

    def build(kind: str, *args: Any) -> Any:
        container = getattr(kinds(model), kind)(*args)
        made.append(container)
        return container

    yield build
    for container in made:
        container.close()


def int_range(tc: str) -> tuple[int, int]:
    bits = struct.calcsize(tc) * 8
    if tc.islower():
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def stored(tc: str, value: float) -> float:
    """What a value of type code ``tc`` reads back as (float32 rounding for ``'f'``)."""
    return array.array(tc, [value])[0]


# -- workers: threads or processes lined up on a barrier -----------------------------------------


def add_many(barrier: Any, counter: Any, n: int, step: int) -> int:
    barrier.wait(DEADLOCK)
    last = 0
    for _ in range(n):
        last = counter.add(step)
    return last


def cas_increment_many(barrier: Any, container: Any, n: int) -> int:
    """Increment by compare-and-set ``n`` times; return how many CAS calls failed."""
    barrier.wait(DEADLOCK)
    failures = 0
    for _ in range(n):
        while True:
            current = container.get()
            if container.compare_and_set(current, current + 1):
                break
            failures += 1
    return failures


def cas_claim(barrier: Any, container: Any, me: int) -> bool:
    barrier.wait(DEADLOCK)
    return bool(container.compare_and_set(0, me))


def fill_slice(barrier: Any, arr: Any, start: int, stop: int, value: int) -> None:
    barrier.wait(DEADLOCK)
    for i in range(start, stop):
        arr[i] = value + i


def write_uniform(barrier: Any, arr: Any, rounds: int) -> None:
    barrier.wait(DEADLOCK)
    n = len(arr)
    for k in range(rounds):
        arr[:] = [k] * n


def read_snapshots(barrier: Any, arr: Any, rounds: int) -> list[int]:
    """Take snapshots while a writer rewrites the array; return the mixed ones' sizes."""
    barrier.wait(DEADLOCK)
    mixed = []
    for _ in range(rounds):
        snapshot = arr.tolist()
        if len(set(snapshot)) != 1:
            mixed.append(len(set(snapshot)))
    return mixed


def locked_update(barrier: Any, arr: Any, rounds: int) -> None:
    """Read-modify-write every item under ``lock()``: add 1 to each."""
    barrier.wait(DEADLOCK)
    for _ in range(rounds):
        with arr.lock():
            values = arr[:]
            arr[:] = [v + 1 for v in values]


# -- SharedCounter -------------------------------------------------------------------------------


def test_counter_basics(make: Callable[..., Any]) -> None:
    counter = make("SharedCounter")
    assert counter.get() == 0
    assert counter.add() == 1
    assert counter.add(10) == 11
    assert counter.add(-20) == -9
    counter.set(5)
    assert counter.get() == 5
    assert counter.compare_and_set(5, 7) is True
    assert counter.compare_and_set(5, 8) is False
    assert counter.get() == 7
    assert make("SharedCounter", -3).get() == -3
    assert make("SharedCounter", True).get() == 1  # bool is an int, as everywhere in Python


def test_counter_statistics_and_repr(model: Model, make: Callable[..., Any]) -> None:
    counter = make("SharedCounter", 41)
    counter.add()
    stats = counter.statistics()
    assert isinstance(stats, SharedCounterStatistics)
    assert stats.value == 42
    assert stats.mutex_recoveries == 0
    assert stats.lock_free is (model.name != "thread")  # libatomic is installed here
    assert "value=42" in repr(counter)
    assert type(counter).__name__ in repr(counter)


def test_counter_wraps_around_like_int64(make: Callable[..., Any]) -> None:
    counter = make("SharedCounter", INT64_MAX)
    assert counter.add() == INT64_MIN
    assert counter.get() == INT64_MIN
    assert counter.add(-1) == INT64_MAX
    assert counter.add(INT64_MIN) == -1
    counter.set(INT64_MIN)
    assert counter.add(INT64_MIN) == 0


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c: c.add(1.5), TypeError),
        (lambda c: c.add("1"), TypeError),
        (lambda c: c.add(None), TypeError),
        (lambda c: c.add(INT64_MAX + 1), OverflowError),
        (lambda c: c.add(INT64_MIN - 1), OverflowError),
        (lambda c: c.set(2.0), TypeError),
        (lambda c: c.set(1 << 63), OverflowError),
        (lambda c: c.compare_and_set(3, 1 << 64), OverflowError),
        (lambda c: c.compare_and_set(3.0, 4), TypeError),
        (lambda c: c.compare_and_set(3, "4"), TypeError),
    ],
)
def test_counter_bad_input_leaves_it_unchanged(
    make: Callable[..., Any], call: Callable[[Any], object], error: type[Exception]
) -> None:
    counter = make("SharedCounter", 3)
    with pytest.raises(error, match="typecode 'q'"):
        call(counter)
    assert counter.get() == 3


def test_counter_cas_with_an_impossible_expected_value_fails(make: Callable[..., Any]) -> None:
    counter = make("SharedCounter", 3)
    assert counter.compare_and_set(1 << 70, 4) is False
    assert counter.get() == 3


@pytest.mark.parametrize("initial", [1 << 63, 1.0, "0", None])
def test_counter_bad_initial_value(model: Model, initial: object) -> None:
    with pytest.raises((TypeError, OverflowError)):
        kinds(model).SharedCounter(initial)


def test_counter_accepts_index_types(make: Callable[..., Any]) -> None:
    counter = make("SharedCounter", numpy.int64(2))
    assert counter.add(numpy.int32(3)) == 5
    assert type(counter.get()) is int


def test_counter_is_exact_under_concurrent_adds(model: Model, make: Callable[..., Any]) -> None:
    counter = make("SharedCounter")
    workers, n = 3, 5_000
    run_parallel(model, add_many, [(counter, n, 1)] * workers)
    assert counter.get() == workers * n
    run_parallel(model, add_many, [(counter, n, -2)] * workers)
    assert counter.get() == -workers * n


def test_counter_adds_from_threads_of_one_process(make: Callable[..., Any]) -> None:
    # The process counter too: several threads of this process on one handle.
    counter = make("SharedCounter")
    threads = [
        threading.Thread(target=lambda: [counter.add() for _ in range(5_000)]) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLOCK)
    assert counter.get() == 20_000


def test_counter_compare_and_set_races(model: Model, make: Callable[..., Any]) -> None:
    counter = make("SharedCounter")
    workers, n = 3, 2_000
    run_parallel(model, cas_increment_many, [(counter, n)] * workers)
    assert counter.get() == workers * n  # no increment lost, none counted twice
    claim = make("SharedCounter")
    won = run_parallel(model, cas_claim, [(claim, me) for me in (1, 2, 3)])
    assert won.count(True) == 1
    assert claim.get() == won.index(True) + 1


def test_counter_context_manager_closes(model: Model) -> None:
    with kinds(model).SharedCounter(1) as counter:
        assert counter.add() == 2
    counter.close()  # idempotent
    if model.name != "thread":
        with pytest.raises(ValueError, match="closed"):
            counter.get()
    else:  # nothing to release: a thread container stays usable
        assert counter.add() == 3


def test_counter_behaves_like_a_wrapping_int64(model: Model) -> None:
    # Hypothesis runs the inner function many times, with the same model.
    @settings(max_examples=60, deadline=None)
    @given(
        ops=st.lists(
            st.one_of(
                st.tuples(st.just("add"), st.integers(INT64_MIN, INT64_MAX)),
                st.tuples(st.just("add"), st.integers(-3, 3)),
                st.tuples(st.just("set"), st.integers(INT64_MIN, INT64_MAX)),
                st.tuples(st.just("cas"), st.integers(-3, 3), st.integers(INT64_MIN, INT64_MAX)),
                st.tuples(st.just("cas_current"), st.integers(INT64_MIN, INT64_MAX)),
            ),
            max_size=30,
        )
    )
    def check(ops: list[tuple[Any, ...]]) -> None:
        def wrap(v: int) -> int:
            return (v - INT64_MIN) % (1 << 64) + INT64_MIN

        with kinds(model).SharedCounter() as counter:
            expected = 0
            for op in ops:
                if op[0] == "add":
                    expected = wrap(expected + op[1])
                    assert counter.add(op[1]) == expected
                elif op[0] == "set":
                    counter.set(op[1])
                    expected = op[1]
                elif op[0] == "cas":
                    swapped = expected == op[1]
                    assert counter.compare_and_set(op[1], op[2]) is swapped
                    expected = op[2] if swapped else expected
                else:
                    assert counter.compare_and_set(expected, op[1]) is True
                    expected = op[1]
                assert counter.get() == expected

    check()


# -- SharedValue ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tc", TYPECODES)
def test_value_round_trips_every_typecode(make: Callable[..., Any], tc: str) -> None:
    value = make("SharedValue", tc, 7)
    assert value.typecode == tc
    assert value.get() == 7
    assert type(value.get()) is (float if tc in "fd" else int)
    assert make("SharedValue", tc).get() == 0  # default initial value
    if tc in "fd":
        value.set(2.5)
        assert value.get() == 2.5
        value.set(3)  # an int is a fine float
        assert value.get() == 3.0
    else:
        low, high = int_range(tc)
        for v in (low, high):
            value.set(v)
            assert value.get() == v
    stats = value.statistics()
    assert isinstance(stats, SharedValueStatistics)
    assert (stats.typecode, stats.value, stats.mutex_recoveries) == (tc, value.get(), 0)
    assert f"typecode={tc!r}" in repr(value)


@pytest.mark.parametrize("tc", INT_CODES)
def test_value_out_of_range_is_refused_unchanged(make: Callable[..., Any], tc: str) -> None:
    low, high = int_range(tc)
    value = make("SharedValue", tc, 1)
    for bad in (low - 1, high + 1):
        with pytest.raises(OverflowError, match=f"out of range for typecode {tc!r}"):
            value.set(bad)
        with pytest.raises(OverflowError):
            value.compare_and_set(1, bad)
        assert value.get() == 1
        assert value.compare_and_set(bad, 2) is False  # it cannot hold bad, so does not
    with pytest.raises(OverflowError):
        make("SharedValue", tc, high + 1)


@pytest.mark.parametrize("tc", TYPECODES)
@pytest.mark.parametrize("bad", ["1", b"1", None, [1], 1j])
def test_value_wrong_type_is_refused_unchanged(
    make: Callable[..., Any], tc: str, bad: object
) -> None:
    value = make("SharedValue", tc, 1)
    kind = "floats" if tc in "fd" else "integers"
    with pytest.raises(TypeError, match=f"typecode {tc!r} holds {kind}"):
        value.set(bad)
    with pytest.raises(TypeError):
        value.compare_and_set(1, bad)
    with pytest.raises(TypeError):
        value.compare_and_set(bad, 2)
    assert value.get() == 1


@pytest.mark.parametrize("tc", INT_CODES)
def test_value_float_in_an_integer_code_is_a_type_error(make: Callable[..., Any], tc: str) -> None:
    value = make("SharedValue", tc, 1)
    with pytest.raises(TypeError, match="not float"):
        value.set(2.0)
    assert value.get() == 1


def test_float32_rounds_and_refuses_what_it_cannot_hold(make: Callable[..., Any]) -> None:
    value = make("SharedValue", "f", 0.1)
    assert value.get() == stored("f", 0.1) != 0.1
    assert value.compare_and_set(0.1, 0.5) is True  # 0.1 is stored as float32(0.1)
    with pytest.raises(OverflowError, match="float32"):
        value.set(1e300)
    assert value.get() == 0.5
    for special in (math.inf, -math.inf):
        value.set(special)
        assert value.get() == special
    assert value.compare_and_set(1e300, 1.0) is False  # cannot be stored, so is not


@pytest.mark.parametrize("tc", ["f", "d"])
def test_float_compare_and_set_compares_bit_patterns(make: Callable[..., Any], tc: str) -> None:
    value = make("SharedValue", tc, 0.0)
    assert value.compare_and_set(-0.0, 1.0) is False  # -0.0 == 0.0, but not the same bits
    assert value.compare_and_set(0.0, math.nan) is True
    assert value.compare_and_set(math.nan, 2.0) is True  # nan != nan, but the same bits
    assert value.get() == 2.0


@pytest.mark.parametrize("bad", ["u", "w", "x", "", "ii", None, 105])
def test_bad_typecode_names_the_valid_ones(model: Model, bad: object) -> None:
    for make_one in (
        lambda: kinds(model).SharedValue(bad, 0),
        lambda: kinds(model).SharedArray(bad, 3),
    ):
        with pytest.raises(ValueError, match="must be one of b, B, h, H, i, I, l, L, q, Q, f, d"):
            make_one()


@pytest.mark.parametrize("tc", ["b", "H", "i", "q", "f", "d"])
def test_value_compare_and_set_races(model: Model, make: Callable[..., Any], tc: str) -> None:
    value = make("SharedValue", tc, 0)
    workers, n = 3, 40  # 120 fits every code
    run_parallel(model, cas_increment_many, [(value, n)] * workers)
    assert value.get() == workers * n


def test_value_context_manager_closes(model: Model) -> None:
    with kinds(model).SharedValue("d", 1.5) as value:
        assert value.get() == 1.5
    value.close()
    if model.name != "thread":
        with pytest.raises(ValueError, match="closed"):
            value.set(2.0)


def test_value_accepts_and_refuses_as_the_array_module(model: Model) -> None:
    # Hypothesis runs the inner function many times, with the same model.
    @settings(max_examples=80, deadline=None)
    @given(tc=st.sampled_from(TYPECODES), candidate=st.one_of(st.integers(), st.floats()))
    def check(tc: str, candidate: float) -> None:
        # array.array is the reference: a value is accepted iff array accepts it, and reads back as
        # array stores it; the one difference is a finite float beyond float32, which array('f')
        # turns into inf and we refuse.
        try:
            expected = stored(tc, candidate)
        except (TypeError, OverflowError) as exc:
            expected_error: type[Exception] | None = type(exc)
        else:
            expected_error = None
            if tc == "f" and math.isinf(expected) and not math.isinf(candidate):
                expected_error = OverflowError
        with kinds(model).SharedValue(tc, 1) as value:
            if expected_error is None:
                value.set(candidate)
                got = value.get()
                assert got == expected or (math.isnan(got) and math.isnan(expected))
            else:
                with pytest.raises(expected_error):
                    value.set(candidate)
                assert value.get() == 1

    check()


# -- SharedArray ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tc", TYPECODES)
def test_array_from_size_and_from_items(make: Callable[..., Any], tc: str) -> None:
    zeros = make("SharedArray", tc, 4)
    assert zeros.tolist() == [0, 0, 0, 0]
    assert (len(zeros), zeros.typecode, zeros.itemsize) == (4, tc, struct.calcsize(tc))
    items = make("SharedArray", tc, [1, 2, 3])
    assert items.tolist() == [1, 2, 3]
    assert type(items[0]) is (float if tc in "fd" else int)
    for source in ((1, 2), range(1, 3), (x for x in (1, 2)), array.array(tc, [1, 2])):
        assert make("SharedArray", tc, source).tolist() == [1, 2]
    assert make("SharedArray", tc, numpy.array([1, 2], dtype=tc)).tolist() == [1, 2]
    assert make("SharedArray", tc, 0).tolist() == []


@pytest.mark.parametrize(
    ("init", "error", "match"),
    [
        (-1, ValueError, "negative length"),
        ([1, 2.5], TypeError, "holds integers, not float"),
        ([1, 1 << 31], OverflowError, "out of range for typecode 'i'"),
        (["1"], TypeError, "holds integers, not str"),
        ("123", TypeError, "from a str"),
        (None, TypeError, "iterable"),
        (2.0, TypeError, "iterable"),
    ],
)
def test_array_bad_initializer(
    model: Model, init: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        kinds(model).SharedArray("i", init)


def test_array_indexing_and_slicing(make: Callable[..., Any]) -> None:
    arr = make("SharedArray", "h", range(6))
    assert arr[0] == 0
    assert arr[-1] == 5
    assert arr[1:4] == [1, 2, 3]
    assert arr[::2] == [0, 2, 4]
    assert arr[::-1] == [5, 4, 3, 2, 1, 0]
    arr[0] = 10
    arr[-1] = -5
    arr[1:3] = [11, 12]
    arr[3:5] = array.array("h", [13, 14])
    assert arr.tolist() == [10, 11, 12, 13, 14, -5]
    arr[::2] = (20, 22, 24)
    assert list(arr) == [20, 11, 22, 13, 24, -5]
    arr[numpy.int64(1)] = numpy.int16(7)
    assert arr[1] == 7
    assert 22 in arr
    assert 99 not in arr
    arr[2:2] = []  # an empty slice takes no values
    assert len(arr) == 6


@pytest.mark.parametrize(
    ("index", "value", "error", "match"),
    [
        (6, 1, IndexError, "index 6 out of range"),
        (-7, 1, IndexError, "out of range"),
        ("0", 1, TypeError, "integers or slices, not str"),
        (1.0, 1, TypeError, "not float"),
        (0, 1.5, TypeError, "holds integers, not float"),
        (0, 1 << 15, OverflowError, "out of range for typecode 'h'"),
        (slice(0, 2), [1], ValueError, "fixed size"),
        (slice(0, 2), [1, 2, 3], ValueError, "fixed size"),
        (slice(0, 3), [1, 2, "3"], TypeError, "not str"),
        (slice(0, 3), [1, 2, 1 << 20], OverflowError, "out of range"),
        (slice(None, None, 2), [1, 2], ValueError, "fixed size"),
        (slice(0, 2), 5, TypeError, "iterable"),
    ],
)
def test_array_bad_index_or_value_leaves_it_unchanged(
    make: Callable[..., Any], index: Any, value: Any, error: type[Exception], match: str
) -> None:
    arr = make("SharedArray", "h", range(6))
    with pytest.raises(error, match=match):
        arr[index] = value
    assert arr.tolist() == [0, 1, 2, 3, 4, 5]


def test_array_reads_with_bad_indexes(make: Callable[..., Any]) -> None:
    arr = make("SharedArray", "d", 3)
    with pytest.raises(IndexError):
        arr[3]
    with pytest.raises(TypeError):
        arr["a"]
    with pytest.raises(TypeError, match="fixed size"):
        del arr[0]
    assert len(arr) == 3


def test_array_statistics_and_repr(make: Callable[..., Any]) -> None:
    arr = make("SharedArray", "I", 5)
    arr[0] = 1
    stats = arr.statistics()
    assert isinstance(stats, SharedArrayStatistics)
    assert (stats.typecode, stats.length) == ("I", 5)
    assert stats.lock.acquisitions >= 1
    assert not stats.lock.locked
    assert "typecode='I' length=5" in repr(arr)


def test_array_memoryview_is_the_items_memory(make: Callable[..., Any]) -> None:
    arr = make("SharedArray", "i", [1, 2, 3])
    view = arr.memoryview()
    assert (view.format, view.itemsize, view.shape, view.readonly) == ("i", 4, (3,), False)
    view[0] = 10
    assert arr[0] == 10
    arr[1] = 20
    assert view[1] == 20
    assert view.tolist() == arr.tolist()
    view.release()


def test_array_numpy_views_share_the_memory(make: Callable[..., Any]) -> None:
    arr = make("SharedArray", "d", 4)
    with arr.memoryview() as view:
        frombuffer = numpy.frombuffer(view, dtype=numpy.float64)
        frombuffer[0] = 1.5
        asarray = numpy.asarray(arr)  # __array_interface__: a view, not a copy
        assert asarray.dtype == numpy.float64
        asarray[1] = 2.5
        assert arr.tolist() == [1.5, 2.5, 0.0, 0.0]
        arr[2] = 3.5
        assert frombuffer[2] == asarray[2] == 3.5
        del frombuffer, asarray


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12+ has __buffer__ (PEP 688)")
def test_array_buffer_protocol_needs_python_3_12(make: Callable[..., Any]) -> None:
    # What docs/state.rst says: before 3.12 a Python class cannot export a buffer.
    arr = make("SharedArray", "i", 2)
    with pytest.raises(TypeError):
        memoryview(arr)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="__buffer__ needs Python 3.12 (PEP 688)")
def test_array_buffer_protocol(make: Callable[..., Any]) -> None:  # pragma: no cover - 3.12+
    arr = make("SharedArray", "i", [1, 2])
    view = memoryview(arr)
    assert view.format == "i"
    view[0] = 5
    assert arr[0] == 5
    assert numpy.frombuffer(arr, dtype=numpy.int32).tolist() == [5, 2]
    view.release()


def test_array_lock_is_a_reentrant_lock_of_the_model(
    model: Model, make: Callable[..., Any]
) -> None:
    arr = make("SharedArray", "q", 3)
    lock = arr.lock()
    assert isinstance(lock, kinds(model).RLock)
    assert arr.lock() is lock
    with arr.lock():
        arr[0] = 1  # the holder may index inside the block
        arr[1:] = [2, 3]
        assert lock.statistics().recursion == 1
    assert arr.tolist() == [1, 2, 3]
    assert not lock.locked()


def test_array_lock_makes_other_workers_wait(model: Model, make: Callable[..., Any]) -> None:
    arr = make("SharedArray", "i", 2)
    with model.Pool(1) as pool:
        with arr.lock():
            arr[0] = 1
            future = pool.submit(lambda a: a.__setitem__(1, 2), arr)
            wait_until(lambda: arr.lock().statistics().waiters == 1, "the worker waits")
            assert arr[1] == 0
        future.result(DEADLOCK)
    assert arr.tolist() == [1, 2]


def test_array_workers_fill_their_own_slices(model: Model, make: Callable[..., Any]) -> None:
    arr = make("SharedArray", "l", 300)
    run_parallel(model, fill_slice, [(arr, k * 100, k * 100 + 100, 1000 * k) for k in range(3)])
    assert arr.tolist() == [1000 * (i // 100) + i for i in range(300)]


def test_array_slice_assignments_are_never_seen_half_done(
    model: Model, make: Callable[..., Any]
) -> None:
    # One worker rewrites the whole array with one value per round, one takes snapshots:
    # every snapshot holds a single value (slices are read and written under the lock).
    arr = make("SharedArray", "i", 2_000)
    _, mixed = run_parallel(model, writer_or_reader, [(arr, "write", 200), (arr, "read", 200)])
    assert mixed == []


def writer_or_reader(barrier: Any, arr: Any, role: str, rounds: int) -> list[int]:
    if role == "write":
        write_uniform(barrier, arr, rounds)
        return []
    return read_snapshots(barrier, arr, rounds)


def test_array_lock_makes_read_modify_write_atomic(model: Model, make: Callable[..., Any]) -> None:
    arr = make("SharedArray", "i", 50)
    run_parallel(model, locked_update, [(arr, 100)] * 3)
    assert arr.tolist() == [300] * 50


def test_array_context_manager_closes(model: Model) -> None:
    with kinds(model).SharedArray("i", [1]) as arr:
        assert arr[0] == 1
    arr.close()
    if model.name != "thread":
        for call in (lambda: arr[0], arr.tolist, lambda: len(arr), arr.memoryview, arr.lock):
            with pytest.raises(ValueError, match="closed"):
                call()
    else:
        assert arr.tolist() == [1]


def test_array_behaves_like_a_fixed_size_list(model: Model) -> None:
    # Hypothesis runs the inner function many times, with the same model.
    @settings(max_examples=40, deadline=None)
    @given(
        tc=st.sampled_from(["b", "H", "q", "d"]),
        ops=st.lists(
            st.tuples(
                st.integers(-8, 8),
                st.integers(-8, 8),
                st.sampled_from([None, 1, 2, -1]),
                st.lists(st.integers(-200, 200), max_size=8),
            ),
            max_size=12,
        ),
    )
    def check(tc: str, ops: list[tuple[int, int, int | None, list[int]]]) -> None:
        # A list is the model: same results for slices of every shape; a resize, a value of the
        # wrong range or an index out of range raises and changes neither.
        reference = [0] * 6
        with kinds(model).SharedArray(tc, 6) as arr:
            for start, stop, step, values in ops:
                index = slice(start, stop, step)
                selected = len(reference[index])
                candidate = list(reference)
                try:
                    candidate[index] = values
                    if len(candidate) != 6 or selected != len(values):
                        raise ValueError("resize")
                    array.array(tc, values)
                except (ValueError, OverflowError):
                    with pytest.raises((ValueError, OverflowError)):
                        arr[index] = values
                else:
                    arr[index] = values
                    reference = candidate
                assert arr.tolist() == reference
                assert arr[index] == reference[index]
                if start in range(-6, 6):
                    assert arr[start] == reference[start]
                else:
                    with pytest.raises(IndexError):
                        arr[start]

    check()


@pytest.mark.parametrize("kind", ["SharedCounter", "SharedValue", "SharedArray"])
def test_pickling_is_for_process_handles_only(
    model: Model, make: Callable[..., Any], kind: str
) -> None:
    container = make(kind, *{"SharedCounter": (4,), "SharedValue": ("i", 4)}.get(kind, ("i", [4])))
    if model.name == "thread":
        with pytest.raises(TypeError, match="cannot pickle"):
            pickle.dumps(container)
        return
    with pickle.loads(pickle.dumps(container)) as other:
        assert type(other) is type(container)
        assert (other[0] if kind == "SharedArray" else other.get()) == 4

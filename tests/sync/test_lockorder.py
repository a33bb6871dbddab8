"""The lock-order checker (threads): inversions raise LockOrderError before they can deadlock.

Most tests build checked locks directly with ``checked_class(ThreadLock)()``, the private
contract between the checker and ``sync/thread.py``; ``test_public_path`` goes through
``concurrency_kit.enable_lock_order_checking()`` and ``ThreadLock()``. Every inversion is
provoked in an order the test controls (one thread, or threads sequenced by events), so no
test ever deadlocks on purpose: a real deadlock would only happen if the checker failed, and
:data:`DEADLOCK` turns it into a failure.

Call sites in messages are checked against line numbers the test computes with
:func:`next_line`, so the assertions survive edits above them.
"""

from __future__ import annotations

import gc
import inspect
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import concurrency_kit
from concurrency_kit.errors import ConcurrencyKitError, LockOrderError
from concurrency_kit.sync import _lockorder
from concurrency_kit.sync._lockorder import (
    checked_class,
    disable_lock_order_checking,
    enable_lock_order_checking,
    lock_order_checking_enabled,
)
from concurrency_kit.sync.thread import ThreadCondition, ThreadLock, ThreadRLock

DEADLOCK = 60.0
"""Seconds after which a wait that should have ended is a deadlock (a failure, not a pass)."""

FILE = Path(__file__).name

LockClass = type[ThreadLock] | type[ThreadRLock]
AnyLock = ThreadLock | ThreadRLock


@pytest.fixture(autouse=True)
def _checking_off() -> Iterator[None]:
    """Every test starts and ends with checking disabled and no recorded order."""
    disable_lock_order_checking()
    yield
    disable_lock_order_checking()


@pytest.fixture
def checking() -> None:
    enable_lock_order_checking()


@pytest.fixture(params=[ThreadLock, ThreadRLock], ids=["Lock", "RLock"])
def make(request: pytest.FixtureRequest) -> Callable[[], AnyLock]:
    """A factory of checked locks of one class (built directly, not through ThreadLock())."""
    cls: LockClass = request.param
    return checked_class(cls)


def next_line() -> int:
    """The number of the line after the caller's line."""
    frame = inspect.currentframe()
    assert frame is not None
    assert frame.f_back is not None
    return frame.f_back.f_lineno + 1


def site(line: int) -> str:
    return f"{FILE}:{line} in "


def name_of(lock: AnyLock) -> str:
    """The name the checker's messages give ``lock``: ``ThreadLock#<key>``."""
    key: int = lock._lockorder_key  # type: ignore[union-attr]
    return f"{type(lock).__qualname__}#{key}"


def run_thread(target: Callable[[], None], name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name)
    thread.start()
    return thread


def join(thread: threading.Thread) -> None:
    thread.join(DEADLOCK)
    assert not thread.is_alive(), f"{thread.name} deadlocked"


# -- inversions -------------------------------------------------------------------------------


@pytest.mark.usefixtures("checking")
def test_inversion_in_one_thread_raises_before_acquiring(make: Callable[[], AnyLock]) -> None:
    a, b = make(), make()
    with a, b:
        pass
    with b:
        with pytest.raises(LockOrderError, match="lock order inversion"):
            a.acquire()
        assert not a.locked()
        stats = a.statistics()
        assert (stats.acquisitions, stats.contentions, stats.waiters) == (1, 0, 0)
    assert not b.locked()


@pytest.mark.usefixtures("checking")
def test_the_message_names_both_locks_and_every_call_site(make: Callable[[], AnyLock]) -> None:
    create_line = next_line()
    a, b = make(), make()
    earlier_a = next_line()
    with a:
        earlier_b = next_line()
        with b:
            pass
    now_b = next_line()
    with b:
        now_a = next_line() + 1  # the acquire inside pytest.raises
        with pytest.raises(LockOrderError) as info:
            a.acquire()
    message = str(info.value)
    name_a, name_b = name_of(a), name_of(b)
    assert f"acquiring {name_a} while holding {name_b}" in message
    assert f"({name_a} -> {name_b})" in message
    lines = message.splitlines()
    now = lines.index(next(line for line in lines if line.startswith("  now:")))
    assert site(now_a) in lines[now]
    assert site(now_b) in lines[now + 1]
    earlier = lines.index(next(line for line in lines if line.startswith("  earlier:")))
    assert site(earlier_b) in lines[earlier]
    assert site(earlier_a) in lines[earlier + 1]
    assert "(thread 'MainThread')" in lines[earlier]
    assert f"{name_a} created at " in message
    assert message.count(site(create_line)) == 2
    assert f"in {test_the_message_names_both_locks_and_every_call_site.__name__}" in message
    assert "threading.py" not in message
    assert _lockorder.__file__ not in message


@pytest.mark.usefixtures("checking")
def test_inversion_across_two_threads_raises_instead_of_blocking(
    make: Callable[[], AnyLock],
) -> None:
    """A thread holds A, having taken B inside it; the main thread, holding B, wants A.

    Without the checker the main thread would wait for A until the worker gives it up, and the
    worker gives it up only after the main thread's attempt: the error must come first.
    """
    a, b = make(), make()
    holds_a, may_release = threading.Event(), threading.Event()
    worker_line = 0

    def first_order() -> None:
        nonlocal worker_line
        with a:
            worker_line = next_line()
            with b:
                pass
            holds_a.set()
            may_release.wait(DEADLOCK)

    worker = run_thread(first_order, "first-order")
    try:
        assert holds_a.wait(DEADLOCK)
        with b:
            with pytest.raises(LockOrderError) as info:
                a.acquire()
            assert a.statistics().waiters == 0
    finally:
        may_release.set()
        join(worker)
    message = str(info.value)
    assert "(thread 'first-order')" in message
    assert site(worker_line) in message
    assert "in first_order" in message


@pytest.mark.usefixtures("checking")
def test_inversion_raises_in_the_second_thread(make: Callable[[], AnyLock]) -> None:
    a, b = make(), make()
    first_done = threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        with a, b:
            pass
        first_done.set()

    def second() -> None:
        assert first_done.wait(DEADLOCK)
        with b:
            try:
                a.acquire()
            except LockOrderError as error:
                errors.append(error)
            else:  # pragma: no cover - the failure this test is about
                a.release()

    threads = [run_thread(first, "first"), run_thread(second, "second")]
    for thread in threads:
        join(thread)
    assert len(errors) == 1
    assert "(thread 'first')" in str(errors[0])


@pytest.mark.usefixtures("checking")
def test_a_cycle_through_a_chain_of_three_locks_raises(make: Callable[[], AnyLock]) -> None:
    a, b, c = make(), make(), make()
    ab_line = next_line()
    with a, b:
        pass
    bc_line = next_line()
    with b, c:
        pass
    with c:
        with pytest.raises(LockOrderError) as info:
            a.acquire()
        with pytest.raises(LockOrderError):
            b.acquire()  # b -> c was seen directly
    names = [name_of(lock) for lock in (a, b, c)]
    message = str(info.value)
    assert f"({' -> '.join(names)})" in message
    assert message.count(site(ab_line)) == 2  # b taken there, holding a taken there
    assert message.count(site(bc_line)) == 2
    with a, c:  # the chain's own order still passes, skipping a level too
        pass


@pytest.mark.usefixtures("checking")
def test_a_timed_acquire_is_checked_too(make: Callable[[], AnyLock]) -> None:
    a, b = make(), make()
    with a, b:
        pass
    with b:
        with pytest.raises(LockOrderError):
            a.acquire(timeout=DEADLOCK)
        with pytest.raises(ValueError, match="timeout"):
            a.acquire(timeout=-5)  # a bad argument is reported as such, not as an inversion


@pytest.mark.usefixtures("checking")
def test_self_deadlock_on_a_non_reentrant_lock_raises() -> None:
    lock = checked_class(ThreadLock)()
    with lock:
        assert lock.acquire(blocking=False) is False
        line = next_line() + 1
        with pytest.raises(LockOrderError, match="self-deadlock") as info:
            lock.acquire()
        with pytest.raises(LockOrderError, match="self-deadlock"):
            lock.acquire(timeout=DEADLOCK)
    assert site(line) in str(info.value)
    assert not lock.locked()


# -- what must not raise ------------------------------------------------------------------------


@pytest.mark.usefixtures("checking")
def test_a_consistent_order_never_raises(make: Callable[[], AnyLock]) -> None:
    a, b, c = make(), make(), make()
    start = threading.Barrier(4)

    def worker() -> None:
        start.wait(DEADLOCK)
        for _ in range(200):
            with a, b, c:
                pass
            with a, c:
                pass
            with b:
                pass

    threads = [run_thread(worker, f"worker-{i}") for i in range(4)]
    for thread in threads:
        join(thread)
    assert _lockorder._graph_size()[1] == 3  # a -> b, a -> c, b -> c


@pytest.mark.usefixtures("checking")
def test_a_trylock_inversion_does_not_raise(make: Callable[[], AnyLock]) -> None:
    a, b = make(), make()
    with a, b:
        pass
    with b:
        assert a.acquire(blocking=False) is True  # cannot deadlock: it would return False
        a.release()
    with a, b:  # and it recorded no b -> a order
        pass


@pytest.mark.usefixtures("checking")
def test_a_lock_taken_with_trylock_counts_as_held(make: Callable[[], AnyLock]) -> None:
    a, b = make(), make()
    assert a.acquire(blocking=False)
    with b:
        pass
    a.release()
    with b, pytest.raises(LockOrderError):
        a.acquire()


@pytest.mark.usefixtures("checking")
def test_reentering_an_rlock_records_no_order() -> None:
    rlock, lock = checked_class(ThreadRLock)(), checked_class(ThreadLock)()
    with rlock, lock, rlock:  # rlock again while holding lock: re-entry, it cannot block
        pass
    with rlock, rlock, rlock:
        pass


@pytest.mark.usefixtures("checking")
def test_an_rlock_counts_as_held_until_its_last_release() -> None:
    rlock = checked_class(ThreadRLock)()
    inner, later = checked_class(ThreadLock)(), checked_class(ThreadLock)()
    rlock.acquire()
    rlock.acquire()
    rlock.release()
    with inner:  # rlock still held: rlock -> inner
        pass
    rlock.release()
    with later:  # rlock free: nothing recorded
        pass
    with later, rlock:
        pass
    with inner, pytest.raises(LockOrderError):
        rlock.acquire()


@pytest.mark.usefixtures("checking")
def test_releasing_out_of_order_forgets_the_right_lock(make: Callable[[], AnyLock]) -> None:
    a, b, c = make(), make(), make()
    a.acquire()
    b.acquire()
    a.release()  # not the last one taken
    b.release()
    with c, a:  # would raise if a were still taken for held when c was acquired
        pass
    with c, b:  # nor b
        pass


@pytest.mark.usefixtures("checking")
def test_an_error_inside_with_releases_and_forgets(make: Callable[[], AnyLock]) -> None:
    a, b = make(), make()
    with pytest.raises(KeyError), a:
        raise KeyError
    with b, a:
        pass


# -- threading.Condition over a checked lock ---------------------------------------------------


@pytest.mark.usefixtures("checking")
@pytest.mark.parametrize(
    "condition_class", [threading.Condition, ThreadCondition], ids=["threading", "ThreadCondition"]
)
def test_a_condition_over_a_checked_lock(
    make: Callable[[], AnyLock], condition_class: type[threading.Condition | ThreadCondition]
) -> None:
    """wait() releases the lock and takes it back through the checker (``release``/``acquire``
    for a Lock, ``_release_save``/``_acquire_restore`` for an RLock), from the user's line."""
    outer, lock, inner = make(), make(), make()
    cond = condition_class(lock)  # type: ignore[arg-type]
    entered = threading.Event()
    ready: list[bool] = []
    cond_line = wait_line = 0

    def waiter() -> None:
        nonlocal cond_line, wait_line
        with outer:
            cond_line = next_line()
            with cond:  # outer -> lock; wait() takes the lock back while holding outer
                entered.set()
                wait_line = next_line()
                assert cond.wait_for(lambda: ready, DEADLOCK)
                with inner:  # lock -> inner, lock held since wait_for() took it back
                    pass

    thread = run_thread(waiter, "waiter")
    try:
        assert entered.wait(DEADLOCK)
        with cond:  # only once the waiter is in wait(): it holds the lock until then
            ready.append(True)
            cond.notify()
    finally:
        join(thread)
    assert not lock.locked()
    with lock, pytest.raises(LockOrderError) as info:
        outer.acquire()
    assert site(cond_line) in str(info.value)
    with inner, pytest.raises(LockOrderError) as info:
        lock.acquire()
    message = str(info.value)
    held_line = next(line for line in message.splitlines() if f"holding {name_of(lock)}," in line)
    assert f"{site(wait_line)}waiter" in held_line  # where wait_for() took the lock back
    assert "threading.py" not in message


# -- the switch ---------------------------------------------------------------------------------


def test_the_switch() -> None:
    assert not lock_order_checking_enabled()
    enable_lock_order_checking()
    enable_lock_order_checking()
    assert lock_order_checking_enabled()
    disable_lock_order_checking()
    disable_lock_order_checking()
    assert not lock_order_checking_enabled()


def test_locks_created_while_disabled_are_not_checked() -> None:
    a, b = ThreadLock(), ThreadRLock()
    enable_lock_order_checking()
    with a, b:
        pass
    with b, a:
        pass
    assert type(a) is ThreadLock
    assert type(b) is ThreadRLock


def test_disabling_stops_checking_and_forgets_the_orders(make: Callable[[], AnyLock]) -> None:
    enable_lock_order_checking()
    a, b = make(), make()
    with a, b:
        pass
    disable_lock_order_checking()
    with b, a:  # checked locks, checking disabled: nothing raises, nothing is recorded
        pass
    assert _lockorder._graph_size()[1] == 0
    enable_lock_order_checking()
    with b, a:  # a fresh record: b -> a is the first order seen
        pass
    with a, pytest.raises(LockOrderError):
        b.acquire()


def test_a_lock_held_across_disabling_is_forgotten_when_released(
    make: Callable[[], AnyLock],
) -> None:
    enable_lock_order_checking()
    a, b = make(), make()
    a.acquire()
    disable_lock_order_checking()
    a.release()
    enable_lock_order_checking()
    with b, a:  # a is not held any more: no a -> b
        pass


def test_public_path() -> None:
    assert concurrency_kit.enable_lock_order_checking is enable_lock_order_checking
    assert concurrency_kit.disable_lock_order_checking is disable_lock_order_checking
    concurrency_kit.enable_lock_order_checking()
    a, b = concurrency_kit.ThreadLock(), concurrency_kit.ThreadRLock()
    assert isinstance(a, ThreadLock)
    assert isinstance(b, ThreadRLock)
    assert repr(a).startswith("<concurrency_kit.ThreadLock unlocked at ")
    assert repr(b).startswith("<concurrency_kit.ThreadRLock unlocked at ")
    with a, b:
        pass
    with b, pytest.raises(LockOrderError):
        a.acquire()
    concurrency_kit.disable_lock_order_checking()
    assert type(concurrency_kit.ThreadLock()) is ThreadLock


def test_lock_order_error_is_a_runtime_error_and_ours() -> None:
    assert issubclass(LockOrderError, RuntimeError)
    assert issubclass(LockOrderError, ConcurrencyKitError)
    enable_lock_order_checking()
    a, b = checked_class(ThreadLock)(), checked_class(ThreadLock)()
    with a, b:
        pass
    with b, pytest.raises(RuntimeError), a:
        pass


# -- machinery ----------------------------------------------------------------------------------


def test_checked_classes_are_cached_and_look_like_their_base() -> None:
    for cls in (ThreadLock, ThreadRLock):
        checked = checked_class(cls)
        assert checked is checked_class(cls)
        assert checked_class(checked) is checked
        assert issubclass(checked, cls)
        assert checked is not cls
        assert (checked.__name__, checked.__qualname__, checked.__module__) == (
            cls.__name__,
            cls.__qualname__,
            cls.__module__,
        )
        lock = checked()
        assert repr(lock).startswith(f"<{cls.__module__}.{cls.__qualname__} unlocked at ")
        assert not hasattr(lock, "__dict__")
    assert not hasattr(checked_class(ThreadLock), "_release_save")  # Condition relies on it
    with pytest.raises(TypeError, match="not a thread lock class"):
        checked_class(int)  # type: ignore[type-var]


class NamedLock(ThreadRLock):
    """A user subclass with a constructor argument and a slot of its own."""

    __slots__ = ("label",)

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label


@pytest.mark.usefixtures("checking")
def test_a_subclass_with_arguments_can_be_checked() -> None:
    a, b = checked_class(NamedLock)("a"), checked_class(NamedLock)("b")
    assert (a.label, b.label) == ("a", "b")
    assert isinstance(a, NamedLock)
    with a, b:
        pass
    with b, pytest.raises(LockOrderError, match=r"acquiring NamedLock#\d+ while holding"):
        a.acquire()


@pytest.mark.usefixtures("checking")
def test_a_collected_lock_leaves_the_graph(make: Callable[[], AnyLock]) -> None:
    gc.collect()  # locks of earlier tests that only a cycle (a traceback) kept alive
    nodes_before, _ = _lockorder._graph_size()
    a, b = make(), make()
    with a, b:
        pass
    assert _lockorder._graph_size() == (nodes_before + 2, 1)
    del a
    gc.collect()
    assert _lockorder._graph_size() == (nodes_before + 1, 0)
    del b
    gc.collect()
    assert _lockorder._graph_size() == (nodes_before, 0)


@pytest.mark.usefixtures("checking")
def test_a_collected_held_lock_is_skipped(make: Callable[[], AnyLock]) -> None:
    a, b = make(), make()
    a.acquire()  # and never released: a bug, but it must not break the checker
    del a
    gc.collect()
    with b:
        pass
    assert _lockorder._graph_size()[1] == 0
    _lockorder._state.held.clear()


def test_a_finalizer_taking_a_lock_inside_the_checker_does_not_deadlock(
    make: Callable[[], AnyLock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The garbage collector may run a ``__del__`` that creates and takes checked locks while
    the checker holds its graph lock; simulate one at a point where the graph lock is held."""
    enable_lock_order_checking()
    a, b, c = make(), make(), make()
    drain = _lockorder._drain_dead
    created: list[AnyLock] = []

    def drain_then_finalizer() -> None:
        if not created:
            created.append(make())
            with c, created[0]:
                pass
        drain()

    monkeypatch.setattr(_lockorder, "_drain_dead", drain_then_finalizer)

    def take() -> None:
        with a, b:
            pass

    join(run_thread(take, "taker"))
    assert created
    assert created[0]._lockorder_key == 0  # type: ignore[union-attr]  # never checked
    with b, c, created[0]:  # the finalizer's acquires recorded nothing either
        pass


def test_a_child_forked_while_threads_use_the_checker_can_use_it() -> None:
    """The graph lock is held across fork and replaced in the child (run in a subprocess:
    forking this multi-threaded test process is not something the suite does)."""
    script = f"DEADLOCK = {DEADLOCK}\n" + textwrap.dedent(
        """
        import os, signal, threading
        from concurrency_kit.errors import LockOrderError
        from concurrency_kit.sync._lockorder import checked_class, enable_lock_order_checking
        from concurrency_kit.sync.thread import ThreadLock

        enable_lock_order_checking()
        a, b = checked_class(ThreadLock)(), checked_class(ThreadLock)()
        stop = threading.Event()

        def churn():  # keeps the graph busy; never touches a or b, which the child uses
            outer = checked_class(ThreadLock)()
            while not stop.is_set():
                with outer, checked_class(ThreadLock)():
                    pass

        thread = threading.Thread(target=churn)
        thread.start()
        statuses = []
        for _ in range(20):
            pid = os.fork()
            if pid == 0:
                signal.alarm(int(DEADLOCK))  # a child that hangs must not outlive the test
                try:
                    with a, b:
                        pass
                    with b:
                        a.acquire()
                except LockOrderError:
                    os._exit(0)
                os._exit(1)
            statuses.append(os.waitpid(pid, 0)[1])
        stop.set()
        thread.join()
        print(statuses)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=DEADLOCK
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str([0] * 20)

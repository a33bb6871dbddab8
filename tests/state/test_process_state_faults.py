"""Process-only behaviour of ProcessSharedCounter, ProcessSharedValue and ProcessSharedArray.

The shared contract (values, errors, concurrency in both models) is in
``tests/contract/test_state_scalars.py``; this file covers what only a process container does:
handles that cross process boundaries (``ProcessPool`` tasks, ``multiprocessing.Process``
under every start method), the shared-memory lifecycle (close, garbage collection, an attacher
that exits, a creator that is SIGKILLed), the MUTEX fallback used without libatomic, and
processes killed in the middle of an update.

Children report over pipes and the test waits on those pipes, on ``join`` or on a shared
state it polls; nothing sleeps to let something happen. :data:`DEADLOCK` only turns a hang into
a failure.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import signal
import textwrap
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy
import pytest

from _children import creator, wait_until
from concurrency_kit import LockOwnerDiedWarning, ProcessPool, SharedMemoryCorruptError
from concurrency_kit.state import (
    ProcessSharedArray,
    ProcessSharedCounter,
    ProcessSharedValue,
)

DEADLOCK = 60.0
"""Seconds after which a wait that should have ended is a deadlock (a failure, not a pass)."""

START_METHODS = multiprocessing.get_all_start_methods()
KINDS = ("counter", "value", "array")


def make(kind: str) -> Any:
    if kind == "counter":
        return ProcessSharedCounter(1)
    if kind == "value":
        return ProcessSharedValue("d", 1.5)
    return ProcessSharedArray("i", [1, 2, 3])


def segment_names(container: Any) -> list[str]:
    """Every /dev/shm name a container owns (an array has its items and its lock)."""
    if isinstance(container, ProcessSharedArray):
        return [container._name, container._lock._name]
    return [container._name]


def exists(name: str) -> bool:
    return (Path("/dev/shm") / name).exists()


def mapped(name: str) -> bool:
    return name in Path("/proc/self/maps").read_text()


@pytest.fixture(params=KINDS)
def container(request: pytest.FixtureRequest) -> Iterator[Any]:
    made = make(request.param)
    yield made
    made.close()


# -- children: module-level so that every start method can import them -----------------------


def child_use_all(counter: Any, value: Any, arr: Any, conn: Connection) -> None:
    """Update the three containers, then exit without closing anything."""
    counter.add(5)
    assert value.compare_and_set(1.5, 2.5)
    arr[1] = 20
    numpy.frombuffer(arr.memoryview(), dtype=numpy.int32)[2] = 30  # straight into the segment
    conn.send((counter.get(), value.get(), arr.tolist()))
    conn.close()


def child_attach_and_leave(container: Any, how: str, conn: Connection) -> None:
    if isinstance(container, ProcessSharedArray):
        container[0] = 9
    else:
        container.set(9)
    conn.send("used")
    if how == "os_exit":
        os._exit(0)  # no finalizer, no atexit
    if how == "sigkill":
        conn.recv()  # until the test kills us
    # "return": the finalizers of the unpickled handles run at exit


def child_add_forever(counter: Any, conn: Connection) -> None:
    conn.send("adding")
    while True:
        counter.add()


def child_half_update(arr: Any, conn: Connection) -> None:
    """Write half of a bulk update under the array's lock, then wait there to be killed."""
    with arr.lock():
        arr[:5] = [7] * 5
        conn.send("half done")
        conn.recv()
        arr[5:] = [7] * 5  # never reached


class Child:
    """A child process running ``target(*args, conn)`` and talking over a pipe."""

    def __init__(self, method: str, target: Callable[..., None], *args: Any) -> None:
        ctx = multiprocessing.get_context(method)
        self.conn, child_conn = ctx.Pipe()
        self.process = ctx.Process(target=target, args=(*args, child_conn))
        self.process.start()
        child_conn.close()

    def recv(self) -> Any:
        assert self.conn.poll(DEADLOCK), "the child did not answer (deadlock?)"
        return self.conn.recv()

    def join(self) -> int | None:
        self.process.join(DEADLOCK)
        assert not self.process.is_alive(), "the child did not exit"
        return self.process.exitcode

    def kill(self) -> int | None:
        self.process.kill()
        return self.join()

    def finish(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(DEADLOCK)
        self.process.close()
        self.conn.close()


@pytest.fixture
def children() -> Iterator[Callable[..., Child]]:
    started: list[Child] = []

    def start(method: str, target: Callable[..., None], *args: Any) -> Child:
        child = Child(method, target, *args)
        started.append(child)
        return child

    yield start
    for child in started:
        child.finish()


# -- handles cross process boundaries ----------------------------------------------------------


@pytest.mark.parametrize("method", START_METHODS)
def test_handles_work_in_a_child_of_every_start_method(
    method: str, children: Callable[..., Child]
) -> None:
    with (
        ProcessSharedCounter() as counter,
        ProcessSharedValue("d", 1.5) as value,
        ProcessSharedArray("i", 3) as arr,
    ):
        child = children(method, child_use_all, counter, value, arr)
        assert child.recv() == (5, 2.5, [0, 20, 30])
        assert child.join() == 0
        assert (counter.get(), value.get(), arr.tolist()) == (5, 2.5, [0, 20, 30])
        for name in (counter._name, value._name, *segment_names(arr)):
            assert exists(name)  # the child attached and exited: nothing unlinked


def test_handles_as_process_pool_task_arguments() -> None:
    with (
        ProcessSharedCounter() as counter,
        ProcessSharedValue("q", 0) as best,
        ProcessSharedArray("d", 8) as arr,
        ProcessPool(2) as pool,
    ):

        def work(c: Any, v: Any, a: Any, i: int) -> int:
            a[i] = i * 1.5
            current = v.get()
            while i > current and not v.compare_and_set(current, i):
                current = v.get()
            return int(c.add())

        added = sorted(pool.map(work, [counter] * 8, [best] * 8, [arr] * 8, range(8)))
        assert added == list(range(1, 9))
        assert counter.get() == 8
        assert best.get() == 7
        assert arr.tolist() == [i * 1.5 for i in range(8)]


def test_unpickled_handle_in_the_same_process(container: Any) -> None:
    other = pickle.loads(pickle.dumps(container))
    try:
        assert type(other) is type(container)
        if isinstance(container, ProcessSharedArray):
            other[0] = 5
            assert container[0] == 5
        else:
            other.set(5)
            assert container.get() == 5
        names = segment_names(container)
        container.close()  # the creator's close removes the names; the other handle works on
        assert not any(exists(name) for name in names)
        assert (other[0] if isinstance(other, ProcessSharedArray) else other.get()) == 5
    finally:
        other.close()


# -- the shared-memory lifecycle ---------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_segment_is_private_and_costs_no_descriptor(kind: str) -> None:
    fds = set(os.listdir("/proc/self/fd"))
    container = make(kind)
    try:
        for name in segment_names(container):
            path = Path("/dev/shm") / name
            assert name.startswith("ck_")
            assert len(name) == len(f"ck_{os.getpid()}_") + 32  # ck_<creator pid>_<hex>
            assert path.stat().st_mode & 0o777 == 0o600
        assert set(os.listdir("/proc/self/fd")) == fds
    finally:
        container.close()


@pytest.mark.parametrize("kind", KINDS)
def test_close_removes_segments_and_mappings(kind: str) -> None:
    container = make(kind)
    names = segment_names(container)
    assert all(exists(name) and mapped(name) for name in names)
    container.close()
    assert not any(exists(name) or mapped(name) for name in names)
    container.close()  # idempotent
    assert "closed" in repr(container)


@pytest.mark.parametrize("kind", KINDS)
def test_garbage_collection_removes_segments(kind: str) -> None:
    container = make(kind)
    names = segment_names(container)
    del container
    gc.collect()
    assert not any(exists(name) or mapped(name) for name in names)


def test_closed_handle_refuses_everything(container: Any) -> None:
    data = pickle.dumps(container)
    container.close()
    if isinstance(container, ProcessSharedArray):
        calls: list[Callable[[], object]] = [
            lambda: container[0],
            lambda: container.__setitem__(0, 1),
            lambda: container[0:1],
            lambda: container.__setitem__(slice(0, 1), [1]),
            lambda: len(container),
            lambda: list(container),
            container.tolist,
            container.memoryview,
            container.lock,
            container.statistics,
            lambda: numpy.asarray(container),
        ]
    else:
        calls = [
            container.get,
            lambda: container.set(1),
            lambda: container.compare_and_set(1, 2),
            container.statistics,
        ]
        if isinstance(container, ProcessSharedCounter):
            calls += [container.add, lambda: container.add(5)]
    for call in calls:
        with pytest.raises(ValueError, match="closed"):
            call()
    with pytest.raises(ValueError, match="closed"):
        pickle.dumps(container)
    with pytest.raises(FileNotFoundError, match="no longer exists"):
        pickle.loads(data)


def test_a_memoryview_keeps_the_items_mapped_after_close() -> None:
    arr = ProcessSharedArray("i", [1, 2, 3])
    name = arr._name
    view = arr.memoryview()
    as_numpy = numpy.asarray(arr)
    arr.close()
    assert not exists(name)  # the name is gone: nobody else can attach
    assert mapped(name)  # but the memory stays while views of it exist
    view[0] = 10
    assert as_numpy[0] == 10
    view.release()
    del view, as_numpy
    assert not mapped(name)


@pytest.mark.parametrize("how", ["return", "os_exit", "sigkill"])
def test_an_attacher_that_exits_never_unlinks(
    how: str, container: Any, children: Callable[..., Child]
) -> None:
    child = children("forkserver", child_attach_and_leave, container, how)
    assert child.recv() == "used"
    exitcode = child.kill() if how == "sigkill" else child.join()
    assert exitcode == (-signal.SIGKILL if how == "sigkill" else 0)
    assert all(exists(name) for name in segment_names(container))
    if isinstance(container, ProcessSharedArray):
        assert container[0] == 9
        container[1] = 8  # still usable, lock included
    else:
        assert container.get() == 9
        assert container.compare_and_set(9, 8)


CREATOR = textwrap.dedent(
    """
    import sys
    from concurrency_kit.state import ProcessSharedArray, ProcessSharedCounter, ProcessSharedValue

    counter = ProcessSharedCounter(1)
    value = ProcessSharedValue("f", 2.0)
    arr = ProcessSharedArray("d", 1000)
    counter.add()
    arr[0] = 1.0
    print(counter._name, value._name, arr._name, arr._lock._name, flush=True)
    sys.stdin.read()  # until the test kills us
    """
)


def test_segments_removed_when_the_creator_is_killed() -> None:
    with creator(CREATOR) as process:
        names = process.words
        assert len(names) == 4
        assert all(exists(name) for name in names)
        err = process.kill()
    assert not any(exists(name) for name in names)
    assert "leaked shared_memory" in err


# -- lock-free: the atomic instructions of the compiled core ---------------------------------


def test_scalars_are_lock_free() -> None:
    with ProcessSharedCounter() as counter, ProcessSharedValue("b") as value:
        assert counter.statistics().lock_free
        assert value.statistics().lock_free


@pytest.mark.parametrize("mode", [0, 2, 0xFFFFFFFF])
def test_a_segment_not_in_atomic_mode_is_refused(mode: int) -> None:
    # A segment written by something else (or by an old version's mutex mode): mixing a mutex
    # with atomic instructions on one value would not be atomic, so an attacher refuses it.
    with ProcessSharedCounter(3) as counter:
        data = pickle.dumps(counter)
        counter._s.mode = mode
        with pytest.raises(SharedMemoryCorruptError, match=f"mode {mode}"):
            pickle.loads(data)
        counter._s.mode = 1
        other = pickle.loads(data)
        assert other.add(1) == 4
        other.close()


# -- a process killed in the middle of an update -----------------------------------------------


def test_a_process_killed_while_adding_leaves_a_working_counter(
    children: Callable[..., Child],
) -> None:
    counter = ProcessSharedCounter()
    try:
        child = children("forkserver", child_add_forever, counter)
        assert child.recv() == "adding"
        wait_until(lambda: counter.get() >= 2_000, "the child has added a while")
        assert child.kill() == -signal.SIGKILL
        before = counter.get()
        assert counter.add() == before + 1  # no torn value: each add was one instruction
        assert counter.statistics().mutex_recoveries == 0  # no lock was ever taken
    finally:
        counter.close()


def test_an_array_holder_killed_mid_update_is_taken_over(
    children: Callable[..., Child],
) -> None:
    with ProcessSharedArray("i", 10) as arr:
        child = children("forkserver", child_half_update, arr)
        assert child.recv() == "half done"
        assert child.kill() == -signal.SIGKILL
        with pytest.warns(LockOwnerDiedWarning, match="died or exited holding it"):
            items = arr.tolist()
        assert items == [7] * 5 + [0] * 5  # the half-done update is there to see
        assert arr.statistics().lock.owner_deaths_recovered == 1
        arr[5:] = [7] * 5  # recovered: no second warning (warnings are errors here)
        assert arr.tolist() == [7] * 10

"""The engine of ProcessSharedDict: ``concurrency_kit.state._hashtable.SharedHashTable``.

Covers the mapping operations, growth and compaction, the read cache (every change seen at
once by every handle and process), a Hypothesis state machine against a plain dict, writers in
several processes, and crash safety: a process SIGKILLed at arbitrary points of many sets, at
*every* store of a set that grows the table (a proxy over the table's word view kills the
process at its k-th store), and holding the table's mutex; an exception in the middle of a
change. After each, the table must be consistent: every key readable, ``len`` equal to the
number of items, new sets working, and the recovery counted.

Children report over pipes; nothing sleeps to let something happen. :data:`DEADLOCK` only
turns a hang into a failure.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import random
import signal
import threading
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from _children import Child
from concurrency_kit import SharedMemoryFullError
from concurrency_kit._core import shm
from concurrency_kit.state._hashtable import SharedHashTable, TableStatistics, key_hash

DEADLOCK = 60.0
"""Seconds after which a wait that should have ended is a deadlock (a failure, not a pass)."""

CTX = multiprocessing.get_context("forkserver")


def k(obj: object) -> bytes:
    """A key's bytes, pickled the way the wrapper does."""
    return pickle.dumps(obj, protocol=5)


def put(table: SharedHashTable, key: object, value: object) -> None:
    kb = k(key)
    table.set(kb, key_hash(kb), k(value))


def get(table: SharedHashTable, key: object) -> Any:
    kb = k(key)
    data = table.get(kb, key_hash(kb))
    return None if data is None else pickle.loads(data)


def delete(table: SharedHashTable, key: object) -> bool:
    kb = k(key)
    return table.delete(kb, key_hash(kb))


def content(table: SharedHashTable) -> dict[Any, Any]:
    return {pickle.loads(kb): pickle.loads(vb) for kb, vb in table.items()}


def shm_exists(table: SharedHashTable) -> bool:
    return os.path.exists(f"{shm.SHM_DIR}/{table.name}")


def check_consistent(table: SharedHashTable, *, pickled: bool = True) -> dict[Any, Any]:
    """Every key readable with its value, ``len`` matching the items; returns the content."""
    items = table.items()
    assert len(items) == len(table) == len({kb for kb, _ in items})
    assert sorted(table.keys()) == sorted(kb for kb, _ in items)
    for kb, vb in items:
        assert table.get(kb, key_hash(kb)) == vb
    stats = table.statistics()
    assert stats.count == len(items)
    assert stats.used_slots <= stats.slots * 0.7 + 1
    assert 0 <= stats.garbage_bytes <= stats.arena_bytes
    if not pickled:
        return dict(items)
    return {pickle.loads(kb): pickle.loads(vb) for kb, vb in items}


@pytest.fixture
def table() -> Iterator[SharedHashTable]:
    t = SharedHashTable.create()
    yield t
    t.close()
    t.unlink()


# -- the mapping -------------------------------------------------------------------------------


def test_get_set_delete_overwrite_len_iteration(table: SharedHashTable) -> None:
    assert len(table) == 0
    assert table.items() == table.keys() == table.values() == []
    assert get(table, "a") is None
    assert delete(table, "a") is False
    put(table, "a", 1)
    put(table, ("b", 2), [1, 2, 3])
    put(table, 3, None)
    assert (get(table, "a"), get(table, ("b", 2)), get(table, 3)) == (1, [1, 2, 3], None)
    assert len(table) == 3
    put(table, "a", "one")  # overwrite: moves to the end of the iteration order
    assert len(table) == 3
    assert content(table) == {"a": "one", ("b", 2): [1, 2, 3], 3: None}
    keys = table.keys()
    assert [pickle.loads(kb) for kb in keys] == [("b", 2), 3, "a"]
    assert [pickle.loads(vb) for vb in table.values()] == [[1, 2, 3], None, "one"]
    assert delete(table, ("b", 2)) is True
    assert delete(table, ("b", 2)) is False
    assert get(table, ("b", 2)) is None
    assert len(table) == 2
    assert content(table) == {"a": "one", 3: None}
    table.clear()
    assert len(table) == 0
    assert table.items() == []
    put(table, "after", "clear")
    assert content(table) == {"after": "clear"}
    check_consistent(table)


def test_large_and_empty_keys_and_values(table: SharedHashTable) -> None:
    big = os.urandom(3 * 1024 * 1024)  # larger than the initial arena: it grows
    table.set(b"k", key_hash(b"k"), big)
    table.set(b"", key_hash(b""), b"empty key")
    assert table.get(b"k", key_hash(b"k")) == big
    assert table.get(b"", key_hash(b"")) == b"empty key"
    table.set(b"k", key_hash(b"k"), b"small")
    assert table.get(b"k", key_hash(b"k")) == b"small"
    assert check_consistent(table, pickled=False) == {b"k": b"small", b"": b"empty key"}


def test_colliding_hashes_are_told_apart_by_the_key(table: SharedHashTable) -> None:
    for i in range(100):
        table.set(b"key%d" % i, 12345, b"v%d" % i)  # every key with one hash
    for i in range(0, 100, 2):
        assert table.delete(b"key%d" % i, 12345)
    for i in range(100):
        expected = None if i % 2 == 0 else b"v%d" % i
        assert table.get(b"key%d" % i, 12345) == expected
    assert len(check_consistent(table, pickled=False)) == 50


def test_many_keys_force_several_growths(table: SharedHashTable) -> None:
    start = table.statistics()
    n = 20_000
    for i in range(n):
        put(table, i, str(i) * 3)
    stats = table.statistics()
    assert stats.count == n
    assert stats.rebuilds >= start.rebuilds + 8  # 32 slots -> 32768: ten doublings
    assert stats.slots >= n / 0.7
    for i in range(n):
        assert get(table, i) == str(i) * 3
    for i in range(0, n, 3):
        assert delete(table, i)
    assert check_consistent(table) == {i: str(i) * 3 for i in range(n) if i % 3}


def test_garbage_is_reclaimed_by_compaction(table: SharedHashTable) -> None:
    value = os.urandom(1000)
    for _ in range(5_000):  # 5 MB written, one live record
        table.set(b"k", key_hash(b"k"), value)
    stats = table.statistics()
    assert stats.count == 1
    assert stats.arena_bytes < 1024 * 1024
    assert stats.committed_bytes < 2 * 1024 * 1024
    assert table.get(b"k", key_hash(b"k")) == value


def test_clear_gives_memory_back(table: SharedHashTable) -> None:
    for i in range(20_000):
        put(table, i, "x" * 100)
    before = table.statistics().committed_bytes
    table.clear()
    after = table.statistics()
    assert after.count == 0
    assert after.committed_bytes < before / 4
    assert after.committed_bytes < 1024 * 1024


def test_deleted_slots_are_reused(table: SharedHashTable) -> None:
    for round_ in range(50):
        for i in range(100):
            put(table, (round_, i), i)
        for i in range(100):
            assert delete(table, (round_, i))
    stats = table.statistics()
    assert stats.count == 0
    assert stats.slots <= 512  # churn did not grow the index


def test_table_full_is_a_clean_error(table: SharedHashTable) -> None:
    small = SharedHashTable.create(max_bytes=1)  # the smallest reservation: 1 MiB of arena
    try:
        value = b"v" * 1000
        stored = 0
        with pytest.raises(SharedMemoryFullError, match="the shared dict is full"):  # noqa: PT012
            for i in range(10_000):
                small.set(b"%d" % i, key_hash(b"%d" % i), value)
                stored += 1
        assert 500 < stored < 1100
        assert len(small) == stored
        assert small.statistics().repairs == 0  # nothing to repair: raised before any change
        for i in range(0, stored, 2):
            assert small.delete(b"%d" % i, key_hash(b"%d" % i))
        small.set(b"again", key_hash(b"again"), value)  # room again
        assert small.get(b"again", key_hash(b"again")) == value
        assert len(check_consistent(small, pickled=False)) == stored - stored // 2 + 1
    finally:
        small.close()
        small.unlink()


def test_oversized_value_is_refused(table: SharedHashTable) -> None:
    class Huge(bytes):
        def __len__(self) -> int:
            return 1 << 32

    with pytest.raises(ValueError, match="4 GiB"):
        table.set(b"k", key_hash(b"k"), Huge(b"x"))
    assert len(table) == 0


def test_statistics_is_a_frozen_value(table: SharedHashTable) -> None:
    stats = table.statistics()
    assert isinstance(stats, TableStatistics)
    assert (stats.count, stats.mutex_recoveries, stats.repairs) == (0, 0, 0)
    assert stats.reserved_bytes >= stats.committed_bytes > 0
    with pytest.raises(AttributeError):
        stats.count = 1  # type: ignore[misc]


# -- the lock ----------------------------------------------------------------------------------


def test_locked_is_reentrant_for_the_holder(table: SharedHashTable) -> None:
    with table.locked() as t:
        assert t is table
        put(table, "a", 1)
        with table.locked():
            assert get(table, "a") == 1
            assert len(table) == 1
            assert content(table) == {"a": 1}
        put(table, "a", get(table, "a") + 1)
    table.enter()
    table.enter()
    table.exit()
    table.exit()
    with pytest.raises(RuntimeError, match="not held"):
        table.exit()
    assert get(table, "a") == 2
    with table.locked(), pytest.raises(RuntimeError, match="while holding its lock"):
        table.close()
    assert not table.closed


def test_threads_share_a_handle(table: SharedHashTable) -> None:
    other = SharedHashTable.attach(table.name)
    put(table, "counter", 0)
    barrier = threading.Barrier(4)

    def work(handle: SharedHashTable, me: int) -> None:
        barrier.wait(DEADLOCK)
        for i in range(500):
            put(handle, (me, i), i)
            with handle.locked():
                put(handle, "counter", get(handle, "counter") + 1)

    threads = [
        threading.Thread(target=work, args=(table if me % 2 else other, me)) for me in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLOCK)
    other.close()
    final = check_consistent(table)
    assert final.pop("counter") == 4 * 500
    assert final == {(me, i): i for me in range(4) for i in range(500)}


# -- handles and the read cache ----------------------------------------------------------------


def test_every_handle_sees_every_change_at_once(table: SharedHashTable) -> None:
    other = pickle.loads(pickle.dumps(table))
    try:
        assert other.name == table.name
        assert other._m is table._m  # one mapping per table per process
        put(table, "a", 1)
        assert get(other, "a") == 1  # cached in ``other`` now
        assert get(other, "a") == 1
        put(table, "a", 2)
        assert get(other, "a") == 2
        assert get(other, "missing") is None  # absence is cached too
        put(table, "missing", "here")
        assert get(other, "missing") == "here"
        delete(table, "a")
        assert get(other, "a") is None
        table.clear()
        assert get(other, "missing") is None
    finally:
        other.close()


def child_reader(conn: Connection, table: SharedHashTable) -> None:
    try:
        while (msg := conn.recv()) != "exit":
            conn.send(get(table, msg))
    finally:
        table.close()
        conn.close()


def test_other_processes_see_every_change_at_once(
    table: SharedHashTable, children: Callable[..., Child]
) -> None:
    child = children(child_reader, table)
    for value in range(20):
        put(table, "k", value)
        child.conn.send("k")
        assert child.recv() == value  # twice: the second read is from the child's cache
        child.conn.send("k")
        assert child.recv() == value
        if value % 5 == 4:
            table.clear()
            child.conn.send("k")
            assert child.recv() is None
    child.conn.send("exit")
    assert child.join() == 0
    assert shm_exists(table)  # the child attached and exited: the name stays


# -- lifecycle ---------------------------------------------------------------------------------


def test_close_and_unlink() -> None:
    t = SharedHashTable.create()
    name = t.name
    put(t, "a", 1)
    other = SharedHashTable.attach(name)
    other.unlink()  # not the creator: nothing happens
    assert shm_exists(t)
    t.close()
    t.close()  # idempotent
    assert t.closed
    with pytest.raises(ValueError, match="closed"):
        get(t, "a")
    with pytest.raises(ValueError, match="closed"):
        put(t, "a", 2)
    with pytest.raises(ValueError, match="closed"):
        delete(t, "a")
    with pytest.raises(ValueError, match="closed"):
        len(t)
    with pytest.raises(ValueError, match="closed"):
        t.exit()
    assert get(other, "a") == 1  # the other handle still works
    t.unlink()  # the creator removes the name, even closed
    t.unlink()
    assert not shm_exists(t)
    assert get(other, "a") == 1  # mapped handles keep working
    put(other, "b", 2)
    again = SharedHashTable.attach(name)  # this process still maps it: shares that mapping
    assert get(again, "b") == 2
    again.close()
    other.close()  # the last mapping here goes
    with pytest.raises(FileNotFoundError, match="no longer exists"):
        SharedHashTable.attach(name)


def test_attach_refuses_what_is_not_a_table() -> None:
    with pytest.raises(ValueError, match="not a concurrency_kit shared-memory segment"):
        SharedHashTable.attach("not_ours")
    segment = shm.create(8192)
    try:
        with pytest.raises(ValueError, match="does not hold a shared hash table"):
            SharedHashTable.attach(segment.name)
    finally:
        segment.close()
        segment.unlink()


def test_collected_creator_removes_the_name() -> None:
    t = SharedHashTable.create()
    path = f"{shm.SHM_DIR}/{t.name}"
    assert os.path.exists(path)
    del t
    gc.collect()
    assert not os.path.exists(path)


def test_segment_is_private_and_sparse(table: SharedHashTable) -> None:
    st = os.stat(f"{shm.SHM_DIR}/{table.name}")
    assert st.st_mode & 0o777 == 0o600
    assert st.st_blocks * 512 < 1024 * 1024 < st.st_size  # reserved, not allocated


# -- Hypothesis: a plain dict as the model -----------------------------------------------------

KEYS = st.one_of(st.integers(0, 40), st.text(max_size=3), st.tuples(st.integers(0, 3)))
VALUES = st.one_of(st.integers(), st.binary(max_size=64), st.text(max_size=20))


class TableMachine(RuleBasedStateMachine):
    """The table, written through one handle and read through two, against a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.table = SharedHashTable.create(initial_capacity=0)
        self.reader = SharedHashTable.attach(self.table.name)  # its own read cache
        self.model: dict[Any, Any] = {}

    @rule(key=KEYS, value=VALUES)
    def set(self, key: Any, value: Any) -> None:
        put(self.table, key, value)
        self.model[key] = value

    @rule(key=KEYS)
    def get(self, key: Any) -> None:
        assert get(self.table, key) == self.model.get(key)
        assert get(self.reader, key) == self.model.get(key)

    @rule(key=KEYS)
    def delete(self, key: Any) -> None:
        assert delete(self.table, key) == (key in self.model)
        self.model.pop(key, None)

    @precondition(lambda self: len(self.model) > 0)
    @rule(data=st.data())
    def overwrite_existing(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.model, key=repr)))
        value = data.draw(VALUES)
        put(self.reader, key, value)
        self.model[key] = value

    @rule(n=st.integers(1, 40))
    def grow(self, n: int) -> None:
        for i in range(n):
            put(self.table, ("grow", i), i)
            self.model[("grow", i)] = i

    @rule()
    def clear(self) -> None:
        self.table.clear()
        self.model.clear()

    @invariant()
    def same_content(self) -> None:
        assert len(self.table) == len(self.model)
        assert content(self.reader) == self.model

    def teardown(self) -> None:
        check_consistent(self.table)
        self.reader.close()
        self.table.close()
        self.table.unlink()


TestTableMachine = TableMachine.TestCase
TestTableMachine.settings = settings(max_examples=40, stateful_step_count=40, deadline=None)


# -- several processes -------------------------------------------------------------------------


def child_writer(conn: Connection, table: SharedHashTable, me: int, n: int) -> None:
    try:
        conn.send("ready")
        assert conn.recv() == "go"
        for i in range(n):
            put(table, (me, i), i * me)  # own keys: grows the table under the other's feet
            put(table, ("shared", i % 7), me)  # the same keys as the other writer
            with table.locked():  # read-modify-write, atomic under the mutex
                put(table, "counter", get(table, "counter") + 1)
            if i % 5 == 0:
                delete(table, (me, i))
        conn.send("done")
    finally:
        table.close()
        conn.close()


def test_two_processes_write_concurrently(
    table: SharedHashTable, children: Callable[..., Child]
) -> None:
    n = 1500
    put(table, "counter", 0)
    writers = [children(child_writer, table, me, n) for me in (1, 2)]
    for w in writers:
        assert w.recv() == "ready"
    for w in writers:
        w.conn.send("go")
    for w in writers:
        assert w.recv() == "done"
        assert w.join() == 0
    final = check_consistent(table)
    assert final.pop("counter") == 2 * n
    shared = {key: final.pop(key) for key in [("shared", j) for j in range(7)]}
    assert set(shared.values()) <= {1, 2}
    assert final == {(me, i): i * me for me in (1, 2) for i in range(n) if i % 5}
    stats = table.statistics()
    assert stats.mutex_recoveries == stats.repairs == 0


# -- crash safety ------------------------------------------------------------------------------


def loop_ops(i: int) -> list[tuple[Any, ...]]:
    """The operations of iteration ``i`` of :func:`child_set_loop`, in order."""
    ops: list[tuple[Any, ...]] = [("set", i, "v" * (i % 300)), ("set", i // 2, "w" * (i % 50))]
    if i % 3 == 0:
        ops.append(("delete", i // 3))
    return ops


def apply(model: dict[Any, Any], op: tuple[Any, ...]) -> None:
    if op[0] == "set":
        model[op[1]] = op[2]
    else:
        model.pop(op[1], None)


def child_set_loop(conn: Connection, table: SharedHashTable, every: int) -> None:
    """Run iterations 0, 1, 2, ... of sets, overwrites and deletes, reporting progress.

    The values grow and shrink, so the arena grows and garbage is compacted away.
    """
    conn.send("started")
    i = 0
    while True:
        for op in loop_ops(i):
            if op[0] == "set":
                put(table, op[1], op[2])
            else:
                delete(table, op[1])
        i += 1
        if i % every == 0:
            conn.send(i)


@pytest.mark.parametrize("seed", range(6))
def test_sigkill_in_the_middle_of_many_sets(
    seed: int, table: SharedHashTable, children: Callable[..., Child]
) -> None:
    rng = random.Random(seed)
    child = children(child_set_loop, table, 1 + rng.randrange(50))
    assert child.recv() == "started"
    for _ in range(1 + rng.randrange(40)):
        reported = child.recv()
    child.kill()  # at an arbitrary point after ``reported`` iterations
    final = check_consistent(table)
    # Every operation is atomic: the table is what some prefix of the operations made it. Key
    # ``last`` is set by the first operation of iteration ``last`` and only deleted at
    # iteration 3 * last: the child died in (or right after) iteration ``last``.
    last = max(final)
    assert last >= reported - 1
    model: dict[Any, Any] = {}
    for i in range(last):
        for op in loop_ops(i):
            apply(model, op)
    states = []
    for op in loop_ops(last):
        apply(model, op)
        states.append(dict(model))
    assert final in states
    put(table, "after", "the crash")  # the table works on
    assert get(table, "after") == "the crash"
    check_consistent(table)


# Sets that grow the index (10 of 16 slots taken), grow the arena (past 64 KiB), and make
# garbage to compact.
STORE_OPS: list[tuple[Any, ...]] = [
    ("set", ("new", 0), "a"),
    ("set", ("new", 1), "x" * 30_000),
    ("set", 0, "y" * 30_000),
    ("set", ("new", 2), "x" * 40_000),
    ("set", 0, "z"),
    ("delete", ("new", 1)),
    ("set", ("new", 3), "q" * 60_000),
]


class KillAtStore:
    """Stands in for a table's word view: SIGKILLs the process at its ``n``-th store."""

    def __init__(self, words: Any, n: int) -> None:
        self.words = words
        self.left = n

    def __getitem__(self, index: Any) -> Any:
        return self.words[index]

    def __setitem__(self, index: Any, value: Any) -> None:
        self.left -= 1
        if self.left == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        self.words[index] = value


def child_die_at_store(conn: Connection, table: SharedHashTable, store: int) -> None:
    table._words = KillAtStore(table._words, store)
    conn.send("started")
    for op in STORE_OPS:
        if op[0] == "set":
            put(table, op[1], op[2])
        else:
            delete(table, op[1])
    conn.send("survived")


def test_sigkill_at_every_store_of_growing_sets(children: Callable[..., Child]) -> None:
    model = {i: str(i) for i in range(10)}
    states = [dict(model)]
    for op in STORE_OPS:
        apply(model, op)
        states.append(dict(model))
    died = 0
    store = 1
    while True:
        trial = SharedHashTable.create(initial_capacity=0)
        try:
            for key, value in states[0].items():
                put(trial, key, value)
            before = trial.statistics()
            child = children(child_die_at_store, trial, store)
            assert child.recv() == "started"
            exitcode = child.join()
            final = check_consistent(trial)
            assert final in states  # the operations before the death, and perhaps that one
            stats = trial.statistics()
            if exitcode != -signal.SIGKILL:
                assert exitcode == 0
                assert child.recv() == "survived"
                assert final == states[-1]
                assert stats.rebuilds > before.rebuilds
                break
            died += 1
            assert stats.mutex_recoveries == before.mutex_recoveries + 1
            assert stats.repairs == before.repairs + 1
            put(trial, "after", "the crash")
            assert get(trial, "after") == "the crash"
            check_consistent(trial)
        finally:
            trial.close()
            trial.unlink()
        store += 1
    assert died >= 30  # every store of seven changes, an index rebuild and arena growth among


def child_hold(conn: Connection, table: SharedHashTable) -> None:
    table.enter()
    put(table, "held", True)
    conn.send("holding")
    conn.recv()  # never comes: killed


def test_sigkill_while_holding_the_mutex(
    table: SharedHashTable, children: Callable[..., Child]
) -> None:
    put(table, "a", 1)
    child = children(child_hold, table)
    assert child.recv() == "holding"
    child.kill()
    assert get(table, "a") == 1  # the next user takes the mutex over (EOWNERDEAD)
    assert get(table, "held") is True
    stats = table.statistics()
    assert (stats.mutex_recoveries, stats.repairs) == (1, 1)
    put(table, "b", 2)
    assert check_consistent(table) == {"a": 1, "held": True, "b": 2}


def test_exception_inside_a_change_is_repaired(table: SharedHashTable) -> None:
    for i in range(10):
        put(table, i, i)

    class Interrupting:
        def __setitem__(self, index: Any, value: Any) -> None:
            raise KeyboardInterrupt

    real = table._mvb
    table._mvb = Interrupting()
    with pytest.raises(KeyboardInterrupt):
        put(table, "new", 1)
    table._mvb = real
    assert len(table) == 10  # repaired first
    assert table.statistics().repairs == 1
    assert check_consistent(table) == {i: i for i in range(10)}
    put(table, "new", 1)
    assert get(table, "new") == 1


@pytest.fixture
def small_table() -> Iterator[SharedHashTable]:
    t = SharedHashTable.create(initial_capacity=0)  # 16 slots: the 12th entry rebuilds
    yield t
    t.close()
    t.unlink()


def test_interrupted_rebuild_is_never_published(
    small_table: SharedHashTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = small_table
    for i in range(11):
        put(table, i, "x" * 100)
    before = table.statistics()

    def interrupted(self: SharedHashTable, root: int) -> Any:
        raise KeyboardInterrupt  # the new generation is built, never published

    with monkeypatch.context() as patch:
        patch.setattr(SharedHashTable, "_switch", interrupted)
        with pytest.raises(KeyboardInterrupt):
            put(table, "one more", 1)  # the twelfth entry rebuilds the index first
    assert check_consistent(table) == dict.fromkeys(range(11), "x" * 100)
    after = table.statistics()
    assert (after.rebuilds, after.repairs) == (before.rebuilds, before.repairs + 1)
    assert after.committed_bytes <= before.committed_bytes + 256 * 1024  # the spare kept
    put(table, "one more", 1)
    assert len(table) == 12

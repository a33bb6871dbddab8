"""ProcessSharedDict when processes die: SIGKILL mid-update, attachers that exit, creator death.

The shared contract (both models) is in ``tests/contract/test_shared_dict.py``; the hash table
underneath is tested store by store in ``tests/state/test_hashtable.py``. Here the public dict
is used the way a program uses it, and real processes are killed:

* a child runs a stream of sets, overwrites, deletes, ``update_item`` calls and growths and
  reports its progress over a pipe; the test SIGKILLs it after some progress, at whatever
  instruction it is in, then checks the dict is consistent (every key readable, ``len`` equal
  to the number of keys, the content that of a prefix of the stream) and works on;
* a child dies inside ``transaction()``: the next user takes the lock over, and
  ``statistics().mutex_recoveries`` counts it;
* an attaching process that exits (normally, ``os._exit``, SIGKILL) never removes the segment;
* a creator that is SIGKILLed (in a subprocess) has its segment removed from ``/dev/shm``.

Children report over pipes and the test waits on those pipes or on ``join``; a state that
changes asynchronously (a segment removed by a dead creator's resource tracker) is polled with
a deadline. :data:`DEADLOCK` only turns a hang into a failure.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import random
import textwrap
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

from _children import Child, creator, wait_until
from concurrency_kit import ProcessSharedDict

DEADLOCK = 60.0
"""Seconds after which a wait that should have ended is a deadlock (a failure, not a pass)."""

CTX = multiprocessing.get_context("forkserver")
SHM = Path("/dev/shm")


def segment(d: ProcessSharedDict) -> str:
    return str(d._table.name)


def exists(name: str) -> bool:
    return (SHM / name).exists()


def check_consistent(d: ProcessSharedDict) -> dict[Any, Any]:
    """Every key readable with its value, ``len`` matching the keys; returns the content."""
    keys = list(d)
    items = list(d.items())
    assert len(d) == len(keys) == len(set(keys)) == len(items)
    for key, value in items:
        assert key in d
        assert d[key] == value
    content = d.to_dict()
    assert content == dict(items)
    assert d.statistics().length == len(keys)
    return content


def check_works_on(d: ProcessSharedDict) -> None:
    """New sets, growth, deletes and transactions all work after a crash."""
    before = check_consistent(d)
    growths = d.statistics().growths
    for i in range(3_000):
        d["after", i] = "x" * (i % 100)
    d["after", "big"] = b"b" * (1 << 20)
    assert d.statistics().growths > growths
    with d.transaction():
        d.update_item("after count", lambda n: n + 1, default=0)
    for i in range(3_000):
        assert d.pop(("after", i)) == "x" * (i % 100)
    del d["after", "big"]
    del d["after count"]
    assert check_consistent(d) == before


@pytest.fixture
def d() -> Iterator[ProcessSharedDict]:
    shared = ProcessSharedDict()
    yield shared
    shared.close()


# -- SIGKILL in the middle of a stream of changes ----------------------------------------------


def stream_ops(i: int) -> list[tuple[Any, ...]]:
    """The changes of iteration ``i`` of :func:`child_stream`, in order.

    Keys pile up (the index grows), values grow and shrink (the arena grows and is compacted),
    every 97th value is big (forcing arena growth at once), keys are deleted behind.
    """
    ops: list[tuple[Any, ...]] = [
        ("set", ("k", i), i),
        ("set", ("v", i % 40), "v" * (i % 700)),
        ("update", "count"),
    ]
    if i % 97 == 0:
        ops.append(("set", ("big", i % 3), bytes([i % 256]) * (300_000 + i)))
    if i % 3 == 0:
        ops.append(("delete", ("k", i // 3)))
    if i % 11 == 0:
        ops.append(("transfer", ("k", i), ("moved", i)))
    return ops


def apply(state: dict[Any, Any], op: tuple[Any, ...]) -> Iterator[dict[Any, Any]]:
    """Apply ``op`` to ``state``, yielding a copy after each of its single steps.

    A transfer is a transaction of two steps (pop, then set): a death between the two leaves
    the first done, since a transaction holds the lock but does not roll back.
    """
    kind = op[0]
    if kind == "set":
        state[op[1]] = op[2]
    elif kind == "delete":
        state.pop(op[1], None)
    elif kind == "update":
        state[op[1]] = state.get(op[1], 0) + 1
    elif op[1] in state:  # transfer
        value = state.pop(op[1])
        yield dict(state)
        state[op[2]] = value
    yield dict(state)


def run_op(d: ProcessSharedDict, op: tuple[Any, ...]) -> None:
    kind = op[0]
    if kind == "set":
        d[op[1]] = op[2]
    elif kind == "delete":
        d.pop(op[1], None)
    elif kind == "update":
        d.update_item(op[1], lambda n: n + 1, default=0)
    else:
        with d.transaction():
            if op[1] in d:
                d[op[2]] = d.pop(op[1])


def child_stream(conn: Connection, d: ProcessSharedDict, every: int) -> None:
    """Run iterations 0, 1, 2, ... of :func:`stream_ops` forever, reporting every ``every``."""
    conn.send("started")
    i = 0
    while True:
        for op in stream_ops(i):
            run_op(d, op)
        i += 1
        if i % every == 0:
            conn.send(i)


@pytest.mark.parametrize("seed", range(5))
def test_sigkill_in_the_middle_of_a_stream_of_changes(
    seed: int, d: ProcessSharedDict, children: Callable[..., Child]
) -> None:
    rng = random.Random(seed)
    child = children(child_stream, d, 1 + rng.randrange(40))
    assert child.recv() == "started"
    reported = 0
    for _ in range(1 + rng.randrange(30)):
        reported = child.recv()
    child.kill()  # at an arbitrary instruction after ``reported`` iterations

    final = check_consistent(d)
    # Each single change is atomic: the dict is what some prefix of the stream's steps made
    # it. ``count`` is bumped once per iteration: the child died in iteration ``count`` (or
    # ``count - 1``, after the bump).
    count = final.get("count", 0)
    assert count >= reported
    state: dict[Any, Any] = {}
    for i in range(max(count - 1, 0)):
        for op in stream_ops(i):
            for _ in apply(state, op):
                pass
    prefixes = [dict(state)]
    for i in range(max(count - 1, 0), count + 1):
        for op in stream_ops(i):
            prefixes.extend(apply(state, op))
    assert final in prefixes
    # Whether the child died holding the lock is luck: only consistency is asserted.
    assert d.statistics().mutex_recoveries in (0, 1)
    check_works_on(d)


def child_die_in_transaction(conn: Connection, d: ProcessSharedDict) -> None:
    with d.transaction():
        d["a"] = d["a"] + 1
        d["inside"] = True
        del d["gone"]
        conn.send("inside")
        conn.recv()  # never comes: killed holding the lock
        d["never"] = True


def test_death_inside_a_transaction_is_recovered(
    d: ProcessSharedDict, children: Callable[..., Child]
) -> None:
    d.update({"a": 1, "gone": 0, "b": [1, 2]})
    before = d.statistics().mutex_recoveries
    child = children(child_die_in_transaction, d)
    assert child.recv() == "inside"
    child.kill()
    # The next user takes the dead holder's lock over at once, and counts it.
    assert d["b"] == [1, 2]
    assert d.statistics().mutex_recoveries == before + 1
    # The changes made before the death stay: each one was atomic by itself.
    assert check_consistent(d) == {"a": 2, "b": [1, 2], "inside": True}
    with d.transaction():  # recovered for good: the lock works, and is not counted again
        d["c"] = 3
    assert d.statistics().mutex_recoveries == before + 1
    check_works_on(d)


def child_die_in_update_item(conn: Connection, d: ProcessSharedDict) -> None:
    def blocked(value: Any) -> Any:
        conn.send("in fn")
        conn.recv()  # never comes: killed holding the lock
        return "never"

    d.update_item("k", blocked)


def test_death_inside_update_item_leaves_the_old_value(
    d: ProcessSharedDict, children: Callable[..., Child]
) -> None:
    d["k"] = "old"
    child = children(child_die_in_update_item, d)
    assert child.recv() == "in fn"
    child.kill()
    assert d.update_item("k", lambda v: v + "+new") == "old+new"
    assert d.statistics().mutex_recoveries == 1
    assert check_consistent(d) == {"k": "old+new"}


# -- the segment's lifetime --------------------------------------------------------------------


def child_attach_and_leave(conn: Connection, d: ProcessSharedDict, how: str) -> None:
    d["child"] = os.getpid()
    d.update_item("visits", lambda n: n + 1, default=0)
    for i in range(2_000):  # grow the table from the attached side
        d["grown", i] = i
    conn.send("used")
    if how == "os_exit":
        os._exit(0)  # no finalizer, no atexit
    if how == "sigkill":
        conn.recv()  # until the test kills us
    if how == "close":
        d.close()
    # "return" (and "close"): the handle's finalizers run at exit


@pytest.mark.parametrize("how", ["return", "close", "os_exit", "sigkill"])
def test_an_attacher_that_exits_never_removes_the_segment(
    how: str, d: ProcessSharedDict, children: Callable[..., Child]
) -> None:
    d["creator"] = "here"
    name = segment(d)
    child = children(child_attach_and_leave, d, how)
    assert child.recv() == "used"
    if how == "sigkill":
        child.kill()
    else:
        assert child.join() == 0
    assert exists(name)
    assert d["visits"] == 1
    assert len(d) == 2_000 + 3
    d["after"] = 1  # still usable
    other = pickle.loads(pickle.dumps(d))  # and still attachable by name
    try:
        assert other["creator"] == "here"
    finally:
        other.close()
    assert exists(name)
    d.close()
    assert not exists(name)  # the creator's close removes it


CREATOR = textwrap.dedent(
    """
    import os, pickle, sys
    from concurrency_kit import ProcessSharedDict
    from concurrency_kit._core import shm

    d = ProcessSharedDict({"from": "the creator"})
    for i in range(5_000):
        d[i] = "x" * (i % 50)
    d["big"] = b"b" * (1 << 20)
    # This process's segments only: other programs make and remove /dev/shm entries too.
    new = sorted(n for n in os.listdir("/dev/shm") if shm.creator_pid(n) == os.getpid())
    print(" ".join(new), pickle.dumps(d).hex(), flush=True)
    sys.stdin.read()  # until the test kills us
    """
)


def test_segments_removed_when_the_creator_is_killed() -> None:
    with creator(CREATOR) as process:
        *names, handle = process.words
        assert names
        assert all(exists(name) for name in names)
        attached = pickle.loads(bytes.fromhex(handle))  # this process maps it too
        try:
            assert attached["from"] == "the creator"
            err = process.kill()
            wait_until(lambda: not any(exists(name) for name in names), "segments removed")
            # The name is gone; the mapping of a process that has it stays usable.
            assert attached["from"] == "the creator"
            attached["after"] = "the creator's death"
            assert len(attached) == 5_003
            assert attached.statistics().mutex_recoveries == 0
            assert "Traceback" not in err
        finally:
            attached.close()

"""Real faults in the process sync primitives: parties SIGKILLed while holding or waiting.

A child process reports over a pipe when it holds a lock or is about to wait; the test then
kills it (``SIGKILL``) and checks that the survivors go on: a dead holder of an RWLock side is
reclaimed by the next party (``owner_deaths_recovered``, :class:`LockOwnerDiedWarning`); a dead
holder of a Guarded block poisons the value, which keeps its last committed state; a dead
barrier party breaks the barrier; a dead waiter of a Semaphore, Event, Condition or RWLock
neither swallows a later release or notification nor leaves a lock stuck.

When the test must know that a child is *blocked*, it polls the primitive's state
(``statistics().waiters`` and the like); a killer thread does the same when the kill must land
while the test itself is blocked. :data:`DEADLOCK` only turns a hang into a failure. The
``Child`` helper and the conventions come from ``test_process_locks.py``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest
from test_process_locks import DEADLOCK, Child, wait_until

from concurrency_kit import (
    BrokenBarrierError,
    LockOwnerDiedWarning,
    PoisonedError,
    ProcessBarrier,
    ProcessBoundedSemaphore,
    ProcessCondition,
    ProcessEvent,
    ProcessGuarded,
    ProcessRWLock,
    ProcessSemaphore,
)


@pytest.fixture
def rw() -> Iterator[ProcessRWLock]:
    lock = ProcessRWLock()
    yield lock
    lock.close()


@contextlib.contextmanager
def kill_when(predicate: Callable[[], bool], what: str, child: Child) -> Iterator[None]:
    """Run the ``with`` block (which blocks) while a thread kills ``child`` once ``predicate``."""

    def kill() -> None:
        wait_until(predicate, what)
        child.process.kill()

    killer = threading.Thread(target=kill, name="killer")
    killer.start()
    try:
        yield
    finally:
        killer.join(DEADLOCK)
    assert not killer.is_alive()


@contextlib.contextmanager
def no_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# -- children: module-level so that the forkserver children can import them -------------------


def child_rw_hold(rw: Any, conn: Connection, side: str, depth: int) -> None:
    """Hold ``side`` of ``rw`` (``depth`` times), report, then wait for a command."""
    for _ in range(depth):
        assert getattr(rw, f"acquire_{side}")(True, DEADLOCK)
    conn.send(os.getpid())
    conn.recv()  # "release", or be killed (EOF if the test failed first)
    for _ in range(depth):
        getattr(rw, f"release_{side}")()
    conn.send("released")


def child_rw_wait(rw: Any, conn: Connection, side: str) -> None:
    """Report, then wait for ``side`` of ``rw`` (the test kills us while we wait)."""
    conn.send("waiting")
    conn.send(getattr(rw, f"acquire_{side}")(True, DEADLOCK))


def child_guarded_die_in_block(g: Any, conn: Connection) -> None:
    """Commit ``[1]``, then change the value inside a block and wait there to be killed."""
    g.set([1])
    with g.lock() as value:
        value.append(2)
        g.set([1, 2, 3])
        conn.send("in block")
        conn.recv()


def child_call(primitive: Any, conn: Connection, method: str, *args: Any) -> None:
    """Report, call ``primitive.method(*args)`` (which waits), report its outcome."""
    conn.send("calling")
    try:
        result: object = getattr(primitive, method)(*args)
    except Exception as exc:
        result = type(exc)
    conn.send(result)


def child_condition_wait(condition: Any, conn: Connection) -> None:
    with condition:
        conn.send("locked")
        conn.send(condition.wait(DEADLOCK))


# -- RWLock: a holder dies ---------------------------------------------------------------------


@pytest.mark.parametrize("blocked", [False, True], ids=["then-acquire", "acquire-waiting"])
@pytest.mark.parametrize("next_side", ["write", "read"])
def test_rwlock_writer_killed_holding_write(
    rw: ProcessRWLock, children: Callable[..., Child], next_side: str, blocked: bool
) -> None:
    child = children(child_rw_hold, rw, "write", 1)
    pid = child.recv()
    assert rw.statistics().writer_pid == pid
    acquire = getattr(rw, f"acquire_{next_side}")
    waiting = "writers_waiting" if next_side == "write" else "readers_waiting"
    if blocked:
        with (
            kill_when(lambda: getattr(rw.statistics(), waiting) == 1, "waiting", child),
            pytest.warns(LockOwnerDiedWarning),
        ):
            assert acquire(True, DEADLOCK) is True
    else:
        child.process.kill()
        child.join()
        with pytest.warns(LockOwnerDiedWarning, match="reclaimed"):
            assert acquire(True, DEADLOCK) is True
    assert child.join() == -signal.SIGKILL
    stats = rw.statistics()
    assert stats.owner_deaths_recovered == 1
    if next_side == "write":
        assert (stats.writer_pid, stats.writer_thread) == (os.getpid(), threading.get_native_id())
    else:
        assert (stats.writer_pid, stats.readers) == (None, 1)
    getattr(rw, f"release_{next_side}")()
    with no_warnings(), rw.write():
        pass  # recovered for good: no second warning
    assert rw.statistics().owner_deaths_recovered == 1


@pytest.mark.parametrize("held_side", ["read", "write"])
@pytest.mark.parametrize("next_side", ["read", "write"])
def test_rwlock_try_acquire_reclaims_a_dead_holder(
    rw: ProcessRWLock, children: Callable[..., Child], held_side: str, next_side: str
) -> None:
    # As a ProcessLock's acquire(False) takes over a dead owner's lock: no waiting needed.
    child = children(child_rw_hold, rw, held_side, 1)
    child.recv()
    child.process.kill()
    assert child.join() == -signal.SIGKILL
    acquire = getattr(rw, f"acquire_{next_side}")
    if next_side == "read" and held_side == "read":
        with no_warnings():  # readers share: nothing to reclaim before taking it
            assert acquire(False) is True
    else:
        with pytest.warns(LockOwnerDiedWarning, match="reclaimed"):
            assert acquire(False) is True
        assert rw.statistics().owner_deaths_recovered == 1
    getattr(rw, f"release_{next_side}")()


@pytest.mark.parametrize("blocked", [False, True], ids=["then-acquire", "acquire-waiting"])
@pytest.mark.parametrize("depth", [1, 2])
def test_rwlock_reader_killed_holding_read(
    rw: ProcessRWLock, children: Callable[..., Child], depth: int, blocked: bool
) -> None:
    child = children(child_rw_hold, rw, "read", depth)
    child.recv()
    assert rw.statistics().readers == 1
    if blocked:
        with (
            kill_when(lambda: rw.statistics().writers_waiting == 1, "the writer waits", child),
            pytest.warns(LockOwnerDiedWarning),
        ):
            assert rw.acquire_write(True, DEADLOCK) is True
    else:
        child.process.kill()
        child.join()
        with pytest.warns(LockOwnerDiedWarning):
            assert rw.acquire_write(True, DEADLOCK) is True
    assert child.join() == -signal.SIGKILL
    stats = rw.statistics()
    assert (stats.readers, stats.writers_waiting, stats.owner_deaths_recovered) == (0, 0, 1)
    assert stats.writer_pid == os.getpid()
    rw.release_write()
    with no_warnings(), rw.read():  # the dead reader's holds are gone, all of them
        assert rw.statistics().readers == 1
    with no_warnings(), rw.write():
        pass
    assert rw.statistics().owner_deaths_recovered == 1


def test_rwlock_writer_waits_for_live_readers_not_dead_ones(
    rw: ProcessRWLock, children: Callable[..., Child]
) -> None:
    doomed = children(child_rw_hold, rw, "read", 1)
    live = children(child_rw_hold, rw, "read", 1)
    doomed.recv()
    live.recv()
    seen: list[Any] = []

    def choreography() -> None:
        wait_until(lambda: rw.statistics().writers_waiting == 1, "the writer waits")
        doomed.process.kill()
        wait_until(lambda: rw.statistics().owner_deaths_recovered == 1, "dead reader reclaimed")
        seen.append(rw.statistics())  # the writer still waits: a live reader reads
        live.conn.send("release")

    helper = threading.Thread(target=choreography)
    helper.start()
    try:
        with pytest.warns(LockOwnerDiedWarning):
            assert rw.acquire_write(True, DEADLOCK) is True
    finally:
        helper.join(DEADLOCK)
    assert live.recv() == "released"
    (stats,) = seen
    assert (stats.readers, stats.writers_waiting, stats.writer_pid) == (1, 1, None)
    assert rw.statistics().writer_pid == os.getpid()
    rw.release_write()


# -- RWLock: a waiter dies ---------------------------------------------------------------------


def read_in_a_thread(rw: ProcessRWLock) -> Any:
    """Acquire the read side in a new thread; return the statistics it saw while reading."""
    seen: list[Any] = []

    def read() -> None:
        if rw.acquire_read(True, DEADLOCK):
            seen.append(rw.statistics())
            rw.release_read()

    thread = threading.Thread(target=read)
    thread.start()
    thread.join(DEADLOCK + 5)
    assert not thread.is_alive()
    assert seen, "a reader waited in vain (for a writer that had died?)"
    return seen[0]


@pytest.mark.parametrize("reader_left_first", [False, True])
def test_rwlock_killed_waiting_writer_does_not_hold_readers_back(
    rw: ProcessRWLock, children: Callable[..., Child], reader_left_first: bool
) -> None:
    # A waiting writer holds new readers back (writer preference); a dead one must not, whether
    # the reader it waited for leaves before or after the next reader comes.
    reader = children(child_rw_hold, rw, "read", 1)
    reader.recv()
    writer = children(child_rw_wait, rw, "write")
    assert writer.recv() == "waiting"
    wait_until(lambda: rw.statistics().writers_waiting == 1, "the writer waits")
    writer.process.kill()
    assert writer.join() == -signal.SIGKILL
    if reader_left_first:
        reader.conn.send("release")
        assert reader.recv() == "released"
    stats = read_in_a_thread(rw)
    assert stats.readers == (1 if reader_left_first else 2)
    assert stats.writers_waiting == 0
    if not reader_left_first:
        reader.conn.send("release")
        assert reader.recv() == "released"
    with no_warnings():  # a dead waiter is no dead owner: nothing was reclaimed
        assert rw.acquire_write(False) is True
    rw.release_write()
    stats = rw.statistics()
    assert (stats.readers, stats.writers_waiting, stats.owner_deaths_recovered) == (0, 0, 0)


def test_rwlock_killed_waiting_reader_leaves_nothing_behind(
    rw: ProcessRWLock, children: Callable[..., Child]
) -> None:
    assert rw.acquire_write()
    reader = children(child_rw_wait, rw, "read")
    assert reader.recv() == "waiting"
    wait_until(lambda: rw.statistics().readers_waiting == 1, "the reader waits")
    reader.process.kill()
    assert reader.join() == -signal.SIGKILL
    rw.release_write()
    assert read_in_a_thread(rw).readers == 1
    with no_warnings():
        assert rw.acquire_write(True, DEADLOCK) is True
    rw.release_write()
    stats = rw.statistics()
    assert (stats.readers, stats.readers_waiting, stats.writers_waiting) == (0, 0, 0)
    assert stats.owner_deaths_recovered == 0


# -- Guarded: a holder dies inside a block ---------------------------------------------------------


@pytest.mark.parametrize("blocked", [False, True], ids=["then-lock", "lock-waiting"])
def test_guarded_holder_killed_in_a_block_poisons_it(
    children: Callable[..., Child], blocked: bool
) -> None:
    g = ProcessGuarded([0])
    try:
        child = children(child_guarded_die_in_block, g)
        assert child.recv() == "in block"
        waiting: contextlib.AbstractContextManager[None]
        if blocked:
            waiting = kill_when(lambda: g.statistics().lock.waiters == 1, "lock() waits", child)
        else:
            child.process.kill()
            child.join()
            waiting = contextlib.nullcontext()
        with (
            waiting,
            pytest.warns(LockOwnerDiedWarning),
            pytest.raises(PoisonedError) as info,
            g.lock(DEADLOCK),
        ):
            pytest.fail("the block must not run: the value is poisoned")
        assert child.join() == -signal.SIGKILL
        assert info.value.value == [1]  # the last committed value, not the dead block's
        assert g.is_poisoned()
        stats = g.statistics()
        assert (stats.poisoned, stats.lock.locked, stats.lock.owner_deaths_recovered) == (
            True,
            False,
            1,
        )
        with no_warnings():
            with pytest.raises(PoisonedError):
                g.get()
            g.clear_poison()
            assert g.get() == [1]
            assert g.update(lambda value: [*value, 4]) == [1, 4]
        assert not g.is_poisoned()
    finally:
        g.close()


# -- Barrier: a party dies while waiting -----------------------------------------------------------


def child_barrier_party(barrier: Any, conn: Connection) -> None:
    """A live party for many rounds: on each "wait", report, wait, report the outcome."""
    while conn.recv() == "wait":
        child_call(barrier, conn, "wait", DEADLOCK)


ROUNDS = 30


@pytest.mark.parametrize(
    "kill_lands",
    ["before-the-last-party-arrives", "while-every-live-party-waits"],
)
def test_barrier_party_killed_after_arriving_breaks_it_for_every_live_party(
    children: Callable[..., Child], kill_lands: str
) -> None:
    # Issue 15, defect 6: the dead party used to count as arrived (the barrier opened in most
    # runs), and live parties could get different outcomes. A party that dies after arriving,
    # before the barrier opens, breaks it: every live party gets BrokenBarrierError, each
    # round, wherever the kill lands.
    #
    # before-the-last-party-arrives: parties=3; the doomed party and a survivor wait, the
    #     doomed one is killed (and reaped: it is dead), then the test arrives last: it must
    #     break the barrier instead of opening it.
    # while-every-live-party-waits: parties=4 (one never comes); the doomed party, the
    #     survivor and the test all wait when the kill lands: a sleeper finds the dead party.
    last = kill_lands == "before-the-last-party-arrives"
    barrier = ProcessBarrier(3 if last else 4)
    try:
        survivor = children(child_barrier_party, barrier)
        for round_ in range(ROUNDS):
            doomed = children(child_call, barrier, "wait", DEADLOCK)
            assert doomed.recv() == "calling"  # written right before it calls wait()
            wait_until(lambda: barrier.n_waiting == 1, "the doomed party waits")
            survivor.conn.send("wait")
            assert survivor.recv() == "calling"
            wait_until(lambda: barrier.n_waiting == 2, "the survivor waits")
            if last:
                doomed.process.kill()
                assert doomed.join() == -signal.SIGKILL
                with pytest.raises(BrokenBarrierError):
                    barrier.wait(DEADLOCK)
            else:
                with (
                    kill_when(lambda: barrier.n_waiting == 3, "three parties wait", doomed),
                    pytest.raises(BrokenBarrierError),
                ):
                    barrier.wait(DEADLOCK)
                assert doomed.join() == -signal.SIGKILL
            assert survivor.recv() is BrokenBarrierError, f"round {round_}"
            stats = barrier.statistics()
            assert (stats.broken, stats.n_waiting, stats.passes) == (True, 0, 0), round_
            with pytest.raises(BrokenBarrierError):
                barrier.wait(0)  # broken until reset, for every caller
            barrier.reset()
            assert (barrier.broken, barrier.n_waiting) == (False, 0)
        survivor.conn.send("stop")
        assert survivor.join() == 0
        # Every dead party is off the count: the barrier works again after the reset.
        helper = children(child_call, barrier, "wait", DEADLOCK)
        assert helper.recv() == "calling"
        if not last:
            other = children(child_call, barrier, "wait", DEADLOCK)
            assert other.recv() == "calling"
        third = children(child_call, barrier, "wait", DEADLOCK)
        assert third.recv() == "calling"
        index = barrier.wait(DEADLOCK)
        outcomes = [c.recv() for c in ([helper, third] if last else [helper, other, third])]
        assert sorted([index, *outcomes]) == list(range(barrier.parties))
        assert barrier.statistics().passes == 1
    finally:
        barrier.close()


def kill_the_party_named_in(path: str) -> None:
    """A barrier action: SIGKILL the process whose pid is in ``path``; return once it is dead
    (a zombie: it has ended; its parent reaps it later)."""
    with open(path) as f:
        pid = int(f.read())
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: process_state(pid) in (b"Z", b"X", b""), "the party has ended")


def test_barrier_party_killed_while_the_action_runs_breaks_it(
    children: Callable[..., Child], tmp_path: Path
) -> None:
    # The action runs before the barrier opens: a party that dies meanwhile breaks it, for the
    # last party (which ran the action) as for the others, every round.
    path = tmp_path / "doomed.pid"
    barrier = ProcessBarrier(3, action=functools.partial(kill_the_party_named_in, str(path)))
    try:
        survivor = children(child_barrier_party, barrier)
        for round_ in range(10):
            doomed = children(child_call, barrier, "wait", DEADLOCK)
            path.write_text(str(doomed.process.pid))
            assert doomed.recv() == "calling"
            wait_until(lambda: barrier.n_waiting == 1, "the doomed party waits")
            survivor.conn.send("wait")
            assert survivor.recv() == "calling"
            wait_until(lambda: barrier.n_waiting == 2, "the survivor waits")
            with pytest.raises(BrokenBarrierError):
                barrier.wait(DEADLOCK)  # the last party: runs the action, which kills
            assert doomed.join() == -signal.SIGKILL
            assert survivor.recv() is BrokenBarrierError, f"round {round_}"
            stats = barrier.statistics()
            assert (stats.broken, stats.passes) == (True, 0), round_
            barrier.reset()
        survivor.conn.send("stop")
        assert survivor.join() == 0
    finally:
        barrier.close()


def child_die_arriving_inside_the_monitor(barrier: Any, conn: Connection) -> None:
    """Do the first step of ``wait()`` (count itself, holding the monitor's mutex) and stop
    there, as a party killed between two lines of the barrier's bookkeeping would."""
    barrier._m.enter()
    barrier._s.count += 1
    conn.send("counted")
    conn.recv()  # killed here, the mutex held


def test_barrier_party_killed_inside_the_monitor_breaks_it(
    children: Callable[..., Child],
) -> None:
    # A party killed while it holds the barrier's mutex may be counted without sleeping (no
    # waiter slot to find it by): the next caller takes the mutex over (EOWNERDEAD) and the
    # barrier breaks, its count rebuilt from the parties it can see.
    barrier = ProcessBarrier(3)
    try:
        survivor = children(child_barrier_party, barrier)
        survivor.conn.send("wait")
        assert survivor.recv() == "calling"
        wait_until(lambda: barrier.n_waiting == 1, "the survivor waits")
        doomed = children(child_die_arriving_inside_the_monitor, barrier)
        assert doomed.recv() == "counted"
        doomed.process.kill()
        assert doomed.join() == -signal.SIGKILL
        with pytest.raises(BrokenBarrierError):
            barrier.wait(DEADLOCK)  # it would be the third party: it must not open
        assert survivor.recv() is BrokenBarrierError
        stats = barrier.statistics()
        assert (stats.broken, stats.n_waiting, stats.passes) == (True, 0, 0)
        barrier.reset()
        survivor.conn.send("wait")
        assert survivor.recv() == "calling"
        other = children(child_call, barrier, "wait", DEADLOCK)
        assert other.recv() == "calling"
        index = barrier.wait(DEADLOCK)  # the count is right again: three parties open it
        assert sorted([index, survivor.recv(), other.recv()]) == [0, 1, 2]
        survivor.conn.send("stop")
        assert survivor.join() == 0
    finally:
        barrier.close()


def process_state(pid: int) -> bytes:
    """The state letter of ``/proc/<pid>/stat`` (after the parenthesised command name); empty
    once the process is gone (a forkserver child is reaped by the forkserver)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or before the read
        return b""
    return stat[stat.rindex(b")") + 2 :][:1]


def test_barrier_party_killed_after_it_opened_has_passed(
    children: Callable[..., Child],
) -> None:
    # The other side of the rule: the barrier opened with the party alive (stopped by SIGSTOP,
    # so it is woken but cannot leave), then the party is killed. It had passed: the others
    # keep their indices, nothing breaks, and the next generation starts once it is found dead.
    barrier = ProcessBarrier(2)
    try:
        party = children(child_barrier_party, barrier)
        party.conn.send("wait")
        assert party.recv() == "calling"
        wait_until(lambda: barrier.n_waiting == 1, "the party waits")
        pid = party.process.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        wait_until(lambda: process_state(pid) == b"T", "the party is stopped")
        assert barrier.wait(DEADLOCK) in (0, 1)  # opened: the stopped party is alive
        party.process.kill()
        assert party.join() == -signal.SIGKILL
        assert not barrier.broken
        # The dead party never left; the next generation waits until a sleeper finds it dead.
        other = children(child_call, barrier, "wait", DEADLOCK)
        assert other.recv() == "calling"
        assert barrier.wait(DEADLOCK) in (0, 1)
        assert other.recv() in (0, 1)
        stats = barrier.statistics()
        assert (stats.broken, stats.n_waiting, stats.passes) == (False, 0, 2)
    finally:
        barrier.close()


# -- Semaphore, Event, Condition: a waiter dies ----------------------------------------------------


@pytest.mark.parametrize("cls", [ProcessSemaphore, ProcessBoundedSemaphore])
def test_semaphore_release_is_not_lost_to_a_dead_waiter(
    children: Callable[..., Child], cls: type[ProcessSemaphore] | type[ProcessBoundedSemaphore]
) -> None:
    sem = cls(1)
    try:
        assert sem.acquire()
        doomed = children(child_call, sem, "acquire", True, DEADLOCK)
        assert doomed.recv() == "calling"
        wait_until(lambda: sem.statistics().waiters == 1, "the first waiter waits")
        survivor = children(child_call, sem, "acquire", True, DEADLOCK)
        assert survivor.recv() == "calling"
        wait_until(lambda: sem.statistics().waiters == 2, "the second waiter waits")
        doomed.process.kill()  # the longest-waiting one: first in line for the release
        assert doomed.join() == -signal.SIGKILL
        sem.release()
        assert survivor.recv() is True
        assert survivor.join() == 0
        stats = sem.statistics()
        assert (stats.value, stats.waiters, stats.acquisitions) == (0, 0, 2)
    finally:
        sem.close()


def test_event_set_wakes_the_survivors_of_a_dead_waiter(children: Callable[..., Child]) -> None:
    event = ProcessEvent()
    try:
        doomed = children(child_call, event, "wait", DEADLOCK)
        survivor = children(child_call, event, "wait", DEADLOCK)
        assert doomed.recv() == survivor.recv() == "calling"
        wait_until(lambda: event.statistics().waiters == 2, "both wait")
        doomed.process.kill()
        assert doomed.join() == -signal.SIGKILL
        event.set()
        assert survivor.recv() is True
        assert survivor.join() == 0
        assert event.statistics().waiters == 0
        assert event.wait(0) is True
    finally:
        event.close()


def test_condition_notify_is_not_lost_to_a_dead_waiter(children: Callable[..., Child]) -> None:
    condition = ProcessCondition()
    try:

        def waiting(n: int) -> bool:
            stats = condition.statistics()
            return stats.waiters == n and not stats.lock.locked  # inside wait(), lock released

        doomed = children(child_condition_wait, condition)
        assert doomed.recv() == "locked"
        wait_until(lambda: waiting(1), "the first waiter waits")
        first = children(child_condition_wait, condition)
        assert first.recv() == "locked"
        wait_until(lambda: waiting(2), "the second waiter waits")
        second = children(child_condition_wait, condition)
        assert second.recv() == "locked"
        wait_until(lambda: waiting(3), "the third waiter waits")
        doomed.process.kill()  # the longest-waiting one: first in line for notify(1)
        assert doomed.join() == -signal.SIGKILL
        with no_warnings(), condition:  # it died waiting, not holding the lock
            condition.notify(1)
        assert first.recv() is True  # the live waiter got the notification ...
        assert first.join() == 0
        assert condition.statistics().waiters == 1  # ... and only it
        assert not second.conn.poll()
        with condition:
            condition.notify(1)
        assert second.recv() is True
        assert second.join() == 0
        assert condition.statistics().waiters == 0
    finally:
        condition.close()

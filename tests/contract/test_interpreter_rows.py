"""The interpreter model's rows other than the pool, between interpreters (Python 3.14+).

``INTERPRETER.Channel`` is :class:`InterpreterChannel`; its synchronization and shared-state
rows are the process classes. This suite checks each of them with peers that are *other
interpreters* of the test process (``concurrent.interpreters``), not threads of this one: a
peer is a fresh subinterpreter whose code (``_interpreter_peers.py``) is run with
``Interpreter.call``, the handles under test passed as arguments (pickled, attached there)::

    test (main interpreter)                     peer (subinterpreter, run by a thread here)
    ch = INTERPRETER.Channel()
    peer.start(recv_blocking, ch, ready) ────>  ready.set(); ch.recv(60) ... waits
    ready.wait(); ch.send(7) ───────────────>   returns ("item", 7)

A peer that must be waiting when the test acts sets an event just before it waits; no
assertion depends on it being asleep yet. Timeouts only turn a deadlock into a failure (60 s),
or are the timeout under test (short, on a call that must time out). Every test also checks
that it leaves no interpreter behind (conftest's leak check covers threads, fds and
``/dev/shm``). Before 3.14, only the errors that say what is needed are checked.
"""

from __future__ import annotations

import pickle
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import _interpreter_peers as peers
import pytest

import concurrency_kit as ck
from concurrency_kit import INTERPRETER, InterpreterChannel

DEADLOCK = peers.DEADLOCK

needs_interpreters = pytest.mark.skipif(
    sys.version_info < (3, 14), reason="subinterpreters (concurrent.interpreters) need Python 3.14+"
)

PROCESS_ROWS = [
    "Lock",
    "RLock",
    "Semaphore",
    "BoundedSemaphore",
    "Event",
    "Condition",
    "Barrier",
    "RWLock",
    "Guarded",
    "SharedDict",
    "SharedCounter",
    "SharedValue",
    "SharedArray",
]
"""The rows INTERPRETER takes from PROCESS (``INTERPRETER.X is ProcessX``)."""


class Running:
    """A peer's call running in a thread of this interpreter (it blocks while the peer runs)."""

    def __init__(self, interp: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self._outcome: list[tuple[str, Any]] = []
        self._thread = threading.Thread(target=self._run, args=(interp, fn, args))
        self._thread.start()

    def _run(self, interp: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self._outcome.append(("ok", interp.call(fn, *args)))
        except BaseException as exc:
            self._outcome.append(("raised", exc))

    def result(self) -> Any:
        self._thread.join(DEADLOCK)
        assert not self._thread.is_alive(), "the peer interpreter hung (deadlock?)"
        kind, value = self._outcome[0]
        if kind == "raised":
            raise value
        return value


class Peer:
    """A subinterpreter of this process, with this interpreter's ``sys.path`` (so it imports
    ``_interpreter_peers``), closed by the fixture."""

    def __init__(self) -> None:
        from concurrent import interpreters

        self.interp = interpreters.create()
        self.interp.exec(f"import sys\nsys.path[:] = {sys.path!r}")
        self.running: list[Running] = []
        self.closed = False

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` there, in this thread (an OS thread runs one interpreter at a time)."""
        return self.interp.call(fn, *args)

    def start(self, fn: Callable[..., Any], *args: Any) -> Running:
        """Run ``fn(*args)`` there, in a thread of its own; ``.result()`` waits for it."""
        running = Running(self.interp, fn, args)
        self.running.append(running)
        return running

    def close(self) -> None:
        """Wait for its calls, then close the interpreter (idempotent)."""
        if self.closed:
            return
        self.closed = True
        for running in self.running:
            running._thread.join(DEADLOCK)
        self.running.clear()  # their outcomes refer to the handles they were given
        self.interp.close()


@pytest.fixture
def peer_factory() -> Iterator[Callable[[], Peer]]:
    """Makes peers; closes them at teardown and fails the test if an interpreter is left."""
    from concurrent import interpreters

    before = {i.id for i in interpreters.list_all()}
    made: list[Peer] = []

    def make() -> Peer:
        made.append(Peer())
        return made[-1]

    try:
        yield make
    finally:
        for p in made:
            p.close()
        made.clear()
        left = {i.id for i in interpreters.list_all()} - before
        assert not left, f"interpreters left behind: {sorted(left)}"


@pytest.fixture
def peer(peer_factory: Callable[[], Peer]) -> Peer:
    return peer_factory()


@pytest.fixture
def closing() -> Iterator[Callable[[Any], Any]]:
    """``closing(handle)`` returns the handle and closes it at teardown."""
    made: list[Any] = []

    def keep(handle: Any) -> Any:
        made.append(handle)
        return handle

    yield keep
    for handle in reversed(made):
        handle.close()
    made.clear()  # a closed channel's resources go with its last handle


# -- the model, every Python -------------------------------------------------------------------


def test_the_model_has_every_row() -> None:
    assert isinstance(INTERPRETER, ck.InterpreterModel)
    assert isinstance(INTERPRETER, ck.PoolModel)
    assert not isinstance(INTERPRETER, ck.Model)
    assert repr(INTERPRETER) == "INTERPRETER"
    assert INTERPRETER.Pool is ck.InterpreterPool
    assert INTERPRETER.Channel is InterpreterChannel
    assert issubclass(InterpreterChannel, ck.ProcessChannel)
    assert INTERPRETER.Supervisor is ck.InterpreterSupervisor
    with pytest.raises(AttributeError, match="has no attribute 'Nonsense'"):
        INTERPRETER.Nonsense  # noqa: B018


@needs_interpreters
@pytest.mark.parametrize("row", PROCESS_ROWS)
def test_sync_and_state_rows_are_the_process_classes(row: str) -> None:
    assert getattr(INTERPRETER, row) is getattr(ck, f"Process{row}")


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="the error of Pythons before 3.14")
@pytest.mark.parametrize("row", PROCESS_ROWS)
def test_before_3_14_the_borrowed_rows_say_what_they_need(row: str) -> None:
    with pytest.raises(ImportError, match=rf"INTERPRETER\.{row} .*needs Python 3\.14 or newer"):
        getattr(INTERPRETER, row)


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="the error of Pythons before 3.14")
def test_before_3_14_the_channel_says_what_it_needs() -> None:
    with pytest.raises(ImportError, match=r"InterpreterChannel .*needs Python 3\.14 or newer"):
        InterpreterChannel()
    with pytest.raises(ImportError, match="use PROCESS or THREAD"):
        INTERPRETER.Channel(4)


# -- channels ------------------------------------------------------------------------------------


@needs_interpreters
def test_channel_bad_input_gives_clear_errors(closing: Callable[[Any], Any]) -> None:
    with pytest.raises(ValueError, match="capacity"):
        InterpreterChannel(-1)
    with pytest.raises(TypeError, match="capacity"):
        InterpreterChannel("8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shared_memory_size"):
        InterpreterChannel(shared_memory_size=10)
    ch = closing(InterpreterChannel(4))
    with pytest.raises(ck.SerializationError):
        ch.send(threading.Lock())  # cannot be pickled: the channel stays usable
    ch.send(1)
    assert ch.recv(timeout=DEADLOCK) == 1


@needs_interpreters
def test_a_handle_unpickles_as_an_interpreter_channel(
    peer: Peer, closing: Callable[[Any], Any]
) -> None:
    ch = closing(INTERPRETER.Channel(name="named"))
    assert repr(ch).startswith("<InterpreterChannel 'named' open")
    assert type(pickle.loads(pickle.dumps(ch))) is InterpreterChannel
    assert peer.call(peers.handle_types, ch) == ["InterpreterChannel"]
    assert peer.call(peers.where)[0] != peers.where()[0]  # really another interpreter


@needs_interpreters
@pytest.mark.parametrize("capacity", [0, 1, 64, None])
def test_items_flow_both_ways_between_interpreters(
    peer_factory: Callable[[], Peer], closing: Callable[[Any], Any], capacity: int | None
) -> None:
    items = [*range(200), b"x" * 100, b"y" * 200_000, "text", (1, [2, {3: 4}]), None]
    # main -> peer: the peer iterates until the channel is closed and drained
    to_peer = closing(InterpreterChannel(capacity))
    receiver = peer_factory().start(peers.drain, to_peer)
    for item in items:
        to_peer.send(item, timeout=DEADLOCK)
    to_peer.close()
    assert receiver.result() == items
    # peer -> main: the peer sends in a `with channel:` block, which closes it
    from_peer = closing(InterpreterChannel(capacity))
    sender = peer_factory().start(peers.send_all_and_close, from_peer, items)
    assert list(from_peer) == items
    assert sender.result() == len(items)
    assert from_peer.statistics().received == len(items)


@needs_interpreters
def test_two_interpreters_send_into_one_channel(
    peer_factory: Callable[[], Peer], closing: Callable[[Any], Any]
) -> None:
    ch = closing(InterpreterChannel(8))
    a = peer_factory().start(peers.send_many, ch, [("a", i) for i in range(300)])
    b = peer_factory().start(peers.send_many, ch, [("b", i) for i in range(300)])
    got = [ch.recv(timeout=DEADLOCK) for _ in range(600)]
    a.result()
    b.result()
    for who in "ab":  # each sender's items arrive in its order, none lost or repeated
        assert [i for w, i in got if w == who] == list(range(300))


@needs_interpreters
def test_a_waiting_receiver_in_another_interpreter_gets_the_item(
    peer: Peer, closing: Callable[[Any], Any]
) -> None:
    ch = closing(InterpreterChannel(4))
    ready = closing(ck.ProcessEvent())
    receiving = peer.start(peers.recv_blocking, ch, ready)
    assert ready.wait(DEADLOCK)
    ch.send({"k": 7})
    assert receiving.result() == ("item", {"k": 7})


@needs_interpreters
def test_close_releases_a_receiver_waiting_in_another_interpreter(
    peer: Peer, closing: Callable[[Any], Any]
) -> None:
    ch = closing(InterpreterChannel(4))
    ready = closing(ck.ProcessEvent())
    receiving = peer.start(peers.recv_blocking, ch, ready)
    assert ready.wait(DEADLOCK)
    ch.close()
    assert receiving.result() == ("raised", "ChannelClosed")


@needs_interpreters
@pytest.mark.parametrize("capacity", [0, 1])
def test_close_releases_a_sender_waiting_in_another_interpreter(
    peer: Peer, closing: Callable[[Any], Any], capacity: int
) -> None:
    # The peer waits in send (a full channel, or a rendezvous with no receiver); the
    # interpreter cannot be closed while it runs, so close() must release it.
    ch = closing(InterpreterChannel(capacity))
    if capacity:
        ch.send("fill")
    ready = closing(ck.ProcessEvent())
    sending = peer.start(peers.send_blocking, ch, "late", ready)
    assert ready.wait(DEADLOCK)
    ch.close()
    assert sending.result() == "ChannelClosed"
    peer.close()  # it has returned: the interpreter can be closed


@needs_interpreters
def test_a_producer_interpreter_that_fails_ends_the_consumer_here(
    peer: Peer, closing: Callable[[Any], Any]
) -> None:
    # The consumer iterates with no timeout: were the channel left open, this would hang
    # (and the suite's timeout would report a deadlock).
    from concurrent.interpreters import ExecutionFailed

    ch = closing(InterpreterChannel(2))
    producing = peer.start(peers.send_then_raise, ch, list(range(10)))
    assert list(ch) == list(range(10))
    with pytest.raises(ExecutionFailed, match="the producer failed"):
        producing.result()
    peer.close()  # it has returned: the interpreter can be closed


@needs_interpreters
def test_a_rendezvous_hands_over_between_interpreters(
    peer: Peer, closing: Callable[[Any], Any]
) -> None:
    ch = closing(InterpreterChannel(0))
    ready = closing(ck.ProcessEvent())
    sending = peer.start(peers.send_blocking, ch, "hand", ready)
    assert ready.wait(DEADLOCK)
    assert ch.recv(timeout=DEADLOCK) == "hand"
    assert sending.result() == "sent"


@needs_interpreters
def test_timeouts_and_nowait_inside_an_interpreter(
    peer: Peer, closing: Callable[[Any], Any]
) -> None:
    ch = closing(InterpreterChannel(1))
    assert peer.call(peers.timeouts, ch) == [
        "ChannelTimeout",
        "ChannelEmpty",
        "ChannelTimeout",
        "ChannelTimeout",
        "ChannelFull",
    ]
    assert ch.recv(timeout=DEADLOCK) == "fill"
    with pytest.raises(ck.ChannelTimeout):
        ch.recv(timeout=0.01)  # the peer returned without sending more: a timeout, no hang


@needs_interpreters
def test_async_send_waiting_in_an_interpreter_is_woken(
    peer: Peer, closing: Callable[[Any], Any]
) -> None:
    # An awaiting sender of a full channel is woken by the monitor's bell thread, which such
    # an interpreter only allows as a non-daemon thread.
    ch = closing(InterpreterChannel(1))
    ch.send("fill")
    ready = closing(ck.ProcessEvent())
    sending = peer.start(peers.asend_when_full, ch, "awaited", ready)
    assert ready.wait(DEADLOCK)
    assert ch.recv(timeout=DEADLOCK) == "fill"
    assert ch.recv(timeout=DEADLOCK) == "awaited"
    assert sending.result() == "sent"


@needs_interpreters
def test_async_receive_in_an_interpreter(peer: Peer, closing: Callable[[Any], Any]) -> None:
    ch = closing(InterpreterChannel(4))
    ready = closing(ck.ProcessEvent())
    receiving = peer.start(peers.arecv, ch, ready)
    assert ready.wait(DEADLOCK)
    ch.send(41)
    assert receiving.result() == 41


@needs_interpreters
def test_an_item_of_a_class_only_the_sender_knows_fails_clearly(
    peer: Peer, closing: Callable[[Any], Any]
) -> None:
    ch = closing(InterpreterChannel(4))
    peer.call(peers.send_unknown, ch)
    with pytest.raises(ck.SerializationError, match="OnlyHere"):
        ch.recv(timeout=DEADLOCK)
    ch.send("still usable")
    assert ch.recv(timeout=DEADLOCK) == "still usable"


@needs_interpreters
def test_a_channel_made_in_a_closed_interpreter_is_removed_and_drains(
    peer_factory: Callable[[], Peer],
) -> None:
    import os

    before = set(os.listdir("/dev/shm"))
    maker = peer_factory()
    blob = maker.call(peers.make_channel_and_send, [1, 2, 3])
    ch = pickle.loads(blob)
    try:
        assert set(os.listdir("/dev/shm")) - before  # the channel's segments
        maker.close()  # its handle is collected: the names go, the mapping here stays
        assert not set(os.listdir("/dev/shm")) - before
        assert ch.recv_many(10, timeout=DEADLOCK) == [1, 2, 3]
        with pytest.raises(FileNotFoundError, match=r"InterpreterChannel .*no longer exists"):
            pickle.loads(blob)
        ch.close()
        with pytest.raises(ck.ChannelClosed):
            ch.recv(timeout=DEADLOCK)
    finally:
        ch.close()


@needs_interpreters
def test_every_row_made_in_an_interpreter_is_removed_when_it_closes(
    peer_factory: Callable[[], Peer],
) -> None:
    import os

    before = set(os.listdir("/dev/shm"))
    maker = peer_factory()
    made = set(maker.call(peers.make_rows_and_drop)) - before
    assert len(made) >= 13
    maker.close()
    left = set(os.listdir("/dev/shm")) - before
    assert not left, f"segments left by the closed interpreter: {sorted(left)}"


@needs_interpreters
def test_a_channel_is_an_interpreter_pool_task_argument(closing: Callable[[Any], Any]) -> None:
    ch = closing(InterpreterChannel(capacity=None))
    with INTERPRETER.Pool(2) as pool:
        futures = [pool.submit(peers.send_many, ch, [(w, i) for i in range(50)]) for w in "ab"]
        for f in futures:
            f.result(DEADLOCK)
    got = ch.recv_many(100, timeout=DEADLOCK)
    assert sorted(got) == sorted((w, i) for w in "ab" for i in range(50))


# -- synchronization -----------------------------------------------------------------------------


@needs_interpreters
@pytest.mark.parametrize("row", ["Lock", "RLock"])
def test_a_lock_excludes_other_interpreters(
    peer_factory: Callable[[], Peer], closing: Callable[[Any], Any], row: str
) -> None:
    lock = closing(getattr(INTERPRETER, row)())
    held, release = closing(ck.ProcessEvent()), closing(ck.ProcessEvent())
    holder = peer_factory().start(peers.hold_then_release, lock, held, release)
    assert held.wait(DEADLOCK)
    assert not lock.acquire(False)  # this interpreter
    assert peer_factory().call(peers.try_acquire, lock) is False  # a third one
    release.set()
    assert holder.result() is True
    assert lock.acquire(timeout=DEADLOCK)
    lock.release()


@needs_interpreters
def test_mutual_exclusion_under_contention_from_three_interpreters(
    peer_factory: Callable[[], Peer], closing: Callable[[Any], Any]
) -> None:
    lock = closing(INTERPRETER.Lock())
    start = closing(INTERPRETER.Event())
    total = closing(INTERPRETER.SharedValue("q", 0))
    inside = closing(INTERPRETER.SharedCounter())
    rounds = 300
    workers = [
        peer_factory().start(peers.increment_under_lock, lock, start, total, inside, rounds)
        for _ in range(3)
    ]
    start.set()
    assert [w.result() for w in workers] == [1, 1, 1]
    assert total.get() == 3 * rounds


@needs_interpreters
def test_an_interpreter_that_raises_in_with_releases_the_lock(
    peer: Peer, closing: Callable[[Any], Any]
) -> None:
    from concurrent.interpreters import ExecutionFailed

    lock = closing(INTERPRETER.Lock())
    with pytest.raises(ExecutionFailed, match="raised while holding the lock"):
        peer.call(peers.raise_holding, lock)
    assert lock.acquire(False)
    lock.release()


@needs_interpreters
def test_ownership_is_the_os_thread_across_exec(peer: Peer, closing: Callable[[Any], Any]) -> None:
    # The thread that holds a lock and calls into another interpreter is the same OS thread
    # there: an RLock counts as held (re-entered), a Lock waits for itself (as in one
    # interpreter: here with a short timeout that must expire).
    rlock, lock = closing(INTERPRETER.RLock()), closing(INTERPRETER.Lock())
    assert peer.call(peers.where)[2] == peers.where()[2]
    with rlock:
        assert peer.call(peers.try_acquire, rlock) is True
    with lock:
        assert peer.call(peers.acquire_with_timeout, lock, 0.01) is False
    assert peer.call(peers.try_acquire, lock) is True
    cond = closing(INTERPRETER.Condition())
    with cond:  # held by this thread: the other interpreter may wait on it (a timeout expires)
        assert peer.call(peers.condition_wait_briefly, cond) is False
        assert cond.acquire(False)  # still held here afterwards (re-entrant), as before
        cond.release()
    assert peer.call(peers.try_acquire, cond) is True  # released: nothing left held


@needs_interpreters
def test_a_semaphore_bounds_holders_across_interpreters(
    peer_factory: Callable[[], Peer], closing: Callable[[Any], Any]
) -> None:
    sem = closing(INTERPRETER.BoundedSemaphore(2))
    start = closing(INTERPRETER.Event())
    inside = closing(INTERPRETER.SharedCounter())
    peak = closing(INTERPRETER.Guarded([0]))
    workers = [
        peer_factory().start(peers.in_semaphore, sem, start, inside, peak, 100) for _ in range(3)
    ]
    start.set()
    for w in workers:
        w.result()
    assert 1 <= peak.get()[0] <= 2
    assert inside.get() == 0
    with pytest.raises(ValueError, match="released too many times"):
        sem.release()  # bounded: released more than acquired


@needs_interpreters
def test_an_event_set_here_wakes_another_interpreter(
    peer: Peer, closing: Callable[[Any], Any]
) -> None:
    event, ready = closing(INTERPRETER.Event()), closing(INTERPRETER.Event())
    waiting = peer.start(peers.wait_event, event, ready)
    assert ready.wait(DEADLOCK)
    event.set()
    assert waiting.result() is True


@needs_interpreters
def test_a_barrier_across_interpreters(
    peer_factory: Callable[[], Peer], closing: Callable[[Any], Any]
) -> None:
    barrier = closing(INTERPRETER.Barrier(3))
    waiting = [peer_factory().start(peers.barrier_wait, barrier) for _ in range(2)]
    mine = barrier.wait(DEADLOCK)
    assert sorted([mine, *(w.result() for w in waiting)]) == [0, 1, 2]


@needs_interpreters
def test_a_condition_notified_from_another_interpreter(
    peer: Peer, closing: Callable[[Any], Any]
) -> None:
    cond = closing(INTERPRETER.Condition())
    value, ready = closing(INTERPRETER.SharedCounter()), closing(INTERPRETER.Event())
    waiting = peer.start(peers.condition_wait_for, cond, value, ready)
    assert ready.wait(DEADLOCK)
    with cond:  # the peer waits inside wait_for (it released the lock), or has not begun yet
        value.add(5)
        cond.notify_all()
    assert waiting.result() == 5


@needs_interpreters
def test_a_writer_in_another_interpreter_keeps_readers_out(
    peer: Peer, closing: Callable[[Any], Any]
) -> None:
    rw = closing(INTERPRETER.RWLock())
    held, release = closing(INTERPRETER.Event()), closing(INTERPRETER.Event())
    writing = peer.start(peers.write_then_release, rw, held, release)
    assert held.wait(DEADLOCK)
    assert peers.read_nowait(rw) is False
    release.set()
    writing.result()
    assert peers.read_nowait(rw) is True


@needs_interpreters
def test_guarded_updates_from_other_interpreters(
    peer_factory: Callable[[], Peer], closing: Callable[[Any], Any]
) -> None:
    guarded = closing(INTERPRETER.Guarded([]))
    for n in range(3):
        peer_factory().call(peers.guarded_append, guarded, n)
    assert guarded.get() == [0, 1, 2]


# -- shared state -------------------------------------------------------------------------------


@needs_interpreters
def test_shared_state_updated_from_several_interpreters(
    peer_factory: Callable[[], Peer], closing: Callable[[Any], Any]
) -> None:
    import os

    start = closing(INTERPRETER.Event())
    counter = closing(INTERPRETER.SharedCounter())
    shared = closing(INTERPRETER.SharedDict())
    value = closing(INTERPRETER.SharedValue("d", -1.0))
    array = closing(INTERPRETER.SharedArray("i", 3))
    rounds = 500
    workers = [
        peer_factory().start(peers.update_state, start, counter, shared, value, array, i, rounds)
        for i in range(3)
    ]
    start.set()
    for w in workers:
        w.result()
    assert counter.get() == 3 * rounds  # add is atomic: no update lost
    assert dict(shared) == {f"from-{i}": [i, os.getpid()] for i in range(3)}
    assert list(array) == [1, 2, 3]
    assert value.get() in (0.0, 1.0, 2.0)

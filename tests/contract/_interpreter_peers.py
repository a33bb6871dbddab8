"""What the interpreter peers of ``test_interpreter_rows.py`` run, inside a subinterpreter.

Each function is called with ``Interpreter.call`` in another interpreter of the test process:
it is pickled by reference (so this module is imported there: it imports only the standard
library and concurrency_kit, both importable in a subinterpreter) and its arguments, the
channels, locks and containers under test, are pickled handles that attach there. A peer
reports what it saw as its return value; an exception it expects is returned by name, so the
test asserts on it plainly.

A peer that must be blocked when the test acts sets a ``ready`` event just before it blocks:
the test waits for the event, never for a time (no assertion depends on the peer being asleep
already).
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

DEADLOCK = 60.0
"""Seconds after which a wait that should have ended is a deadlock (a failure, not a pass)."""


def where() -> tuple[int, int, int]:
    """This interpreter's id, the process id, the OS thread id."""
    from concurrent import interpreters

    return interpreters.get_current().id, os.getpid(), threading.get_native_id()


def handle_types(*handles: Any) -> list[str]:
    return [type(h).__name__ for h in handles]


# -- channels -----------------------------------------------------------------------------------


def drain(channel: Any) -> list[Any]:
    """Every item until the channel is closed and empty (``for item in channel``)."""
    return list(channel)


def send_all_and_close(channel: Any, items: list[Any]) -> int:
    with channel:  # closes it at the end of the block, for every interpreter
        for item in items:
            channel.send(item, timeout=DEADLOCK)
    return len(items)


def send_then_raise(channel: Any, items: list[Any]) -> None:
    """Send ``items`` in a ``with channel:`` block, then fail: the block still closes it."""
    with channel:
        for item in items:
            channel.send(item, timeout=DEADLOCK)
        raise RuntimeError("the producer failed")


def send_many(channel: Any, items: list[Any]) -> None:
    channel.send_many(items, timeout=DEADLOCK)


def recv_blocking(channel: Any, ready: Any) -> tuple[str, Any]:
    """Wait in ``recv``; the item, or the name of the exception it raised."""
    ready.set()
    try:
        return "item", channel.recv(timeout=DEADLOCK)
    except Exception as exc:
        return "raised", type(exc).__name__


def send_blocking(channel: Any, item: Any, ready: Any) -> str:
    """Wait in ``send`` (a full channel or a rendezvous): "sent", or the exception's name."""
    ready.set()
    try:
        channel.send(item, timeout=DEADLOCK)
    except Exception as exc:
        return type(exc).__name__
    return "sent"


def timeouts(channel: Any) -> list[str]:
    """What each call raises on the empty channel (then full, after one send of capacity 1)."""
    seen = []
    for call in (
        lambda: channel.recv(timeout=0.01),
        lambda: channel.recv_nowait(),
        lambda: channel.recv_many(4, timeout=0.01),
    ):
        try:
            call()
            seen.append("returned")
        except Exception as exc:
            seen.append(type(exc).__name__)
    channel.send("fill", timeout=DEADLOCK)
    for call in (lambda: channel.send("x", timeout=0.01), lambda: channel.send_nowait("x")):
        try:
            call()
            seen.append("returned")
        except Exception as exc:
            seen.append(type(exc).__name__)
    return seen


def asend_when_full(channel: Any, item: Any, ready: Any) -> str:
    """Await ``asend`` on a full channel: its wake-up comes through the monitor's bell thread,
    which must start in an interpreter that refuses daemon threads."""

    async def main() -> None:
        ready.set()
        await asyncio.wait_for(channel.asend(item), DEADLOCK)

    asyncio.run(main())
    return "sent"


def arecv(channel: Any, ready: Any) -> Any:
    async def main() -> Any:
        ready.set()
        return await asyncio.wait_for(channel.arecv(), DEADLOCK)

    return asyncio.run(main())


def make_channel_and_send(items: list[Any]) -> bytes:
    """Create a channel *in this interpreter*, send items, return a pickled handle; the channel
    is left open and this interpreter's handle is dropped when the interpreter closes."""
    import pickle

    from concurrency_kit import InterpreterChannel

    channel: Any = InterpreterChannel(capacity=None)
    channel.send_many(items)
    globals()["_kept"] = channel  # lives until the interpreter is closed
    return pickle.dumps(channel)


def make_rows_and_drop() -> list[str]:
    """Create one of each row in this interpreter and leave them unclosed: the interpreter's
    teardown must remove their segments."""
    from concurrency_kit import INTERPRETER

    kept = [
        INTERPRETER.Channel(),
        INTERPRETER.Lock(),
        INTERPRETER.RLock(),
        INTERPRETER.Semaphore(2),
        INTERPRETER.Event(),
        INTERPRETER.Condition(),
        INTERPRETER.Barrier(2),
        INTERPRETER.RWLock(),
        INTERPRETER.Guarded([1]),
        INTERPRETER.SharedDict(),
        INTERPRETER.SharedCounter(),
        INTERPRETER.SharedValue("d"),
        INTERPRETER.SharedArray("i", 4),
    ]
    kept[0].send(1)
    kept[9]["k"] = "v"
    globals()["_kept"] = kept
    return sorted(name for name in os.listdir("/dev/shm") if name.startswith(f"ck_{os.getpid()}_"))


class MainOnly:
    """A class only this module's interpreter knows under ``__main__``: see send_unknown."""


def send_unknown(channel: Any) -> None:
    """Send an instance of a class defined in this interpreter's ``__main__``."""
    import __main__

    cls = type("OnlyHere", (), {"__module__": "__main__"})
    __main__.OnlyHere = cls  # type: ignore[attr-defined]
    channel.send(cls(), timeout=DEADLOCK)


# -- synchronization ----------------------------------------------------------------------------


def hold_then_release(lock: Any, held: Any, release: Any) -> bool:
    """Hold ``lock`` until ``release`` is set (``held`` is set once it is held)."""
    with lock:
        held.set()
        return bool(release.wait(DEADLOCK))


def try_acquire(lock: Any) -> bool:
    """``acquire(blocking=False)``, released again if it succeeded."""
    got = bool(lock.acquire(False))
    if got:
        lock.release()
    return got


def acquire_with_timeout(lock: Any, timeout: float) -> bool:
    got = bool(lock.acquire(timeout=timeout))
    if got:
        lock.release()
    return got


def condition_wait_briefly(cond: Any) -> bool:
    """``cond.wait(0.01)`` without taking the condition's lock first: allowed only if this
    thread holds it already (it does, when the caller held it before ``Interpreter.call``)."""
    return bool(cond.wait(0.01))


def raise_holding(lock: Any) -> None:
    with lock:
        raise ValueError("raised while holding the lock")


def increment_under_lock(lock: Any, start: Any, total: Any, inside: Any, rounds: int) -> int:
    """``rounds`` read-modify-writes of ``total`` under ``lock``; returns the most holders seen
    inside at once (1 if the lock excludes)."""
    start.wait(DEADLOCK)
    most = 0
    for _ in range(rounds):
        with lock:
            most = max(most, inside.add(1))
            total.set(total.get() + 1)  # not atomic: only the lock keeps it exact
            inside.add(-1)
    return most


def in_semaphore(sem: Any, start: Any, inside: Any, peak: Any, rounds: int) -> None:
    """Enter the semaphore ``rounds`` times, recording the most holders at once in ``peak``."""
    start.wait(DEADLOCK)
    for _ in range(rounds):
        with sem:
            now = inside.add(1)
            with peak.lock() as value:
                if now > value[0]:
                    value[0] = now
            inside.add(-1)


def wait_event(event: Any, ready: Any) -> bool:
    ready.set()
    return bool(event.wait(DEADLOCK))


def barrier_wait(barrier: Any) -> int:
    return int(barrier.wait(DEADLOCK))


def condition_wait_for(cond: Any, value: Any, ready: Any) -> int:
    """Wait under ``cond`` until the shared value is positive; return it."""
    with cond:
        ready.set()
        assert cond.wait_for(lambda: value.get() > 0, DEADLOCK)
        return int(value.get())


def write_then_release(rw: Any, held: Any, release: Any) -> None:
    with rw.write():
        held.set()
        release.wait(DEADLOCK)


def read_nowait(rw: Any) -> bool:
    got = bool(rw.acquire_read(timeout=0))
    if got:
        rw.release_read()
    return got


def guarded_append(guarded: Any, item: Any) -> None:
    with guarded.lock() as value:
        value.append(item)


# -- shared state -------------------------------------------------------------------------------


def update_state(
    start: Any, counter: Any, shared: Any, value: Any, array: Any, index: int, rounds: int
) -> None:
    """Updates from one interpreter: its key in the dict, ``rounds`` counts, its array slot."""
    start.wait(DEADLOCK)
    for _ in range(rounds):
        counter.add(1)
    shared[f"from-{index}"] = [index, os.getpid()]
    array[index] = index + 1
    value.set(float(index))

"""Synchronization: the cost of a lock within threads vs across processes.

The row's figure is the *uncontended* cost: one acquire+release of a
:class:`~concurrency_kit.ThreadLock` and of a :class:`~concurrency_kit.ProcessLock` in the
calling thread, in batches interleaved between the two, which is what most lock operations
cost. The claim is taken as "a process lock costs clearly more" (by :data:`BAND`): it holds
when the thread lock is that much cheaper, and it does not hold when the two are within that
factor of each other. A ProcessLock is a robust pthread mutex in shared memory: when it is
free it is taken in user space, as a thread lock is, and the kernel (a futex) is entered only
to sleep while another holder keeps it.

The *contended* cost is in the details: two pool workers (two threads of a
:class:`~concurrency_kit.ThreadPool`, or two processes of a
:class:`~concurrency_kit.ProcessPool`) meet at a barrier, then each acquires and releases one
shared lock :data:`CYCLES` times; the figure is the wall time from the first worker's start to
the last worker's end divided by all the acquire+release pairs made. Two threads of one
interpreter also contend for the GIL, and a thread that releases a lock usually keeps running
(and takes the lock again) until its switch interval (5 ms) is up, so the threads rarely hand
the lock over; two processes on two cores really contend, and how much depends on how much
their runs overlap, which other load changes: too unsteady for a verdict.

On Python 3.14+ interpreters are measured the same way: ``INTERPRETER.Lock`` is the lock in
shared memory (interpreters share no Python object, so a ``threading.Lock`` cannot reach
another one), taken uncontended here and contended by two
:class:`~concurrency_kit.InterpreterPool` workers, each with a GIL of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from concurrency_kit.compare._measure import (
    Comparison,
    Figure,
    Measurement,
    Mode,
    Spread,
    interleave,
)
from concurrency_kit.compare.probes._shared import cheaper, interpreters_missing
from concurrency_kit.models import INTERPRETER, PROCESS, THREAD

__all__ = ["BAND", "CYCLES", "contend", "probe"]

BAND = 1.5
"""A process lock must cost this many times a thread lock for the claim to hold."""

CYCLES: dict[Mode, int] = {"quick": 50_000, "full": 100_000}
"""Acquire+release pairs per worker in one contended sample."""

ROUNDS: dict[Mode, int] = {"quick": 5, "full": 9}
"""Interleaved contended samples per model (after a warm-up one)."""

UNCONTENDED: dict[Mode, int] = {"quick": 2_000, "full": 2_000}
"""Acquire+release pairs per uncontended sample: a fraction of a millisecond, so that a
preemption by other load spoils few samples rather than inflating every one."""

UNCONTENDED_ROUNDS: dict[Mode, int] = {"quick": 41, "full": 101}
"""Interleaved uncontended samples per lock."""


def contend(lock: Any, barrier: Any, cycles: int) -> tuple[float, float]:
    """Wait for the other worker, then take and release ``lock`` ``cycles`` times.

    Returns the ``time.perf_counter()`` readings at the start and at the end (the system's
    monotonic clock on Linux, so readings from two processes compare).
    """
    barrier.wait(30.0)
    start = time.perf_counter()
    for _ in range(cycles):
        lock.acquire()
        lock.release()
    return start, time.perf_counter()


def _contended(pool: Any, lock: Any, barrier: Any, cycles: int) -> float:
    """Seconds per acquire+release with two workers of ``pool`` contending for ``lock``."""
    futures = [pool.submit(contend, lock, barrier, cycles) for _ in range(2)]
    spans: list[tuple[float, float]] = [f.result(60.0) for f in futures]
    elapsed = max(end for _, end in spans) - min(start for start, _ in spans)
    return elapsed / (2 * cycles)


def _uncontended(lock: Any, cycles: int) -> float:
    """Seconds per acquire+release of a lock nobody else wants."""
    start = time.perf_counter()
    for _ in range(cycles):
        lock.acquire()
        lock.release()
    return (time.perf_counter() - start) / cycles


def probe(mode: Mode) -> Measurement:
    """Uncontended lock cost (the figure) and contended cost, threads vs processes (and
    interpreters on Python 3.14+)."""
    cycles = CYCLES[mode]
    missing = interpreters_missing()
    models: dict[str, Any] = {"thread": THREAD, "process": PROCESS}
    if not missing:
        models["interpreter"] = INTERPRETER
    with ExitStack() as stack:
        locks = {name: model.Lock() for name, model in models.items()}
        for lock in locks.values():
            stack.callback(lock.close)

        def alone_sampler(name: str) -> Callable[[], float]:
            return lambda: _uncontended(locks[name], UNCONTENDED[mode])

        alone = interleave({name: alone_sampler(name) for name in models}, UNCONTENDED_ROUNDS[mode])
    with ExitStack() as stack:
        setups = {}
        for name, model in models.items():
            lock, barrier = model.Lock(), model.Barrier(2)
            stack.callback(lock.close)
            stack.callback(barrier.close)
            setups[name] = (stack.enter_context(model.Pool(2)), lock, barrier)

        def contended_sampler(name: str) -> Callable[[], float]:
            pool, lock, barrier = setups[name]
            return lambda: _contended(pool, lock, barrier, cycles)

        found = interleave({name: contended_sampler(name) for name in models}, ROUNDS[mode])
    t_spread = Spread.of(alone["thread"]).scaled(1e9)
    p_spread = Spread.of(alone["process"]).scaled(1e9)
    t_un, p_un = t_spread.median, p_spread.median
    t = Spread.of(found["thread"]).median * 1e9
    p = Spread.of(found["process"]).median * 1e9
    finding = (
        f"an uncontended acquire+release costs {t_un:.0f} ns for a ThreadLock and {p_un:.0f} ns "
        f"for a ProcessLock ({cheaper(t_un, p_un)}); with two workers contending, {t:.0f} ns "
        f"between threads and {p:.0f} ns between processes ({cheaper(t, p)})"
    )
    i_spread = Spread.of(alone["interpreter"]).scaled(1e9) if "interpreter" in alone else None
    interpreter_details = {}
    if i_spread is not None:
        i_contended = Spread.of(found["interpreter"]).median * 1e9
        finding += (
            f"; interpreters use the shared-memory lock: {i_spread.median:.0f} ns uncontended, "
            f"{i_contended:.0f} ns with two interpreters contending"
        )
        interpreter_details = {
            "uncontended, INTERPRETER.Lock": f"{i_spread.median:.0f} ns per acquire+release",
            "contended, interpreters": f"{i_contended:.0f} ns per acquire+release",
        }
    return Measurement(
        key="synchronization",
        process=Figure(p_un, "ns", "acquire+release, uncontended, ProcessLock"),
        thread=Figure(t_un, "ns", "acquire+release, uncontended, ThreadLock"),
        better="lower",
        holds=p_un >= BAND * t_un,
        finding=finding,
        comparisons=(
            Comparison(
                "uncontended acquire+release",
                "ns",
                p_spread,
                t_spread,
                "lower",
                "thread",
                band=BAND,
                advantage=Spread.of(
                    [p_ / t_ for p_, t_ in zip(alone["process"], alone["thread"], strict=True)]
                ),
            ),
        ),
        explanation=(
            "a ProcessLock is a mutex in shared memory that, when free, is taken in user space "
            "without the kernel, just as a ThreadLock is; the kernel is entered only to sleep "
            "while another process holds it"
        ),
        details={
            "uncontended, ThreadLock": f"{t_un:.0f} ns per acquire+release",
            "uncontended, ProcessLock": f"{p_un:.0f} ns per acquire+release",
            "contended, threads": f"{t:.0f} ns per acquire+release",
            "contended, processes": f"{p:.0f} ns per acquire+release",
            "samples": (
                f"{UNCONTENDED_ROUNDS[mode]} interleaved batches of {UNCONTENDED[mode]} "
                "uncontended pairs per lock, after a warm-up one; "
                f"{ROUNDS[mode]} interleaved samples of 2 workers x {cycles} cycles contended, "
                "per model"
            ),
            **interpreter_details,
        },
        interpreter=None
        if i_spread is None
        else Figure(i_spread.median, "ns", "acquire+release, uncontended, INTERPRETER.Lock"),
        interpreter_spread=i_spread,
        interpreter_missing=missing,
    )

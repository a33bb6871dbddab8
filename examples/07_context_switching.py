"""Context switching: a ping-pong hand-off between two threads, then between two processes.

The main program and one pool worker pass the turn back and forth as fast as they can; each
round trip is two hand-offs. The code is written once against a Model and run for both, with
two mechanisms:

* a pair of channels: the main program sends on ``ping``, the worker echoes on ``pong``;
* a pair of events: each side sets the other's event and waits on its own.

Both models' set-ups stay up while batches of round trips alternate between them (threads,
processes, processes, threads, ...), after a warm-up batch each, so that other load on the
machine lands on both; each figure is the median batch, with the interquartile range.

What this measures is the whole hand-off, not only the CPU's switch: waking the other side,
and, for threads, passing the GIL. A ``ProcessChannel`` receiver keeps looking for up to about
20 us before it sleeps, so with a free core for each process neither side sleeps and the
process ping-pong can beat the thread one, against the classic table; events put the waiter to
sleep in the kernel at every hand-off, in both models, and show the cost of a real switch.
``python -m concurrency_kit compare --rows context_switching`` measures the same, per hand-off
(half the round trips printed here), with a verdict that says "inconclusive" when the machine
is too busy to tell.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from concurrency_kit import PROCESS, THREAD, Model

ROUND_TRIPS = {"channels": 2_000, "events": 1_000}
BATCHES = 7


def echo(ping: Any, pong: Any) -> None:
    """Send back every item received on ``ping``, until ``ping`` is closed."""
    for item in ping:
        pong.send(item)


def bounce(mine: Any, theirs: Any, count: int) -> None:
    """Wait for our event, clear it, set theirs: ``count`` times."""
    for _ in range(count):
        mine.wait()
        mine.clear()
        theirs.set()


@contextmanager
def channels(model: Model, count: int) -> Iterator[Callable[[], float]]:
    """A running echo worker; yields a function that times ``count`` round trips (us each)."""
    with ExitStack() as stack:
        ping = stack.enter_context(model.Channel(1))
        pong = stack.enter_context(model.Channel(1))
        pool = stack.enter_context(model.Pool(1))
        echoer = pool.submit(echo, ping, pong)
        ping.send(-1)
        pong.recv()  # the worker is running

        def batch() -> float:
            start = time.perf_counter()
            for i in range(count):
                ping.send(i)
                if pong.recv() != i:
                    raise AssertionError("an item came back out of order")
            return (time.perf_counter() - start) / count * 1e6

        try:
            yield batch
        finally:
            ping.close()  # ends the worker's loop
            echoer.result()


@contextmanager
def events(model: Model, count: int) -> Iterator[Callable[[], float]]:
    """A warm worker and two events; yields a function that times ``count`` round trips."""
    with ExitStack() as stack:
        ours, theirs = model.Event(), model.Event()
        stack.callback(ours.close)
        stack.callback(theirs.close)
        pool = stack.enter_context(model.Pool(1))
        pool.submit(abs, 0).result()  # the worker is running

        def batch() -> float:
            bouncer = pool.submit(bounce, theirs, ours, count)
            start = time.perf_counter()
            for _ in range(count):
                theirs.set()
                ours.wait()
                ours.clear()
            elapsed = time.perf_counter() - start
            bouncer.result()
            return elapsed / count * 1e6

        yield batch


def summary(samples: list[float]) -> tuple[float, float, float]:
    """Median and interquartile range."""
    q1, median, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return median, q1, q3


def main() -> None:
    load, cores = os.getloadavg()[0], len(os.sched_getaffinity(0))
    print(f"load average {load:.1f} on {cores} usable cores", end="")
    if load > cores / 2:
        print(": busy, so processes may find no free core to spin on; rerun when quiet")
    else:
        print()
    print(f"ping-pong: us per round trip (two hand-offs), median of {BATCHES} batches [IQR]")
    print(f"{'mechanism':<11}{'threads':>22}{'processes':>22}")
    for name, setup in (("channels", channels), ("events", events)):
        count = ROUND_TRIPS[name]
        with setup(THREAD, count) as by_thread, setup(PROCESS, count) as by_process:
            by_thread(), by_process()  # warm-up batches, not counted
            found: dict[str, list[float]] = {"threads": [], "processes": []}
            for index in range(BATCHES):  # alternate, so that other load hits both
                order = [("threads", by_thread), ("processes", by_process)]
                for model, batch in order if index % 2 == 0 else reversed(order):
                    found[model].append(batch())
        t, t_lo, t_hi = summary(found["threads"])
        p, p_lo, p_hi = summary(found["processes"])
        print(f"{name:<11}{t:>9.1f} [{t_lo:5.1f}-{t_hi:5.1f}]{p:>9.1f} [{p_lo:5.1f}-{p_hi:5.1f}]")
        if t_hi < p_lo or p_hi < t_lo:
            faster = "threads" if t < p else "processes"
            print(f"{'':<11}{faster} hand off {max(t, p) / min(t, p):.1f}x as fast")
        else:
            print(f"{'':<11}no clear difference: the ranges overlap")
    print(
        "channels: a ProcessChannel receiver looks again for ~20 us before it sleeps, so with a\n"
        "free core each, processes need not sleep, while a thread hand-off waits for the GIL;\n"
        "events: both models sleep in the kernel at every hand-off."
    )


if __name__ == "__main__":
    main()

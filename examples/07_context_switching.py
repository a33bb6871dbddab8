"""Context switching: a ping-pong hand-off between two threads, then between two processes.

The main program and one pool worker pass the turn back and forth as fast as they can; each
round trip is two hand-offs, and the round trips per second measure what a hand-off costs.
The code is written once against a Model and run twice, with two mechanisms:

* a pair of channels: the main program sends on ``ping``, the worker echoes on ``pong``;
* a pair of events: each side sets the other's event and waits on its own.

What this measures is the whole hand-off, not only the CPU's switch: waking the other side,
and, for threads, passing the GIL. Read the numbers with that in mind. A ``ProcessChannel``
receiver polls briefly before it sleeps, so with a free core for each process neither side
ever sleeps, and the process ping-pong can beat the thread one; events put the waiter to
sleep in the kernel on every hand-off, in both models.
"""

from __future__ import annotations

import time
from typing import Any

from concurrency_kit import PROCESS, THREAD, Model

ROUND_TRIPS = {"channels": 5_000, "events": 2_000}


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


def channels(model: Model, count: int) -> float:
    """Round trips per second through a pair of channels."""
    with model.Channel(1) as ping, model.Channel(1) as pong, model.Pool(1) as pool:
        echoer = pool.submit(echo, ping, pong)
        ping.send(-1)
        pong.recv()  # the worker is running: start the clock
        start = time.perf_counter()
        for i in range(count):
            ping.send(i)
            if pong.recv() != i:
                raise AssertionError("an item came back out of order")
        elapsed = time.perf_counter() - start
        ping.close()  # ends the worker's loop
        echoer.result()
    return count / elapsed


def events(model: Model, count: int) -> float:
    """Round trips per second through a pair of events."""
    ours, theirs = model.Event(), model.Event()
    try:
        with model.Pool(1) as pool:
            pool.submit(abs, 0).result()  # the worker is running
            bouncer = pool.submit(bounce, theirs, ours, count)
            start = time.perf_counter()
            for _ in range(count):
                theirs.set()
                ours.wait()
                ours.clear()
            elapsed = time.perf_counter() - start
            bouncer.result()
    finally:
        ours.close()
        theirs.close()
    return count / elapsed


def main() -> None:
    print("ping-pong round trips per second (two hand-offs each); more is cheaper")
    print(f"{'mechanism':<11}{'threads':>11}{'processes':>11}   µs per round trip (T / P)")
    for name, measure in (("channels", channels), ("events", events)):
        count = ROUND_TRIPS[name]
        rates = {model: measure(model, count) for model in (THREAD, PROCESS)}
        t, p = rates[THREAD], rates[PROCESS]
        print(f"{name:<11}{t:>11,.0f}{p:>11,.0f}   {1e6 / t:.1f} / {1e6 / p:.1f}")
        faster = "threads" if t > p else "processes"
        print(f"{'':<11}{faster} hand off {max(t, p) / min(t, p):.1f}x as fast with {name}")


if __name__ == "__main__":
    main()

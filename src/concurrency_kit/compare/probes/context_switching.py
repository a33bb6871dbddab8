"""Context switching: ping-pong hand-off latency between two threads, and between two processes.

The parent and one pool worker pass the turn back and forth; a round trip is two hand-offs,
and the figure is the median time per hand-off. Written once against a
:class:`~concurrency_kit.Model`, run for both, with two mechanisms:

* a pair of channels (:class:`~concurrency_kit.ThreadChannel` /
  :class:`~concurrency_kit.ProcessChannel`): the parent sends on ``ping``, the worker echoes on
  ``pong`` — the row's figure;
* a pair of events (:class:`~concurrency_kit.ThreadEvent` /
  :class:`~concurrency_kit.ProcessEvent`): each side sets the other's and waits on its own
  (details).

This is the whole hand-off, not only the CPU's switch: waking the other side and, for threads,
passing the GIL. A thread hand-off needs the GIL to change hands; a ``ProcessChannel``
receiver polls briefly before it sleeps, so with a core for each process neither side sleeps,
and the processes can hand off faster than the threads.
"""

from __future__ import annotations

import time
from typing import Any

from concurrency_kit.compare._measure import Figure, Measurement, Mode, median_of, verdict_for
from concurrency_kit.compare.probes._shared import cheaper, echo
from concurrency_kit.models import PROCESS, THREAD, Model

__all__ = ["probe"]

ROUND_TRIPS: dict[Mode, dict[str, int]] = {
    "quick": {"channels": 1_000, "events": 300, "batches": 3},
    "full": {"channels": 5_000, "events": 2_000, "batches": 5},
}


def bounce(mine: Any, theirs: Any, count: int) -> None:
    """Wait for our event, clear it, set theirs: ``count`` times."""
    for _ in range(count):
        mine.wait()
        mine.clear()
        theirs.set()


def _channels(model: Model, count: int, batches: int) -> list[float]:
    """Seconds per hand-off through a pair of channels, one sample per batch."""
    samples = []
    with model.Channel(1) as ping, model.Channel(1) as pong, model.Pool(1) as pool:
        echoer = pool.submit(echo, ping, pong)
        try:
            ping.send(-1)
            pong.recv(timeout=30.0)  # the worker is running: start the clock
            for _ in range(batches):
                start = time.perf_counter()
                for i in range(count):
                    ping.send(i)
                    if pong.recv(timeout=30.0) != i:
                        raise AssertionError("an item came back out of order")
                samples.append((time.perf_counter() - start) / (2 * count))
        finally:
            ping.close()  # ends the worker's loop
            echoer.result(30.0)
    return samples


def _events(model: Model, count: int, batches: int) -> list[float]:
    """Seconds per hand-off through a pair of events, one sample per batch."""
    samples = []
    ours, theirs = model.Event(), model.Event()
    try:
        with model.Pool(1) as pool:
            pool.submit(abs, 0).result(30.0)  # the worker is running
            for _ in range(batches):
                bouncer = pool.submit(bounce, theirs, ours, count)
                start = time.perf_counter()
                for _ in range(count):
                    theirs.set()
                    if not ours.wait(30.0):
                        raise TimeoutError("the other side did not hand the turn back")
                    ours.clear()
                samples.append((time.perf_counter() - start) / (2 * count))
                bouncer.result(30.0)
    finally:
        ours.close()
        theirs.close()
    return samples


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} us"


def probe(mode: Mode) -> Measurement:
    """Median time per ping-pong hand-off, threads vs processes, channels and events."""
    counts = ROUND_TRIPS[mode]
    batches = counts["batches"]
    found: dict[tuple[str, str], float] = {}
    for mechanism, measure in (("channels", _channels), ("events", _events)):
        for model in (THREAD, PROCESS):
            found[mechanism, model.name] = median_of(measure(model, counts[mechanism], batches))
    t, p = found["channels", THREAD.name], found["channels", PROCESS.name]
    t_ev, p_ev = found["events", THREAD.name], found["events", PROCESS.name]
    holds = t < p

    finding = (
        f"a hand-off through channels takes {_us(t)} between threads and {_us(p)} between "
        f"processes ({cheaper(t, p)}); through events {_us(t_ev)} vs {_us(p_ev)} "
        f"({cheaper(t_ev, p_ev)})"
    )
    if not holds:
        finding += (
            "; a thread hand-off must also pass the GIL, while each process has its own "
            "interpreter and, with a core each, can spin instead of sleeping"
        )
    return Measurement(
        key="context_switching",
        process=Figure(p * 1e6, "us", "ping-pong hand-off, ProcessChannel pair"),
        thread=Figure(t * 1e6, "us", "ping-pong hand-off, ThreadChannel pair"),
        better="lower",
        holds=holds,
        verdict=verdict_for(holds, finding),
        details={
            "channels, threads": f"{_us(t)} per hand-off ({cheaper(t, p)})",
            "channels, processes": f"{_us(p)} per hand-off",
            "events, threads": f"{_us(t_ev)} per hand-off ({cheaper(t_ev, p_ev)})",
            "events, processes": f"{_us(p_ev)} per hand-off",
            "samples": (
                f"median of {batches} batches of {counts['channels']} (channels) and "
                f"{counts['events']} (events) round trips"
            ),
        },
    )

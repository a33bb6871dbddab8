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
receiver looks again for up to about 20 us before it sleeps, so with a core for each process
neither side sleeps, and the processes can hand off faster than the threads. The events, on
which both models sleep in the kernel at every hand-off, are the check: there the two models
are close.

On Python 3.14+ the interpreter model runs the same hand-offs (an
:class:`~concurrency_kit.InterpreterChannel` pair and a pair of its events, with an
:class:`~concurrency_kit.InterpreterPool` worker): threads of one process, but each interpreter
holds a GIL of its own, so no hand-off waits for the other side's GIL.

All models' setups stay up for the whole probe and their batches run interleaved, after a
warm-up batch each; the figure is the median batch and its spread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from concurrency_kit.compare._measure import (
    Comparison,
    Figure,
    Measurement,
    Mode,
    Spread,
    interleave,
)
from concurrency_kit.compare.probes._shared import cheaper, echo, interpreters_missing
from concurrency_kit.models import INTERPRETER, PROCESS, THREAD

__all__ = ["EXPLANATION", "probe"]

ROUND_TRIPS: dict[Mode, dict[str, int]] = {
    "quick": {"channels": 500, "events": 200, "batches": 7},
    "full": {"channels": 2_000, "events": 1_000, "batches": 15},
}

EXPLANATION = (
    "a ProcessChannel receiver keeps looking for up to about 20 us before it sleeps, so with a "
    "free core each neither process sleeps, while every thread hand-off waits for the GIL to "
    "change hands; the events (details), where both models sleep in the kernel at every "
    "hand-off, show the cost of a real switch"
)
"""Why the processes can win here, in one sentence a reader can check against the details."""


def bounce(mine: Any, theirs: Any, count: int) -> None:
    """Wait for our event, clear it, set theirs: ``count`` times."""
    for _ in range(count):
        mine.wait()
        mine.clear()
        theirs.set()


@contextmanager
def _channels(model: Any, count: int) -> Iterator[Callable[[], float]]:
    """A running echo worker; yields a sampler: seconds per hand-off over ``count`` trips."""
    with ExitStack() as stack:
        ping = stack.enter_context(model.Channel(1))
        pong = stack.enter_context(model.Channel(1))
        pool = stack.enter_context(model.Pool(1))
        echoer = pool.submit(echo, ping, pong)
        try:
            ping.send(-1)
            pong.recv(timeout=30.0)  # the worker is running

            def sample() -> float:
                start = time.perf_counter()
                for i in range(count):
                    ping.send(i)
                    if pong.recv(timeout=30.0) != i:
                        raise AssertionError("an item came back out of order")
                return (time.perf_counter() - start) / (2 * count)

            yield sample
        finally:
            ping.close()  # ends the worker's loop
            echoer.result(30.0)


@contextmanager
def _events(model: Any, count: int) -> Iterator[Callable[[], float]]:
    """A warm worker and two events; yields a sampler: seconds per hand-off."""
    with ExitStack() as stack:
        ours, theirs = model.Event(), model.Event()
        stack.callback(ours.close)
        stack.callback(theirs.close)
        pool = stack.enter_context(model.Pool(1))
        pool.submit(abs, 0).result(30.0)  # the worker is running

        def sample() -> float:
            bouncer = pool.submit(bounce, theirs, ours, count)
            start = time.perf_counter()
            for _ in range(count):
                theirs.set()
                if not ours.wait(30.0):
                    raise TimeoutError("the other side did not hand the turn back")
                ours.clear()
            elapsed = time.perf_counter() - start
            bouncer.result(30.0)
            return elapsed / (2 * count)

        yield sample


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} us"


def probe(mode: Mode) -> Measurement:
    """Median time per ping-pong hand-off, threads vs processes, channels and events."""
    counts = ROUND_TRIPS[mode]
    batches = counts["batches"]
    missing = interpreters_missing()
    models: dict[str, Any] = {"thread": THREAD, "process": PROCESS}
    if not missing:
        models["interpreter"] = INTERPRETER
    found: dict[str, Spread] = {}
    for mechanism, setup in (("channels", _channels), ("events", _events)):
        with ExitStack() as stack:
            samplers = {
                name: stack.enter_context(setup(model, counts[mechanism]))
                for name, model in models.items()
            }
            samples = interleave(samplers, batches)
        for name, values in samples.items():
            found[f"{mechanism}, {name}"] = Spread.of(values).scaled(1e6)
    t, p = found["channels, thread"], found["channels, process"]
    t_ev, p_ev = found["events, thread"], found["events, process"]
    finding = (
        f"a hand-off through channels takes {t.median:.1f} us between threads and "
        f"{p.median:.1f} us between processes ({cheaper(t.median, p.median)}); through events "
        f"{t_ev.median:.1f} us vs {p_ev.median:.1f} us ({cheaper(t_ev.median, p_ev.median)})"
    )
    interpreter_details = {}
    i = found.get("channels, interpreter")
    if i is not None:
        i_ev = found["events, interpreter"]
        finding += (
            f"; between interpreters {i.median:.1f} us through channels, {i_ev.median:.1f} us "
            "through events"
        )
        interpreter_details = {
            "channels, interpreters": (
                f"{i.median:.1f} us per hand-off (IQR {i.low:.1f}-{i.high:.1f})"
            ),
            "events, interpreters": (
                f"{i_ev.median:.1f} us per hand-off (IQR {i_ev.low:.1f}-{i_ev.high:.1f})"
            ),
        }
    return Measurement(
        key="context_switching",
        process=Figure(p.median, "us", "ping-pong hand-off, ProcessChannel pair"),
        thread=Figure(t.median, "us", "ping-pong hand-off, ThreadChannel pair"),
        better="lower",
        holds=t.median < p.median,
        finding=finding,
        comparisons=(
            Comparison(
                "hand-off through channels", "us", p, t, "lower", "thread", load_hurts="process"
            ),
        ),
        explanation=EXPLANATION,
        details={
            "channels, threads": f"{t.median:.1f} us per hand-off (IQR {t.low:.1f}-{t.high:.1f})",
            "channels, processes": (
                f"{p.median:.1f} us per hand-off (IQR {p.low:.1f}-{p.high:.1f})"
            ),
            "events, threads": (
                f"{t_ev.median:.1f} us per hand-off (IQR {t_ev.low:.1f}-{t_ev.high:.1f})"
            ),
            "events, processes": (
                f"{p_ev.median:.1f} us per hand-off (IQR {p_ev.low:.1f}-{p_ev.high:.1f})"
            ),
            "samples": (
                f"{batches} interleaved batches of {counts['channels']} (channels) and "
                f"{counts['events']} (events) round trips per model, after a warm-up batch"
            ),
            **interpreter_details,
        },
        interpreter=None
        if i is None
        else Figure(i.median, "us", "ping-pong hand-off, InterpreterChannel pair"),
        interpreter_spread=i,
        interpreter_missing=missing,
    )

"""Communication: channel throughput (small and large messages) and latency, threads vs processes.

One producer, one consumer: the producer is a pool worker (a thread of a
:class:`~concurrency_kit.ThreadPool` or a process of a :class:`~concurrency_kit.ProcessPool`)
sending on a :class:`~concurrency_kit.ThreadChannel` / :class:`~concurrency_kit.ProcessChannel`;
the parent receives. The clock starts when the parent receives the producer's first ("ready")
item, so starting the worker is not counted.

* small messages (a short tuple): messages per second, the row's figure;
* large messages (1 MiB of ``bytes``): MiB/s (details). A thread channel passes a reference,
  a process channel pickles and copies every byte through shared memory;
* latency: half of an echo round trip of one small message (details).

On Python 3.14+ the producer may also be an :class:`~concurrency_kit.InterpreterPool` worker
sending on an :class:`~concurrency_kit.InterpreterChannel`: it pickles and copies as a process
channel does, but between two threads of this process, each with its own GIL.
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
    median_of,
)
from concurrency_kit.compare.probes._shared import echo, interpreters_missing
from concurrency_kit.models import INTERPRETER, PROCESS, THREAD

__all__ = ["LARGE", "probe"]

LARGE = 1 << 20
"""The size of a large message, in bytes (1 MiB)."""

COUNTS: dict[Mode, dict[str, int]] = {
    "quick": {"small": 5_000, "large": 50, "latency": 500, "rounds": 5},
    "full": {"small": 20_000, "large": 200, "latency": 2_000, "rounds": 9},
}


def produce(channel: Any, count: int, size: int) -> None:
    """Send a ready marker, then ``count`` messages: small tuples, or ``size`` bytes if ``size``."""
    channel.send(None)
    if size:
        payload = b"x" * size
        for _ in range(count):
            channel.send(payload)
    else:
        for i in range(count):
            channel.send((i, "msg"))


def _stream(model: Any, pool: Any, count: int, size: int) -> float:
    """Seconds to receive ``count`` messages of ``size`` bytes (0: small) from a worker."""
    with model.Channel(256 if not size else 4) as channel:
        producer = pool.submit(produce, channel, count, size)
        try:
            channel.recv(timeout=30.0)  # the producer is running: start the clock
            start = time.perf_counter()
            for _ in range(count):
                channel.recv(timeout=30.0)
            elapsed = time.perf_counter() - start
        finally:
            channel.close()
            producer.result(30.0)
    return elapsed


def _latency(model: Any, pool: Any, count: int) -> float:
    """Median one-way latency of one small message: half an echo round trip."""
    samples = []
    with model.Channel(1) as ping, model.Channel(1) as pong:
        echoer = pool.submit(echo, ping, pong)
        try:
            ping.send(-1)
            pong.recv(timeout=30.0)
            for i in range(count):
                start = time.perf_counter()
                ping.send(i)
                pong.recv(timeout=30.0)
                samples.append((time.perf_counter() - start) / 2)
        finally:
            ping.close()
            echoer.result(30.0)
    return median_of(samples)


def _times(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if a >= b else f"{b / a:.1f}x (processes ahead)"


def probe(mode: Mode) -> Measurement:
    """Small-message throughput (the figure), large-message MiB/s and latency, both models."""
    counts = COUNTS[mode]
    small = counts["small"]
    missing = interpreters_missing()
    models: dict[str, Any] = {"thread": THREAD, "process": PROCESS}
    if not missing:
        models["interpreter"] = INTERPRETER
    with ExitStack() as stack:
        pools = {name: stack.enter_context(model.Pool(1)) for name, model in models.items()}
        for pool in pools.values():
            pool.submit(abs, 0).result(30.0)  # the worker is running

        def throughput(name: str) -> Callable[[], float]:
            return lambda: small / _stream(models[name], pools[name], small, 0)

        found = interleave({name: throughput(name) for name in models}, counts["rounds"])
        large = {
            name: counts["large"]
            * LARGE
            / 2**20
            / _stream(model, pools[name], counts["large"], LARGE)
            for name, model in models.items()
        }
        latency = {
            name: _latency(model, pools[name], counts["latency"]) for name, model in models.items()
        }
    t_spread, p_spread = Spread.of(found["thread"]), Spread.of(found["process"])
    t_small, p_small = t_spread.median, p_spread.median
    t_large, p_large = large["thread"], large["process"]
    t_lat, p_lat = latency["thread"], latency["process"]
    finding = (
        f"small messages: {t_small:,.0f} msgs/s between threads, {p_small:,.0f} between "
        f"processes ({_times(t_small, p_small)}); 1 MiB messages: {t_large:,.0f} vs "
        f"{p_large:,.0f} MiB/s; latency {t_lat * 1e6:.1f} vs {p_lat * 1e6:.1f} us; a thread "
        "channel passes references, a process channel pickles and copies"
    )
    i_spread = Spread.of(found["interpreter"]) if "interpreter" in found else None
    interpreter_details = {}
    if i_spread is not None:
        finding += (
            f"; between interpreters {i_spread.median:,.0f} msgs/s, {large['interpreter']:,.0f} "
            f"MiB/s, latency {latency['interpreter'] * 1e6:.1f} us"
        )
        interpreter_details = {
            "1 MiB messages, interpreters": f"{large['interpreter']:,.0f} MiB/s",
            "latency, interpreters": f"{latency['interpreter'] * 1e6:.1f} us",
        }
    return Measurement(
        key="communication",
        process=Figure(p_small, "msgs/s", "small-message throughput, ProcessChannel"),
        thread=Figure(t_small, "msgs/s", "small-message throughput, ThreadChannel"),
        better="higher",
        holds=t_small > p_small,
        finding=finding,
        comparisons=(
            Comparison(
                "small-message throughput",
                "msgs/s",
                p_spread,
                t_spread,
                "higher",
                "thread",
                load_hurts="process",
            ),
        ),
        explanation=(
            "a small message costs little to pickle, and a ProcessChannel's shared-memory ring "
            "lets each process run on its own core, while two threads take turns with the GIL"
        ),
        details={
            "1 MiB messages, threads": f"{t_large:,.0f} MiB/s",
            "1 MiB messages, processes": f"{p_large:,.0f} MiB/s",
            "latency, threads": f"{t_lat * 1e6:.1f} us",
            "latency, processes": f"{p_lat * 1e6:.1f} us",
            "samples": (
                f"{counts['rounds']} interleaved runs of {small} small messages per model, after "
                f"a warm-up run; {counts['large']} 1 MiB messages; one producer worker -> the "
                f"parent; latency: median half round trip of {counts['latency']}"
            ),
            **interpreter_details,
        },
        interpreter=None
        if i_spread is None
        else Figure(i_spread.median, "msgs/s", "small-message throughput, InterpreterChannel"),
        interpreter_spread=i_spread,
        interpreter_missing=missing,
    )

"""InterpreterChannel against the runtime's interpreter queue: the channel target of issue 20.

Python 3.14+ (``concurrent.interpreters``); on an older Python the script says so and exits 0.
Run ``python benchmarks/bench_interpreter_channels.py --help`` for the options and see
``benchmarks/README.md`` for how to read the tables.

Every benchmark streams ``n`` items from its producers to one consumer, this interpreter's
main thread, which receives them one by one (items per second, from the producers' go to the
last receive). Contenders:

* ``InterpreterChannel``: ``InterpreterChannel(capacity=c)``, producers in subinterpreters
  (``concurrent.interpreters.create()``), each run by a thread of this interpreter, the handle
  passed pickled; ``send``/``recv``.
* ``interpreters queue`` (the reference): ``concurrent.interpreters.create_queue(maxsize=c)``,
  the same producers; ``put``/``get``. The issue's target: ours >= 1.0x on small items.
* ``ProcessChannel (processes)``, for context: ``ProcessChannel(capacity=c)`` with producers in
  ``forkserver`` processes: what the same channel does between processes.

Producers and their interpreters or processes are created and warmed up outside the timed
region; each round sends every producer a go (over a control channel or queue of its kind) and
times until the consumer has received all ``n`` items. Benchmarks (``--only NAME``), swept over
what a user chooses:

* ``interp_PAYLOAD_CAP_pP``: ``PAYLOAD`` is ``int`` (the int 123456), ``bytes100`` (a 100-byte
  ``bytes``) or ``bytes10k`` (a 10 KiB ``bytes``); ``CAP`` is ``cap1``, ``cap64`` or
  ``cap1024``; ``P`` is 1 or 2 producers, each sending ``n / P`` items. Target (small
  payloads): ours >= 1.0x the queue.

``n`` depends on the capacity (:data:`SIZES`): the runtime's queue does not block in ``put``
on a full queue or ``get`` on an empty one, it polls with 10 ms sleeps (CPython 3.14's
``concurrent.interpreters._queues``), so at capacity 1 it moves a few hundred items a second
and a large ``n`` would take minutes per round.
"""

from __future__ import annotations

import importlib
import multiprocessing
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any, Final

from _runner import Benchmark, Config, Contender, Measure, Target, main

from concurrency_kit import InterpreterChannel, ProcessChannel

HAS_INTERPRETERS = sys.version_info >= (3, 14)
CAPACITIES: Final = (1, 64, 1024)
PRODUCERS: Final = (1, 2)
PAYLOADS: Final[dict[str, Any]] = {
    "int": 123456,
    "bytes100": b"x" * 100,
    "bytes10k": b"y" * 10 * 1024,
}
SMALL: Final = ("int", "bytes100")
SIZES: Final[dict[bool, dict[int, tuple[int, int, int]]]] = {
    # items per round (full, quick, smoke) by capacity: a full queue polls (10 ms sleeps in
    # put and get), so at capacity 1 it moves about a hundred items a second
    True: {1: (600, 200, 40), 64: (20_000, 4_000, 400), 1024: (100_000, 10_000, 400)},
    False: {1: (300, 100, 20), 64: (5_000, 1_000, 100), 1024: (20_000, 2_000, 100)},
}
"""``SIZES[small payload][capacity]``: ``n`` for each mode."""
DEADLOCK: Final = 120.0
OURS: Final = "InterpreterChannel"
QUEUE: Final = "interpreters queue"
PROCESSES: Final = "ProcessChannel (processes)"


# -- producers (run in a subinterpreter or a child process; this module is imported there) ----


def produce_channel(channel: Any, go: Any, payload: Any, count: int) -> None:
    """Send ``count`` items on ``channel`` for every go received on ``go``, until it closes."""
    send = channel.send
    for _ in go:
        for _ in range(count):
            send(payload)


def produce_queue(queue: Any, go: Any, payload: Any, count: int) -> None:
    """The same over interpreter queues: a ``None`` on ``go`` ends it."""
    put = queue.put
    while go.get() is not None:
        for _ in range(count):
            put(payload)


# -- the contenders ---------------------------------------------------------------------------


def _importable() -> Any:
    """This file imported by its own name: its producers pickle by reference, and another
    interpreter (or a forkserver child) cannot see this script's ``__main__``."""
    return importlib.import_module("bench_interpreter_channels")


def _interpreter(interpreters: Any) -> Any:
    interp = interpreters.create()
    interp.exec(f"import sys\nsys.path[:] = {sys.path!r}")
    return interp


def _run_in(interp: Any, fn: Callable[..., Any], *args: Any) -> threading.Thread:
    thread = threading.Thread(target=interp.call, args=(fn, *args))
    thread.start()
    return thread


def _measure(go: Callable[[], None], recv: Callable[[], Any], n: int) -> Measure:
    def measure() -> float:
        start = time.perf_counter()
        go()
        for _ in range(n):
            recv()
        return time.perf_counter() - start

    return measure


@contextmanager
def _interpreter_channels(capacity: int, producers: int, payload: Any, n: int) -> Iterator[Measure]:
    from concurrent import interpreters

    per = n // producers
    items = InterpreterChannel(capacity)
    go = InterpreterChannel(None)
    interps = [_interpreter(interpreters) for _ in range(producers)]
    # Interpreter.call pickles the handles: each producer attaches to the same channels.
    threads = [_run_in(i, _importable().produce_channel, items, go, payload, per) for i in interps]
    try:
        yield _measure(lambda: go.send_many([True] * producers), items.recv, per * producers)
    finally:
        go.close()
        for t in threads:
            t.join(DEADLOCK)
        for i in interps:
            i.close()
        items.close()


@contextmanager
def _interpreter_queue(capacity: int, producers: int, payload: Any, n: int) -> Iterator[Measure]:
    from concurrent import interpreters

    per = n // producers
    items = interpreters.create_queue(maxsize=capacity)
    go = interpreters.create_queue()
    interps = [_interpreter(interpreters) for _ in range(producers)]
    threads = [_run_in(i, _importable().produce_queue, items, go, payload, per) for i in interps]

    def start() -> None:
        for _ in range(producers):
            go.put(True)

    try:
        yield _measure(start, items.get, per * producers)
    finally:
        for _ in range(producers):
            go.put(None)
        for t in threads:
            t.join(DEADLOCK)
        for i in interps:
            i.close()


@contextmanager
def _process_channels(capacity: int, producers: int, payload: Any, n: int) -> Iterator[Measure]:
    per = n // producers
    ctx = multiprocessing.get_context("forkserver")
    with ProcessChannel(capacity) as items, ProcessChannel(None) as go:
        procs = [
            ctx.Process(target=_importable().produce_channel, args=(items, go, payload, per))
            for _ in range(producers)
        ]
        for p in procs:
            p.start()
        try:
            yield _measure(lambda: go.send_many([True] * producers), items.recv, per * producers)
        finally:
            go.close()
            for p in procs:
                p.join(DEADLOCK)
                if p.is_alive():
                    p.kill()
                    p.join()


def benchmark(config: Config, kind: str, capacity: int, producers: int) -> Benchmark:
    payload = PAYLOADS[kind]
    n = config.size(*SIZES[kind in SMALL][capacity])
    n -= n % producers
    contenders = (
        Contender(
            OURS,
            partial(_interpreter_channels, capacity, producers, payload, n),
            items=n,
            note=f"InterpreterChannel({capacity}), producers in subinterpreters",
        ),
        Contender(
            QUEUE,
            partial(_interpreter_queue, capacity, producers, payload, n),
            items=n,
            note=f"concurrent.interpreters.create_queue(maxsize={capacity})",
        ),
        Contender(
            PROCESSES,
            partial(_process_channels, capacity, producers, payload, n),
            items=n,
            note=f"ProcessChannel({capacity}), producers in forkserver processes",
        ),
    )
    return Benchmark(
        name=f"interp_{kind}_cap{capacity}_p{producers}",
        title=(
            f"{producers} producer(s) -> 1 consumer, {kind} items one by one, capacity "
            f"{capacity}, n={n}"
        ),
        kind="throughput",
        contenders=contenders,
        reference=QUEUE,
        targets=(Target(OURS, QUEUE, 1.0),) if kind in SMALL else (),
        unit="items",
    )


def build(config: Config) -> list[Benchmark]:
    """Every benchmark of this script, sized for ``config``."""
    return [
        benchmark(config, kind, capacity, producers)
        for kind in PAYLOADS
        for producers in PRODUCERS
        for capacity in CAPACITIES
    ]


def _main(argv: Sequence[str] | None = None) -> int:
    if not HAS_INTERPRETERS:
        print(
            "bench_interpreter_channels needs Python 3.14 or newer (concurrent.interpreters); "
            f"this is {sys.version.split()[0]}: nothing to measure"
        )
        return 0
    return main(build, description=__doc__ or "", argv=argv)


if __name__ == "__main__":
    sys.exit(_main())

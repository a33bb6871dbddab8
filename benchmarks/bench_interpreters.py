"""InterpreterPool against InterpreterPoolExecutor and ProcessPool: the pool targets of issue 20.

Python 3.14+ (``concurrent.interpreters``); on an older Python the script says so and exits 0.
``ProcessPool`` uses its default start method (``forkserver``). Pools are created and warmed up
outside the timed region (every worker has run a task, so every interpreter has imported what
the tasks need). Run ``python benchmarks/bench_interpreters.py --help`` for the options and see
``benchmarks/README.md`` for how to read the tables.

Benchmarks (``--only NAME``), swept over what a user chooses (the number of workers, the size
of a task); the suffix names the configuration (``w2``: 2 workers):

* ``interp_roundtrip_w1``, ``interp_roundtrip_w2``: one ``submit`` -> ``result`` of ``x + 1``
  on a warm pool (latency; the issue's targets).
* ``interp_roundtrip_64kib_w2``: the same with 64 KiB of bytes sent and returned (latency).
* ``interp_cpu_50ms_w2``, ``interp_cpu_5ms_w2``: 16 pure-Python tasks of about 50 ms (5 ms)
  each (a loop calibrated on this machine before the runs), all submitted, then every result
  awaited; the reference is the same 16 calls run one after the other in this thread, so a
  ratio is a speed-up (throughput; targets on the 50 ms run).
* ``interp_map_w2``: ``map(x + 1)`` over 200k items with the pool's default chunking, results
  collected (throughput). ``InterpreterPoolExecutor.map`` has no chunks (one task per item),
  so it maps a tenth of the items, said under its table.

The tasks live in importable modules (``_tasks.inc``, and this file imported by its own name
for the CPU-bound loop and the echo): ``InterpreterPoolExecutor`` pickles functions by
reference, and its interpreters cannot see this script's ``__main__``.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from functools import partial
from typing import Any, Final

from _runner import Benchmark, Config, Contender, Measure, Target, main, sample_each
from _tasks import inc

from concurrency_kit import InterpreterPool, ProcessPool, ThreadPool

WORKERS: Final = 2
CPU_TASKS: Final = 16
CPU_TASK_SECONDS: Final = (0.05, 0.005)
PAYLOAD: Final = 64 * 1024
HAS_INTERPRETERS = sys.version_info >= (3, 14)


def spin(loops: int) -> int:
    """Pure-Python CPU work: ``loops`` turns of a small arithmetic loop."""
    total = 0
    for i in range(loops):
        total = (total + i * i) % 1_000_003
    return total


def echo(data: bytes) -> bytes:
    """Send ``data`` back (the round trip of a payload)."""
    return data


def calibrate(seconds: float) -> int:
    """The ``loops`` for which :func:`spin` takes about ``seconds`` here (best of 3)."""
    loops = 10_000
    while True:
        start = time.perf_counter()
        spin(loops)
        if time.perf_counter() - start > 0.02:
            break
        loops *= 2
    best = min(_timed(partial(spin, loops)) for _ in range(3))
    return max(1, int(loops * seconds / best))


def _timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def importable(name: str) -> Callable[..., Any]:
    """This file's function ``name`` under the module's own name, so that it pickles by
    reference to a name a worker interpreter (or process) can import, not to ``__main__``."""
    module = importlib.import_module("bench_interpreters")
    return getattr(module, name)  # type: ignore[no-any-return]


def importable_spin() -> Callable[[int], int]:
    """:func:`spin`, importable (see :func:`importable`)."""
    return importable("spin")


# -- pools -----------------------------------------------------------------------------------


def make_interpreter_pool(workers: int) -> InterpreterPool:
    return InterpreterPool(workers)


def make_interpreter_executor(workers: int) -> Executor:
    from concurrent.futures import InterpreterPoolExecutor  # type: ignore[attr-defined]

    executor: Executor = InterpreterPoolExecutor(workers)
    return executor


def make_process_pool(workers: int) -> ProcessPool:
    return ProcessPool(workers)


def make_thread_pool(workers: int) -> ThreadPool:
    return ThreadPool(workers)


@contextmanager
def warm(factory: Callable[[int], Any], workers: int) -> Iterator[Any]:
    """A pool of ``workers`` from ``factory`` whose every worker has run a task (and its
    imports)."""
    with factory(workers) as pool:
        # Tasks long enough that each worker takes some: all of them start and import.
        for future in [pool.submit(importable_spin(), 20_000) for _ in range(4 * workers)]:
            future.result()
        for future in [pool.submit(inc, i) for i in range(4 * workers)]:
            future.result()
        yield pool


# -- contenders -------------------------------------------------------------------------------


@contextmanager
def roundtrip_contender(
    factory: Callable[[int], Any], workers: int, payload: int, k: int
) -> Iterator[Measure]:
    with warm(factory, workers) as pool:
        if payload:
            fn: Callable[..., Any] = importable("echo")
            arg: Any = bytes(payload)
        else:
            fn, arg = inc, 1
        for _ in range(20):
            pool.submit(fn, arg).result()
        yield sample_each(lambda: pool.submit(fn, arg).result(), k)


@contextmanager
def cpu_contender(
    factory: Callable[[int], Any] | None, tasks: int, loops: int
) -> Iterator[Measure]:
    work = importable_spin()
    if factory is None:  # the serial reference, in this thread

        def serial() -> float:
            return _timed(lambda: [work(loops) for _ in range(tasks)])

        yield serial
        return
    with warm(factory, WORKERS) as pool:

        def measure() -> float:
            start = time.perf_counter()
            futures = [pool.submit(work, loops) for _ in range(tasks)]
            results = [future.result() for future in futures]
            elapsed = time.perf_counter() - start
            if len(set(results)) != 1:
                raise AssertionError("the CPU-bound tasks disagree")
            return elapsed

        yield measure


@contextmanager
def map_contender(factory: Callable[[int], Any], n: int) -> Iterator[Measure]:
    with warm(factory, WORKERS) as pool:

        def measure() -> float:
            start = time.perf_counter()
            results = list(pool.map(inc, range(n)))
            elapsed = time.perf_counter() - start
            if len(results) != n or results[-1] != n:
                raise AssertionError(f"wrong results: {len(results)} items, expected {n}")
            return elapsed

        yield measure


# -- benchmarks -------------------------------------------------------------------------------

OURS = "InterpreterPool"
STDLIB = "InterpreterPoolExecutor"
PROCESSES = "ProcessPool"


def roundtrip_benchmark(config: Config, workers: int, payload: int = 0) -> Benchmark:
    k = config.size(300, 60, 10)
    what = f"echo of {payload // 1024} KiB" if payload else "x + 1"
    size = f"_{payload // 1024}kib" if payload else ""
    return Benchmark(
        name=f"interp_roundtrip{size}_w{workers}",
        title=f"one submit -> result of {what} on a warm pool of {workers} ({k} samples per round)",
        kind="latency",
        unit="us",
        reference=STDLIB,
        contenders=tuple(
            Contender(name, partial(roundtrip_contender, factory, workers, payload, k))
            for name, factory in (
                (OURS, make_interpreter_pool),
                (STDLIB, make_interpreter_executor),
                (PROCESSES, make_process_pool),
                ("ThreadPool", make_thread_pool),
            )
        ),
        # The targets are for a tiny task; a payload's ratios are for reference.
        targets=() if payload else (Target(OURS, PROCESSES, 0.5), Target(OURS, STDLIB, 1.0)),
    )


def cpu_benchmark(config: Config, seconds: float, loops: int) -> Benchmark:
    tasks = CPU_TASKS if config.mode != "smoke" else 4
    return Benchmark(
        name=f"interp_cpu_{seconds * 1e3:g}ms_w{WORKERS}",
        title=(
            f"{tasks} pure-Python tasks of ~{_scaled(config, seconds) * 1e3:g} ms on {WORKERS} "
            "workers; the ratio to the serial run is the speed-up"
        ),
        kind="throughput",
        unit="tasks",
        reference="serial (this thread)",
        contenders=(
            Contender(
                OURS, partial(cpu_contender, make_interpreter_pool, tasks, loops), items=tasks
            ),
            Contender(
                STDLIB,
                partial(cpu_contender, make_interpreter_executor, tasks, loops),
                items=tasks,
            ),
            Contender(
                PROCESSES, partial(cpu_contender, make_process_pool, tasks, loops), items=tasks
            ),
            Contender(
                "serial (this thread)", partial(cpu_contender, None, tasks, loops), items=tasks
            ),
        ),
        # The targets are for tasks of 50 ms; shorter ones show what dispatch costs.
        targets=(
            (Target(OURS, PROCESSES, 1.0), Target(OURS, STDLIB, 1.0))
            if seconds == CPU_TASK_SECONDS[0]
            else ()
        ),
    )


def _scaled(config: Config, seconds: float) -> float:
    """A CPU task's length in this mode: a tenth outside full runs."""
    return seconds if config.mode == "full" else seconds / 10


def map_benchmark(config: Config) -> Benchmark:
    n = config.size(200_000)
    n_stdlib = max(1, n // 10)
    return Benchmark(
        name=f"interp_map_w{WORKERS}",
        title=f"map(x + 1) over {n} items on {WORKERS} workers, default chunking",
        kind="throughput",
        unit="tasks",
        reference=PROCESSES,
        contenders=(
            Contender(OURS, partial(map_contender, make_interpreter_pool, n), items=n),
            Contender(
                STDLIB,
                partial(map_contender, make_interpreter_executor, n_stdlib),
                items=n_stdlib,
                note=f"{n_stdlib} items: its map sends one task per item (no chunks)",
            ),
            Contender(PROCESSES, partial(map_contender, make_process_pool, n), items=n),
        ),
        targets=(Target(OURS, PROCESSES, 1.0),),
    )


def build(config: Config) -> list[Benchmark]:
    """Every benchmark of this script, sized for ``config``."""
    return [
        roundtrip_benchmark(config, 1),
        roundtrip_benchmark(config, WORKERS),
        roundtrip_benchmark(config, WORKERS, PAYLOAD),
        *(
            cpu_benchmark(config, seconds, calibrate(_scaled(config, seconds)))
            for seconds in CPU_TASK_SECONDS
        ),
        map_benchmark(config),
    ]


def _main(argv: Sequence[str] | None = None) -> int:
    if not HAS_INTERPRETERS:
        print(
            "bench_interpreters needs Python 3.14 or newer (concurrent.interpreters); "
            f"this is {sys.version.split()[0]}: nothing to measure"
        )
        return 0
    return main(build, description=__doc__ or "", argv=argv)


if __name__ == "__main__":
    sys.exit(_main())

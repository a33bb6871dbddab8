"""InterpreterPool against InterpreterPoolExecutor and ProcessPool: the pool targets of issue 20.

Python 3.14+ (``concurrent.interpreters``); on an older Python the script says so and exits 0.
Every pool has 2 workers; ``ProcessPool`` uses its default start method (``forkserver``). Pools
are created and warmed up outside the timed region (every worker has run a task, so every
interpreter has imported what the tasks need). Run ``python benchmarks/bench_interpreters.py
--help`` for the options and see ``benchmarks/README.md`` for how to read the tables.

Benchmarks (``--only NAME``):

* ``interp_roundtrip``: one ``submit`` -> ``result`` of ``x + 1`` on a warm pool (latency).
* ``interp_cpu``: 16 pure-Python tasks of about 50 ms each (a loop calibrated on this machine
  before the runs), all submitted, then every result awaited; the reference is the same 16
  calls run one after the other in this thread, so a ratio is a speed-up (throughput).
* ``interp_map``: ``map(x + 1)`` over 200k items with the pool's default chunking, results
  collected (throughput). ``InterpreterPoolExecutor.map`` has no chunks (one task per item),
  so it maps a tenth of the items, said under its table.

The tasks live in importable modules (``_tasks.inc``, and this file imported by its own name
for the CPU-bound loop): ``InterpreterPoolExecutor`` pickles functions by reference, and its
interpreters cannot see this script's ``__main__``.
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
CPU_TASK_SECONDS: Final = 0.05
HAS_INTERPRETERS = sys.version_info >= (3, 14)


def spin(loops: int) -> int:
    """Pure-Python CPU work: ``loops`` turns of a small arithmetic loop."""
    total = 0
    for i in range(loops):
        total = (total + i * i) % 1_000_003
    return total


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


def importable_spin() -> Callable[[int], int]:
    """:func:`spin` under this file's module name, so that it pickles by reference to a name a
    worker interpreter (or process) can import, not to ``__main__``."""
    module = importlib.import_module("bench_interpreters")
    return module.spin  # type: ignore[no-any-return]


# -- pools -----------------------------------------------------------------------------------


def make_interpreter_pool() -> InterpreterPool:
    return InterpreterPool(WORKERS)


def make_interpreter_executor() -> Executor:
    from concurrent.futures import InterpreterPoolExecutor  # type: ignore[attr-defined]

    executor: Executor = InterpreterPoolExecutor(WORKERS)
    return executor


def make_process_pool() -> ProcessPool:
    return ProcessPool(WORKERS)


def make_thread_pool() -> ThreadPool:
    return ThreadPool(WORKERS)


@contextmanager
def warm(factory: Callable[[], Any]) -> Iterator[Any]:
    """A pool from ``factory`` whose every worker has run a task (and its imports)."""
    with factory() as pool:
        # Tasks long enough that each worker takes some: all of them start and import.
        for future in [pool.submit(importable_spin(), 20_000) for _ in range(4 * WORKERS)]:
            future.result()
        for future in [pool.submit(inc, i) for i in range(4 * WORKERS)]:
            future.result()
        yield pool


# -- contenders -------------------------------------------------------------------------------


@contextmanager
def roundtrip_contender(factory: Callable[[], Any], k: int) -> Iterator[Measure]:
    with warm(factory) as pool:
        for _ in range(20):
            pool.submit(inc, 1).result()
        yield sample_each(lambda: pool.submit(inc, 1).result(), k)


@contextmanager
def cpu_contender(factory: Callable[[], Any] | None, loops: int) -> Iterator[Measure]:
    work = importable_spin()
    if factory is None:  # the serial reference, in this thread

        def serial() -> float:
            return _timed(lambda: [work(loops) for _ in range(CPU_TASKS)])

        yield serial
        return
    with warm(factory) as pool:

        def measure() -> float:
            start = time.perf_counter()
            futures = [pool.submit(work, loops) for _ in range(CPU_TASKS)]
            results = [future.result() for future in futures]
            elapsed = time.perf_counter() - start
            if len(set(results)) != 1:
                raise AssertionError("the CPU-bound tasks disagree")
            return elapsed

        yield measure


@contextmanager
def map_contender(factory: Callable[[], Any], n: int) -> Iterator[Measure]:
    with warm(factory) as pool:

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


def roundtrip_benchmark(config: Config) -> Benchmark:
    k = config.size(300, 60, 10)
    return Benchmark(
        name="interp_roundtrip",
        title=f"one submit -> result of x + 1 on a warm pool of {WORKERS} ({k} samples per round)",
        kind="latency",
        unit="us",
        reference=STDLIB,
        contenders=(
            Contender(OURS, partial(roundtrip_contender, make_interpreter_pool, k)),
            Contender(STDLIB, partial(roundtrip_contender, make_interpreter_executor, k)),
            Contender(PROCESSES, partial(roundtrip_contender, make_process_pool, k)),
            Contender("ThreadPool", partial(roundtrip_contender, make_thread_pool, k)),
        ),
        targets=(
            Target(OURS, PROCESSES, 0.5),
            Target(OURS, STDLIB, 1.0),
        ),
    )


def cpu_benchmark(config: Config, loops: int) -> Benchmark:
    tasks = CPU_TASKS if config.mode != "smoke" else 4
    seconds = CPU_TASK_SECONDS if config.mode == "full" else CPU_TASK_SECONDS / 10
    return Benchmark(
        name="interp_cpu",
        title=(
            f"{tasks} pure-Python tasks of ~{seconds * 1e3:g} ms on {WORKERS} workers; "
            "the ratio to the serial run is the speed-up"
        ),
        kind="throughput",
        unit="tasks",
        reference="serial (this thread)",
        contenders=(
            Contender(OURS, partial(cpu_contender, make_interpreter_pool, loops), items=tasks),
            Contender(
                STDLIB, partial(cpu_contender, make_interpreter_executor, loops), items=tasks
            ),
            Contender(PROCESSES, partial(cpu_contender, make_process_pool, loops), items=tasks),
            Contender("serial (this thread)", partial(cpu_contender, None, loops), items=tasks),
        ),
        targets=(
            Target(OURS, PROCESSES, 1.0),
            Target(OURS, STDLIB, 1.0),
        ),
    )


def map_benchmark(config: Config) -> Benchmark:
    n = config.size(200_000)
    n_stdlib = max(1, n // 10)
    return Benchmark(
        name="interp_map",
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
    seconds = CPU_TASK_SECONDS if config.mode == "full" else CPU_TASK_SECONDS / 10
    return [
        roundtrip_benchmark(config),
        cpu_benchmark(config, calibrate(seconds)),
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

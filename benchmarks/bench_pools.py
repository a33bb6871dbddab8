"""Pools against the standard library and the peers: the targets of the pools issue.

Every process contender uses the same start method (``forkserver``, ProcessPool's default) and
2 workers; the task is ``x + 1`` (:func:`_tasks.inc`). Pools are created and warmed up outside
the timed region, except in the ``startup`` and ``shutdown`` benchmarks, which time exactly
that. Run ``python benchmarks/bench_pools.py --help`` for the options and see
``benchmarks/README.md`` for how to read the tables.

Benchmarks (``--only NAME``):

* ``map``: 20k tasks through ``map`` (throughput).
* ``submit``: 20k ``submit`` calls, one future each, then wait for all (throughput).
* ``roundtrip``: one ``submit`` → ``result`` on a warm pool, and the floor: a raw pipe
  ping-pong with a child process (latency).
* ``thread_submit``, ``thread_map``, ``thread_roundtrip``: the same for the thread pools.
* ``startup``: create a pool, submit one task, get its result (latency).
* ``shutdown``: ``shutdown(wait=True)`` of a warm pool (latency).
* ``crash``: from a worker's death (SIGKILL) to its future raising in the parent (latency).
* ``cold_start_fork``, ``cold_start_forkserver``, ``cold_start_spawn``: in a fresh interpreter,
  from creating a pool of 2 workers to its first result, per start method, against
  ``ProcessPoolExecutor`` with the same method (latency). Each sample is a new Python process
  running a small script file (so that ``spawn`` and ``forkserver`` workers re-run a real main
  script, as they do for users), which imports its pool before the clock starts: a first pool
  pays for starting the fork server or the interpreters, never for its parent's imports.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from multiprocessing.context import ForkServerContext
from typing import Any, Final, TypeVar

from _runner import (
    Benchmark,
    Config,
    Contender,
    Measure,
    Target,
    main,
    pipe_floor,
    sample_each,
)
from _tasks import inc, read_stamp, record_and_die

from concurrency_kit import ProcessPool, ThreadPool, WorkerCrashedError

START_METHOD: Final = "forkserver"
WORKERS = 2
PEERS = ("loky", "pebble", "mpire", "faster-fifo", "cloudpickle", "concurrency_kit")

P = TypeVar("P")

LOKY = ("loky",)
PEBBLE = ("pebble",)
MPIRE = ("mpire",)


def mp_context() -> ForkServerContext:
    """The multiprocessing context every process contender uses."""
    return multiprocessing.get_context(START_METHOD)


# -- pools: how to make, warm and close each contender ---------------------------------------


def make_ck_process() -> ProcessPool:
    return ProcessPool(WORKERS, start_method=START_METHOD)


def make_stdlib_process() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(WORKERS, mp_context=mp_context())


def make_mp_pool() -> Any:
    return mp_context().Pool(WORKERS)


def close_mp_pool(pool: Any) -> None:
    pool.close()
    pool.join()


def make_loky() -> Executor:
    from loky import ProcessPoolExecutor as LokyExecutor  # type: ignore[import-untyped]
    from loky.backend.context import get_context  # type: ignore[import-untyped]

    return LokyExecutor(WORKERS, context=get_context(START_METHOD))  # type: ignore[no-any-return]


def make_pebble() -> Any:
    import pebble

    return pebble.ProcessPool(max_workers=WORKERS, context=mp_context())


def close_pebble(pool: Any) -> None:
    pool.close()
    pool.join()


def make_mpire() -> Any:
    from mpire.pool import WorkerPool

    return WorkerPool(n_jobs=WORKERS, start_method=START_METHOD, keep_alive=True)


def close_mpire(pool: Any) -> None:
    pool.terminate()


def shutdown_executor(pool: Executor) -> None:
    pool.shutdown(wait=True)


def warm_submit(submit: Callable[..., Any]) -> None:
    """Get every worker started: a burst of tasks, then their results."""
    for future in [submit(inc, i) for i in range(4 * WORKERS)]:
        future.result()


@contextmanager
def pool_context(
    make: Callable[[], P], close: Callable[[P], None], warm: Callable[[P], None]
) -> Iterator[P]:
    """A pool made and warmed up on entry, closed on exit."""
    pool = make()
    try:
        warm(pool)
        yield pool
    finally:
        close(pool)


def warm_executor(pool: Any) -> None:
    warm_submit(pool.submit)


def warm_mp_pool(pool: Any) -> None:
    pool.map(inc, range(4 * WORKERS), chunksize=1)


def warm_pebble(pool: Any) -> None:
    for future in [pool.schedule(inc, args=(i,)) for i in range(4 * WORKERS)]:
        future.result()


def warm_mpire(pool: Any) -> None:
    pool.map(inc, range(4 * WORKERS), progress_bar=False)


def ck_process_pool() -> Any:
    return pool_context(make_ck_process, shutdown_executor, warm_executor)


def stdlib_process_pool() -> Any:
    return pool_context(make_stdlib_process, shutdown_executor, warm_executor)


def mp_pool() -> Any:
    return pool_context(make_mp_pool, close_mp_pool, warm_mp_pool)


def loky_pool() -> Any:
    return pool_context(make_loky, shutdown_executor, warm_executor)


def pebble_pool() -> Any:
    return pool_context(make_pebble, close_pebble, warm_pebble)


def mpire_pool() -> Any:
    return pool_context(make_mpire, close_mpire, warm_mpire)


def ck_thread_pool() -> Any:
    return pool_context(lambda: ThreadPool(WORKERS), shutdown_executor, warm_executor)


def stdlib_thread_pool() -> Any:
    return pool_context(lambda: ThreadPoolExecutor(WORKERS), shutdown_executor, warm_executor)


# -- measures ---------------------------------------------------------------------------------


def check_incremented(results: Sequence[int], n: int) -> None:
    """``results`` must be ``inc`` applied to ``range(n)``, in order."""
    if len(results) != n or results[0] != 1 or results[-1] != n or sum(results) != n * (n + 1) // 2:
        raise AssertionError(f"wrong results: {len(results)} items, expected {n}")


@contextmanager
def map_contender(
    pool_factory: Callable[[], Any], run: Callable[[Any, int], Sequence[int]], n: int
) -> Iterator[Measure]:
    """Measure ``run(pool, n)``: a whole map of ``n`` tasks, results collected."""
    with pool_factory() as pool:

        def measure() -> float:
            start = time.perf_counter()
            results = run(pool, n)
            elapsed = time.perf_counter() - start
            check_incremented(results, n)
            return elapsed

        yield measure


@contextmanager
def submit_contender(
    pool_factory: Callable[[], Any], submit: Callable[[Any, int], Any], n: int
) -> Iterator[Measure]:
    """Measure ``n`` calls of ``submit(pool, i)`` followed by waiting for every future."""
    with pool_factory() as pool:

        def measure() -> float:
            start = time.perf_counter()
            futures = [submit(pool, i) for i in range(n)]
            results = [future.result() for future in futures]
            elapsed = time.perf_counter() - start
            check_incremented(results, n)
            return elapsed

        yield measure


@contextmanager
def roundtrip_contender(
    pool_factory: Callable[[], Any], call: Callable[[Any], object], k: int
) -> Iterator[Measure]:
    """Measure ``k`` single round trips ``call(pool)`` on a warm pool."""
    with pool_factory() as pool:
        for _ in range(20):
            call(pool)
        yield sample_each(partial(call, pool), k)


@contextmanager
def lifecycle_contender(
    make: Callable[[], P],
    first: Callable[[P], object],
    close: Callable[[P], None],
    what: str,
    k: int,
) -> Iterator[Measure]:
    """Time a pool's start-up (``make`` + one result) or its ``close`` after warming up.

    Args:
        make: creates the pool.
        first: submits one task and returns its result (must be 2).
        close: shuts the pool down, waiting for its workers.
        what: ``"startup"``: from ``make()`` to the first result; ``"shutdown"``: ``close()``
            of a pool that has run ``4 * WORKERS`` tasks.
        k: samples per round (a new pool each).
    """

    def one() -> float:
        if what == "startup":
            start = time.perf_counter()
            pool = make()
            try:
                if first(pool) != 2:
                    raise AssertionError("wrong result")
                return time.perf_counter() - start
            finally:
                close(pool)
        pool = make()
        try:
            for _ in range(4 * WORKERS):
                first(pool)
        except BaseException:
            close(pool)
            raise
        start = time.perf_counter()
        close(pool)
        return time.perf_counter() - start

    yield lambda: [one() for _ in range(k)]


def first_submit(pool: Any) -> object:
    return pool.submit(inc, 1).result()


def first_apply(pool: Any) -> object:
    return pool.apply(inc, (1,))


def first_schedule(pool: Any) -> object:
    return pool.schedule(inc, args=(1,)).result()


@contextmanager
def crash_contender(
    make: Callable[[], Any],
    close: Callable[[Any], None],
    schedule: Callable[[Any, Callable[..., object], object], Any],
    expected: type[BaseException],
    reuse: bool,
    k: int,
) -> Iterator[Measure]:
    """Time from a worker's SIGKILL to its future raising ``expected`` in the parent.

    Args:
        make: creates a pool.
        close: shuts it down.
        schedule: ``schedule(pool, fn, arg)`` returns a future for ``fn(arg)``.
        expected: what the future must raise.
        reuse: the pool survives a crash and is used again (else a new pool per sample).
        k: crashes per round.
    """
    with tempfile.TemporaryDirectory(prefix="ck-bench-crash-") as tmp:
        names = itertools.count()
        shared = make() if reuse else None

        def one() -> float:
            pool = shared if shared is not None else make()
            try:
                schedule(pool, inc, 0).result()  # a worker is up and idle: untimed
                path = os.path.join(tmp, f"stamp-{next(names)}")
                future = schedule(pool, record_and_die, path)
                try:
                    future.result(timeout=60)
                except expected:
                    seen = time.monotonic()
                else:
                    raise AssertionError("the task that kills its worker returned")
                return seen - read_stamp(path)
            finally:
                if shared is None:
                    close(pool)

        try:
            yield lambda: [one() for _ in range(k)]
        finally:
            if shared is not None:
                close(shared)


def submit_to(pool: Any, fn: Callable[..., object], arg: object) -> Any:
    return pool.submit(fn, arg)


def schedule_to(pool: Any, fn: Callable[..., object], arg: object) -> Any:
    return pool.schedule(fn, args=(arg,))


def pebble_expired() -> type[BaseException]:
    import pebble

    return pebble.ProcessExpired


# -- the benchmarks ---------------------------------------------------------------------------


def map_benchmark(config: Config) -> Benchmark:
    n = config.size(20_000)
    n_slow = config.size(2_000, 200, 50)
    return Benchmark(
        name="map",
        title=f"map of {n} tasks x+1, {WORKERS} workers, results collected in order",
        kind="throughput",
        reference="multiprocessing.Pool.map",
        contenders=(
            Contender(
                "ProcessPool.map",
                partial(map_contender, ck_process_pool, lambda p, n: list(p.map(inc, range(n))), n),
                items=n,
                note="default settings: chunksize='auto', ordered=True",
            ),
            Contender(
                "ProcessPool.map(chunksize=100)",
                partial(
                    map_contender,
                    ck_process_pool,
                    lambda p, n: list(p.map(inc, range(n), chunksize=100)),
                    n,
                ),
                items=n,
            ),
            Contender(
                "multiprocessing.Pool.map",
                partial(map_contender, mp_pool, lambda p, n: p.map(inc, range(n)), n),
                items=n,
                note="automatic chunks: ceil(n / (4 * workers))",
            ),
            Contender(
                "ProcessPoolExecutor.map(chunksize=100)",
                partial(
                    map_contender,
                    stdlib_process_pool,
                    lambda p, n: list(p.map(inc, range(n), chunksize=100)),
                    n,
                ),
                items=n,
            ),
            Contender(
                "ProcessPoolExecutor.map(chunksize=1)",
                partial(
                    map_contender,
                    stdlib_process_pool,
                    lambda p, n: list(p.map(inc, range(n), chunksize=1)),
                    n_slow,
                ),
                items=n_slow,
                note=f"{n_slow} tasks, not {n} (too slow); its rate is per task all the same",
            ),
            Contender(
                "loky.map(chunksize=100)",
                partial(
                    map_contender,
                    loky_pool,
                    lambda p, n: list(p.map(inc, range(n), chunksize=100)),
                    n,
                ),
                requires=LOKY,
                items=n,
            ),
            Contender(
                "pebble.ProcessPool.map(chunksize=100)",
                partial(
                    map_contender,
                    pebble_pool,
                    lambda p, n: list(p.map(inc, range(n), chunksize=100).result()),
                    n,
                ),
                requires=PEBBLE,
                items=n,
                note="pebble has no automatic chunks (its default is 1)",
            ),
            Contender(
                "mpire.WorkerPool.map",
                partial(
                    map_contender,
                    mpire_pool,
                    lambda p, n: p.map(inc, range(n), progress_bar=False),
                    n,
                ),
                requires=MPIRE,
                items=n,
                note="automatic chunks, keep_alive=True",
            ),
        ),
        targets=(
            Target("ProcessPool.map", "multiprocessing.Pool.map", 1.0),
            Target("ProcessPool.map", "ProcessPoolExecutor.map(chunksize=100)", 4.0),
        ),
    )


def submit_benchmark(config: Config) -> Benchmark:
    n = config.size(20_000)

    def submit(pool: Any, i: int) -> Any:
        return pool.submit(inc, i)

    def schedule(pool: Any, i: int) -> Any:
        return pool.schedule(inc, args=(i,))

    return Benchmark(
        name="submit",
        title=f"{n} submit() calls of x+1 (one future each), then wait for all, {WORKERS} workers",
        kind="throughput",
        reference="ProcessPoolExecutor.submit",
        contenders=(
            Contender(
                "ProcessPool.submit",
                partial(submit_contender, ck_process_pool, submit, n),
                items=n,
            ),
            Contender(
                "ProcessPoolExecutor.submit",
                partial(submit_contender, stdlib_process_pool, submit, n),
                items=n,
            ),
            Contender(
                "pebble.ProcessPool.schedule",
                partial(submit_contender, pebble_pool, schedule, n),
                requires=PEBBLE,
                items=n,
            ),
            Contender(
                "loky.submit",
                partial(submit_contender, loky_pool, submit, n),
                requires=LOKY,
                items=n,
            ),
        ),
        targets=(
            Target("ProcessPool.submit", "ProcessPoolExecutor.submit", 2.0),
            Target("ProcessPool.submit", "pebble.ProcessPool.schedule", 1.0),
        ),
    )


def roundtrip_benchmark(config: Config) -> Benchmark:
    k = config.size(200, 50, 10)
    return Benchmark(
        name="roundtrip",
        title=f"one submit -> result on a warm process pool ({k} samples per round)",
        kind="latency",
        unit="us",
        reference="ProcessPoolExecutor",
        contenders=(
            Contender(
                "ProcessPool",
                partial(roundtrip_contender, ck_process_pool, first_submit, k),
            ),
            Contender(
                "ProcessPoolExecutor",
                partial(roundtrip_contender, stdlib_process_pool, first_submit, k),
            ),
            Contender(
                "multiprocessing.Pool.apply",
                partial(roundtrip_contender, mp_pool, first_apply, k),
            ),
            Contender(
                "pebble.ProcessPool.schedule",
                partial(roundtrip_contender, pebble_pool, first_schedule, k),
                requires=PEBBLE,
            ),
            Contender(
                "loky.submit",
                partial(roundtrip_contender, loky_pool, first_submit, k),
                requires=LOKY,
            ),
            Contender(
                "os.pipe ping-pong (floor)",
                partial(pipe_floor, mp_context(), k),
                note=(
                    "8 bytes to a child process and back over two pipes, raw os.write/os.read; "
                    "often bimodal (compare q1 and q3): fast when the other CPU is awake"
                ),
            ),
        ),
        targets=(
            Target("ProcessPool", "ProcessPoolExecutor", 0.5),
            Target("ProcessPool", "os.pipe ping-pong (floor)", 2.5),
        ),
    )


def thread_benchmarks(config: Config) -> list[Benchmark]:
    n = config.size(20_000)
    k = config.size(200, 50, 10)

    def submit(pool: Any, i: int) -> Any:
        return pool.submit(inc, i)

    def run_map(pool: Any, n: int) -> list[int]:
        return list(pool.map(inc, range(n)))

    return [
        Benchmark(
            name="thread_submit",
            title=f"{n} submit() calls of x+1, then wait for all, {WORKERS} threads",
            kind="throughput",
            reference="ThreadPoolExecutor.submit",
            contenders=(
                Contender(
                    "ThreadPool.submit",
                    partial(submit_contender, ck_thread_pool, submit, n),
                    items=n,
                ),
                Contender(
                    "ThreadPoolExecutor.submit",
                    partial(submit_contender, stdlib_thread_pool, submit, n),
                    items=n,
                ),
            ),
            targets=(Target("ThreadPool.submit", "ThreadPoolExecutor.submit", 1.0),),
        ),
        Benchmark(
            name="thread_map",
            title=f"map of {n} tasks x+1, {WORKERS} threads, default settings",
            kind="throughput",
            reference="ThreadPoolExecutor.map",
            contenders=(
                Contender(
                    "ThreadPool.map",
                    partial(map_contender, ck_thread_pool, run_map, n),
                    items=n,
                ),
                Contender(
                    "ThreadPoolExecutor.map",
                    partial(map_contender, stdlib_thread_pool, run_map, n),
                    items=n,
                ),
            ),
            targets=(Target("ThreadPool.map", "ThreadPoolExecutor.map", 1.0),),
        ),
        Benchmark(
            name="thread_roundtrip",
            title=f"one submit -> result on a warm thread pool ({k} samples per round)",
            kind="latency",
            unit="us",
            reference="ThreadPoolExecutor",
            contenders=(
                Contender(
                    "ThreadPool", partial(roundtrip_contender, ck_thread_pool, first_submit, k)
                ),
                Contender(
                    "ThreadPoolExecutor",
                    partial(roundtrip_contender, stdlib_thread_pool, first_submit, k),
                ),
            ),
        ),
    ]


def lifecycle_benchmarks(config: Config) -> list[Benchmark]:
    k = 1
    benchmarks = []
    for what, title in (
        ("startup", "create a pool, submit one task x+1, get its result"),
        ("shutdown", f"shutdown(wait=True) of a pool that has run {4 * WORKERS} tasks"),
    ):
        contenders = (
            Contender(
                "ProcessPool",
                partial(
                    lifecycle_contender, make_ck_process, first_submit, shutdown_executor, what, k
                ),
            ),
            Contender(
                "ProcessPoolExecutor",
                partial(
                    lifecycle_contender,
                    make_stdlib_process,
                    first_submit,
                    shutdown_executor,
                    what,
                    k,
                ),
            ),
            Contender(
                "multiprocessing.Pool",
                partial(lifecycle_contender, make_mp_pool, first_apply, close_mp_pool, what, k),
                note="starts all its workers in the constructor",
            ),
            Contender(
                "loky.ProcessPoolExecutor",
                partial(lifecycle_contender, make_loky, first_submit, shutdown_executor, what, k),
                requires=LOKY,
            ),
            Contender(
                "pebble.ProcessPool",
                partial(lifecycle_contender, make_pebble, first_schedule, close_pebble, what, k),
                requires=PEBBLE,
            ),
            Contender(
                "ThreadPool",
                partial(
                    lifecycle_contender,
                    lambda: ThreadPool(WORKERS),
                    first_submit,
                    shutdown_executor,
                    what,
                    k,
                ),
            ),
            Contender(
                "ThreadPoolExecutor",
                partial(
                    lifecycle_contender,
                    lambda: ThreadPoolExecutor(WORKERS),
                    first_submit,
                    shutdown_executor,
                    what,
                    k,
                ),
            ),
        )
        benchmarks.append(
            Benchmark(
                name=what,
                title=f"{title}, {WORKERS} workers, start method {START_METHOD}",
                kind="latency",
                unit="ms",
                reference="ProcessPoolExecutor",
                contenders=contenders,
                targets=(Target("ProcessPool", "ProcessPoolExecutor", 1.1),),
                rounds=15,
            )
        )
    return benchmarks


def crash_benchmark(config: Config) -> Benchmark:
    k = config.size(3, 1, 1)
    return Benchmark(
        name="crash",
        title="from a worker's SIGKILL (stamped just before) to its future raising in the parent",
        kind="latency",
        unit="ms",
        reference="ProcessPoolExecutor",
        contenders=(
            Contender(
                "ProcessPool",
                partial(
                    crash_contender,
                    make_ck_process,
                    shutdown_executor,
                    submit_to,
                    WorkerCrashedError,
                    True,
                    k,
                ),
                note="raises WorkerCrashedError; the same pool goes on (a new worker replaces it)",
            ),
            Contender(
                "ProcessPoolExecutor",
                partial(
                    crash_contender,
                    make_stdlib_process,
                    shutdown_executor,
                    submit_to,
                    BrokenExecutor,
                    False,
                    k,
                ),
                note="raises BrokenProcessPool; the pool is broken, so a new one per sample",
            ),
            Contender(
                "loky.ProcessPoolExecutor",
                partial(
                    crash_contender,
                    make_loky,
                    shutdown_executor,
                    submit_to,
                    BrokenExecutor,
                    False,
                    k,
                ),
                requires=LOKY,
                note="raises TerminatedWorkerError; broken, so a new executor per sample",
            ),
            Contender(
                "pebble.ProcessPool",
                partial(_pebble_crash, k),
                requires=PEBBLE,
                note="raises ProcessExpired; the same pool goes on",
            ),
        ),
        targets=(Target("ProcessPool", None, 0.050, "ProcessPool crash reported on its future"),),
    )


def _pebble_crash(k: int) -> Any:
    return crash_contender(make_pebble, close_pebble, schedule_to, pebble_expired(), True, k)


COLD_START_SCRIPT = textwrap.dedent(
    """
    import sys
    import time

    if sys.argv[1] == "ProcessPool":
        from concurrency_kit import ProcessPool

        def make(method):
            return ProcessPool(2, start_method=method)

    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        def make(method):
            return ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(method))


    def main(method):
        start = time.perf_counter()
        pool = make(method)
        if pool.submit(abs, -2).result() != 2:
            raise AssertionError("wrong result")
        elapsed = time.perf_counter() - start
        pool.shutdown()
        print(repr(elapsed))


    if __name__ == "__main__":
        main(sys.argv[2])
    """
)
"""A fresh interpreter's first pool: ``python script.py POOL METHOD`` prints the seconds from
the pool's creation to its first result."""


@contextmanager
def cold_start_contender(pool: str, method: str, k: int) -> Iterator[Measure]:
    """Each sample: a new interpreter runs :data:`COLD_START_SCRIPT` once (``k`` per round)."""
    with tempfile.TemporaryDirectory(prefix="ck-cold-start-") as directory:
        script = os.path.join(directory, "cold_start.py")
        with open(script, "w") as file:
            file.write(COLD_START_SCRIPT)

        def one() -> float:
            done = subprocess.run(
                [sys.executable, script, pool, method],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"the cold-start script failed: {done.stderr.strip()}")
            return float(done.stdout.strip().splitlines()[-1])

        yield lambda: [one() for _ in range(k)]


def cold_start_benchmarks(config: Config) -> list[Benchmark]:
    k = config.size(2, 1, 1)
    benchmarks = []
    for method in ("fork", "forkserver", "spawn"):
        if method not in multiprocessing.get_all_start_methods():
            continue
        benchmarks.append(
            Benchmark(
                name=f"cold_start_{method}",
                title=(
                    f"a fresh interpreter: create a pool of {WORKERS} workers, first result "
                    f"of one task, start method {method}"
                ),
                kind="latency",
                unit="ms",
                reference="ProcessPoolExecutor",
                contenders=tuple(
                    Contender(name, partial(cold_start_contender, name, method, k))
                    for name in ("ProcessPool", "ProcessPoolExecutor")
                ),
                rounds=10,
            )
        )
    return benchmarks


def build(config: Config) -> list[Benchmark]:
    """Every benchmark of this script, sized for ``config``."""
    return [
        map_benchmark(config),
        submit_benchmark(config),
        roundtrip_benchmark(config),
        *thread_benchmarks(config),
        *lifecycle_benchmarks(config),
        crash_benchmark(config),
        *cold_start_benchmarks(config),
    ]


if __name__ == "__main__":
    sys.exit(main(build, description=__doc__ or "", packages=PEERS))

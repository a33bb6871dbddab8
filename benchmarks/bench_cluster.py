"""ClusterPool against dask's own client: what our pool layer costs per task.

Both contenders run on one ``LocalCluster`` (2 single-threaded worker processes on loopback,
started once, with the settings a ``ClusterPool()`` gives its own clusters): ``ClusterPool``
is given the same ``distributed.Client`` that the raw contender calls. Whatever the cluster
costs is in both rows; the ratio is what ``ClusterPool`` adds on top. The task is ``x + 1``
(:func:`_tasks.inc`), so a task costs what dask's scheduling of it costs. Needs the
``cluster`` extra (``pip install -e '.[cluster]'``); without ``distributed`` every contender is
skipped. Run ``python benchmarks/bench_cluster.py --help`` for the options.

Benchmarks (``--only NAME``), each timed per task (lower is better):

* ``map``: ``n`` tasks, one dask task each: ``ClusterPool.map(inc, items, chunksize=1)``
  against ``Client.map(inc, items)`` then ``Client.gather``. The issue's target: ours <= 1.1x.
* ``submit``: ``n`` ``submit`` calls, one future each, then every result: ``ClusterPool.submit``
  against ``Client.submit``. Target: ours <= 1.1x.
* ``map_auto``: ``ClusterPool.map`` with its default chunks (a few dask tasks for the whole
  input) against ``Client.map``: what the chunked map saves (no target).
* ``roundtrip``: one ``submit`` then its result on a warm cluster (no target).
"""

from __future__ import annotations

import atexit
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from _runner import Benchmark, Config, Contender, Measure, Target, main, sample_each, timed
from _tasks import inc
from bench_pools import check_incremented

WORKERS = 2
CLUSTER = ("distributed",)
OURS = "ClusterPool"
RAW = "distributed.Client"
MAX_OVERHEAD = 1.1

_shared: dict[str, Any] = {}


def shared_client() -> Any:
    """The one Client (and its LocalCluster) every contender uses; closed at exit."""
    if "client" not in _shared:
        import dask
        import distributed

        from concurrency_kit.pools.cluster import LOCAL_CLUSTER_CONFIG, LOCAL_CLUSTER_OPTIONS

        with dask.config.set(LOCAL_CLUSTER_CONFIG):
            cluster = distributed.LocalCluster(n_workers=WORKERS, **LOCAL_CLUSTER_OPTIONS)
        client = distributed.Client(cluster, set_as_default=False)
        _shared.update(cluster=cluster, client=client)
        atexit.register(close_shared)
        client.gather(client.map(inc, range(4 * WORKERS), pure=False))  # every worker warm
    return _shared["client"]


def close_shared() -> None:
    client = _shared.pop("client", None)
    cluster = _shared.pop("cluster", None)
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.close()


@contextmanager
def ck_pool() -> Iterator[Any]:
    from concurrency_kit import ClusterPool

    with ClusterPool(shared_client()) as pool:
        list(pool.map(inc, range(4 * WORKERS), chunksize=1))
        yield pool


@contextmanager
def raw_client() -> Iterator[Any]:
    yield shared_client()


def per_task(
    factory: Callable[[], Any], run: Callable[[Any, int], Sequence[int]], n: int
) -> Callable[[], Any]:
    """A setup measuring ``run(x, n)`` (checked), reported as seconds per task."""

    @contextmanager
    def setup() -> Iterator[Measure]:
        with factory() as target:

            def measure() -> float:
                results: list[Sequence[int]] = []
                elapsed = timed(lambda: results.append(run(target, n)))
                check_incremented(results[0], n)
                return elapsed / n

            yield measure

    return setup


def pool_map_one_per_task(pool: Any, n: int) -> list[int]:
    return list(pool.map(inc, range(n), chunksize=1, buffersize=n))


def pool_map_auto(pool: Any, n: int) -> list[int]:
    return list(pool.map(inc, range(n)))


def client_map(client: Any, n: int) -> list[int]:
    return client.gather(client.map(inc, range(n), pure=False))  # type: ignore[no-any-return]


def pool_submit(pool: Any, n: int) -> list[int]:
    futures = [pool.submit(inc, i) for i in range(n)]
    return [future.result() for future in futures]


def client_submit(client: Any, n: int) -> list[int]:
    futures = [client.submit(inc, i, pure=False) for i in range(n)]
    return client.gather(futures)  # type: ignore[no-any-return]


def pool_roundtrip(pool: Any) -> int:
    return pool.submit(inc, 1).result()  # type: ignore[no-any-return]


def client_roundtrip(client: Any) -> int:
    # pure=False as ClusterPool does: a pure call of the same inc(1) would find the previous
    # round's result still on the cluster and not run at all.
    return client.submit(inc, 1, pure=False).result()  # type: ignore[no-any-return]


def roundtrip(factory: Callable[[], Any], one: Callable[[Any], int], k: int) -> Callable[[], Any]:
    @contextmanager
    def setup() -> Iterator[Measure]:
        with factory() as target:

            def call() -> None:
                if one(target) != 2:
                    raise AssertionError("wrong result")

            for _ in range(10):
                call()
            yield sample_each(call, k)

    return setup


def build(config: Config) -> list[Benchmark]:
    n = config.size(1000, 200, 20)
    k = config.size(100, 20, 5)
    overhead = (Target(OURS, RAW, MAX_OVERHEAD, label=f"{OURS} per task vs {RAW}"),)

    def pair(ours: Callable[[Any, int], Sequence[int]], raw: Callable[[Any, int], Sequence[int]]):
        return (
            Contender(OURS, per_task(ck_pool, ours, n), requires=CLUSTER),
            Contender(RAW, per_task(raw_client, raw, n), requires=CLUSTER),
        )

    return [
        Benchmark(
            "map",
            f"{n} tasks, one dask task each: ClusterPool.map(chunksize=1) vs Client.map + gather",
            "latency",
            pair(pool_map_one_per_task, client_map),
            reference=RAW,
            targets=overhead,
            unit="us",
        ),
        Benchmark(
            "submit",
            f"{n} submit calls, then every result: ClusterPool.submit vs Client.submit",
            "latency",
            pair(pool_submit, client_submit),
            reference=RAW,
            targets=overhead,
            unit="us",
        ),
        Benchmark(
            "map_auto",
            f"{n} tasks: ClusterPool.map with its default chunks vs Client.map + gather",
            "latency",
            pair(pool_map_auto, client_map),
            reference=RAW,
            unit="us",
        ),
        Benchmark(
            "roundtrip",
            f"one submit -> result on a warm cluster ({k} samples per round)",
            "latency",
            (
                Contender(OURS, roundtrip(ck_pool, pool_roundtrip, k), requires=CLUSTER),
                Contender(RAW, roundtrip(raw_client, client_roundtrip, k), requires=CLUSTER),
            ),
            reference=RAW,
            unit="ms",
        ),
    ]


if __name__ == "__main__":
    sys.exit(
        main(build, description=__doc__ or "", packages=("dask", "distributed", "concurrency_kit"))
    )

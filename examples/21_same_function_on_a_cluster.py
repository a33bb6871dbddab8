"""The same function through ProcessPool and ClusterPool: one name changes, nothing else.

``count_primes`` is written once against a ``PoolModel``. It runs on ``PROCESS`` (worker
processes of this machine) and on ``CLUSTER`` (the workers of a dask ``distributed`` cluster:
here a LocalCluster that the pool starts on this machine and shuts down with itself; give
``ClusterPool`` a scheduler address to use a real one). Both give the same answer; the cluster
pays a few milliseconds per task for its scheduler, which is why ``map`` sends chunks.

Needs the ``cluster`` extra (``pip install 'concurrency_kit[cluster]'``); without it, the
cluster half is skipped with a message.

    python examples/21_same_function_on_a_cluster.py
"""

from __future__ import annotations

import importlib.util
import time

from concurrency_kit import CLUSTER, PROCESS, PoolModel


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    divisor = 2
    while divisor * divisor <= n:
        if n % divisor == 0:
            return False
        divisor += 1
    return True


def count_primes(model: PoolModel, limit: int) -> int:
    """How many primes are below ``limit``, counted by the workers of ``model``."""
    with model.Pool(2) as pool:
        return sum(pool.map(is_prime, range(limit)))


def main() -> None:
    limit = 50_000
    models = [PROCESS]
    if importlib.util.find_spec("distributed") is not None:
        models.append(CLUSTER)
    else:
        print("dask's distributed is not installed: pip install 'concurrency_kit[cluster]'")
    answers = {}
    for model in models:
        start = time.perf_counter()
        answers[model.name] = count_primes(model, limit)
        seconds = time.perf_counter() - start
        print(
            f"{model!r:8} {answers[model.name]} primes below {limit:,} "
            f"({seconds:.2f} s, pool start-up and shutdown included)"
        )
    print(f"same answer on every model: {len(set(answers.values())) == 1}")


if __name__ == "__main__":
    main()

"""Pools — the Definition and Creation Time rows: run callables on workers of either model.

:class:`ClusterPool` takes the same API to a dask ``distributed`` cluster (the ``cluster``
extra; ``distributed`` is imported only when a pool is created).
"""

from __future__ import annotations

from concurrency_kit.pools.cluster import ClusterPool
from concurrency_kit.pools.process import ProcessPool
from concurrency_kit.pools.thread import ThreadPool
from concurrency_kit.protocols import PoolStatistics

__all__ = ["ClusterPool", "PoolStatistics", "ProcessPool", "ThreadPool"]

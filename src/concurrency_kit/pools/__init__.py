"""Pools — the Definition and Creation Time rows: run callables on workers of either model.

:class:`ClusterPool` takes the same API to a dask ``distributed`` cluster (the ``cluster``
extra; ``distributed`` is imported only when a pool is created).
"""

from __future__ import annotations

from concurrency_kit.pools._base import PoolStatistics
from concurrency_kit.pools.cluster import ClusterPool
from concurrency_kit.pools.process import ProcessPool
from concurrency_kit.pools.thread import ThreadPool

__all__ = ["ClusterPool", "PoolStatistics", "ProcessPool", "ThreadPool"]

"""Pools — the Definition and Creation Time rows: run callables on workers of either model.

:class:`ClusterPool` takes the same API to a dask ``distributed`` cluster (the ``cluster``
extra; ``distributed`` is imported only when a pool is created). :class:`InterpreterPool` takes
it to subinterpreters (Python 3.14+; the module imports on every Python).
"""

from __future__ import annotations

from concurrency_kit.pools._base import as_completed
from concurrency_kit.pools._progress import ProgressBar
from concurrency_kit.pools._worker_state import worker_state
from concurrency_kit.pools.cluster import ClusterPool
from concurrency_kit.pools.interpreter import InterpreterPool
from concurrency_kit.pools.process import ProcessPool
from concurrency_kit.pools.thread import ThreadPool
from concurrency_kit.protocols import PoolStatistics

__all__ = [
    "ClusterPool",
    "InterpreterPool",
    "PoolStatistics",
    "ProcessPool",
    "ProgressBar",
    "ThreadPool",
    "as_completed",
    "worker_state",
]

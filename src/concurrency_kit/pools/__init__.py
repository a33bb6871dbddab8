"""Pools — the Definition and Creation Time rows: run callables on workers of either model."""

from __future__ import annotations

from concurrency_kit.pools._base import PoolStatistics
from concurrency_kit.pools.process import ProcessPool
from concurrency_kit.pools.thread import ThreadPool

__all__ = ["PoolStatistics", "ProcessPool", "ThreadPool"]

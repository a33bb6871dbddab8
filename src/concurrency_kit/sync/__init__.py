"""Synchronization — the Synchronization row: locks with the same API for both models.

This session's slice: ``Lock`` and ``RLock``. The rest of the row (semaphores, events,
conditions, barriers, reader-writer locks, guarded values) is still to come.
"""

from __future__ import annotations

from concurrency_kit.sync._base import LockStatistics
from concurrency_kit.sync.process import ProcessLock, ProcessRLock
from concurrency_kit.sync.thread import ThreadLock, ThreadRLock

__all__ = ["LockStatistics", "ProcessLock", "ProcessRLock", "ThreadLock", "ThreadRLock"]

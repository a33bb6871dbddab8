"""Synchronization — the Synchronization row: the same primitives for both models.

``thread.py`` and ``process.py`` hold one class per primitive and model; the locks are built
there, every other primitive is its algorithm from ``_algorithms.py`` running on the model's monitor
(``_core/monitor.py``).
"""

from __future__ import annotations

from concurrency_kit.sync._base import (
    BarrierStatistics,
    ConditionStatistics,
    EventStatistics,
    GuardedStatistics,
    LockStatistics,
    RWLockStatistics,
    SemaphoreStatistics,
)
from concurrency_kit.sync._lockorder import (
    disable_lock_order_checking,
    enable_lock_order_checking,
)
from concurrency_kit.sync.process import (
    ProcessBarrier,
    ProcessBoundedSemaphore,
    ProcessCondition,
    ProcessEvent,
    ProcessGuarded,
    ProcessLock,
    ProcessRLock,
    ProcessRWLock,
    ProcessSemaphore,
)
from concurrency_kit.sync.thread import (
    ThreadBarrier,
    ThreadBoundedSemaphore,
    ThreadCondition,
    ThreadEvent,
    ThreadGuarded,
    ThreadLock,
    ThreadRLock,
    ThreadRWLock,
    ThreadSemaphore,
)

__all__ = [
    "BarrierStatistics",
    "ConditionStatistics",
    "EventStatistics",
    "GuardedStatistics",
    "LockStatistics",
    "ProcessBarrier",
    "ProcessBoundedSemaphore",
    "ProcessCondition",
    "ProcessEvent",
    "ProcessGuarded",
    "ProcessLock",
    "ProcessRLock",
    "ProcessRWLock",
    "ProcessSemaphore",
    "RWLockStatistics",
    "SemaphoreStatistics",
    "ThreadBarrier",
    "ThreadBoundedSemaphore",
    "ThreadCondition",
    "ThreadEvent",
    "ThreadGuarded",
    "ThreadLock",
    "ThreadRLock",
    "ThreadRWLock",
    "ThreadSemaphore",
    "disable_lock_order_checking",
    "enable_lock_order_checking",
]

"""concurrency_kit: processes and threads behind one API, with the trade-offs measured.

Every row of the processes-versus-threads table is a folder of this package with one class per
model: ``ProcessPool``/``ThreadPool`` and so on. :data:`PROCESS` and :data:`THREAD` bundle each
model's classes so that code can be written once against a :class:`Model`.
"""

from __future__ import annotations

from concurrency_kit._util import fixup_module_metadata
from concurrency_kit.errors import (
    BrokenPoolError,
    ConcurrencyKitError,
    ConcurrencyKitWarning,
    LockOwnerDiedWarning,
    RemoteTraceback,
    SerializationError,
    TaskTimeoutError,
    WorkerCrashedError,
)
from concurrency_kit.models import PROCESS, THREAD, Model
from concurrency_kit.pools import PoolStatistics, ProcessPool, ThreadPool
from concurrency_kit.protocols import Pool
from concurrency_kit.sync import LockStatistics, ProcessLock, ProcessRLock, ThreadLock, ThreadRLock

__version__ = "0.1.0"

__all__ = [
    "PROCESS",
    "THREAD",
    "BrokenPoolError",
    "ConcurrencyKitError",
    "ConcurrencyKitWarning",
    "LockOwnerDiedWarning",
    "LockStatistics",
    "Model",
    "Pool",
    "PoolStatistics",
    "ProcessLock",
    "ProcessPool",
    "ProcessRLock",
    "RemoteTraceback",
    "SerializationError",
    "TaskTimeoutError",
    "ThreadLock",
    "ThreadPool",
    "ThreadRLock",
    "WorkerCrashedError",
    "__version__",
]

fixup_module_metadata(__name__, __all__, globals())
del fixup_module_metadata

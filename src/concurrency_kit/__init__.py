"""concurrency_kit: processes and threads behind one API, with the trade-offs measured.

Every row of the processes-versus-threads table is a folder of this package with one class per
model: ``ProcessPool``/``ThreadPool`` and so on. :data:`PROCESS` and :data:`THREAD` bundle each
model's classes so that code can be written once against a :class:`Model`.
"""

from __future__ import annotations

from concurrency_kit._util import fixup_module_metadata
from concurrency_kit.errors import (
    BrokenBarrierError,
    BrokenPoolError,
    ConcurrencyKitError,
    ConcurrencyKitWarning,
    LockOrderError,
    LockOwnerDiedWarning,
    LockTimeoutError,
    PoisonedError,
    RemoteTraceback,
    SerializationError,
    TaskTimeoutError,
    WorkerCrashedError,
)
from concurrency_kit.models import PROCESS, THREAD, Model
from concurrency_kit.pools import PoolStatistics, ProcessPool, ThreadPool
from concurrency_kit.protocols import Pool
from concurrency_kit.state import (
    ProcessSharedArray,
    ProcessSharedCounter,
    ProcessSharedDict,
    ProcessSharedValue,
    SharedArrayStatistics,
    SharedCounterStatistics,
    SharedDictStatistics,
    SharedValueStatistics,
    ThreadSharedArray,
    ThreadSharedCounter,
    ThreadSharedDict,
    ThreadSharedValue,
)
from concurrency_kit.sync import (
    BarrierStatistics,
    ConditionStatistics,
    EventStatistics,
    GuardedStatistics,
    LockStatistics,
    ProcessBarrier,
    ProcessBoundedSemaphore,
    ProcessCondition,
    ProcessEvent,
    ProcessGuarded,
    ProcessLock,
    ProcessRLock,
    ProcessRWLock,
    ProcessSemaphore,
    RWLockStatistics,
    SemaphoreStatistics,
    ThreadBarrier,
    ThreadBoundedSemaphore,
    ThreadCondition,
    ThreadEvent,
    ThreadGuarded,
    ThreadLock,
    ThreadRLock,
    ThreadRWLock,
    ThreadSemaphore,
    disable_lock_order_checking,
    enable_lock_order_checking,
)

__version__ = "0.1.0"

__all__ = [
    "PROCESS",
    "THREAD",
    "BarrierStatistics",
    "BrokenBarrierError",
    "BrokenPoolError",
    "ConcurrencyKitError",
    "ConcurrencyKitWarning",
    "ConditionStatistics",
    "EventStatistics",
    "GuardedStatistics",
    "LockOrderError",
    "LockOwnerDiedWarning",
    "LockStatistics",
    "LockTimeoutError",
    "Model",
    "PoisonedError",
    "Pool",
    "PoolStatistics",
    "ProcessBarrier",
    "ProcessBoundedSemaphore",
    "ProcessCondition",
    "ProcessEvent",
    "ProcessGuarded",
    "ProcessLock",
    "ProcessPool",
    "ProcessRLock",
    "ProcessRWLock",
    "ProcessSemaphore",
    "ProcessSharedArray",
    "ProcessSharedCounter",
    "ProcessSharedDict",
    "ProcessSharedValue",
    "RWLockStatistics",
    "RemoteTraceback",
    "SemaphoreStatistics",
    "SerializationError",
    "SharedArrayStatistics",
    "SharedCounterStatistics",
    "SharedDictStatistics",
    "SharedValueStatistics",
    "TaskTimeoutError",
    "ThreadBarrier",
    "ThreadBoundedSemaphore",
    "ThreadCondition",
    "ThreadEvent",
    "ThreadGuarded",
    "ThreadLock",
    "ThreadPool",
    "ThreadRLock",
    "ThreadRWLock",
    "ThreadSemaphore",
    "ThreadSharedArray",
    "ThreadSharedCounter",
    "ThreadSharedDict",
    "ThreadSharedValue",
    "WorkerCrashedError",
    "__version__",
    "disable_lock_order_checking",
    "enable_lock_order_checking",
]

fixup_module_metadata(__name__, __all__, globals())
del fixup_module_metadata

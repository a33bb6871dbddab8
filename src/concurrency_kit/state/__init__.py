"""Shared state — the Memory Space and Resource Sharing rows: containers both models share.

Threads share one memory space, processes do not: ``thread.py`` holds containers that are
ordinary objects updated under locks (never relying on the GIL), ``process.py`` the same API
over shared-memory segments (no server process). Type codes, value checks, statistics and the
array algorithm are written once in ``_base.py``, the dict's mapping methods in
``_mapping.py`` (over the shared-memory hash table of ``_hashtable.py`` for processes); the
lock-free operations of the process containers come from libatomic (``_core/atomics.py``).
"""

from __future__ import annotations

from concurrency_kit.state._base import (
    SharedArrayStatistics,
    SharedCounterStatistics,
    SharedValueStatistics,
)
from concurrency_kit.state._mapping import SharedDictStatistics
from concurrency_kit.state.process import (
    ProcessSharedArray,
    ProcessSharedCounter,
    ProcessSharedDict,
    ProcessSharedValue,
)
from concurrency_kit.state.thread import (
    ThreadSharedArray,
    ThreadSharedCounter,
    ThreadSharedDict,
    ThreadSharedValue,
)

__all__ = [
    "ProcessSharedArray",
    "ProcessSharedCounter",
    "ProcessSharedDict",
    "ProcessSharedValue",
    "SharedArrayStatistics",
    "SharedCounterStatistics",
    "SharedDictStatistics",
    "SharedValueStatistics",
    "ThreadSharedArray",
    "ThreadSharedCounter",
    "ThreadSharedDict",
    "ThreadSharedValue",
]

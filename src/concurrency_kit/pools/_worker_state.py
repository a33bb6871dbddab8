"""``worker_state()``: what a pool's initializer returned, as seen from the task running now.

Where each model keeps it::

    ThreadPool    a thread-local of each worker thread, set once when the thread starts
                  (its initializer runs in that thread)
    ProcessPool   a global of the worker process, set once after its initializer ran
    ClusterPool   a dict per dask worker, filled by the initializer's worker plugin (keyed by
                  the pool's plugin name: one dask worker may serve several pools); each task's
                  wrapper puts its pool's value in a thread-local for the call, and restores
                  what was there after (dask reuses its threads)

The thread-local is looked at first, so the innermost pool wins: a thread pool running inside
a process-pool worker gives its own threads' state.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["worker_state"]

_local = threading.local()  # .value: a 1-tuple, set in pool worker threads and cluster tasks
_process_value: list[Any] = []  # [value] in a process-pool worker
cluster_values: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
"""Per dask ``Worker``: the pool's plugin name -> what its initializer returned there."""


def worker_state() -> Any:
    """What the pool's ``initializer`` returned in the worker running the calling task.

    State a task needs and should not rebuild each time (a database connection, a loaded
    model, a parser) is built once per worker by the initializer and read here, with no
    global variable::

        def connect(url):
            return Database(url)

        def lookup(key):
            return worker_state().get(key)

        with ProcessPool(4, initializer=connect, initargs=(URL,)) as pool:
            values = list(pool.map(lookup, keys))

    One value per worker: per thread in a :class:`~concurrency_kit.ThreadPool`, per process in
    a :class:`~concurrency_kit.ProcessPool`, per dask worker in a
    :class:`~concurrency_kit.ClusterPool` (shared by that worker's threads if it has several).
    ``None`` when the pool has no initializer. In a process pool, threads the task starts see
    the same value; in a thread pool they do not (they are not pool workers).

    Raises:
        RuntimeError: the caller is not a task running on a pool worker.
    """
    held: tuple[Any] | None = getattr(_local, "value", None)
    if held is not None:
        return held[0]
    if _process_value:
        return _process_value[0]
    raise RuntimeError(
        "worker_state() is only available in a task running on a pool worker "
        "(ProcessPool, ThreadPool or ClusterPool)"
    )


def enter_thread(value: Any) -> None:
    """Make ``value`` the state of the calling worker thread, for the thread's life."""
    _local.value = (value,)


def enter_process(value: Any) -> None:
    """Make ``value`` the state of this worker process (a process-pool worker, once)."""
    _local.__dict__.pop("value", None)  # a fork-started worker inherits its forker's locals
    _process_value[:] = [value]


def run_as_cluster_task(key: str | None, call: Callable[..., T], *args: Any) -> T:
    """Run ``call(*args)`` on a dask worker with its pool's state in view (``key``: the pool's
    initializer plugin name, ``None`` when it has no initializer)."""
    value = None
    if key is not None:
        from distributed import get_worker

        value = cluster_values.get(get_worker(), {}).get(key)
    previous = getattr(_local, "value", None)
    _local.value = (value,)
    try:
        return call(*args)
    finally:
        _local.value = previous

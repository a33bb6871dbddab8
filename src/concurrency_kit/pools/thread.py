"""ThreadPool: the thread column of the pools row.

Data flow::

    submit() ──> _WorkItem ──> SimpleQueue ──> worker threads ──> future
                                   │                 │
                                   │      (task with a timeout)
                                   │                 v
                                   └────────── _Watchdog thread: at the deadline fails the
                                               future, abandons the thread, starts a new one

A thread cannot be killed. Where the process pool kills a late worker, the thread pool fails the
task's future at its deadline, marks the stuck thread *abandoned* (it exits as soon as its call
returns, without taking more work) and starts a replacement so the pool stays at full strength.

Every shared mutation happens under ``_lock`` or a work item's own lock; nothing relies on the
GIL. Per-worker counters are written only by their own thread and summed on demand.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import queue
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

from concurrency_kit.errors import BrokenPoolError, TaskTimeoutError
from concurrency_kit.pools._base import (
    PoolBase,
    PoolStatistics,
    default_thread_workers,
    stop_at_exit,
)

__all__ = ["ThreadPool"]

# Work item states, guarded by the item's lock.
_QUEUED, _RUNNING, _DONE, _TIMED_OUT = range(4)


class _WorkItem:
    __slots__ = ("args", "deadline", "fn", "future", "kwargs", "lock", "state", "timeout", "worker")

    def __init__(
        self,
        future: Future[Any],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any] | None,
        timeout: float | None,
    ) -> None:
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs if kwargs is not None else {}
        self.timeout = timeout
        self.lock = threading.Lock() if timeout is not None else None
        self.state = _QUEUED
        self.deadline = 0.0
        self.worker: _Worker | None = None


class _Worker:
    """One worker thread and the counters only it writes."""

    __slots__ = (
        "abandoned",
        "busy",
        "cancelled",
        "completed",
        "failed",
        "released",
        "thread",
        "timed_out",
    )

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        # Set when the thread has exited or has been abandoned: what shutdown(wait=True) waits on.
        self.released = threading.Event()
        self.busy = False
        self.abandoned = False
        self.completed = 0
        self.failed = 0
        self.timed_out = 0
        self.cancelled = 0  # cancelled by the user while queued, seen when dequeued


class _Core:
    """The pool's state, shared by its threads; holds no reference to the public object."""

    def __init__(
        self,
        name: str,
        max_workers: int,
        initializer: Callable[..., object] | None,
        initargs: tuple[Any, ...],
        max_tasks_per_worker: int | None,
    ) -> None:
        self.name = name
        self.max_workers = max_workers
        self.initializer = initializer
        self.initargs = initargs
        self.max_tasks = max_tasks_per_worker
        self.queue: queue.SimpleQueue[_WorkItem | None] = queue.SimpleQueue()
        self.lock = threading.Lock()
        # One token per task a worker finished and then went back to the queue for: a submitter
        # that takes a token need not start a worker. A deque, not a Semaphore: its append and
        # pop are atomic (documented thread-safe) and cost no Python-level lock.
        self.idle: collections.deque[None] = collections.deque()
        self.workers: set[_Worker] = set()
        self.abandoned: set[_Worker] = set()
        self.retired = _Worker()  # counters of workers that have exited
        self.shutdown = False
        self.broken: BrokenPoolError | None = None
        self.cancelled = 0
        self.replaced = 0
        self.serial = itertools.count(1)
        self.watchdog: _Watchdog | None = None

    # -- called by submitters ---------------------------------------------------------------

    def put(self, item: _WorkItem) -> None:
        with self.lock:
            if self.broken is not None:
                raise self.broken.fresh()
            if self.shutdown:
                raise RuntimeError("cannot schedule new tasks after shutdown")
            self.queue.put(item)
            try:
                self.idle.pop()
            except IndexError:
                if len(self.workers) < self.max_workers:
                    self._start_worker_locked()

    def _start_worker_locked(self) -> None:
        worker = _Worker()
        thread = threading.Thread(
            target=self.run_worker,
            args=(worker,),
            name=f"{self.name}-{next(self.serial)}",
            daemon=True,
        )
        worker.thread = thread
        self.workers.add(worker)
        thread.start()

    # -- the worker thread ------------------------------------------------------------------

    def run_worker(self, worker: _Worker) -> None:
        if self.initializer is not None:
            try:
                self.initializer(*self.initargs)
            except BaseException as exc:
                self._break(exc)
                self._retire(worker)
                return
        tasks_left = self.max_tasks
        try:
            while True:
                item = self.queue.get()
                if item is None:
                    return
                if not item.future.set_running_or_notify_cancel():
                    worker.cancelled += 1
                    continue
                worker.busy = True
                if item.lock is None:  # no timeout: the hot path, kept inline
                    try:
                        result = item.fn(*item.args, **item.kwargs)
                    except BaseException as exc:
                        worker.failed += 1
                        item.future.set_exception(exc)
                        del exc
                    else:
                        worker.completed += 1
                        item.future.set_result(result)
                        del result
                else:
                    self._run_timed(worker, item)
                del item
                worker.busy = False
                if worker.abandoned:
                    return
                if tasks_left is not None:
                    tasks_left -= 1
                    if tasks_left == 0:
                        with self.lock:
                            if not self.shutdown:
                                self.replaced += 1
                                self._start_worker_locked()
                        return
                self.idle.append(None)
        finally:
            self._retire(worker)

    def _run_timed(self, worker: _Worker, item: _WorkItem) -> None:
        assert item.lock is not None
        assert item.timeout is not None
        with item.lock:
            item.state = _RUNNING
            item.worker = worker
            item.deadline = time.monotonic() + item.timeout
        self._watchdog().watch(item)
        try:
            result = item.fn(*item.args, **item.kwargs)
        except BaseException as exc:
            if self._finish(item):
                worker.failed += 1
                item.future.set_exception(exc)
            del exc
        else:
            if self._finish(item):
                worker.completed += 1
                item.future.set_result(result)

    @staticmethod
    def _finish(item: _WorkItem) -> bool:
        """Claim the item's outcome; False when the watchdog already timed it out."""
        assert item.lock is not None
        with item.lock:
            if item.state == _TIMED_OUT:
                return False
            item.state = _DONE
            return True

    def _retire(self, worker: _Worker) -> None:
        with self.lock:
            self.workers.discard(worker)
            self.abandoned.discard(worker)
            self.retired.completed += worker.completed
            self.retired.failed += worker.failed
            self.retired.timed_out += worker.timed_out
            self.retired.cancelled += worker.cancelled
            worker.completed = worker.failed = worker.timed_out = worker.cancelled = 0
        worker.released.set()

    def _break(self, exc: BaseException) -> None:
        error = BrokenPoolError(
            f"{self.name}: the initializer raised {type(exc).__name__}: {exc}; "
            "the pool cannot run tasks"
        )
        error.__cause__ = exc
        with self.lock:
            if self.broken is None:
                self.broken = error
            self.shutdown = True
        self._drain(lambda item: item.future.set_exception(error.fresh()))
        # Wake the other workers so they exit too.
        for _ in range(self.max_workers):
            self.queue.put(None)

    def _drain(self, action: Callable[[_WorkItem], None]) -> None:
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return
            if item is not None and not item.future.done():
                action(item)

    # -- timeouts ---------------------------------------------------------------------------

    def _watchdog(self) -> _Watchdog:
        with self.lock:
            if self.watchdog is None:
                self.watchdog = _Watchdog(self)
            return self.watchdog

    def expire(self, item: _WorkItem) -> None:
        """Called by the watchdog at an item's deadline."""
        assert item.lock is not None
        with item.lock:
            if item.state != _RUNNING:
                return
            item.state = _TIMED_OUT
            worker = item.worker
        assert worker is not None
        worker.abandoned = True
        worker.released.set()
        with self.lock:
            worker.timed_out += 1
            self.workers.discard(worker)
            self.abandoned.add(worker)
            if not self.shutdown:
                self.replaced += 1
                self._start_worker_locked()
        item.future.set_exception(
            TaskTimeoutError(
                f"task exceeded its {item.timeout:g} s timeout; the thread running it cannot be "
                "killed and was abandoned (a new thread replaces it)"
            )
        )

    # -- shutdown and statistics ------------------------------------------------------------

    def stop(self, wait: bool, cancel_futures: bool) -> None:
        with self.lock:
            self.shutdown = True
            workers = list(self.workers)
        if cancel_futures:
            self._drain(self._cancel)
        for _ in workers:
            self.queue.put(None)
        watchdog = self.watchdog
        if wait:
            for worker in workers:
                worker.released.wait()
                if worker.thread is not None and not worker.abandoned:
                    worker.thread.join()
        if watchdog is not None:
            watchdog.stop(wait)

    def _cancel(self, item: _WorkItem) -> None:
        if item.future.cancel():
            with self.lock:
                self.cancelled += 1

    def statistics(self) -> PoolStatistics:
        with self.lock:
            everyone = [*self.workers, *self.abandoned, self.retired]
            return PoolStatistics(
                model="thread",
                max_workers=self.max_workers,
                workers_alive=len(self.workers),
                workers_busy=sum(1 for worker in self.workers if worker.busy),
                tasks_queued=max(
                    0, self.queue.qsize() - (len(self.workers) if self.shutdown else 0)
                ),
                tasks_completed=sum(w.completed for w in everyone),
                tasks_failed=sum(w.failed for w in everyone),
                tasks_crashed=0,
                tasks_timed_out=sum(w.timed_out for w in everyone),
                tasks_cancelled=self.cancelled + sum(w.cancelled for w in everyone),
                workers_replaced=self.replaced,
                workers_abandoned=len(self.abandoned),
            )


class _Watchdog:
    """A thread that fails late tasks at their deadline; started on the first timed task."""

    def __init__(self, core: _Core) -> None:
        self._core = core
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, _WorkItem]] = []
        self._serial = itertools.count()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"{core.name}-watchdog", daemon=True)
        self._thread.start()

    def watch(self, item: _WorkItem) -> None:
        with self._cond:
            heapq.heappush(self._heap, (item.deadline, next(self._serial), item))
            if self._heap[0][2] is item:
                self._cond.notify()

    def stop(self, wait: bool) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if wait:
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        item = heapq.heappop(self._heap)[2]
                        break
                    self._cond.wait(None if not self._heap else self._heap[0][0] - now)
            self._core.expire(item)
            del item


class ThreadPool(PoolBase):
    """A pool of threads; a :class:`concurrent.futures.Executor`.

    Threads share the interpreter and its memory: starting one and handing it work is cheap,
    and arguments and results are passed by reference, never copied. On a GIL build of
    CPython they do not run Python code in parallel: use them for I/O-bound work, or for code
    that releases the GIL.

    Args:
        max_workers: the most threads at once; by default ``min(32, cpu_count + 4)`` as in
            :class:`~concurrent.futures.ThreadPoolExecutor`. Threads start on demand.
        initializer: called as ``initializer(*initargs)`` in each new thread before its first
            task. If it raises, the pool is broken: pending and later tasks fail with
            :class:`~concurrency_kit.BrokenPoolError`.
        initargs: arguments for ``initializer``.
        max_tasks_per_worker: a thread exits after this many tasks and a fresh one replaces
            it (useful to drop thread-local state).
        name: the pool's name; threads are named ``{name}-{n}``.

    A task's ``timeout`` (see :meth:`schedule`) cannot stop a thread: at the deadline the
    future fails with :class:`~concurrency_kit.TaskTimeoutError`, the thread is abandoned (it
    exits once its call returns; :meth:`shutdown` does not wait for it) and a new thread takes
    its place. ``cancel()`` on a running task returns ``False``, as in the standard library.
    """

    _model = "thread"

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        max_tasks_per_worker: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(
            max_workers,
            default_workers=default_thread_workers(),
            initializer=initializer,
            initargs=initargs,
            max_tasks_per_worker=max_tasks_per_worker,
            name=name,
        )
        self._core = _Core(
            self._name, self._max_workers, initializer, initargs, max_tasks_per_worker
        )
        stop_at_exit(self._core)
        self._finalizer = weakref.finalize(self, self._core.stop, False, False)

    def _check_open(self) -> None:
        core = self._core
        if core.broken is not None:
            raise core.broken.fresh()
        if core.shutdown:
            raise RuntimeError("cannot schedule new tasks after shutdown")

    def _submit_task(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any] | None,
        timeout: float | None,
    ) -> Future[Any]:
        future: Future[Any] = Future()
        self._core.put(_WorkItem(future, fn, args, kwargs, timeout))
        return future

    def _shutdown(self, *, wait: bool, cancel_futures: bool) -> None:
        self._finalizer.detach()
        self._core.stop(wait, cancel_futures)

    def _abort(self) -> None:
        self._shutdown(wait=True, cancel_futures=True)

    def _statistics(self) -> PoolStatistics:
        return self._core.statistics()

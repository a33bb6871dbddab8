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

A thread of the pool never dies silently: if the watchdog or a worker fails in the pool's own
code (not in a task), the pool breaks loudly — every queued and later call fails with
:class:`~concurrency_kit.BrokenPoolError` chained to the cause, tasks the watchdog was timing
fail with it too (their threads are abandoned), and the workers are told to exit.
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

from concurrency_kit._core.deadline import wait_slice
from concurrency_kit.errors import BrokenPoolError, TaskTimeoutError
from concurrency_kit.pools import _worker_state
from concurrency_kit.pools._base import (
    PoolBase,
    PoolFuture,
    default_thread_workers,
    stop_at_exit,
)
from concurrency_kit.protocols import PoolStatistics

__all__ = ["ThreadPool"]

# Work item states, guarded by the item's lock.
_QUEUED, _RUNNING, _DONE, _TIMED_OUT = range(4)


class _ThreadFuture(PoolFuture):
    """A future that reports its cancellation to the pool's counters at once."""

    def __init__(self, core: _Core) -> None:
        super().__init__()
        self._ck_core = core
        self._ck_counted = False  # its cancellation is in the counters (under the core's lock)
        self._ck_taken = False  # off the queue (under the core's lock, for cancelled items)

    def cancel(self) -> bool:
        if not super().cancel():
            return False
        self._ck_core.count_cancel(self, taken=False)
        return True


class _WorkItem:
    __slots__ = ("args", "deadline", "fn", "future", "kwargs", "lock", "state", "timeout", "worker")

    def __init__(
        self,
        future: _ThreadFuture,
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
        "completed",
        "failed",
        "released",
        "taken",
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
        self.taken = 0  # work items taken off the queue to run (cancelled ones: see count_cancel)


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
        # tasks_queued = accepted - taken (by workers) - drained - cancelled_waiting: exact
        # counts, so the statistic can neither go negative nor count shutdown sentinels.
        self.accepted = 0
        self.drained = 0
        self.cancelled_waiting = 0  # cancelled while still on the queue
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
            self.accepted += 1
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
        state = None
        if self.initializer is not None:
            try:
                state = self.initializer(*self.initargs)
            except BaseException as exc:
                self.break_pool(
                    f"the initializer raised {type(exc).__name__}: {exc}; "
                    "the pool cannot run tasks",
                    exc,
                )
                self._retire(worker)
                return
        _worker_state.enter_thread(state)
        del state
        try:
            self._work(worker)
        except BaseException as exc:  # a failure of the pool's own code, not of a task
            self.break_pool(
                f"worker thread {threading.current_thread().name} failed: "
                f"{type(exc).__name__}: {exc}",
                exc,
            )
        finally:
            self._retire(worker)

    def _work(self, worker: _Worker) -> None:
        tasks_left = self.max_tasks
        while True:
            item = self.queue.get()
            if item is None:
                return
            if not item.future.set_running_or_notify_cancel():
                self.count_cancel(item.future, taken=True, worker=worker)
                continue
            worker.taken += 1
            worker.busy = True
            try:
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
            except BaseException as exc:
                # The pool's own code failed around the task: its future must not hang.
                if not item.future.done():
                    error = self._broken_error(
                        f"worker thread {threading.current_thread().name} failed: "
                        f"{type(exc).__name__}: {exc}",
                        exc,
                    )
                    try:
                        item.future.set_exception(error)
                    except Exception:  # pragma: no cover - resolved meanwhile
                        pass
                raise
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

    def count_cancel(
        self, future: _ThreadFuture, *, taken: bool, worker: _Worker | None = None
    ) -> None:
        """Count a cancelled task once, whoever sees it first: ``cancel()``, or (``taken``) the
        worker or drain that takes it off the queue."""
        with self.lock:
            if taken:
                future._ck_taken = True
                if worker is not None:
                    worker.taken += 1
            if not future._ck_counted:
                future._ck_counted = True
                self.cancelled += 1
                if not future._ck_taken:
                    self.cancelled_waiting += 1
            elif taken:
                self.cancelled_waiting -= 1

    def _run_timed(self, worker: _Worker, item: _WorkItem) -> None:
        assert item.lock is not None
        assert item.timeout is not None
        with item.lock:
            item.state = _RUNNING
            item.worker = worker
            item.deadline = time.monotonic() + item.timeout  # finite: check_timeout made sure
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
            self.retired.taken += worker.taken
            worker.completed = worker.failed = worker.timed_out = worker.taken = 0
        worker.released.set()

    def _broken_error(self, message: str, cause: BaseException) -> BrokenPoolError:
        error = BrokenPoolError(f"{self.name}: {message}")
        error.__cause__ = cause
        return error

    def break_pool(self, message: str, cause: BaseException) -> None:
        """Break the pool: queued and later calls fail with BrokenPoolError, workers exit."""
        error = self._broken_error(message, cause)
        with self.lock:
            if self.broken is None:
                self.broken = error
            error = self.broken
            self.shutdown = True
        self._drain(lambda item: item.future.set_exception(error.fresh()))
        # Wake the other workers so they exit too. The watchdog (if alive) runs on until
        # shutdown: tasks still running must still time out.
        for _ in range(self.max_workers):
            self.queue.put(None)

    def _drain(self, action: Callable[[_WorkItem], None]) -> None:
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return
            if item is None:
                continue
            with self.lock:
                self.drained += 1
                item.future._ck_taken = True
                if item.future._ck_counted:
                    self.cancelled_waiting -= 1
            if not item.future.done():
                action(item)

    # -- timeouts ---------------------------------------------------------------------------

    def _watchdog(self) -> _Watchdog:
        with self.lock:
            if self.watchdog is None:
                self.watchdog = _Watchdog(self)
            return self.watchdog

    def expire(self, item: _WorkItem) -> None:
        """Called by the watchdog at an item's deadline."""
        self.abandon(
            item,
            TaskTimeoutError(
                f"task exceeded its {item.timeout:g} s timeout; the thread running it cannot be "
                "killed and was abandoned (a new thread replaces it)"
            ),
        )

    def abandon(self, item: _WorkItem, error: BaseException) -> None:
        """Fail a running timed task with ``error`` and abandon its thread (unless finished)."""
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
            if isinstance(error, TaskTimeoutError):
                worker.timed_out += 1
            self.workers.discard(worker)
            self.abandoned.add(worker)
            if not self.shutdown:
                self.replaced += 1
                self._start_worker_locked()
        item.future.set_exception(error)

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
                while not worker.released.wait(wait_slice(None)):
                    pass
                if worker.thread is not None and not worker.abandoned:
                    worker.thread.join()
        if watchdog is not None:
            watchdog.stop(wait)

    @staticmethod
    def _cancel(item: _WorkItem) -> None:
        item.future.cancel()  # counted by the future (count_cancel)

    def statistics(self) -> PoolStatistics:
        with self.lock:
            everyone = [*self.workers, *self.abandoned, self.retired]
            return PoolStatistics(
                model="thread",
                max_workers=self.max_workers,
                workers_alive=len(self.workers),
                workers_busy=sum(1 for worker in self.workers if worker.busy),
                tasks_queued=self.accepted
                - sum(w.taken for w in everyone)
                - self.drained
                - self.cancelled_waiting,
                tasks_completed=sum(w.completed for w in everyone),
                tasks_failed=sum(w.failed for w in everyone),
                tasks_crashed=0,
                tasks_timed_out=sum(w.timed_out for w in everyone),
                tasks_cancelled=self.cancelled,
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
        self.thread = threading.Thread(target=self._run, name=f"{core.name}-watchdog", daemon=True)
        self.thread.start()

    def watch(self, item: _WorkItem) -> None:
        with self._cond:
            heapq.heappush(self._heap, (item.deadline, next(self._serial), item))
            if self._heap[0][2] is item:
                self._cond.notify()

    def stop(self, wait: bool) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if wait and self.thread is not threading.current_thread():
            self.thread.join()

    def _run(self) -> None:
        item: _WorkItem | None = None
        try:
            while True:
                with self._cond:
                    while True:
                        if self._stopping:
                            return
                        now = time.monotonic()
                        if self._heap and self._heap[0][0] <= now:
                            item = heapq.heappop(self._heap)[2]
                            break
                        self._cond.wait(
                            wait_slice(None if not self._heap else self._heap[0][0] - now)
                        )
                self._core.expire(item)
                item = None
        except BaseException as exc:  # never die silently: the tasks it times would hang
            self._die(exc, item)

    def _die(self, exc: BaseException, item: _WorkItem | None) -> None:
        message = f"its watchdog thread failed: {type(exc).__name__}: {exc}"
        with self._cond:
            self._stopping = True
            watched = [entry[2] for entry in self._heap]
            self._heap.clear()
        if item is not None:
            watched.append(item)
        self._core.break_pool(message, exc)
        error = self._core.broken
        assert error is not None
        for running in watched:
            self._core.abandon(running, error.fresh())


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
            task; what it returns is that thread's :func:`~concurrency_kit.worker_state`. If
            it raises, the pool is broken: pending and later tasks fail with
            :class:`~concurrency_kit.BrokenPoolError`.
        initargs: arguments for ``initializer``.
        max_tasks_per_worker: a thread exits after this many tasks and a fresh one replaces
            it (useful to drop thread-local state).
        name: the pool's name; threads are named ``{name}-{n}``.
        forward_logs: accepted for the same signature as :class:`ProcessPool`; nothing to
            forward: threads log through this process's handlers already (``record.threadName``
            names the worker thread).

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
        forward_logs: bool = True,
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
        future = _ThreadFuture(self._core)
        self._core.put(_WorkItem(future, fn, args, kwargs, timeout))
        return future

    def _count_expired_at_start(self) -> None:
        with self._core.lock:
            self._core.retired.timed_out += 1

    def _shutdown(self, *, wait: bool, cancel_futures: bool) -> None:
        self._finalizer.detach()
        self._core.stop(wait, cancel_futures)

    def _abort(self) -> None:
        self._shutdown(wait=True, cancel_futures=True)

    def _statistics(self) -> PoolStatistics:
        return self._core.statistics()

"""ProcessPool: the process column of the pools row.

Data flow::

                         submit() pickles the call (cloudpickle) in the caller's thread
                                          │
                                          v
    caller threads ──> pending deque ──> per-worker task pipe ──> worker process
          ^                 ^   (written directly to an idle      │ START, OK/ERROR, ...
          │                 │    worker; the rest by the          v
      futures <──────── dispatcher thread <──────────────── per-worker event pipe
                            │   selects on: event pipes, task pipes that have bytes left to
                            │   write, worker sentinels, a wake-up pipe, the nearest deadline
                            └─> kills a worker whose task timed out or was cancelled while
                                running; replaces workers that died, were killed or recycled

Every worker has pipes of its own, so the pool always knows what each worker holds. A worker
runs its tasks in the order it received them and answers each in that order, so the oldest
unanswered task of a worker is the one it is running: a worker that dies fails only that task,
and the tasks queued behind it go back to the head of the queue. Only a task with a timeout
costs an extra START frame, which starts its clock. Small tasks are sent to each worker a few
at a time (up to :data:`PREFETCH` when tasks are short), which turns a burst of ``submit``
calls into a few large writes. The parent never blocks on a pipe: task pipes are non-blocking
and what does not fit waits in a per-worker outbox until the pipe is writable, so a worker
blocked on writing a large result can never deadlock with a parent writing a large task.

A caller waiting in ``result()`` for a short task reads its worker's event pipe itself for a
moment (:meth:`_Core.help`), and an idle worker watches its task pipe for a moment before it
sleeps: a short round trip then wakes no sleeping thread or process.

The state lives in :class:`_Core`, shared by the callers and the dispatcher thread under one
lock; the public :class:`ProcessPool` is only a facade, so a forgotten pool can be collected and
its finalizer shuts the core down.

The dispatcher never dies silently: if the pool's own code fails in it, the pool breaks loudly
(every unfinished and later call fails with :class:`~concurrency_kit.BrokenPoolError` chained
to the cause) and its workers are killed and reaped. Its ``select`` is given bounded waits only
(:func:`~concurrency_kit._core.deadline.wait_slice`): a task timeout of days cannot overflow it.
"""

from __future__ import annotations

import collections
import gc
import heapq
import itertools
import multiprocessing
import os
import select
import selectors
import signal
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import _base as _futures_base
from functools import partial
from multiprocessing.connection import Connection
from typing import Any

from concurrency_kit._core import serialize, worker_logs
from concurrency_kit._core.deadline import wait_slice
from concurrency_kit._core.startmethod import (
    default_start_method,
    main_module_problem,
    mp_context,
)
from concurrency_kit.errors import (
    BrokenPoolError,
    SerializationError,
    TaskTimeoutError,
    WorkerCrashedError,
    WorkerMemoryError,
)
from concurrency_kit.pools import _frames, _memory
from concurrency_kit.pools._base import (
    PoolBase,
    PoolFuture,
    default_process_workers,
    stop_at_exit,
)
from concurrency_kit.pools._process_worker import worker_main
from concurrency_kit.protocols import PoolStatistics

__all__ = ["ProcessPool"]

PREFETCH = 64
"""The most tasks queued at one worker when tasks are short (under :data:`SHORT_TASK`)."""
SHORT_TASK = 0.001
STUCK_AFTER_MIN = 0.005
"""A worker whose current task has run this long (or four average tasks, if longer) is *stuck*:
no more tasks are queued behind it, and an idle worker takes back the ones already queued."""
HELP_SPIN = 200e-6
"""How long a caller waiting in ``result()`` watches its worker's pipe before it sleeps."""
HELP_SHORTER_THAN = SHORT_TASK
"""Callers help only while the average task is shorter than this."""
START_FAILURES_TO_BREAK = 3
"""Workers in a row that die before they are ready before the pool declares itself broken."""
MEMORY_CHECK_INTERVAL = 0.1
"""With ``max_memory_per_worker``: how often the dispatcher reads the resident memory of the
workers that are running a task (each worker is also read after each of its answers)."""

_WAKE, _EVENTS, _SENTINEL, _WRITABLE = range(4)
_ANSWERS = frozenset({_frames.OK, _frames.ERROR})


class _Task:
    __slots__ = (
        "deadline",
        "finished",
        "future",
        "id",
        "payload",
        "started",
        "stolen",
        "timeout",
        "worker",
    )

    def __init__(
        self, task_id: int, future: _ProcessFuture, payload: bytes, timeout: float | None
    ) -> None:
        self.id = task_id
        self.future = future
        self.payload: bytes | None = payload
        self.timeout = timeout
        self.worker: int | None = None  # serial of the worker it was sent to
        self.started = 0.0  # monotonic time of its START (tasks with a timeout only)
        self.deadline = 0.0
        self.finished = False  # its outcome has been claimed (result, error or cancel)
        self.stolen = False  # asked back from a stuck worker, for an idle one


class _ProcessFuture(PoolFuture):
    """A future whose ``cancel()`` can also stop a task that is already running."""

    def __init__(self, core: _Core, task_id: int) -> None:
        super().__init__()
        self._ck_core = core
        self._ck_task_id = task_id

    def cancel(self) -> bool:
        """Cancel the task; a running task's worker is killed (and replaced).

        Returns:
            ``True`` unless the task had already finished.
        """
        if not self._ck_core.cancel(self._ck_task_id):
            return self.cancelled()
        self._ck_force_cancel()
        return True

    def _ck_before_wait(self) -> None:
        self._ck_core.help(self)

    def _ck_force_cancel(self) -> None:
        with self._condition:
            if self._state == _futures_base.FINISHED:  # pragma: no cover - claimed first
                return
            self._state = _futures_base.CANCELLED
            self._condition.notify_all()
        self.set_running_or_notify_cancel()
        self._invoke_callbacks()  # type: ignore[attr-defined]


class _Worker:
    """The parent's view of one worker process."""

    __slots__ = (
        "event_conn",
        "event_eof",
        "event_fd",
        "kill_reason",
        "last_answer",
        "outbox",
        "outstanding",
        "pid",
        "process",
        "quota",
        "reader",
        "ready",
        "retiring",
        "running",
        "serial",
        "stop_sent",
        "task_conn",
        "task_fd",
        "want_write",
    )

    def __init__(
        self,
        serial: int,
        process: multiprocessing.process.BaseProcess,
        task_conn: Connection,
        event_conn: Connection,
        quota: int | None,
    ) -> None:
        self.serial = serial
        self.process = process
        assert process.pid is not None
        self.pid: int = process.pid
        self.task_conn = task_conn
        self.event_conn = event_conn
        self.task_fd = task_conn.fileno()
        self.event_fd = event_conn.fileno()
        os.set_blocking(self.task_fd, False)
        os.set_blocking(self.event_fd, False)
        self.reader = _frames.FrameReader()
        self.event_eof = False
        self.outbox = _frames.Outbox()
        self.want_write = False
        self.outstanding: collections.deque[int] = collections.deque()  # task ids, in order
        self.running: int | None = None  # a task with a timeout that announced its START
        self.last_answer = 0.0  # when it last answered, while it has tasks outstanding
        self.quota = quota
        self.ready = False
        self.stop_sent = False
        self.retiring = False  # over the memory limit: told to stop after its current task
        self.kill_reason: str | None = None

    def usable(self) -> bool:
        return (
            not self.stop_sent
            and not self.retiring
            and self.kill_reason is None
            and self.quota != 0
        )


class _Core:
    """The pool's state and its dispatcher thread (see the module docstring)."""

    def __init__(
        self,
        name: str,
        max_workers: int,
        context: Any,  # a multiprocessing context; typeshed's BaseContext lacks Process
        initializer: bytes | None,
        max_tasks: int | None,
        memory_limit: int | None = None,
        forward_logs: bool = False,
    ) -> None:
        self.name = name
        self.max_workers = max_workers
        self.context = context
        self.fork = context.get_start_method() == "fork"
        self.initializer = initializer
        self.max_tasks = max_tasks
        self.memory_limit = memory_limit
        self.forward_logs = forward_logs
        # The workers' logging records, handed to this process's loggers (_core/worker_logs.py);
        # made with the dispatcher, stopped once every worker has exited.
        self.logs: worker_logs.LogForwarder | None = None
        self.memory_check_at = time.monotonic() + MEMORY_CHECK_INTERVAL
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.serials = itertools.count(1)
        self.tasks: dict[int, _Task] = {}  # every task whose outcome is not claimed yet
        self.pending: collections.deque[_Task] = collections.deque()
        self.workers: dict[int, _Worker] = {}
        self.timers: list[tuple[float, int, int]] = []
        self.shutdown = False
        self.broken: BrokenPoolError | None = None
        self.start_failures = 0
        self.lost_workers = 0  # died, killed or recycled, not yet replaced
        self.avg_duration: float | None = None
        self.steal_check_at: float | None = None
        self.thread: threading.Thread | None = None
        # Set when the dispatcher has finished. Waiting on it rather than on Thread.join()
        # matters: on Python 3.11 a join() interrupted by Ctrl-C marks the thread as stopped
        # (the bpo-45274 branch of _wait_for_tstate_lock), so a second join() returns at once
        # while the dispatcher still runs, racing with interpreter exit.
        self.stopped = threading.Event()
        self.selector: selectors.BaseSelector | None = None
        self.wake_r = self.wake_w = -1
        self.wake_pending = False
        self.alive: tuple[Connection, Connection] | None = None
        self.completed = self.failed = self.crashed = self.timed_out = 0
        self.cancelled = self.replaced = 0
        # shutdown(cancel_futures=True) was called: a task that comes back unstarted from a
        # worker (SKIPPED, or behind a worker that died) is cancelled, not queued again.
        self.cancel_unstarted = False

    # -- callers ----------------------------------------------------------------------------

    def check_open_locked(self) -> None:
        if self.broken is not None:
            raise self.broken.fresh()
        if self.shutdown:
            raise RuntimeError("cannot schedule new tasks after shutdown")

    def submit(self, payload: bytes, timeout: float | None) -> _ProcessFuture:
        with self.lock:
            self.check_open_locked()
            task_id = next(self.ids)
            future = _ProcessFuture(self, task_id)
            task = _Task(task_id, future, payload, timeout)
            self.tasks[task_id] = task
            self.pending.append(task)
            if self.thread is None:
                self._start_dispatcher_locked()
            self._dispatch_locked()
            if self.pending and self._spawn_wanted_locked():
                self._wake_locked()
        return future

    def cancel(self, task_id: int) -> bool:
        """Claim a task's outcome as cancelled; False when it is already claimed."""
        with self.lock:
            task = self.tasks.get(task_id)
            if task is None or task.finished:
                return False
            self._claim_locked(task)
            self.cancelled += 1
            if task.worker is not None:
                worker = self.workers.get(task.worker)
                if worker is not None:
                    if worker.outstanding and worker.outstanding[0] == task_id:
                        self._kill_locked(worker, "cancel")  # it is running (or about to)
                    else:
                        self._send_locked(worker, _frames.CANCEL, task_id)
            return True

    def help(self, future: _ProcessFuture) -> None:
        """Watch for the answer to ``future``'s task for a moment, in the waiting thread.

        The dispatcher thread would read the answer too, then wake this thread: two thread
        wake-ups per round trip. A caller that waits for a short task reads its worker's event
        pipe itself for up to :data:`HELP_SPIN` first, polling with a yield between looks, and
        so finds the answer without sleeping. Frames are read under the lock with the
        dispatcher's own code, so it does not matter which thread reads them; the dispatcher
        is woken whenever what was read needs more than delivering answers.
        """
        with self.lock:
            if self.avg_duration is not None and self.avg_duration > HELP_SHORTER_THAN:
                return  # a long task: spinning would only burn a CPU the workers need
            task = self.tasks.get(future._ck_task_id)
            if task is None or task.finished or task.worker is None:
                return
            worker = self.workers.get(task.worker)
            if worker is None or worker.event_eof:
                return
            look = select.poll()
            look.register(worker.event_fd, select.POLLIN)
        give_up = time.monotonic() + HELP_SPIN
        while not future.done() and time.monotonic() < give_up:
            if not look.poll(0):
                os.sched_yield()
                continue
            actions: list[Callable[[], object]] = []
            with self.lock:
                if not self._is_current_locked(worker) or worker.event_eof:
                    return  # the dispatcher has seen it go; it delivers the rest
                seen: set[int] = set()
                timers, steal_check_at = self.timers[:1], self.steal_check_at
                self._read_events_locked(worker, actions, seen)
                self._dispatch_locked()
                if (
                    seen - _ANSWERS
                    or worker.event_eof
                    or self.shutdown
                    or self.broken is not None
                    or self._spawn_wanted_locked()
                    or self.timers[:1] != timers
                    or self.steal_check_at != steal_check_at
                ):
                    self._wake_locked()
            for action in actions:
                action()

    def stop(self, wait: bool, cancel_futures: bool) -> None:
        to_cancel: list[_ProcessFuture] = []
        with self.lock:
            self.shutdown = True
            if cancel_futures:
                self._cancel_unstarted_locked(to_cancel)
            thread = self.thread
            if thread is not None:
                self._wake_locked()
        for future in to_cancel:
            future._ck_force_cancel()
        if wait and thread is not None and thread is not threading.current_thread():
            self._wait_stopped(thread)

    def _cancel_unstarted_locked(self, cancelled: list[_ProcessFuture]) -> None:
        """``shutdown(cancel_futures=True)``: cancel what has not started; never kill.

        In one pass under the lock, so that no task can start between the look and the
        cancel (a worker is never killed here: a running task finishes and delivers its
        result). Tasks not sent to a worker are cancelled now. A task queued at a worker
        behind the one it runs is asked back (CANCEL); it is cancelled when the worker
        answers SKIPPED, or runs and delivers its result if the worker had already started it.
        """
        self.cancel_unstarted = True
        for task in self.pending:
            if not task.finished:
                self._claim_locked(task)
                self.cancelled += 1
                cancelled.append(task.future)
        self.pending.clear()
        for worker in self.workers.values():
            for task_id in itertools.islice(worker.outstanding, 1, None):
                behind = self.tasks.get(task_id)
                if behind is not None and not behind.finished and not behind.stolen:
                    behind.stolen = True
                    self._send_locked(worker, _frames.CANCEL, task_id)

    def _cancel_returned_locked(self, task: _Task, actions: list[Callable[[], object]]) -> None:
        """Cancel a task that came back unstarted after ``shutdown(cancel_futures=True)``."""
        task.finished = True
        task.payload = None
        self.tasks.pop(task.id, None)
        self.cancelled += 1
        actions.append(task.future._ck_force_cancel)

    def _wait_stopped(self, thread: threading.Thread) -> None:
        while not self.stopped.wait(wait_slice(None)):
            pass
        thread.join()

    def abort(self) -> None:
        """Stop now: cancel every unfinished task and kill every worker."""
        to_cancel: list[_ProcessFuture] = []
        with self.lock:
            self.shutdown = True
            for task in list(self.tasks.values()):
                if not task.finished:
                    self._claim_locked(task)
                    self.cancelled += 1
                    to_cancel.append(task.future)
            for worker in self.workers.values():
                self._kill_locked(worker, "abort")
            thread = self.thread
            if thread is not None:
                self._wake_locked()
        for future in to_cancel:
            future._ck_force_cancel()
        if thread is not None and thread is not threading.current_thread():
            self._wait_stopped(thread)

    def statistics(self) -> PoolStatistics:
        with self.lock:
            busy = sum(1 for w in self.workers.values() if w.outstanding)
            # Counted, not derived by subtraction: a running task that was cancelled (or timed
            # out) stays at its worker until the worker is reaped, and "unfinished minus busy"
            # then went negative.
            queued = sum(1 for t in self.pending if not t.finished)
            for worker in self.workers.values():
                for task_id in itertools.islice(worker.outstanding, 1, None):
                    task = self.tasks.get(task_id)
                    if task is not None and not task.finished:
                        queued += 1
            return PoolStatistics(
                model="process",
                max_workers=self.max_workers,
                workers_alive=len(self.workers),
                workers_busy=busy,
                tasks_queued=queued,
                tasks_completed=self.completed,
                tasks_failed=self.failed,
                tasks_crashed=self.crashed,
                tasks_timed_out=self.timed_out,
                tasks_cancelled=self.cancelled,
                workers_replaced=self.replaced,
                workers_abandoned=0,
            )

    # -- shared helpers (lock held) ---------------------------------------------------------

    def _mark_head_running_locked(self, worker: _Worker) -> None:
        """The oldest unanswered task of a worker is the one it runs (or is about to): only
        that one's future reports ``running()``. Tasks queued behind it stay pending, as
        :meth:`concurrent.futures.Future.running` promises, so ``shutdown(cancel_futures=True)``
        cancels exactly the futures that are not running."""
        if not worker.outstanding:
            return
        task = self.tasks.get(worker.outstanding[0])
        if task is not None and not task.finished and not task.future.running():
            task.future.set_running_or_notify_cancel()

    def _claim_locked(self, task: _Task) -> None:
        task.finished = True
        task.payload = None
        if task.worker is None or self.workers.get(task.worker) is None:
            del self.tasks[task.id]

    def _kill_locked(self, worker: _Worker, reason: str) -> None:
        if worker.kill_reason is None:
            worker.kill_reason = reason
            try:
                worker.process.kill()
            except (OSError, ValueError):  # pragma: no cover - already reaped
                pass

    def _wake_locked(self) -> None:
        if not self.wake_pending and self.wake_w >= 0:
            self.wake_pending = True
            try:
                os.write(self.wake_w, b"!")
            except BlockingIOError:  # pragma: no cover - the pipe is full: a wake-up is pending
                pass

    def _send_locked(self, worker: _Worker, kind: int, task_id: int, payload: bytes = b"") -> None:
        if worker.kill_reason is not None:
            return
        worker.outbox.add(kind, task_id, payload)
        if worker.want_write:
            return  # the dispatcher writes it when the pipe has room
        try:
            if worker.outbox.write_some(worker.task_fd):
                return
        except OSError:  # the worker is gone; its sentinel will tell the dispatcher
            worker.outbox.clear()
            return
        worker.want_write = True
        self._wake_locked()

    def _spawn_wanted_locked(self) -> bool:
        if self.broken is not None or len(self.workers) >= self.max_workers:
            return False
        if self.lost_workers and not self.shutdown:
            return True  # keep the pool at the strength it had
        if not self.pending:
            return False
        return not any(w.usable() and not w.outstanding for w in self.workers.values())

    def _depth_locked(self) -> int:
        if len(self.workers) < self.max_workers:
            return 1  # leave work pending so that the dispatcher starts another worker for it
        if self.avg_duration is None:
            return 2
        return PREFETCH if self.avg_duration < SHORT_TASK else 1

    def _stuck_after_locked(self) -> float:
        return max(STUCK_AFTER_MIN, 4 * (self.avg_duration or 0.0))

    def _dispatch_locked(self) -> None:
        if self.broken is not None:
            return
        depth = self._depth_locked()
        now = time.monotonic()
        stuck_after = self._stuck_after_locked()
        pending = self.pending
        while pending:
            task = pending[0]
            if task.finished:
                pending.popleft()
                continue
            best: _Worker | None = None
            for worker in self.workers.values():
                queued = len(worker.outstanding)
                if (
                    worker.usable()
                    and queued < depth
                    and (best is None or queued < len(best.outstanding))
                    and not (queued and now - worker.last_answer > stuck_after)
                ):
                    best = worker
            if best is None:
                break
            pending.popleft()
            task.worker = best.serial
            best.outstanding.append(task.id)
            if not best.last_answer:
                best.last_answer = now
            if len(best.outstanding) == 1:
                self._mark_head_running_locked(best)
            if best.quota is not None:
                best.quota -= 1
            kind = _frames.TASK if task.timeout is None else _frames.TASK_TIMED
            assert task.payload is not None
            self._send_locked(best, kind, task.id, task.payload)
        self._steal_locked(now, stuck_after)

    def _steal_locked(self, now: float, stuck_after: float) -> None:
        """Take back the tasks queued behind a stuck task when another worker is idle.

        The stuck worker is asked to skip them (CANCEL); each one it skips comes back as
        SKIPPED and returns to the queue. One it had already started simply runs there.
        """
        self.steal_check_at = None
        if any(not task.finished for task in self.pending):
            return
        if not any(w.usable() and not w.outstanding for w in self.workers.values()):
            return
        for worker in self.workers.values():
            if len(worker.outstanding) < 2 or worker.kill_reason is not None or not worker.ready:
                continue
            stuck_at = worker.last_answer + stuck_after
            if now < stuck_at:
                if self.steal_check_at is None or stuck_at < self.steal_check_at:
                    self.steal_check_at = stuck_at
                continue
            asked = False
            for task_id in itertools.islice(worker.outstanding, 1, None):
                task = self.tasks.get(task_id)
                if task is not None and not task.finished and not task.stolen:
                    task.stolen = True
                    asked = True
                    self._send_locked(worker, _frames.CANCEL, task_id)
            if asked:  # the worker is busy in a task: its SIGUSR1 handler answers at once
                try:
                    os.kill(worker.pid, signal.SIGUSR1)
                except ProcessLookupError:  # pragma: no cover - it just died
                    pass

    def _requeue_locked(self, task: _Task) -> None:
        """Put a task back in the queue, in submission order."""
        task.worker = None
        task.stolen = False
        for index, queued in enumerate(self.pending):
            if queued.id > task.id:
                self.pending.insert(index, task)
                return
        self.pending.append(task)

    def _start_dispatcher_locked(self) -> None:
        if self.forward_logs:
            # Imported here: the channels row imports nothing of the pools, but a pool that
            # never runs a task need not pay for a channel.
            from concurrency_kit.channels import ProcessChannel

            self.logs = worker_logs.LogForwarder(
                ProcessChannel(None, name=f"{self.name}:logs"), name=f"{self.name}-logs"
            )
            self.logs.start()
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.selector.register(self.wake_r, selectors.EVENT_READ, (_WAKE, None))
        self.alive = self.context.Pipe(duplex=False)
        self.thread = threading.Thread(
            target=self._run, name=f"{self.name}-dispatcher", daemon=True
        )
        self.thread.start()

    # -- the dispatcher thread --------------------------------------------------------------

    def _run(self) -> None:
        actions: list[Callable[[], object]] = []
        try:
            self._loop(actions)
        except BaseException as exc:  # the pool's own code failed: break loudly, never hang
            self._die(exc, actions)
        finally:
            try:
                self._close()
            finally:
                try:
                    if self.logs is not None:
                        self.logs.stop()  # every worker is gone: hands on all they logged
                finally:
                    self.stopped.set()

    def _loop(self, actions: list[Callable[[], object]]) -> None:
        selector = self.selector
        assert selector is not None
        spawn = False
        while True:
            events = selector.select(0 if spawn else wait_slice(self._next_timeout()))
            with self.lock:
                for key, _mask in events:
                    tag, worker = key.data
                    if tag == _WAKE:
                        self._drain_wake_locked()
                    elif not self._is_current_locked(worker):
                        continue  # reaped by an earlier event of this same batch
                    elif tag == _EVENTS:
                        self._read_events_locked(worker, actions)
                    elif tag == _SENTINEL:
                        self._on_exit_locked(worker, actions)
                    elif tag == _WRITABLE:
                        self._flush_locked(worker)
                self._register_writers_locked()
                self._expire_locked(actions)
                self._watch_memory_locked(actions)
                self._dispatch_locked()
                spawn = self._spawn_wanted_locked()
                finished = self._finish_locked()
            _run_actions(actions)
            if finished:
                return
            if spawn:
                self._spawn()

    def _die(self, exc: BaseException, actions: list[Callable[[], object]]) -> None:
        """The dispatcher failed: deliver what it had claimed, then fail everything else."""
        error = BrokenPoolError(
            f"{self.name}: the dispatcher thread failed ({type(exc).__name__}: {exc}); "
            "the pool cannot run tasks"
        )
        error.__cause__ = exc
        with self.lock:
            if self.broken is None:
                self.broken = error
            broken = self.broken
            self.shutdown = True
            unfinished = [task.future for task in self.tasks.values() if not task.finished]
            for task in self.tasks.values():
                task.finished = True
            self.tasks.clear()
            self.pending.clear()
        for future in unfinished:
            actions.append(partial(_fail, future, broken.fresh()))
        while actions:
            try:
                _run_actions(actions)
            except Exception:  # pragma: no cover - one failed: the others still run
                pass

    def _is_current_locked(self, worker: _Worker) -> bool:
        return self.workers.get(worker.serial) is worker

    def _next_timeout(self) -> float | None:
        with self.lock:
            wake_at = self.timers[0][0] if self.timers else None
            if self.steal_check_at is not None and (
                wake_at is None or self.steal_check_at < wake_at
            ):
                wake_at = self.steal_check_at
            # With a memory limit the dispatcher looks every MEMORY_CHECK_INTERVAL while it
            # has workers, busy or not: a task sent by a caller's submit() straight to an idle
            # worker does not wake it.
            if (
                self.memory_limit is not None
                and self.workers
                and (wake_at is None or self.memory_check_at < wake_at)
            ):
                wake_at = self.memory_check_at
            return None if wake_at is None else max(0.0, wake_at - time.monotonic())

    def _drain_wake_locked(self) -> None:
        self.wake_pending = False
        try:
            while os.read(self.wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _register_writers_locked(self) -> None:
        assert self.selector is not None
        for worker in self.workers.values():
            if worker.want_write and worker.outbox and worker.kill_reason is None:
                try:
                    self.selector.register(
                        worker.task_fd, selectors.EVENT_WRITE, (_WRITABLE, worker)
                    )
                except KeyError:
                    pass  # already registered

    def _flush_locked(self, worker: _Worker) -> None:
        assert self.selector is not None
        try:
            if not worker.outbox.write_some(worker.task_fd):
                return
        except OSError:  # the worker is gone; its sentinel will tell
            worker.outbox.clear()
        worker.want_write = False
        self.selector.unregister(worker.task_fd)

    def _read_events_locked(
        self,
        worker: _Worker,
        actions: list[Callable[[], object]],
        seen: set[int] | None = None,
    ) -> None:
        """Read the frames waiting on ``worker``'s event pipe; their kinds go into ``seen``."""
        if worker.event_eof:
            return  # a caller in help() read the end after the dispatcher's select returned

        def handle(kind: int, task_id: int, payload: bytes | bytearray) -> None:
            if seen is not None:
                seen.add(kind)
            self._on_frame_locked(worker, actions, kind, task_id, payload)

        try:
            alive = worker.reader.read(worker.event_fd, handle, block=False)
        except OSError:
            alive = False
        if not alive:  # the worker closed its end: only its sentinel is left to hear from
            assert self.selector is not None
            self.selector.unregister(worker.event_fd)
            worker.event_eof = True

    def _on_frame_locked(
        self,
        worker: _Worker,
        actions: list[Callable[[], object]],
        kind: int,
        task_id: int,
        payload: bytes | bytearray,
    ) -> None:
        if kind == _frames.START:  # only tasks with a timeout announce their start
            worker.running = task_id
            task = self.tasks.get(task_id)
            if task is None or task.finished:
                # Cancelled after it was sent; the worker started it before it saw the CANCEL.
                self._kill_locked(worker, "cancel")
                return
            task.started = time.monotonic()
            assert task.timeout is not None
            task.deadline = task.started + task.timeout
            heapq.heappush(self.timers, (task.deadline, task_id, worker.serial))
        elif kind in (_frames.OK, _frames.ERROR):
            worker.running = None
            if worker.outstanding and worker.outstanding[0] == task_id:
                worker.outstanding.popleft()
                self._mark_head_running_locked(worker)
            now = time.monotonic()
            # Answers come in order, so the time since the previous answer (or since the task
            # was sent to an idle worker) is the task's duration plus a little transport.
            duration = now - worker.last_answer
            worker.last_answer = now if worker.outstanding else 0.0
            self.avg_duration = (
                duration if self.avg_duration is None else 0.8 * self.avg_duration + 0.2 * duration
            )
            if self.memory_limit is not None and not worker.retiring:
                rss = _memory.resident_bytes(worker.pid)
                if rss is not None and rss > self.memory_limit:
                    self._retire_locked(worker)
            task = self.tasks.pop(task_id, None)
            if task is None or task.finished:
                return
            task.finished = True
            task.payload = None
            if kind == _frames.OK:
                self.completed += 1
                actions.append(partial(_deliver_result, task.future, payload))
            else:
                self.failed += 1
                actions.append(partial(_deliver_error, task.future, payload))
        elif kind == _frames.SKIPPED:  # may come ahead of the running task's answer
            try:
                worker.outstanding.remove(task_id)
            except ValueError:  # pragma: no cover - answered twice
                pass
            self._mark_head_running_locked(worker)
            if not worker.outstanding:
                worker.last_answer = 0.0
            task = self.tasks.get(task_id)
            if task is not None and not task.finished:
                if self.cancel_unstarted:
                    self._cancel_returned_locked(task, actions)
                else:
                    self._requeue_locked(task)  # taken back from a stuck worker
            else:
                self.tasks.pop(task_id, None)
        elif kind == _frames.READY:
            worker.ready = True
            self.start_failures = 0
            if self.memory_limit is not None:
                rss = _memory.resident_bytes(worker.pid)
                if rss is not None and rss > self.memory_limit:
                    self._break_locked(
                        f"{self.name}: a fresh worker already uses {_memory.describe_bytes(rss)}"
                        " (after its initializer, if any), more than max_memory_per_worker="
                        f"{_memory.describe_bytes(self.memory_limit)}: every task would fail; "
                        "raise the limit",
                        MemoryError(f"worker {worker.pid} uses {rss} bytes"),
                        actions,
                    )
        elif kind == _frames.INIT_FAILED:
            try:
                cause = serialize.loads(payload)
            except Exception as exc:
                cause = SerializationError(
                    f"the initializer failed and its error cannot be read: {exc}"
                )
            self._break_locked(
                f"{self.name}: the initializer raised {type(cause).__name__}: {cause}; "
                "the pool cannot run tasks",
                cause,
                actions,
            )

    def _on_exit_locked(self, worker: _Worker, actions: list[Callable[[], object]]) -> None:
        assert self.selector is not None
        if not worker.event_eof:
            try:  # what the worker wrote before it died still counts
                worker.reader.read(
                    worker.event_fd, partial(self._on_frame_locked, worker, actions), block=False
                )
            except OSError:
                pass
        worker.process.join()
        exitcode = worker.process.exitcode
        for fd in (worker.task_fd, worker.process.sentinel):
            try:
                self.selector.unregister(fd)
            except (KeyError, ValueError):
                pass
        if not worker.event_eof:
            self.selector.unregister(worker.event_fd)
        del self.workers[worker.serial]
        # Its oldest unanswered task is the one it was running: that one fails (unless a
        # timeout or a cancel already claimed it); the others go back to the head of the
        # queue, in order.
        # A worker that never said READY died in its initializer (or starting up): it ran
        # none of its tasks, so all of them go back.
        outstanding = worker.outstanding
        if outstanding and worker.ready:
            task = self.tasks.pop(outstanding.popleft(), None)
            if task is not None and not task.finished:
                task.finished = True
                self.crashed += 1
                error = WorkerCrashedError.from_exitcode(exitcode, worker.pid, "running a task")
                actions.append(partial(task.future.set_exception, error))
        for task_id in reversed(outstanding):
            task = self.tasks.get(task_id)
            if task is None:
                continue
            if task.finished:
                del self.tasks[task_id]
            elif self.cancel_unstarted:
                self._cancel_returned_locked(task, actions)
            else:
                task.worker = None
                task.stolen = False
                self.pending.appendleft(task)
        if not worker.ready and worker.kill_reason is None and self.broken is None:
            self.start_failures += 1
            if self.start_failures >= START_FAILURES_TO_BREAK:
                cause = WorkerCrashedError.from_exitcode(exitcode, worker.pid, "starting up")
                self._break_locked(
                    f"{self.name}: {START_FAILURES_TO_BREAK} workers in a row died while "
                    f"starting ({cause}); the pool cannot run tasks",
                    cause,
                    actions,
                )
        if not worker.stop_sent and not (self.shutdown and worker.kill_reason == "abort"):
            self.lost_workers += 1
        worker.process.close()
        worker.task_conn.close()
        worker.event_conn.close()

    def _retire_locked(self, worker: _Worker) -> None:
        """A worker over the memory limit after a task: replace it once its task is done.

        The tasks queued behind the one it runs now (if any) are asked back, as from a stuck
        worker, and go to other workers; then it is told to stop. It exits after its current
        task, and the dispatcher replaces it as it replaces any worker that is lost.
        """
        worker.retiring = True
        asked = False
        for task_id in itertools.islice(worker.outstanding, 1, None):
            task = self.tasks.get(task_id)
            if task is not None and not task.finished and not task.stolen:
                task.stolen = True
                asked = True
                self._send_locked(worker, _frames.CANCEL, task_id)
        self._send_locked(worker, _frames.STOP, 0)
        if asked:  # it is busy in a task: its SIGUSR1 handler answers SKIPPED at once
            try:
                os.kill(worker.pid, signal.SIGUSR1)
            except ProcessLookupError:  # pragma: no cover - it just died
                pass

    def _watch_memory_locked(self, actions: list[Callable[[], object]]) -> None:
        """Every :data:`MEMORY_CHECK_INTERVAL`: kill a worker whose task has taken it over
        the memory limit; that task fails with :class:`~concurrency_kit.WorkerMemoryError`.

        A worker already retiring is left to finish the task it runs: it went over the limit
        in an earlier task (one that delivered its result), not necessarily in this one.
        """
        limit = self.memory_limit
        if limit is None:
            return
        now = time.monotonic()
        if now < self.memory_check_at:
            return
        self.memory_check_at = now + MEMORY_CHECK_INTERVAL
        for worker in self.workers.values():
            if (
                not worker.outstanding
                or not worker.ready
                or worker.retiring
                or worker.kill_reason is not None
            ):
                continue
            rss = _memory.resident_bytes(worker.pid)
            if rss is None or rss <= limit:
                continue
            self._kill_locked(worker, "memory")
            task = self.tasks.get(worker.outstanding[0])
            if task is None or task.finished:
                continue
            task.finished = True
            task.payload = None
            self.crashed += 1
            error = WorkerMemoryError(
                f"worker {worker.pid} was killed: its memory ({_memory.describe_bytes(rss)}) "
                f"went over max_memory_per_worker ({_memory.describe_bytes(limit)}) while it "
                "ran this task; the pool is replacing it",
                limit=limit,
                rss=rss,
                exitcode=-signal.SIGKILL,
                signal=signal.SIGKILL,
                pid=worker.pid,
            )
            actions.append(partial(task.future.set_exception, error))

    def _expire_locked(self, actions: list[Callable[[], object]]) -> None:
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, task_id, serial = heapq.heappop(self.timers)
            task = self.tasks.get(task_id)
            worker = self.workers.get(serial)
            if task is None or task.finished or worker is None or worker.running != task_id:
                continue
            task.finished = True
            self.timed_out += 1
            self._kill_locked(worker, "timeout")
            error = TaskTimeoutError(
                f"task exceeded its {task.timeout:g} s timeout; worker {worker.pid} was killed "
                "and is being replaced"
            )
            actions.append(partial(task.future.set_exception, error))

    def _break_locked(
        self, message: str, cause: BaseException, actions: list[Callable[[], object]]
    ) -> None:
        if self.broken is not None:
            return
        self.broken = BrokenPoolError(message)
        self.broken.__cause__ = cause
        self.shutdown = True
        for task in list(self.tasks.values()):
            if not task.finished:
                task.finished = True
                actions.append(partial(task.future.set_exception, self.broken.fresh()))
        self.tasks.clear()
        self.pending.clear()
        for worker in self.workers.values():
            self._kill_locked(worker, "broken")

    def _finish_locked(self) -> bool:
        """Once shut down and idle, tell the workers to stop; True when all have exited."""
        if not self.shutdown:
            return False
        if any(not task.finished for task in self.pending):
            return False
        for worker in self.workers.values():
            if worker.outstanding:
                return False
        for worker in self.workers.values():
            if not worker.stop_sent:
                self._send_locked(worker, _frames.STOP, 0)
                worker.stop_sent = True
        return not self.workers

    def _spawn(self) -> None:
        assert self.alive is not None
        task_r, task_w = self.context.Pipe(duplex=False)
        event_r, event_w = self.context.Pipe(duplex=False)
        _frames.grow_pipe(task_w.fileno())
        _frames.grow_pipe(event_w.fileno())
        close_fds = (task_w.fileno(), event_r.fileno(), self.alive[1].fileno()) if self.fork else ()
        serial = next(self.serials)
        logs = self.logs
        process = self.context.Process(
            target=worker_main,
            args=(
                task_r,
                event_w,
                self.alive[0],
                close_fds,
                self.initializer,
                self.max_tasks,
                None if logs is None else logs.sink,
                None if logs is None else logs.level,
            ),
            name=f"{self.name}-worker-{serial}",
        )
        try:
            _forking_worker.active = self.fork
            try:
                process.start()
            finally:
                _forking_worker.active = False
        except Exception as exc:
            task_w.close()
            event_r.close()
            actions: list[Callable[[], object]] = []
            with self.lock:
                self._break_locked(
                    f"{self.name}: cannot start a worker process: {exc}", exc, actions
                )
            for action in actions:
                action()
            return
        finally:
            task_r.close()
            event_w.close()
        worker = _Worker(serial, process, task_w, event_r, self.max_tasks)
        assert self.selector is not None
        with self.lock:
            self.workers[serial] = worker
            self.selector.register(worker.event_fd, selectors.EVENT_READ, (_EVENTS, worker))
            self.selector.register(process.sentinel, selectors.EVENT_READ, (_SENTINEL, worker))
            if self.lost_workers:
                self.lost_workers -= 1
                self.replaced += 1
            if self.broken is not None:
                self._kill_locked(worker, "broken")
            self._dispatch_locked()

    def _close(self) -> None:
        with self.lock:
            for worker in list(self.workers.values()):  # only after an unexpected error
                self._kill_locked(worker, "abort")
                worker.process.join()
                worker.process.close()
                worker.task_conn.close()
                worker.event_conn.close()
            self.workers.clear()
            if self.alive is not None:
                for conn in self.alive:
                    conn.close()
            if self.selector is not None:
                self.selector.close()
            for fd in (self.wake_r, self.wake_w):
                if fd >= 0:
                    os.close(fd)
            self.wake_r = self.wake_w = -1


# A worker made by fork starts as a copy of the parent, with the parent's garbage and locks but
# only the forking thread. If a garbage collection there ran a finalizer of that garbage (a map
# generator cancelling its futures, say), it could block for ever on a lock that another parent
# thread held at the moment of the fork. So the child freezes everything it inherited: the
# collector leaves those objects alone, and collects what the worker itself creates as usual.
_forking_worker = threading.local()


def _freeze_inherited_objects() -> None:
    if getattr(_forking_worker, "active", False):
        _forking_worker.active = False
        gc.freeze()


os.register_at_fork(after_in_child=_freeze_inherited_objects)


def _run_actions(actions: list[Callable[[], object]]) -> None:
    """Run and remove the actions, in order; those after one that raises stay in the list."""
    actions.reverse()
    try:
        while actions:
            actions.pop()()
    finally:
        actions.reverse()


def _fail(future: Future[Any], error: BaseException) -> None:
    try:
        future.set_exception(error)
    except _futures_base.InvalidStateError:  # resolved meanwhile (cancelled, say)
        pass


def _deliver_result(future: Future[Any], payload: bytes | bytearray) -> None:
    try:
        value = serialize.loads(payload)
    except Exception as exc:
        error = SerializationError(
            f"cannot unpickle the task's result: {type(exc).__name__}: {exc}"
        )
        error.__cause__ = exc
        future.set_exception(error)
    else:
        future.set_result(value)


def _deliver_error(future: Future[Any], payload: bytes | bytearray) -> None:
    try:
        exc = serialize.loads(payload)
    except Exception as load_exc:
        exc = SerializationError(
            f"cannot unpickle the task's exception: {type(load_exc).__name__}: {load_exc}"
        )
    future.set_exception(exc)


class ProcessPool(PoolBase):
    """A pool of worker processes; a :class:`concurrent.futures.Executor`.

    Each worker is a separate interpreter with its own memory: CPU-bound Python code runs in
    parallel, and a worker that crashes takes down only the task it was running. Calls,
    arguments and results cross the process boundary pickled (with cloudpickle, so lambdas,
    closures and functions defined in ``__main__`` work with every start method).

    Args:
        max_workers: the most worker processes at once; by default the number of CPUs.
            Workers start on demand.
        initializer: called as ``initializer(*initargs)`` in each worker before its first task;
            what it returns is that worker's :func:`~concurrency_kit.worker_state` (it stays
            in the worker: it need not be picklable). If it raises, the pool is broken:
            pending and later tasks fail with :class:`~concurrency_kit.BrokenPoolError` (the
            pool does not keep restarting workers that cannot start).
        initargs: arguments for ``initializer``.
        max_tasks_per_worker: a worker exits after this many tasks and a fresh one replaces
            it, with every start method (the standard library refuses ``fork``).
        name: the pool's name; worker processes are named ``{name}-worker-{n}``.
        start_method: ``"forkserver"`` (the default on POSIX: safe with threads),
            ``"spawn"`` or ``"fork"``; :doc:`pools` says which to pick.
        max_memory_per_worker: the most resident memory (RSS) a worker may keep, in bytes
            or as a string such as ``"512 MiB"`` or ``"2GB"``; ``None`` for no limit. A worker
            above it after a task delivers that task's result, then is replaced by a fresh
            one (a leak or a cache stops growing there). A task that takes its worker above
            it while running fails with :class:`~concurrency_kit.WorkerMemoryError` and the
            worker is killed and replaced. The parent reads each busy worker's RSS every
            0.1 s (Linux ``/proc``), so a short peak between two looks is only seen after
            the task, as a replacement.
        forward_logs: send the ``logging`` records of the workers (tasks and initializer)
            to this process's loggers, where its handlers, levels and filters apply; each
            record carries the worker's name as ``record.worker`` and ``record.processName``
            (``{name}-worker-{n}``). ``False`` leaves each worker's logging as it is (records
            then go to the worker's own handlers, or to its ``stderr``).

    Crash isolation: a worker killed by a signal, ``os._exit`` or the OOM killer fails only the
    task it was running, with :class:`~concurrency_kit.WorkerCrashedError`; other tasks run on.
    A task's ``timeout`` (see :meth:`schedule`) kills its worker at the deadline;
    ``cancel()`` on a running task does the same and returns ``True``.
    If the parent process dies, however it dies, its workers exit at once.

    Raises:
        ValueError: ``start_method`` is not available on this platform, or
            ``max_memory_per_worker`` is not positive, is NaN, is more than the machine's
            memory, or cannot be read as a size.
        TypeError: ``max_memory_per_worker`` is a bool or not a number, string or ``None``.
        SerializationError: ``initializer`` or ``initargs`` cannot be pickled.
        BrokenPoolError: workers could never start: the script was read from standard
            input (``python - <<EOF``), so a ``forkserver`` or ``spawn`` worker has no main
            module file to re-run (the message says how to fix it).
    """

    _model = "process"

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        max_tasks_per_worker: int | None = None,
        name: str | None = None,
        start_method: str | None = None,
        max_memory_per_worker: int | float | str | None = None,
        forward_logs: bool = True,
    ) -> None:
        super().__init__(
            max_workers,
            default_workers=default_process_workers(),
            initializer=initializer,
            initargs=initargs,
            max_tasks_per_worker=max_tasks_per_worker,
            name=name,
        )
        if start_method is None:
            start_method = default_start_method()
        if start_method not in multiprocessing.get_all_start_methods():
            raise ValueError(
                f"start_method must be one of {multiprocessing.get_all_start_methods()}, "
                f"got {start_method!r}"
            )
        memory_limit = _memory.check_memory_limit(max_memory_per_worker)
        problem = main_module_problem(start_method)
        if problem is not None:
            raise BrokenPoolError(f"{self._name}: cannot start worker processes: {problem}")
        self._start_method = start_method
        init_blob = None
        if initializer is not None:
            try:
                init_blob = serialize.dumps((initializer, initargs))
            except Exception as exc:
                raise SerializationError(
                    f"cannot send the initializer or its arguments to worker processes: {exc}"
                ) from exc
        self._core = _Core(
            self._name,
            self._max_workers,
            mp_context(start_method),
            init_blob,
            max_tasks_per_worker,
            memory_limit,
            bool(forward_logs),
        )
        stop_at_exit(self._core)
        self._finalizer = weakref.finalize(self, self._core.stop, False, False)

    @property
    def start_method(self) -> str:
        """The :mod:`multiprocessing` start method of the workers."""
        return self._start_method

    @property
    def max_memory_per_worker(self) -> int | None:
        """The memory limit of each worker in bytes, or ``None`` (see the class)."""
        return self._core.memory_limit

    def _check_open(self) -> None:
        with self._core.lock:
            self._core.check_open_locked()

    def _submit_task(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any] | None,
        timeout: float | None,
    ) -> Future[Any]:
        self._check_open()
        payload = serialize.dumps_call(fn, args, kwargs)
        return self._core.submit(payload, timeout)

    def _check_call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> None:
        serialize.dumps_call(fn, args, kwargs)

    def _count_expired_at_start(self) -> None:
        with self._core.lock:
            self._core.timed_out += 1

    def _shutdown(self, *, wait: bool, cancel_futures: bool) -> None:
        self._finalizer.detach()
        self._core.stop(wait, cancel_futures)

    def _abort(self) -> None:
        self._finalizer.detach()
        self._core.abort()

    def _statistics(self) -> PoolStatistics:
        return self._core.statistics()

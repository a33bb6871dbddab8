"""InterpreterPool: the interpreter column of the pools row (Python 3.14+, PEP 734).

Data flow::

    submit() pickles the call (cloudpickle) in the caller's thread
        │
        v
    pending deque ──> an idle worker's task queue ──> worker interpreter (its own GIL),
        ^              (+ a byte on its wake pipe)      entered once by its pool thread
        │                                                        │ (index, kind, pickle)
    futures <── whoever drains the result queue <── result queue (+ result pipe)
                 │   the collector thread (sleeps on the result pipe until the nearest
                 │   task deadline), or a caller waiting in result() for a short task
                 └─> hands the worker its next task; at a deadline, abandons the worker

Each worker is a thread of this interpreter that enters a fresh subinterpreter once and runs
``_interpreter_worker.worker_main`` there until told to stop (entering costs about 40 µs, so
it is not done per task as ``InterpreterPoolExecutor`` does). A worker holds one task at a
time: the pool marks a future running when it hands the task over, so a queued task can be
cancelled until then, and the answer a worker gives is always for the task it holds.

An interpreter shares the process: it cannot be killed, and a crash in it (a segfault in C
code) ends the whole process. So a task that times out is treated as a thread pool treats it:
its future fails with :class:`~concurrency_kit.TaskTimeoutError`, its worker is *abandoned*
(told to stop once the call returns; its interpreter is closed then) and a new worker takes
its place; and the call is interrupted: the worker's guard thread, inside its interpreter,
raises ``Interrupted`` in it (``_interpreter_worker._Guard``, which says why no other way
exists). ``cancel()`` on a running task returns ``False``, as in the standard library.

A caller waiting in ``result()`` for a short task drains the result queue itself for a moment
(:meth:`_Core.help`), and an idle worker looks at its task queue for a moment before it
sleeps: a short round trip then wakes no sleeping thread. Both spins back off when they keep
failing (on a loaded machine a spinning thread can hold the very CPU the thread it waits for
needs), so a round trip is either a spin's (about 18 µs) or a sleep's (about 35 µs), never a
spin's in vain plus a sleep's.

Every shared mutation is under ``_Core.lock``; futures are resolved outside it. The pool's own
threads never die silently: a failure of the pool's code breaks the pool loudly
(:class:`~concurrency_kit.BrokenPoolError` on every unfinished and later call).
"""

from __future__ import annotations

import collections
import heapq
import importlib
import itertools
import logging
import os
import select
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

from concurrency_kit._core import serialize, worker_logs
from concurrency_kit._core.atomics import fence
from concurrency_kit._core.deadline import wait_slice
from concurrency_kit.errors import BrokenPoolError, SerializationError, TaskTimeoutError
from concurrency_kit.pools import _interpreter_worker as _worker
from concurrency_kit.pools._base import (
    PoolBase,
    PoolFuture,
    default_process_workers,
    stop_at_exit,
)
from concurrency_kit.protocols import PoolStatistics

__all__ = ["InterpreterPool"]

REQUIRED_VERSION = (3, 14)
HELP_SPIN = 100e-6
"""How long a caller waiting in ``result()`` drains the result queue before it sleeps."""
HELP_SHORTER_THAN = 0.001
"""Callers help only while the last task took less than this."""
HELP_BACKOFF_MAX = 64
"""The most waits in a row that skip the help after helps in vain (see :meth:`_Core.help`)."""


_live: weakref.WeakSet[_Core] = weakref.WeakSet()


def _end_guards() -> None:
    """At exit, end the guard threads of abandoned workers: a non-daemon thread of a
    subinterpreter would hold the program's exit while its call is stuck in C code."""
    for core in list(_live):
        with core.lock:
            for worker in core.abandoned.values():
                worker.interrupt(b"\0")


threading._register_atexit(_end_guards)  # type: ignore[attr-defined]


def _interpreters() -> Any:
    """The ``concurrent.interpreters`` module, or an :class:`ImportError` naming Python 3.14.

    Imported by name so that this module imports (and type-checks) on every Python.
    """
    try:
        return importlib.import_module("concurrent.interpreters")
    except ImportError as exc:
        version = ".".join(map(str, sys.version_info[:3]))
        raise ImportError(
            "InterpreterPool (the INTERPRETER model) needs Python 3.14 or newer, for its "
            f"subinterpreters (concurrent.interpreters, PEP 734); this is Python {version}: "
            "use PROCESS or THREAD here"
        ) from exc


class _InterpreterFuture(PoolFuture):
    """A future that counts its cancellation at once and helps while it is waited on."""

    def __init__(self, core: _Core) -> None:
        super().__init__()
        self._ck_core = core
        self._ck_task: _Task | None = None

    def cancel(self) -> bool:
        if not super().cancel():
            return False
        if self._ck_task is not None:
            self._ck_core.count_cancel(self._ck_task)
        return True

    def _ck_before_wait(self) -> None:
        self._ck_core.help(self)


class _Task:
    __slots__ = ("deadline", "future", "payload", "queued", "started", "timeout")

    def __init__(self, future: _InterpreterFuture, payload: bytes, timeout: float | None) -> None:
        self.future = future
        self.payload = payload
        self.timeout = timeout
        self.queued = True  # in the pending deque, counted in tasks_queued (under the lock)
        self.started = 0.0
        self.deadline = 0.0


class _Worker:
    """One worker: its pool thread, its interpreter's task queue and wake pipe."""

    __slots__ = (
        "abandoned",
        "asleep",
        "index",
        "interrupt_r",
        "interrupt_w",
        "queue",
        "ready",
        "stopping",
        "task",
        "tasks_done",
        "thread",
        "wake_r",
        "wake_w",
    )

    def __init__(self, index: int, queue: Any) -> None:
        self.index = index
        self.queue = queue
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        self.interrupt_r, self.interrupt_w = os.pipe()  # see _interpreter_worker._Guard
        os.set_blocking(self.interrupt_w, False)
        self.asleep = bytearray(1)  # set by the worker while it sleeps (_interpreter_worker)
        self.thread: threading.Thread | None = None
        self.task: _Task | None = None
        self.ready = False
        self.stopping = False
        self.abandoned = False
        self.tasks_done = 0

    def send(self, payload: bytes | None) -> None:
        """Put ``payload`` (``None``: stop) on the worker's queue and wake it (lock held)."""
        self.queue.put_nowait(payload)
        fence()
        if not self.asleep[0]:
            return  # it is looking at its queue: it will see the payload
        try:
            os.write(self.wake_w, b"\0")
        except BlockingIOError:  # full of wake-ups: the worker will look at its queue
            pass

    def interrupt(self, byte: bytes = b"\1") -> None:
        """Raise ``Interrupted`` in the task the worker runs, at its next bytecode (lock held;
        for an abandoned worker, which runs no other task); ``b"\\0"``: end its guard."""
        try:
            os.write(self.interrupt_w, byte)
        except BlockingIOError:  # pragma: no cover - it has a byte to read already
            pass


_Resolution = tuple[_InterpreterFuture, int, "bytes | BaseException"]


class _Core:
    """The pool's state, shared by callers, worker threads and the collector thread; holds no
    reference to the public object."""

    def __init__(
        self,
        name: str,
        max_workers: int,
        initializer: bytes | None,
        max_tasks_per_worker: int | None,
        forward_logs: bool = True,
    ) -> None:
        self.interpreters = _interpreters()
        self.name = name
        self.max_workers = max_workers
        self.initializer = initializer
        self.max_tasks = max_tasks_per_worker
        self.forward_logs = forward_logs
        self.lock = threading.Lock()
        self.pending: collections.deque[_Task] = collections.deque()
        self.idle: list[_Worker] = []
        self.workers: dict[int, _Worker] = {}
        self.abandoned: dict[int, _Worker] = {}
        self.serial = itertools.count(1)
        self.result_queue = self.interpreters.create_queue(
            unbounditems=self.interpreters._queues.UNBOUND_REMOVE
        )
        # How many callers drain the result queue now (capped; see help()): read by workers.
        self.helpers = bytearray(1)
        self.helping = 0
        self.result_r, self.result_w = os.pipe()
        os.set_blocking(self.result_r, False)
        os.set_blocking(self.result_w, False)
        self.deadlines: list[tuple[float, int, _Task]] = []
        self.shutdown = False
        self.broken: BrokenPoolError | None = None
        self.closed = False  # the result pipe is closed (every thread of the pool is gone)
        self.last_duration = 0.0
        self.help_skip = 0  # waits left that do not help (a help in vain backs off)
        self.help_backoff = 0
        # counters (under the lock)
        self.queued = 0
        self.completed = 0
        self.failed = 0
        self.timed_out = 0
        self.cancelled = 0
        self.replaced = 0
        _live.add(self)
        self.collector = threading.Thread(
            target=self._collect, name=f"{name}-collector", daemon=True
        )
        self.collector.start()

    # -- submission (callers) ---------------------------------------------------------------

    def put(self, task: _Task) -> None:
        with self.lock:
            if self.broken is not None:
                raise self.broken.fresh()
            if self.shutdown:
                raise RuntimeError("cannot schedule new tasks after shutdown")
            self.pending.append(task)
            self.queued += 1
            if self.idle:
                self._dispatch_locked(self.idle.pop())
            elif len(self.workers) < self.max_workers and self._starting_locked() < len(
                self.pending
            ):
                self._start_worker_locked()

    def _starting_locked(self) -> int:
        return sum(1 for worker in self.workers.values() if not worker.ready)

    def count_cancel(self, task: _Task) -> None:
        with self.lock:
            self.cancelled += 1
            if task.queued:
                task.queued = False
                self.queued -= 1

    # -- workers ----------------------------------------------------------------------------

    def _start_worker_locked(self) -> None:
        worker = _Worker(
            next(self.serial),
            self.interpreters.create_queue(unbounditems=self.interpreters._queues.UNBOUND_REMOVE),
        )
        thread = threading.Thread(
            target=self._run_worker,
            args=(worker,),
            name=f"{self.name}-{worker.index}",
            daemon=True,
        )
        worker.thread = thread
        self.workers[worker.index] = worker
        thread.start()

    def _run_worker(self, worker: _Worker) -> None:
        """The pool thread of one worker: enter its interpreter and stay until it stops."""
        failure: BaseException | None = None
        interp = None
        code = None
        thread_name = threading.current_thread().name
        try:
            interp = self.interpreters.create()
            # A new interpreter computes its own sys.path; give it this one (the directories
            # a program or a test runner added), so that what pickles by reference here
            # imports there.
            interp.exec(f"import sys\nsys.path[:] = {list(sys.path)!r}\n")
            code = interp.call(
                _worker.worker_main,
                worker.index,
                worker.queue,
                worker.wake_r,
                self.result_queue,
                self.result_w,
                self.initializer,
                memoryview(worker.asleep),
                memoryview(self.helpers),
                (worker.interrupt_r, worker.interrupt_w),
                (thread_name, worker_logs.parent_level()) if self.forward_logs else None,
            )
        except BaseException as exc:
            failure = exc
        finally:
            if interp is not None:
                try:
                    interp.close()
                except BaseException as exc:  # pragma: no cover - defensive
                    failure = failure or exc
            self._worker_exited(worker, failure, init_failed=code == _worker.INIT_FAILED)

    def _worker_exited(
        self, worker: _Worker, failure: BaseException | None, *, init_failed: bool
    ) -> None:
        with self.lock:
            self.workers.pop(worker.index, None)
            self.abandoned.pop(worker.index, None)
            if worker in self.idle:
                self.idle.remove(worker)
            task, worker.task = worker.task, None
            os.close(worker.wake_r)
            os.close(worker.wake_w)
            os.close(worker.interrupt_r)
            os.close(worker.interrupt_w)
            # A failed initializer said so on the result queue: poll() breaks the pool.
            unexpected = not (worker.stopping or worker.abandoned or init_failed)
        if failure is not None or unexpected:
            reason = (
                f"{type(failure).__name__}: {failure}"
                if failure is not None
                else "it stopped on its own"
            )
            cause = failure if failure is not None else RuntimeError(reason)
            self.break_pool(f"worker interpreter {worker.index} failed: {reason}", cause)
            if task is not None and self.broken is not None:
                self._resolve([(task.future, _worker.ERROR, self.broken.fresh())])
        self._wake_collector()

    def _dispatch_locked(self, worker: _Worker) -> None:
        """Give ``worker`` (ready, holding no task) the next pending task, or let it idle."""
        while self.pending:
            task = self.pending.popleft()
            if task.queued:
                task.queued = False
                self.queued -= 1
            if not task.future.set_running_or_notify_cancel():
                continue  # cancelled while queued (counted by cancel())
            worker.task = task
            task.started = time.monotonic()
            payload, task.payload = task.payload, b""
            worker.send(payload)
            if task.timeout is not None:
                task.deadline = task.started + task.timeout
                heapq.heappush(self.deadlines, (task.deadline, id(task), task))
                if self.deadlines[0][2] is task:
                    self._wake_collector()
            return
        if self.shutdown:
            self._stop_worker_locked(worker)
        else:
            self.idle.append(worker)

    @staticmethod
    def _stop_worker_locked(worker: _Worker) -> None:
        if not worker.stopping:
            worker.stopping = True
            worker.send(None)

    # -- results ----------------------------------------------------------------------------

    def poll(self) -> bool:
        """Take every answer waiting on the result queue and resolve its future; True if any."""
        get = self.result_queue.get_nowait
        empty = self.interpreters.QueueEmpty
        messages = []
        while True:
            try:
                messages.append(get())
            except empty:
                break
        if not messages:
            return False
        resolutions: list[_Resolution] = []
        broken: tuple[str, BaseException] | None = None
        records: list[bytes] = []
        with self.lock:
            for index, kind, payload, elapsed in messages:
                if kind == _worker.LOG:  # from any worker, an abandoned one's included
                    records.append(payload)
                    continue
                worker = self.workers.get(index)
                if kind == _worker.INIT_FAILED:  # its thread may have gone already
                    if worker is not None:
                        worker.stopping = True
                    error = serialize.loads(payload)
                    broken = (
                        f"the initializer raised {type(error).__name__}: {error}; "
                        "the pool cannot run tasks",
                        error,
                    )
                    continue
                if worker is None:
                    continue  # an abandoned worker's late answer
                if kind == _worker.READY:
                    worker.ready = True
                    self._dispatch_locked(worker)
                    continue
                task, worker.task = worker.task, None
                if task is None:  # pragma: no cover - every answer is for the held task
                    continue
                self.last_duration = elapsed  # the call's own time, measured by the worker
                resolutions.append((task.future, kind, payload))
                if kind == _worker.OK:
                    self.completed += 1
                else:
                    self.failed += 1
                worker.tasks_done += 1
                if self.max_tasks is not None and worker.tasks_done >= self.max_tasks:
                    self._stop_worker_locked(worker)
                    if not self.shutdown:
                        self.replaced += 1
                        self._start_worker_locked()
                else:
                    self._dispatch_locked(worker)
        for record in records:
            _handle_record(record)
        if broken is not None:
            self.break_pool(*broken)
        self._resolve(resolutions)
        return True

    @staticmethod
    def _resolve(resolutions: list[_Resolution]) -> None:
        for future, kind, payload in resolutions:
            if isinstance(payload, BaseException):
                future.set_exception(payload)
                continue
            try:
                value = serialize.loads(payload)
            except BaseException as exc:
                future.set_exception(
                    SerializationError(
                        f"cannot unpickle what the worker interpreter sent back: "
                        f"{type(exc).__name__}: {exc}"
                    )
                )
                continue
            if kind == _worker.OK:
                future.set_result(value)
            else:
                future.set_exception(value)
            del value

    def help(self, future: _InterpreterFuture) -> None:
        """Drain the result queue for a moment while ``future`` is not done (short tasks only):
        the answer is then taken here, without waking the collector thread first.

        A help in vain backs off: the next 1, 2, 4, ... (at most :data:`HELP_BACKOFF_MAX`)
        waits sleep at once, and one that finds its answer resets the count. Spinning only
        pays while the worker runs on another CPU at the same time. On a loaded machine the
        scheduler may put the worker's thread on this thread's CPU, and a spinning thread is
        not preempted for a thread it woke (Linux' EEVDF lets it run out its slice): the worker
        then starts only when the spin gives up, and every round trip costs the whole spin
        and more (a steady 140-340 µs, against 35 µs without spinning and 18 µs when spinning
        pays; measured with benchmarks/bench_interpreters.py under load). ``os.sched_yield``
        between looks is no cure: it sends this thread behind the other programs' whole
        slices (4 ms a round trip, measured).
        """
        if self.last_duration >= HELP_SHORTER_THAN or self.closed:
            return
        with self.lock:
            if self.help_skip:
                self.help_skip -= 1
                return
            self.helping += 1
            self.helpers[0] = min(self.helping, 255)
        helped = False
        try:
            give_up = time.perf_counter() + HELP_SPIN
            while not future.done():
                if self.closed or (not self.poll() and time.perf_counter() >= give_up):
                    return
            helped = True
        finally:
            with self.lock:
                self.helping -= 1
                self.helpers[0] = min(self.helping, 255)
                if helped:
                    self.help_backoff = 0
                elif not self.closed:
                    self.help_backoff = min(max(1, 2 * self.help_backoff), HELP_BACKOFF_MAX)
                    self.help_skip = self.help_backoff
            # An answer put while the byte said "helping" wrote no wake-up: take it now.
            fence()
            if not self.closed:
                self.poll()

    def _wake_collector(self) -> None:
        if self.closed:
            return
        try:
            os.write(self.result_w, b"\0")
        except (BlockingIOError, OSError):  # full (it is awake) or closed (it is gone)
            pass

    def _collect(self) -> None:
        """The collector thread: answers, deadlines, and the end of the pool."""
        try:
            while True:
                self.poll()
                with self.lock:
                    expired = self._expired_locked()
                    done = (
                        self.shutdown
                        and not self.workers
                        and not self.abandoned
                        and not self.pending
                    )
                    nearest = self.deadlines[0][0] if self.deadlines else None
                for task, worker in expired:
                    self._abandon(task, worker)
                if done:
                    return
                if expired:
                    continue
                timeout = None if nearest is None else nearest - time.monotonic()
                if timeout is None or timeout > 0:
                    select.select([self.result_r], [], [], wait_slice(timeout))
                try:
                    os.read(self.result_r, 4096)
                except BlockingIOError:
                    pass
        except BaseException as exc:  # never die silently: the futures would hang
            self.break_pool(f"its collector thread failed: {type(exc).__name__}: {exc}", exc)
            with self.lock:
                running = [(w.task, w) for w in self.workers.values() if w.task is not None]
            for task, worker in running:
                assert self.broken is not None
                self._abandon(task, worker, self.broken.fresh())
        finally:
            with self.lock:
                self.closed = True
                os.close(self.result_r)
                os.close(self.result_w)

    def _expired_locked(self) -> list[tuple[_Task, _Worker]]:
        now = time.monotonic()
        expired = []
        while self.deadlines and self.deadlines[0][0] <= now:
            task = heapq.heappop(self.deadlines)[2]
            for worker in self.workers.values():
                if worker.task is task:
                    expired.append((task, worker))
                    break
        return expired

    def _abandon(self, task: _Task, worker: _Worker, error: BaseException | None = None) -> None:
        """Fail a running task (at its deadline) and abandon its worker: its call is
        interrupted, it stops once the call returns, and a new worker takes its place."""
        with self.lock:
            if worker.task is not task:
                return  # it answered meanwhile
            worker.task = None
            worker.abandoned = True
            self.workers.pop(worker.index, None)
            self.abandoned[worker.index] = worker
            worker.stopping = True
            worker.send(None)
            worker.interrupt()
            if error is None:
                self.timed_out += 1
            if not self.shutdown:
                self.replaced += 1
                self._start_worker_locked()
        if error is None:
            error = TaskTimeoutError(
                f"task exceeded its {task.timeout:g} s timeout; the interpreter running it "
                "was abandoned and its call interrupted (it stops at its next Python bytecode, "
                "not inside a C call such as time.sleep; the interpreter is closed once the "
                "call returns, and a new one replaces it)"
            )
        task.future.set_exception(error)

    # -- breaking, shutdown and statistics --------------------------------------------------

    def break_pool(self, message: str, cause: BaseException) -> None:
        """Break the pool: queued and later calls fail with BrokenPoolError, workers stop."""
        error = BrokenPoolError(f"{self.name}: {message}")
        error.__cause__ = cause
        with self.lock:
            if self.broken is None:
                self.broken = error
            error = self.broken
            self.shutdown = True
            drained = self._drain_locked()
            for worker in list(self.idle):
                self._stop_worker_locked(worker)
            self.idle.clear()
            for worker in self.workers.values():
                if worker.ready and worker.task is None:
                    self._stop_worker_locked(worker)
        for task in drained:
            if task.future.set_running_or_notify_cancel():
                task.future.set_exception(error.fresh())
        self._wake_collector()

    def _drain_locked(self) -> list[_Task]:
        drained = list(self.pending)
        self.pending.clear()
        for task in drained:
            if task.queued:
                task.queued = False
                self.queued -= 1
        return drained

    def stop(self, wait: bool, cancel_futures: bool) -> None:
        with self.lock:
            self.shutdown = True
            cancelled = self._drain_locked() if cancel_futures else []
            for worker in self.idle:
                self._stop_worker_locked(worker)
            self.idle.clear()
            threads = [w.thread for w in self.workers.values() if w.thread is not None]
        for task in cancelled:
            task.future.cancel()  # counted by the future (count_cancel)
        self._wake_collector()
        if not wait:
            return
        for thread in threads:
            if thread is not threading.current_thread():
                while thread.is_alive():
                    thread.join(wait_slice(None))
        with self.lock:
            wait_collector = not self.abandoned
        if wait_collector and self.collector is not threading.current_thread():
            self._wake_collector()
            self.collector.join()

    def statistics(self) -> PoolStatistics:
        with self.lock:
            return PoolStatistics(
                model="interpreter",
                max_workers=self.max_workers,
                workers_alive=len(self.workers),
                workers_busy=sum(1 for w in self.workers.values() if w.task is not None),
                tasks_queued=self.queued,
                tasks_completed=self.completed,
                tasks_failed=self.failed,
                tasks_crashed=0,
                tasks_timed_out=self.timed_out,
                tasks_cancelled=self.cancelled,
                workers_replaced=self.replaced,
                workers_abandoned=len(self.abandoned),
            )


class InterpreterPool(PoolBase):
    """A pool of subinterpreters (Python 3.14+); a :class:`concurrent.futures.Executor`.

    Each worker is an interpreter of its own (``concurrent.interpreters``, PEP 734) in this
    process, with its own GIL and its own modules: pure-Python code runs in parallel, as on
    processes, while a task reaches its worker without leaving the process. Calls, arguments
    and results are pickled (cloudpickle for calls, so lambdas, closures and functions defined
    in ``__main__`` work), as for :class:`ProcessPool`.

    What an interpreter cannot do, a process could:

    * a crash (a segfault in C code, ``os._exit``) in a task ends the whole process, the
      caller included: nothing isolates one interpreter from another;
    * a running task cannot be killed, only interrupted: at a task's ``timeout`` its future
      fails with :class:`~concurrency_kit.TaskTimeoutError`, its interpreter is abandoned
      (:meth:`shutdown` does not wait for it) while a new one takes its place, and an
      exception is raised inside the call, which unwinds (its ``finally`` blocks run) and
      lets the interpreter be closed. The exception lands at the call's next Python
      bytecode: a call blocked in C code (``time.sleep``, a blocking read, a long C function)
      sees it only when that C call returns, and a task that catches :class:`BaseException`
      carries on. Nothing in the runtime can end a call at once (see the "Interpreter
      pools" section of the pools guide). ``cancel()`` on a running task returns ``False``,
      as in the standard library;
    * an extension module that does not support subinterpreters (numpy, for one) cannot be
      imported in a worker: the task fails with an :class:`ImportError` that says so.

    Args:
        max_workers: the most interpreters at once; by default the number of CPUs this
            process may use. Interpreters start on demand (each takes some milliseconds,
            plus the imports of the first tasks it runs).
        initializer: called as ``initializer(*initargs)`` in each new interpreter before its
            first task; what it returns is that worker's
            :func:`~concurrency_kit.worker_state`. If it raises, the pool is broken: pending
            and later tasks fail with :class:`~concurrency_kit.BrokenPoolError`.
        initargs: arguments for ``initializer``.
        max_tasks_per_worker: an interpreter is closed after this many tasks and a fresh one
            replaces it.
        name: the pool's name; its threads are named ``{name}-{n}``.
        forward_logs: send the ``logging`` records of the worker interpreters (tasks and
            initializer) to this interpreter's loggers, where its handlers, levels and
            filters apply, as :class:`ProcessPool` does; each record carries the worker's
            thread name as ``record.worker`` and ``record.processName`` (``{name}-{n}``).
            ``False`` leaves each interpreter's logging as it is (it has no handlers:
            warnings and errors print to ``stderr``, the rest is dropped).

    Raises:
        ImportError: this Python is older than 3.14 (no ``concurrent.interpreters``).
    """

    _model = "interpreter"

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
        _interpreters()  # before anything else: the clear error on Python < 3.14
        super().__init__(
            max_workers,
            default_workers=default_process_workers(),
            initializer=initializer,
            initargs=initargs,
            max_tasks_per_worker=max_tasks_per_worker,
            name=name,
        )
        packed_initializer = None
        if initializer is not None:
            packed_initializer = _interpreter_call_error(serialize.dumps, (initializer, initargs))
        self._core = _Core(
            self._name,
            self._max_workers,
            packed_initializer,
            max_tasks_per_worker,
            bool(forward_logs),
        )
        stop_at_exit(self._core)
        self._finalizer = weakref.finalize(self, self._core.stop, False, False)

    def _check_open(self) -> None:
        core = self._core
        if core.broken is not None:
            raise core.broken.fresh()
        if core.shutdown:
            raise RuntimeError("cannot schedule new tasks after shutdown")

    def _check_call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> None:
        _interpreter_call_error(serialize.dumps_call, fn, args, kwargs)

    def _submit_task(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any] | None,
        timeout: float | None,
    ) -> Future[Any]:
        payload = _interpreter_call_error(serialize.dumps_call, fn, args, kwargs)
        future = _InterpreterFuture(self._core)
        task = _Task(future, payload, timeout)
        future._ck_task = task
        self._core.put(task)
        return future

    def _count_expired_at_start(self) -> None:
        with self._core.lock:
            self._core.timed_out += 1

    def _shutdown(self, *, wait: bool, cancel_futures: bool) -> None:
        self._finalizer.detach()
        self._core.stop(wait, cancel_futures)

    def _abort(self) -> None:
        self._shutdown(wait=True, cancel_futures=True)

    def _statistics(self) -> PoolStatistics:
        return self._core.statistics()


def _handle_record(payload: bytes) -> None:
    """Give a worker's forwarded :mod:`logging` record to the logger it names, if enabled for
    its level (the worker's level is the lowest of this process's loggers already)."""
    try:
        record = serialize.loads(payload)
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)
    except Exception:  # a handler's own error must not break the pool's thread
        logging.getLogger(__name__).exception("a worker interpreter's log record failed")


def _interpreter_call_error(dump: Callable[..., bytes], *args: Any) -> bytes:
    """``dump(*args)``, its :class:`~concurrency_kit.SerializationError` worded for a worker
    interpreter rather than a worker process."""
    try:
        return dump(*args)
    except SerializationError as exc:
        raise SerializationError(
            str(exc).replace("worker process", "worker interpreter")
        ) from exc.__cause__
    except Exception as exc:
        raise SerializationError(
            f"cannot send the call to a worker interpreter: {type(exc).__name__}: {exc}"
        ) from exc

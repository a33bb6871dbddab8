"""ClusterPool: the pool API on a dask ``distributed`` cluster (the ``cluster`` extra).

Data flow::

    submit() ──> _Task ──> local queue (only while this pool already has ``max_workers``
                   │          tasks at a cluster it was given; cancellable there)
                   v
             Client.submit, or one Client.map for all the chunks of a map's fill pass
                   │
                   v
             scheduler ──> workers
                   │
             distributed.as_completed: tells which dask futures have finished
                   v
             collector thread: gathers the values of a batch of finished futures in one
                               request, claims each task, resolves its Future, counts it,
                               sends the next queued tasks

    a task with a timeout: the worker logs a "started" event before calling it ──> the client's
    event handler starts a timer ──> at the deadline the future fails with TaskTimeoutError;
    on a cluster the pool started the worker process is killed (its nanny starts a new one),
    on a cluster it was given the dask task is released and left to finish

Every outcome of a task (result, error, crash, timeout, cancel) is *claimed* once, under the
core's lock, before the future is resolved: the collector, the timers and ``cancel()`` race for
it and exactly one wins. The futures stay pending until then (the pool cannot see when a task
without a timeout starts on the cluster), so ``cancel()`` works on any unfinished task.

The pool's own threads never die silently: if the collector (or a timer) fails in the pool's
code, the pool breaks loudly — every unfinished and later call fails with
:class:`~concurrency_kit.BrokenPoolError` chained to the cause — and the cluster is let go.
Every wait is bounded (:func:`~concurrency_kit._core.deadline.wait_slice`) and loops.

Importing this module never imports ``distributed``: that happens when a pool is created, so
``import concurrency_kit`` stays cheap and works without the extra installed.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import threading
import traceback
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, overload

from concurrency_kit._core import serialize
from concurrency_kit._core.deadline import deadline_after, remaining, wait_slice
from concurrency_kit.errors import (
    BrokenPoolError,
    RemoteTraceback,
    SerializationError,
    TaskTimeoutError,
    WorkerCrashedError,
)
from concurrency_kit.pools import _map, _worker_state
from concurrency_kit.pools._base import (
    PoolBase,
    PoolFuture,
    default_process_workers,
    stop_at_exit,
)
from concurrency_kit.protocols import PoolStatistics

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

__all__ = ["ClusterPool"]

EXTRA_HINT = "install the extra: pip install 'concurrency_kit[cluster]'"

LOCAL_CLUSTER_CONFIG: dict[str, object] = {
    # A task whose worker dies fails at once, as in the local pools, instead of being retried
    # on another worker (dask's default is to retry it 3 times).
    "distributed.scheduler.allowed-failures": 0,
    # One task per single-threaded worker at a time: the others wait at the scheduler, where a
    # cancel drops them cleanly and a worker's death cannot take them down with it. (dask's
    # default of 1.1 sends a second task to a worker while its first one runs.)
    "distributed.scheduler.worker-saturation": 1.0,
}
"""dask settings of a cluster that the pool starts itself."""

LOCAL_CLUSTER_OPTIONS: dict[str, Any] = {
    "threads_per_worker": 1,
    "processes": True,
    "host": "127.0.0.1",
    # No dashboard. The scheduler's HTTP server (health and metrics routes) starts anyway, on
    # port 8787 unless told otherwise: a random loopback port never collides with another
    # cluster (or anything else) on the machine.
    "dashboard_address": "127.0.0.1:0",
    "scheduler_kwargs": {"dashboard": False},
    # Every task failure reaches its future: the workers need not log each one too.
    "silence_logs": logging.CRITICAL,
}
"""``LocalCluster`` options of a cluster that the pool starts itself (plus ``n_workers``)."""

# Task states, changed under the core's lock.
_QUEUED, _SENT, _DONE = range(3)


class _Timer(threading.Timer):
    """A :class:`threading.Timer` that waits in bounded slices (a timeout may be days long)."""

    def run(self) -> None:
        deadline = deadline_after(self.interval)
        while not self.finished.is_set():
            left = remaining(deadline)
            if left == 0:
                self.function(*self.args, **self.kwargs)
                break
            self.finished.wait(wait_slice(left))
        self.finished.set()


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(f"ClusterPool needs dask's 'distributed' package: {EXTRA_HINT}") from exc
    return distributed


def _is_cluster(value: object) -> bool:
    """A scheduler address (it always has a ":") or a ``distributed.Client``."""
    if isinstance(value, str):
        return ":" in value
    return type(value).__name__ == "Client" and type(value).__module__.startswith("distributed")


def _call(
    state: str | None, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> bytes:
    """Run on a worker: the call, its result pickled there (see :func:`_map.dumps_result`).

    dask pickles a result only when it is fetched, and a result that cannot be pickled then
    leaves its future unfinished for ever; pickled here, it fails its own task instead. The
    bytes then cross as they are (pickling bytes is a copy). ``state`` names the pool's
    initializer plugin, whose value :func:`~concurrency_kit.worker_state` gives the call.
    """
    return _worker_state.run_as_cluster_task(state, _call_here, fn, args, kwargs)


def _call_here(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bytes:
    return _map.dumps_result(fn(*args, **kwargs))


def _run_chunk(state: str | None, fn: Callable[..., Any], items: list[Any], star: bool) -> bytes:
    """Run on a worker: a chunk of a ``map``, its outcomes pickled there."""
    return _worker_state.run_as_cluster_task(state, _run_chunk_here, fn, items, star)


def _run_chunk_here(fn: Callable[..., Any], items: list[Any], star: bool) -> bytes:
    return _map.dumps_result(_map.run_chunk(fn, items, star))


def _call_timed(
    topic: str,
    token: int,
    state: str | None,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> Any:
    """Run on a worker: report the start of a task with a timeout, then run it."""
    from distributed import get_worker

    worker = get_worker()
    worker.log_event(topic, {"token": token, "worker": worker.address, "pid": os.getpid()})
    return _call(state, fn, args, kwargs)


def _run_initializer(
    initializer: Callable[..., object], initargs: tuple[Any, ...], name: str
) -> Any:
    """A worker plugin calling ``initializer(*initargs)`` in every worker, current and future;
    what it returns there is kept for :func:`~concurrency_kit.worker_state` under ``name``."""
    from distributed import WorkerPlugin

    class Initializer(WorkerPlugin):
        def setup(self, worker: object) -> None:
            value = initializer(*initargs)
            _worker_state.cluster_values.setdefault(worker, {})[name] = value

        def teardown(self, worker: object) -> None:
            _worker_state.cluster_values.get(worker, {}).pop(name, None)

    return Initializer()


class _Task:
    __slots__ = (
        "args",
        "dask_future",
        "fn",
        "future",
        "kwargs",
        "state",
        "timeout",
        "timer",
        "token",
    )

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any] | None,
        timeout: float | None,
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.timeout = timeout
        self.state = _QUEUED
        self.future: _ClusterFuture | None = None
        self.dask_future: Any = None
        self.timer: threading.Timer | None = None
        self.token = 0  # identifies a task with a timeout in its worker's "started" event


class _ClusterFuture(PoolFuture):
    """A future whose ``cancel()`` also releases a task already sent to the cluster."""

    def __init__(self, core: _Core, task: _Task) -> None:
        super().__init__()
        self._ck_core = core
        self._ck_task = task

    def cancel(self) -> bool:
        """Cancel the task unless it has finished.

        A task still queued in the pool is dropped. A task already sent to the cluster is
        released there: if it has not started it never runs; if it is running, its worker
        finishes it and the result is thrown away.
        """
        if not self._ck_core.claim(self._ck_task, cancelled=True):
            return self.cancelled()
        super().cancel()
        self.set_running_or_notify_cancel()  # CANCELLED_AND_NOTIFIED: wait() sees it done
        self._ck_core.release(self._ck_task)
        return True


class _Core:
    """The pool's state, shared by callers, the collector thread, timers and the event loop."""

    def __init__(
        self,
        name: str,
        distributed: Any,
        client: Client,
        cluster: LocalCluster | None,
        owns_client: bool,
        window: int | None,
    ) -> None:
        self.name = name
        self.client: Any = client  # distributed's Client: many of its methods are untyped
        self.cluster = cluster  # set only when the pool started it: closed with the pool
        self.owns_client = owns_client
        self.window = window
        self.prefix = uuid.uuid4().hex[:12]
        self.serial = itertools.count(1)
        self.lock = threading.Lock()
        self.wakeup = threading.Condition(self.lock)
        self.queue: deque[_Task] = deque()
        self.deferred: list[_Task] = []  # reserved map chunks, sent together by flush()
        self.in_flight: dict[Any, _Task] = {}  # dask key -> task
        self.timed: dict[int, _Task] = {}  # token -> task sent with a timeout
        self.timers: set[threading.Timer] = set()
        self.unclaimed = 0  # dask futures handed to self.results and not yet collected
        self.resolving = 0  # tasks taken off in_flight whose future is not resolved yet
        self.completed = self.failed = self.crashed = self.timed_out = self.cancelled = 0
        self.replaced = 0
        self.killed_pids: set[int] = set()  # workers the pool killed (late tasks' workers)
        self.shutdown = False
        self.closed = False
        self.broken: BrokenPoolError | None = None
        self.plugin_name: str | None = None
        self.topic: str | None = None
        self.killed_worker: type[BaseException] = distributed.KilledWorker
        # Completion only: results are fetched by the collector, many per gather call.
        self.results = distributed.as_completed(loop=client.loop)
        self.collector: threading.Thread | None = None

    # -- submission ---------------------------------------------------------------------------

    def check_open_locked(self) -> None:
        if self.broken is not None:
            raise self.broken.fresh()
        if self.shutdown:
            raise RuntimeError("cannot schedule new tasks after shutdown")

    def submit(self, task: _Task, *, defer: bool = False) -> _ClusterFuture:
        """Accept a task: send it now, or (``defer``) at the next :meth:`flush`."""
        future = _ClusterFuture(self, task)
        task.future = future
        with self.lock:
            self.check_open_locked()
            if self.window is not None and len(self.in_flight) >= self.window:
                self.queue.append(task)
                return future
            self._reserve_locked(task)
            if defer:
                self.deferred.append(task)
                return future
        error = self._send(task, caller=True)
        if error is not None:  # in the caller's thread: raise it here, as the local pools do
            raise error
        return future

    def _reserve_locked(self, task: _Task) -> None:
        task.state = _SENT
        self.in_flight[task] = task  # re-keyed by its dask key in _send
        if self.collector is None:
            self.collector = threading.Thread(
                target=self._collect, name=f"{self.name}-results", daemon=True
            )
            self.collector.start()

    def _send(self, task: _Task, *, caller: bool = False) -> BaseException | None:
        """Hand a reserved task to the cluster (never under the lock: dask may call back).

        When the task cannot be sent (its call cannot be pickled, say) its future fails, or,
        in the ``caller``'s thread, the error is returned for ``submit`` to raise: a
        :class:`~concurrency_kit.SerializationError` naming what cannot be pickled.
        """
        key = self._key(task)
        try:
            if task.timeout is not None:
                task.token = next(self.serial)
                with self.lock:
                    self.timed[task.token] = task
                dask_future = self.client.submit(
                    _call_timed,
                    self._subscribe(),
                    task.token,
                    self.plugin_name,
                    task.fn,
                    task.args,
                    task.kwargs or {},
                    key=key,
                    pure=False,
                )
            else:
                dask_future = self.client.submit(
                    _call,
                    self.plugin_name,
                    task.fn,
                    task.args,
                    task.kwargs or {},
                    key=key,
                    pure=False,
                )
        except Exception as exc:
            with self.lock:
                self.in_flight.pop(task, None)
                self.timed.pop(task.token, None)
                claimed = task.state != _DONE and not caller
                task.state = _DONE
                self.failed += claimed
                self.wakeup.notify_all()
            error: BaseException = exc
            try:
                serialize.dumps_call(task.fn, task.args, task.kwargs)
            except SerializationError as unpicklable:
                error = unpicklable
                error.__cause__ = exc
            if claimed and task.future is not None:
                task.future.set_exception(error)
            return error
        with self.lock:
            self._sent_locked(task, dask_future)
            cancelled = task.state != _SENT
        if cancelled:  # cancelled while it was being sent
            dask_future.cancel()
        return None

    def flush(self) -> None:
        """Send the deferred tasks (chunks of a ``map``) in one message to the scheduler.

        One ``Client.map`` call rather than a ``Client.submit`` per chunk: the scheduler then
        handles one graph update for the batch, as for a raw ``Client.map``.
        """
        with self.lock:
            tasks, self.deferred = self.deferred, []
        if len(tasks) < 2:
            for task in tasks:
                self._send(task)
            return
        keys = [self._key(task) for task in tasks]
        try:
            dask_futures = self.client.map(
                _run_chunk,
                [self.plugin_name] * len(tasks),
                [task.args[0] for task in tasks],  # fn
                [task.args[1] for task in tasks],  # items
                [task.args[2] for task in tasks],  # star
                key=keys,
                pure=False,
            )
        except Exception:  # one cannot be pickled, say: send each alone, each gets its error
            for task in tasks:
                self._send(task)
            return
        with self.lock:
            for task, dask_future in zip(tasks, dask_futures, strict=True):
                self._sent_locked(task, dask_future)
            cancelled = [task for task in tasks if task.state != _SENT]
        for task in cancelled:  # cancelled while they were being sent
            task.dask_future.cancel()

    def _key(self, task: _Task) -> str:
        return f"{getattr(task.fn, '__name__', 'call')}-{self.prefix}-{next(self.serial)}"

    def _sent_locked(self, task: _Task, dask_future: Any) -> None:
        task.dask_future = dask_future
        del self.in_flight[task]
        self.in_flight[dask_future.key] = task
        self.results.add(dask_future)
        self.unclaimed += 1
        self.wakeup.notify_all()

    def _subscribe(self) -> str:
        with self.lock:
            if self.topic is not None:
                return self.topic
            self.topic = topic = f"concurrency_kit-{self.prefix}-started"
        self.client.subscribe_topic(topic, self._on_started)
        return topic

    # -- outcomes -----------------------------------------------------------------------------

    def claim(self, task: _Task, *, cancelled: bool = False) -> bool:
        """Take the right to resolve ``task``'s future; False when someone else has it."""
        with self.lock:
            if task.state == _DONE:
                return False
            if task.state == _QUEUED:
                self.queue.remove(task)
            task.state = _DONE
            if cancelled:
                self.cancelled += 1
            return True

    def release(self, task: _Task) -> None:
        """Drop a cancelled or timed-out task's dask task, if it has one."""
        timer = task.timer
        if timer is not None:
            timer.cancel()
        if task.dask_future is not None:
            try:
                task.dask_future.cancel()
            except Exception:  # the client is closing: the task goes with it
                pass

    def _collect(self) -> None:
        """The collector thread: resolve every future whose dask task has finished."""
        try:
            while True:
                with self.lock:
                    while not self.unclaimed and not (self.shutdown and self._drained_locked()):
                        self.wakeup.wait(wait_slice(None))
                    if not self.unclaimed:
                        break
                for batch in self.results.batches():
                    for dask_future, result in self._outcomes(batch):
                        self._finished(dask_future, result)
        except BaseException as exc:  # the pool's own code failed: break loudly, never hang
            self._die("its results thread", exc)
        self._close()

    def _die(self, where: str, exc: BaseException) -> None:
        """A thread of the pool failed: fail every unfinished task and refuse new ones."""
        error = BrokenPoolError(
            f"{self.name}: {where} failed ({type(exc).__name__}: {exc}); the pool cannot run tasks"
        )
        error.__cause__ = exc
        with self.lock:
            if self.broken is None:
                self.broken = error
            broken = self.broken
            self.shutdown = True
            tasks = [*self.queue, *self.deferred, *self.in_flight.values()]
            claimed = [task for task in tasks if task.state != _DONE]
            for task in claimed:
                task.state = _DONE
            self.queue.clear()
            self.deferred.clear()
            self.in_flight.clear()
            self.timed.clear()
            self.wakeup.notify_all()
        for task in claimed:
            self.release(task)
            if task.future is not None:
                try:
                    task.future.set_exception(broken.fresh())
                except Exception:  # resolved meanwhile
                    pass

    def _outcomes(self, batch: list[Any]) -> list[tuple[Any, Any]]:
        """Each finished dask future with its value, ``(type, exc, tb)`` or ``None``.

        The values of the successful ones come in one ``gather`` call: one request per batch
        rather than one per task (``Client.gather`` of a whole ``map`` does the same).
        """
        done = [future for future in batch if future.status == "finished"]
        values: dict[Any, Any] = {}
        if done:
            try:
                values = dict(zip([f.key for f in done], self.client.gather(done), strict=True))
            except Exception:  # one was lost meanwhile: ask for each on its own
                values = {}
        outcomes = []
        for future in batch:
            if future.key in values:
                outcomes.append((future, values[future.key]))
                continue
            try:
                exc = future.exception()
                if exc is None:
                    outcomes.append((future, future.result()))
                    continue
                outcomes.append((future, (type(exc), exc, future.traceback())))
            except BaseException as error:  # cancelled, or lost with the cluster
                outcomes.append((future, error))
        return outcomes

    def _drained_locked(self) -> bool:
        return not self.in_flight and not self.queue and not self.resolving

    def _finished(self, dask_future: Any, result: Any) -> None:
        with self.lock:
            self.unclaimed -= 1
            task = self.in_flight.pop(dask_future.key, None)
            self.resolving += 1
        try:
            self._resolve(dask_future, result, task)
        finally:
            with self.lock:
                self.resolving -= 1
                if self._drained_locked():
                    self.wakeup.notify_all()

    def _resolve(self, dask_future: Any, result: Any, task: _Task | None) -> None:
        with self.lock:
            if task is not None:
                self.timed.pop(task.token, None)
                if task.timer is not None:
                    task.timer.cancel()
                    self.timers.discard(task.timer)
            refill = []
            while self.queue and (self.window is None or len(self.in_flight) < self.window):
                queued = self.queue.popleft()
                self._reserve_locked(queued)
                refill.append(queued)
        for queued in refill:
            self._send(queued)
        if task is None or task.future is None:
            return
        status = dask_future.status
        with self.lock:
            if task.state == _DONE:
                return  # cancelled or timed out meanwhile: already resolved
            if self._killed_by_us_locked(status, result) and not self.shutdown:
                # Waiting on a worker that the pool killed for another task's timeout: it
                # never ran. Send it again rather than blame it for that worker's death.
                task.dask_future = None
                self._reserve_locked(task)
                resend = True
            else:
                resend = False
                task.state = _DONE
                if status == "finished":
                    self.completed += 1
                elif status == "error" and isinstance(result[1], self.killed_worker):
                    self.crashed += 1
                else:
                    self.failed += 1
        if resend:
            self._send(task)
            return
        if status == "finished":
            try:
                value = serialize.loads(result)
            except Exception as exc:
                task.future.set_exception(
                    SerializationError(f"cannot unpickle the result: {type(exc).__name__}: {exc}")
                )
            else:
                task.future.set_result(value)
        elif status == "error":
            task.future.set_exception(self._error(result[1], result[2]))
        else:
            error = BrokenPoolError(
                f"{self.name}: the cluster dropped the task ({status}); is the scheduler gone?"
            )
            if isinstance(result, BaseException):
                error.__cause__ = result
            task.future.set_exception(error)

    def _killed_by_us_locked(self, status: str, result: Any) -> bool:
        if status != "error" or not isinstance(result[1], self.killed_worker):
            return False
        return getattr(getattr(result[1], "last_worker", None), "pid", None) in self.killed_pids

    def _error(self, exc: BaseException, tb: Any) -> BaseException:
        """The exception to raise for a task that failed on the cluster."""
        if isinstance(exc, self.killed_worker):
            last = getattr(exc, "last_worker", None)
            pid = getattr(last, "pid", None)
            where = getattr(last, "address", "?")
            crashed = WorkerCrashedError(
                f"worker {where} (pid {pid}) died while running the task", pid=pid
            )
            crashed.__cause__ = exc
            return crashed
        if tb is not None:
            text = "".join(traceback.format_exception(type(exc), exc, tb))
            exc.__cause__ = RemoteTraceback(f'\n"""\n{text}"""')
        return exc

    # -- timeouts -----------------------------------------------------------------------------

    def _on_started(self, event: tuple[float, Mapping[str, Any]]) -> None:
        """On the client's event loop: a task with a timeout started; start its clock."""
        message = event[1]
        with self.lock:
            task = self.timed.get(message["token"])
            if task is None or task.state != _SENT or task.timeout is None:
                return
            timer = _Timer(task.timeout, self._expire, (task, message["pid"]))
            timer.name = f"{self.name}-timeout"
            timer.daemon = True
            task.timer = timer
            self.timers.add(timer)
        timer.start()

    def _expire(self, task: _Task, pid: int) -> None:
        """In the task's timer thread, at its deadline."""
        try:
            self._expire_task(task, pid)
        except BaseException as exc:  # never die silently: the task's future would hang
            self._die("a timeout timer", exc)

    def _expire_task(self, task: _Task, pid: int) -> None:
        try:
            if not self.claim(task):
                return
            with self.lock:
                self.timed_out += 1
            assert task.future is not None
            assert task.timeout is not None
            fate = (
                "its worker was restarted"
                if self.cluster is not None
                else "the cluster's worker may still finish it; its result is dropped"
            )
            task.future.set_exception(
                TaskTimeoutError(f"task exceeded its {task.timeout:g} s timeout; {fate}")
            )
            task.timer = None
            if self.cluster is None:
                self.release(task)
                return
            # Our own LocalCluster: its workers are processes on this machine. Kill the late
            # one (its nanny starts a new one), as a process pool does. Its task is not
            # released first: while it occupies the worker's only slot, the scheduler sends
            # nothing else there for the kill to take down. (Client.restart_workers would
            # ask the worker to close and wait seconds for a thread that never returns.)
            with self.lock:
                self.killed_pids.add(pid)  # before the kill: its victims are recognised
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:  # it has just exited
                return
            with self.lock:
                self.replaced += 1
        finally:
            with self.lock:
                self.timers.discard(threading.current_thread())

    # -- shutdown and statistics --------------------------------------------------------------

    def stop(self, wait: bool, cancel_futures: bool) -> None:
        with self.lock:
            self.shutdown = True
            dropped = list(self.queue) if cancel_futures else []
            self.wakeup.notify_all()
        for task in dropped:
            if task.future is not None:
                task.future.cancel()
        if not wait:
            with self.lock:
                idle = self.collector is None
            if idle:  # no collector to close the cluster once the work is done
                self._close()
            return
        with self.lock:
            while not self._drained_locked():
                self.wakeup.wait(wait_slice(None))
            collector = self.collector
        if collector is not None and collector is not threading.current_thread():
            collector.join()
        self._close()

    def abort(self) -> None:
        """Stop at once: cancel every unfinished task, then close."""
        with self.lock:
            self.shutdown = True
            tasks = [*self.queue, *self.in_flight.values()]
        for task in tasks:
            if task.future is not None:
                task.future.cancel()
        self.stop(wait=True, cancel_futures=True)

    def _close(self) -> None:
        """Let go of the cluster: once, by the collector or by ``stop``."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            timers = list(self.timers)
        for timer in timers:
            timer.cancel()
            if timer is not threading.current_thread():
                timer.join()
        client = self.client
        try:
            if self.topic is not None:
                client.unsubscribe_topic(self.topic)
            if self.plugin_name is not None and self.cluster is None:
                client.unregister_worker_plugin(self.plugin_name)
        except Exception:  # the cluster is gone already: nothing left to undo there
            pass
        if self.owns_client:
            client.close()
        if self.cluster is not None:
            self.cluster.close()

    def statistics(self, max_workers: int) -> PoolStatistics:
        with self.lock:
            closed = self.shutdown and not self.in_flight and not self.queue
            in_flight = len(self.in_flight)
            queued = len(self.queue)
            counts = (
                self.completed,
                self.failed,
                self.crashed,
                self.timed_out,
                self.cancelled,
                self.replaced,
            )
        alive = 0
        if not closed and not self.closed:
            try:
                threads = sum(self.client.nthreads().values())
            except Exception:  # the cluster cannot be reached: no worker we can count
                threads = 0
            alive = min(max_workers, threads)
        return PoolStatistics(
            model="cluster",
            max_workers=max_workers,
            workers_alive=alive,
            workers_busy=min(in_flight, alive),
            tasks_queued=queued + max(0, in_flight - max_workers),
            tasks_completed=counts[0],
            tasks_failed=counts[1],
            tasks_crashed=counts[2],
            tasks_timed_out=counts[3],
            tasks_cancelled=counts[4],
            workers_replaced=counts[5],
            workers_abandoned=0,
        )


class ClusterPool(PoolBase):
    """A pool whose workers are those of a dask ``distributed`` cluster.

    The same API as :class:`ProcessPool` and :class:`ThreadPool` — a
    :class:`concurrent.futures.Executor` with :meth:`schedule`, a lazy chunked :meth:`map`,
    :meth:`statistics` — on workers that may run on other machines. It needs the ``cluster``
    extra (``pip install 'concurrency_kit[cluster]'``); without it, creating a pool raises an
    :class:`ImportError` that says so.

    ``ClusterPool()`` starts a ``LocalCluster`` on this machine (``max_workers`` worker
    processes of one thread each, on the loopback interface, no dashboard) and shuts it down
    with the pool. ``ClusterPool("tcp://host:8786")`` connects to a running scheduler and
    ``ClusterPool(client)`` uses an existing ``distributed.Client``: the pool closes a client
    it opened, never the cluster or a client it was given. ``cluster=`` names the same thing
    as a keyword, next to ``max_workers``.

    Args:
        max_workers: on a cluster the pool starts, its number of workers (by default the
            number of CPUs). On a cluster it is given, the most tasks of this pool at the
            cluster at once, the others waiting in the pool; by default every task goes to the
            scheduler at once and the cluster's capacity decides.
        cluster: a scheduler address or a ``distributed.Client``; ``None`` starts a
            ``LocalCluster``.
        initializer: called as ``initializer(*initargs)`` in every worker of the cluster, the
            current ones and any that join or restart later, through a dask worker plugin
            (removed at shutdown); what it returns is that worker's
            :func:`~concurrency_kit.worker_state` (shared by the worker's threads). If it
            raises, the pool is broken: every submission raises
            :class:`~concurrency_kit.BrokenPoolError`.
        initargs: arguments for ``initializer``.
        max_tasks_per_worker: not supported: dask does not recycle a worker after a number
            of tasks (its workers' ``--lifetime`` option restarts them after a time instead).
            Any value but ``None`` raises :class:`ValueError`.
        name: the pool's name; its dask task keys carry the function's name.

    A task's ``timeout`` (see :meth:`schedule`) counts from when the task starts on its
    worker, which reports the start to the pool (a few milliseconds late). At the deadline the
    future fails with :class:`~concurrency_kit.TaskTimeoutError` and the task is released on
    the cluster. A running task cannot be stopped inside its worker: on a cluster the pool
    started, that worker process is killed and its nanny starts a new one (as a process pool
    kills its worker; tasks that were waiting on it are sent again); on a cluster it was
    given, the worker finishes the task and its result is dropped. ``cancel()`` returns
    ``True`` for any unfinished task and releases it on the cluster: one that has not started
    never runs, a running one runs to the end on its worker and its result is dropped.

    A worker that dies while running a task fails that task with
    :class:`~concurrency_kit.WorkerCrashedError` (``pid`` set, ``exitcode`` and ``signal``
    unknown: ``None``). On a cluster the pool started, the task is not retried and the
    worker's nanny starts a replacement; a cluster it was given retries the task on another
    worker as its ``distributed.scheduler.allowed-failures`` setting says (3 by default)
    before the error is raised. A worker's exception arrives as its own type with the worker's
    traceback chained as ``__cause__`` (a :class:`~concurrency_kit.RemoteTraceback`).
    """

    _model = "cluster"

    @overload
    def __init__(
        self,
        max_workers: int | None = None,
        *,
        cluster: str | Client | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        max_tasks_per_worker: int | None = None,
        name: str | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        cluster: str | Client,
        /,
        *,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        max_tasks_per_worker: int | None = None,
        name: str | None = None,
    ) -> None: ...

    def __init__(
        self,
        max_workers: int | str | Client | None = None,
        *,
        cluster: str | Client | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        max_tasks_per_worker: int | None = None,
        name: str | None = None,
    ) -> None:
        workers: Any = max_workers  # an int, or checked (and refused) by PoolBase
        if _is_cluster(max_workers):
            # ClusterPool("tcp://host:8786") or ClusterPool(client): the cluster, positionally.
            if cluster is not None:
                raise TypeError("give the cluster once: positionally or as cluster=")
            cluster, workers = max_workers, None  # type: ignore[assignment]
        super().__init__(
            workers,
            default_workers=1,  # replaced below, once the cluster is known
            initializer=initializer,
            initargs=initargs,
            max_tasks_per_worker=max_tasks_per_worker,
            name=name,
        )
        if max_tasks_per_worker is not None:
            raise ValueError(
                "ClusterPool does not support max_tasks_per_worker: dask workers are not "
                "recycled after a number of tasks (see the workers' lifetime option)"
            )
        distributed = _import_distributed()
        if cluster is not None and not isinstance(cluster, (str, distributed.Client)):
            raise TypeError(
                "cluster must be a scheduler address, a distributed.Client or None, "
                f"not {type(cluster).__name__}"
            )
        self._core = self._connect(distributed, workers, cluster)
        if initializer is not None:
            self._install_initializer(initializer, initargs)
        stop_at_exit(self._core)
        self._finalizer = weakref.finalize(self, self._core.stop, False, False)

    def _connect(
        self, distributed: Any, max_workers: int | None, cluster: str | Client | None
    ) -> _Core:
        import dask

        if cluster is None:
            workers = max_workers if max_workers is not None else default_process_workers()
            with dask.config.set(LOCAL_CLUSTER_CONFIG):
                local = distributed.LocalCluster(n_workers=workers, **LOCAL_CLUSTER_OPTIONS)
                try:
                    client = distributed.Client(local, set_as_default=False)
                except BaseException:
                    local.close()
                    raise
            self._max_workers = workers
            return _Core(self._name, distributed, client, local, owns_client=True, window=None)
        if isinstance(cluster, str):
            client = distributed.Client(cluster, set_as_default=False)
            owns_client = True
        else:
            client = cluster
            owns_client = False
        try:
            if max_workers is None:
                self._max_workers = max(1, sum(client.nthreads().values()))
            return _Core(
                self._name, distributed, client, None, owns_client=owns_client, window=max_workers
            )
        except BaseException:
            if owns_client:
                client.close()
            raise

    def _install_initializer(
        self, initializer: Callable[..., object], initargs: tuple[Any, ...]
    ) -> None:
        core = self._core
        core.plugin_name = f"concurrency_kit-initializer-{core.prefix}"
        try:
            core.client.register_plugin(
                _run_initializer(initializer, initargs, core.plugin_name),
                name=core.plugin_name,
            )
        except Exception as exc:
            error = BrokenPoolError(
                f"{self._name}: the initializer raised {type(exc).__name__}: {exc}; "
                "the pool cannot run tasks"
            )
            error.__cause__ = exc
            core.broken = error

    @property
    def client(self) -> Client:
        """The ``distributed.Client`` the pool submits through."""
        client: Client = self._core.client
        return client

    def _submit_chunk(
        self, fn: Callable[..., Any], items: list[Any], star: bool
    ) -> Future[_map.ChunkResult]:
        # Held back until the map's fill pass ends, then sent in one batch (_map_flush).
        return self._core.submit(_Task(_map.run_chunk, (fn, items, star), None, None), defer=True)

    def _map_flush(self) -> Callable[[], None]:
        return self._core.flush

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
        return self._core.submit(_Task(fn, args, kwargs, timeout))

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
        return self._core.statistics(self._max_workers)

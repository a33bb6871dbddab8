"""What both pools share: argument checks, the statistics value and the Executor facade.

Each pool implements four hooks — ``_submit_task``, ``_shutdown``, ``_abort`` and
``_statistics`` — and inherits the public API from :class:`PoolBase`, so the two columns cannot
drift apart in signature or validation.
"""

from __future__ import annotations

import os
import queue
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Mapping
from concurrent.futures import Executor, Future
from concurrent.futures import _base as _futures_base
from types import TracebackType
from typing import Any, Literal, Protocol, TypeVar

from typing_extensions import ParamSpec, Self

from concurrency_kit._core.deadline import check_timeout, deadline_after, remaining, wait_slice
from concurrency_kit.errors import TaskTimeoutError
from concurrency_kit.pools import _map
from concurrency_kit.pools._progress import Opener, ProgressOption, open_progress
from concurrency_kit.protocols import PoolStatistics

T = TypeVar("T")
P = ParamSpec("P")

_pool_counter = iter(range(1, 1 << 62))
_pool_counter_lock = threading.Lock()


def next_pool_name(kind: str) -> str:
    """A unique default name such as ``ProcessPool-3``."""
    with _pool_counter_lock:
        return f"{kind}-{next(_pool_counter)}"


_DONE_STATES = frozenset(
    {_futures_base.CANCELLED, _futures_base.CANCELLED_AND_NOTIFIED, _futures_base.FINISHED}
)


class PoolFuture(Future[Any]):
    """The futures the pools return: their waits follow the library's timeout rule.

    ``result(timeout)`` and ``exception(timeout)`` take ``None`` or ``math.inf`` for no
    limit, refuse a negative or NaN ``timeout`` with :class:`ValueError`, and wait in bounded
    slices (:func:`~concurrency_kit._core.deadline.wait_slice`), so that no value reaches a
    system call that would overflow on it (a plain :class:`~concurrent.futures.Future` raises
    :class:`OverflowError` for ``math.inf``).
    """

    def result(self, timeout: float | None = None) -> Any:
        self._ck_wait(check_timeout(timeout))
        return super().result(0)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._ck_wait(check_timeout(timeout))
        return super().exception(0)

    def _ck_before_wait(self) -> None:
        """Called once before a wait that may block (a process future helps here)."""

    def _ck_wait(self, timeout: float | None) -> None:
        if timeout == 0 or self._state in _DONE_STATES:
            return
        self._ck_before_wait()
        deadline = deadline_after(timeout)
        with self._condition:
            while self._state not in _DONE_STATES:
                left = remaining(deadline)
                if left == 0:
                    return  # super() then raises TimeoutError
                self._condition.wait(wait_slice(left))


def check_callable(fn: object, what: str = "fn") -> None:
    if not callable(fn):
        raise TypeError(f"{what} must be callable, not {type(fn).__name__}")


class PoolBase(Executor):
    """The public API both pools share. Not instantiated directly."""

    _model: str = ""

    def __init__(
        self,
        max_workers: int | None,
        *,
        default_workers: int,
        initializer: Callable[..., object] | None,
        initargs: tuple[Any, ...],
        max_tasks_per_worker: int | None,
        name: str | None,
    ) -> None:
        if max_workers is None:
            max_workers = default_workers
        if isinstance(max_workers, bool) or not isinstance(max_workers, int):
            raise TypeError(f"max_workers must be an int or None, not {type(max_workers).__name__}")
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        if initializer is not None:
            check_callable(initializer, "initializer")
        if not isinstance(initargs, tuple):
            raise TypeError(f"initargs must be a tuple, not {type(initargs).__name__}")
        if max_tasks_per_worker is not None:
            if isinstance(max_tasks_per_worker, bool) or not isinstance(max_tasks_per_worker, int):
                raise TypeError("max_tasks_per_worker must be an int or None")
            if max_tasks_per_worker < 1:
                raise ValueError(f"max_tasks_per_worker must be >= 1, got {max_tasks_per_worker}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, not {type(name).__name__}")
        self._max_workers = max_workers
        self._name = name if name is not None else next_pool_name(type(self).__name__)

    @property
    def max_workers(self) -> int:
        """The most workers this pool runs at once."""
        return self._max_workers

    @property
    def name(self) -> str:
        """The pool's name; its workers are named after it."""
        return self._name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name!r} max_workers={self._max_workers}>"

    # -- submission -------------------------------------------------------------------------

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` in a worker and return a future for its result.

        Raises:
            RuntimeError: the pool has been shut down.
            TypeError: ``fn`` is not callable.
            BrokenPoolError: the pool's workers cannot start (the initializer failed).
            SerializationError: (processes) the call cannot be pickled.
        """
        check_callable(fn)
        return self._submit_task(fn, args, kwargs, None)

    def schedule(
        self,
        fn: Callable[..., T],
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Future[T]:
        """Like :meth:`submit`, with a per-task ``timeout``.

        Args:
            fn: the callable to run.
            args: its positional arguments.
            kwargs: its keyword arguments.
            timeout: seconds the task may run, counted from when it starts running (time spent
                queued does not count). A late task's future fails with
                :class:`~concurrency_kit.TaskTimeoutError`; see the pool class for what happens
                to the worker. ``None``, ``math.inf`` or a value too large for any clock
                mean no limit; ``0`` gives the task no time at all: it is not run, and its
                future fails at once with :class:`~concurrency_kit.TaskTimeoutError` (counted
                in ``tasks_timed_out``).

        Raises:
            ValueError: ``timeout`` is negative or NaN.
            TypeError: ``timeout`` is not a number or ``None``.
        """
        check_callable(fn)
        timeout = check_timeout(timeout)
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise TypeError(f"kwargs must be a mapping or None, not {type(kwargs).__name__}")
        args = tuple(args)
        kwargs = dict(kwargs) if kwargs else {}
        if timeout == 0:
            return self._expired_at_start(fn, args, kwargs)
        return self._submit_task(fn, args, kwargs, timeout)

    def _expired_at_start(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> Future[Any]:
        """``schedule(timeout=0)``: the task would time out the moment it starts, so it is not
        run; the call is still checked as a real submission would be (the pool is open, the
        call can be sent), so that the error a caller gets does not depend on the timeout."""
        self._check_open()
        self._check_call(fn, args, kwargs)
        self._count_expired_at_start()
        future: Future[Any] = Future()
        future.set_running_or_notify_cancel()
        future.set_exception(
            TaskTimeoutError("task has a 0 s timeout: it was given no time to run and did not run")
        )
        return future

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | Literal["auto"] = "auto",
        ordered: bool = True,
        buffersize: int | None = None,
        progress: ProgressOption = False,
    ) -> Generator[T, None, None]:
        """Lazily apply ``fn`` to the items of ``iterables``, in the pool.

        The first chunks are submitted at once; after that the input is read as results are
        consumed, with at most ``buffersize`` items in flight, so an endless iterable is fine.
        An item whose call raised re-raises that exception when iteration reaches it, as in
        :meth:`concurrent.futures.Executor.map`; the generator then ends and the calls still
        outstanding are cancelled (closing the generator early does the same).

        Args:
            fn: the callable, applied as ``fn(*items)`` with one item from each iterable.
            timeout: as in :meth:`concurrent.futures.Executor.map`: seconds from this call
                until every result must be available; :class:`TimeoutError` when exceeded,
                and the calls still outstanding are cancelled. ``0`` means the results must
                be ready when iteration reaches them; ``None`` or ``math.inf``: no limit.
            chunksize: items sent to a worker in one task. ``"auto"`` picks it from the input's
                length when known (as :meth:`multiprocessing.pool.Pool.map` does), otherwise
                from measured call durations. With a chunk larger than one item, a worker crash
                fails every item of that chunk.
            ordered: yield results in input order (``True``) or as they complete.
            buffersize: the most items in flight; by default four chunks per worker.
            progress: show a progress bar: ``True`` for a tqdm bar (the ``progress`` extra;
                a text bar in a terminal, a widget in Jupyter) counting finished items, with
                the input's length as its total when it is known; a mapping of tqdm options
                (``{"desc": "resize", "leave": False}``); or a bar of your own
                (a :class:`~concurrency_kit.ProgressBar`, updated and never closed here). A
                bar opened here is closed when the map ends, however it ends.

        Raises:
            ValueError: ``chunksize`` or ``buffersize`` is not positive, or ``timeout`` is
                negative or NaN.
            ImportError: a bar is asked for and tqdm is not installed.
        """
        check_callable(fn)
        if not iterables:
            raise TypeError("map() needs at least one iterable")
        timeout = check_timeout(timeout)
        if chunksize != "auto":
            if isinstance(chunksize, bool) or not isinstance(chunksize, int):
                raise TypeError(f"chunksize must be an int or 'auto', not {chunksize!r}")
            if chunksize < 1:
                raise ValueError(f"chunksize must be >= 1, got {chunksize}")
        if buffersize is not None:
            if isinstance(buffersize, bool) or not isinstance(buffersize, int):
                raise TypeError(f"buffersize must be an int or None, not {buffersize!r}")
            if buffersize < 1:
                raise ValueError(f"buffersize must be >= 1, got {buffersize}")
        opener = open_progress(
            progress,
            total=_map.known_length(iterables),
            desc=getattr(fn, "__name__", None),
        )
        self._check_open()
        return _map.lazy_map(
            self._submit_chunk,
            fn,
            iterables,
            workers=self._max_workers,
            timeout=timeout,
            chunksize=chunksize,
            ordered=ordered,
            buffersize=buffersize,
            flush=self._map_flush(),
            progress=opener,
        )

    # -- the async face (pools/_async.py) ---------------------------------------------------

    async def arun(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` in a worker and await its result.

        The awaitable :meth:`submit`: on asyncio or trio, with no thread per awaiting call
        (the future's done-callback wakes the task). What the task raises is raised here, as
        ``submit(...).result()`` raises it: the same types, a worker's traceback chained as
        ``__cause__``.

        Cancelling the awaiting task (``task.cancel()``, :func:`asyncio.timeout`, a trio
        cancel scope) cancels the pool's task: one still queued never runs; one already
        running in a :class:`~concurrency_kit.ProcessPool` has its worker killed and
        replaced, as ``future.cancel()`` and ``loop.run_in_executor`` cancellation do. A
        thread cannot be stopped: a :class:`~concurrency_kit.ThreadPool` task that is already
        running runs to its end, and its result is dropped. So a time limit is a cancel scope
        around the call (``async with asyncio.timeout(5): await pool.arun(...)``), which
        raises the event loop's own timeout error.

        Raises:
            RuntimeError: the pool has been shut down.
            TypeError: ``fn`` is not callable.
            BrokenPoolError: the pool's workers cannot start (the initializer failed).
            SerializationError: (processes) the call cannot be pickled.
            concurrent.futures.CancelledError: the task was cancelled by someone else
                (``shutdown(cancel_futures=True)``, say) -- not the awaiting task.
        """
        check_callable(fn)
        future = self._submit_task(fn, args, kwargs, None)
        from concurrency_kit.pools._async import result_of  # asyncio and anyio, on first use

        return await result_of(future)

    def amap(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        ordered: bool = True,
        buffersize: int | None = None,
        progress: ProgressOption = False,
    ) -> AsyncGenerator[T, None]:
        """Apply ``fn`` to the items of ``iterables`` in the pool; ``async for`` the results.

        The awaitable :meth:`map`, on asyncio or trio, with no thread per waiting call. Each
        item is one task (no chunks: ``map`` in a thread suits millions of tiny calls better).
        At most ``buffersize`` tasks are in the pool at once, and the input is read only as
        results are consumed, so an endless iterable is fine. The first tasks are submitted by
        this call; the results come in input order (``ordered=True``) or as they complete.

        A task that raised re-raises its exception when iteration reaches it, as with
        :meth:`map`; the iteration then ends and the tasks still outstanding are cancelled.
        Closing the iterator early does the same: ``await results.aclose()``, the end of an
        ``async with contextlib.aclosing(pool.amap(...)) as results:`` block, a ``break`` out of
        ``async for r in pool.amap(...)`` (when the iterator is collected, at once on CPython:
        the tasks are cancelled at the event loop's next turn),
        or cancelling the task that awaits a result. Cancelled tasks never run if still
        queued; running :class:`~concurrency_kit.ProcessPool` tasks are killed (their workers
        replaced); running :class:`~concurrency_kit.ThreadPool` tasks run to their end and
        their results are dropped.

        A call that cannot be submitted (the pool was shut down, processes: the arguments
        cannot be pickled) or an input iterable that raises fails at its own position: the
        results before it are delivered first.

        Args:
            fn: the callable, applied as ``fn(*items)`` with one item from each iterable.
            timeout: as for :meth:`map`: seconds from this call until every result must be
                available; :class:`TimeoutError` when exceeded, and the tasks still
                outstanding are cancelled. ``0``: each result must be ready when iteration
                reaches it; ``None`` or ``math.inf``: no limit.
            ordered: yield results in input order (``True``) or as they complete.
            buffersize: the most tasks in the pool at once; by default four per worker (as
                many as :meth:`map` keeps chunks): fewer leave workers idle while the event
                loop wakes up for each result (``benchmarks/bench_pools_async.py``).
            progress: a progress bar counting results, as for :meth:`map` (opened at the
                first result awaited, closed when the map ends however it ends).

        Raises:
            ValueError: ``buffersize`` is not positive, or ``timeout`` is negative or NaN.
            TypeError: ``fn`` is not callable, no iterable is given, ``buffersize`` is not
                an int (a bool is refused), ``timeout`` is not a number.
            ImportError: a bar is asked for and tqdm is not installed.
        """
        check_callable(fn)
        if not iterables:
            raise TypeError("amap() needs at least one iterable")
        timeout = check_timeout(timeout)
        if buffersize is None:
            buffersize = _map.CHUNKS_PER_WORKER * self._max_workers
        elif isinstance(buffersize, bool) or not isinstance(buffersize, int):
            raise TypeError(f"buffersize must be an int or None, not {buffersize!r}")
        elif buffersize < 1:
            raise ValueError(f"buffersize must be >= 1, got {buffersize}")
        opener = open_progress(
            progress,
            total=_map.known_length(iterables),
            desc=getattr(fn, "__name__", None),
        )
        self._check_open()
        from concurrency_kit.pools._async import AsyncMap  # asyncio and anyio, on first use

        return AsyncMap(
            self._submit_call,
            fn,
            iterables,
            buffersize=buffersize,
            timeout=timeout,
            ordered=bool(ordered),
            progress=opener,
        )

    def _submit_call(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Future[Any]:
        return self._submit_task(fn, args, None, None)

    def _map_flush(self) -> Callable[[], None] | None:
        """For a pool whose ``_submit_chunk`` holds chunks back: the call that sends them."""
        return None

    def _submit_chunk(
        self, fn: Callable[..., Any], items: list[Any], star: bool
    ) -> Future[_map.ChunkResult]:
        return self._submit_task(_map.run_chunk, (fn, items, star), None, None)

    # -- lifecycle --------------------------------------------------------------------------

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting tasks and release the workers; idempotent.

        Args:
            wait: block until every accepted task has finished and the workers are gone.
            cancel_futures: cancel the tasks that have not started yet. Tasks already
                running are never cancelled by this: they finish and deliver their result,
                as with :meth:`concurrent.futures.Executor.shutdown`.

        Ctrl-C (or any exception) while waiting stops the pool at once instead: queued tasks
        are cancelled and (processes) running tasks are killed, then the exception goes on.
        """
        try:
            self._shutdown(wait=wait, cancel_futures=cancel_futures)
        except BaseException:
            self._abort()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None and not issubclass(exc_type, Exception):
            # Ctrl-C or SystemExit: do not wait for queued work; stop what can be stopped.
            self._abort()
        else:
            self.shutdown(wait=True)

    def statistics(self) -> PoolStatistics:
        """A snapshot of the pool's workers and task counters."""
        return self._statistics()

    # -- hooks ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        raise NotImplementedError

    def _submit_task(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any] | None,
        timeout: float | None,
    ) -> Future[Any]:
        raise NotImplementedError

    def _check_call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> None:
        """Raise what submitting this call would raise for the call itself (processes: it
        cannot be pickled). Threads pass calls by reference: nothing to check."""

    def _count_expired_at_start(self) -> None:
        raise NotImplementedError

    def _shutdown(self, *, wait: bool, cancel_futures: bool) -> None:
        raise NotImplementedError

    def _abort(self) -> None:
        raise NotImplementedError

    def _statistics(self) -> PoolStatistics:
        raise NotImplementedError


def as_completed(
    fs: Iterable[Future[T]],
    timeout: float | None = None,
    *,
    progress: ProgressOption = False,
) -> Generator[Future[T], None, None]:
    """Yield the futures of ``fs`` as they finish, optionally with a progress bar.

    :func:`concurrent.futures.as_completed` for the futures of any pool
    (:class:`ProcessPool`, :class:`ThreadPool`, :class:`ClusterPool`, or a standard-library
    executor), with the library's timeout rule and a ``progress`` display::

        futures = [pool.submit(work, item) for item in items]
        for future in as_completed(futures, progress=True):
            handle(future.result())

    Duplicate futures are yielded once. A failed or cancelled future is yielded like any
    other (and counted on the bar): its ``result()`` raises.

    Args:
        fs: the futures; read at the call.
        timeout: seconds from the call until every future must have finished; then
            :class:`TimeoutError` is raised. ``None`` or ``math.inf``: no limit.
        progress: ``True`` for a bar (tqdm, the ``progress`` extra: a text bar in a terminal,
            a widget in Jupyter) whose total is the number of futures; a mapping of tqdm
            options (``{"desc": "fetch", "leave": False}``); or a bar of your own to update
            (a :class:`ProgressBar`, never closed here). A bar opened here is closed when the
            loop ends, however it ends (an exception, a timeout, ``break``).

    Raises:
        ImportError: a bar is asked for and tqdm is not installed.
        TimeoutError: (while iterating) ``timeout`` passed before every future finished.
        ValueError: ``timeout`` is negative or NaN.
    """
    timeout = check_timeout(timeout)
    futures = list(dict.fromkeys(fs))
    for future in futures:
        if not isinstance(future, Future):
            raise TypeError(f"as_completed() takes futures, not {type(future).__name__}")
    opener = open_progress(progress, total=len(futures), desc=None)
    return _as_completed(futures, timeout, opener)


def _as_completed(
    futures: list[Future[T]], timeout: float | None, opener: Opener | None
) -> Generator[Future[T], None, None]:
    deadline = deadline_after(timeout)
    finished: queue.SimpleQueue[Future[T]] = queue.SimpleQueue()
    bar = opener() if opener is not None else None
    try:
        for future in futures:
            future.add_done_callback(finished.put)
        for left_to_yield in range(len(futures), 0, -1):
            while True:
                left = remaining(deadline)
                try:
                    if left == 0:
                        done = finished.get_nowait()
                    else:
                        done = finished.get(timeout=wait_slice(left))
                    break
                except queue.Empty:
                    if remaining(deadline) == 0:
                        raise TimeoutError(
                            f"{left_to_yield} (of {len(futures)}) futures unfinished"
                        ) from None
            if bar is not None:
                bar.update(1)
            yield done
    finally:
        if bar is not None:
            bar.close()


def default_process_workers() -> int:
    return os.process_cpu_count() if hasattr(os, "process_cpu_count") else (os.cpu_count() or 1)


def default_thread_workers() -> int:
    return min(32, default_process_workers() + 4)


class _Stoppable(Protocol):
    def stop(self, wait: bool, cancel_futures: bool) -> None: ...


_live_cores: weakref.WeakSet[_Stoppable] = weakref.WeakSet()


def stop_at_exit(core: _Stoppable) -> None:
    """Have ``core`` finish its accepted work before the interpreter exits.

    Like :mod:`concurrent.futures`, this hooks :func:`threading._register_atexit`, which runs
    before non-daemon threads are joined; the pools' own threads are daemons, so that a stuck
    thread-pool worker (which cannot be killed) can never hold the interpreter up.
    """
    _live_cores.add(core)


def _stop_live_cores() -> None:
    for core in list(_live_cores):
        core.stop(wait=True, cancel_futures=False)


threading._register_atexit(_stop_live_cores)  # type: ignore[attr-defined]
# A forked child (a fork-started worker, or any os.fork) inherits copies of its parent's pools,
# not the pools: their threads did not come along, and a lock a parent thread held at the fork
# stays held for ever in the copy. Stopping them at the child's exit would wait on those.
os.register_at_fork(after_in_child=_live_cores.clear)

"""The async face of the pools: ``await pool.arun(...)`` and ``async for r in pool.amap(...)``.

Imported at the first async call (``_base.py``), not with the package: it brings asyncio and
anyio, which a program that never awaits a pool need not import.

Written once for every pool, over ``_submit_task`` and the futures it returns, with the
event-loop side in :mod:`concurrency_kit._core.aio`::

    submit (synchronous, in the loop's thread) ── future
        future done? ── yes ── its result (or its error, raised as future.result() raises it)
            └ no ── arm a waker ── look again ── await the waker (or the deadline) ── look again
                        ^
    the thread that resolves the future (the pool's dispatcher, a worker thread, dask's
    collector) runs its done-callback, which calls waker.wake(): never blocks, no thread
    of ours, one loop wake-up per awaited result

A cancelled await cancels its task with ``future.cancel()``: a queued task never runs, a
running :class:`~concurrency_kit.ProcessPool` task has its worker killed (and replaced) exactly
as ``loop.run_in_executor`` cancellation does, a running ``ThreadPool`` task runs on and its
result is dropped.

``amap`` is a class, not an ``async def`` generator: its clean-up (cancelling futures) is
synchronous, so ``aclose()``, an error or a cancelled ``__anext__`` cancel at once; a map
dropped without ``aclose()`` (``break`` out of ``async for r in pool.amap(...)``) cancels its
tasks when it is collected, and one that was never iterated still has a ``__del__`` (an
async generator never started runs no ``finally``). The futures' done-callbacks hold only a
small :class:`_Inbox`, never the map, so that a map with tasks in flight can be collected.

``__del__`` never cancels there and then: the garbage collector may run it in any thread, in
the middle of a pool's own code that holds the lock ``future.cancel()`` takes (a submit, the
dispatcher), and it would wait for ever on that lock. It hands the cancellation to the map's
event loop instead (``call_soon_threadsafe``, the trio token's ``run_sync_soon``: neither waits
for a pool's lock), so the tasks are cancelled at the loop's next turn. Only a map made outside
any event loop and never iterated is cancelled in ``__del__`` itself.
"""

from __future__ import annotations

import asyncio
import collections
import sys
import threading
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any, NoReturn, TypeVar

from concurrency_kit._core import aio
from concurrency_kit._core.deadline import deadline_after, remaining
from concurrency_kit.pools._progress import Opener

__all__ = ["AsyncMap", "result_of"]

T = TypeVar("T")

_ITEMS_PER_YIELD = 64
"""``amap`` lets the event loop run at least once per this many results found ready at once
(as ``async for`` over a channel does)."""


def _wake(waker: aio.Waker, future: Future[Any]) -> None:
    waker.wake()


async def result_of(future: Future[T]) -> T:
    """Await ``future`` without a thread; cancelled, cancel it (see the module doc)."""
    if not future.done():
        try:
            waker = aio.make_waker()
        except BaseException:  # not asyncio nor trio: nobody will take the result
            future.cancel()
            raise
        # Called at once (in this thread) if the future finished meanwhile: the waker is set.
        future.add_done_callback(lambda done: _wake(waker, done))
        try:
            await waker.wait(None)
        except BaseException:
            # Cancelled (or the loop is going away): the task must not run on for nobody.
            # A future that finished meanwhile cannot be cancelled, and its result is dropped.
            future.cancel()
            raise
        finally:
            waker.close()
    return future.result(0)


class _Inbox:
    """What the futures of one map tell their done-callbacks: whom to wake, and (unordered)
    which futures finished, oldest first. Shared with the threads that resolve futures, so
    every field is read and written under ``_lock``."""

    __slots__ = ("_lock", "_waker", "_watched", "finished")

    def __init__(self, ordered: bool) -> None:
        self._lock = threading.Lock()
        self._waker: aio.Waker | None = None
        self._watched: Future[Any] | None = None  # ordered: wake only for this future
        self.finished: collections.deque[Future[Any]] | None = (
            None if ordered else collections.deque()
        )

    def put(self, future: Future[Any]) -> None:
        """A future's done-callback (any thread): record it, wake the waiting task if it waits
        for this future (ordered) or for any (unordered). Never blocks for long."""
        with self._lock:
            if self.finished is not None:
                self.finished.append(future)
            waker = self._waker
            if waker is None or (self._watched is not None and future is not self._watched):
                return
            self._waker = None  # one wake-up per wait
        waker.wake()

    def arm(self, waker: aio.Waker, watched: Future[Any] | None) -> None:
        with self._lock:
            self._waker = waker
            self._watched = watched

    def disarm(self) -> None:
        with self._lock:
            self._waker = None
            self._watched = None

    def pop_finished(self) -> Future[Any] | None:
        """Unordered: the oldest finished future not yet handed out, if any."""
        with self._lock:
            assert self.finished is not None
            return self.finished.popleft() if self.finished else None


class AsyncMap(AsyncGenerator[T, None]):
    """The results of ``pool.amap(...)``: an async generator over ``fn(*items)``.

    At most ``buffersize`` tasks are in the pool at once; the input is read as results are
    consumed. Closing it (``aclose()``, leaving a ``contextlib.aclosing()`` block, being
    collected after a ``break``, a cancelled ``__anext__``, an error or a timeout) cancels every
    task not yet done: a queued task never runs, a running process task's worker is killed.
    """

    __slots__ = (
        "__weakref__",
        "_bar",
        "_closed",
        "_count",
        "_deadline",
        "_fn",
        "_inbox",
        "_inputs",
        "_limit",
        "_ordered",
        "_pending",
        "_progress",
        "_running",
        "_soon",
        "_star",
        "_submit",
    )

    def __init__(
        self,
        submit: Callable[[Callable[..., Any], tuple[Any, ...]], Future[Any]],
        fn: Callable[..., T],
        iterables: tuple[Iterable[Any], ...],
        *,
        buffersize: int,
        timeout: float | None,
        ordered: bool,
        progress: Opener | None,
    ) -> None:
        self._submit = submit
        self._fn = fn
        self._star = len(iterables) > 1
        self._inputs: Iterator[Any] | None = (
            zip(*iterables)  # noqa: B905 - map() stops at the shortest, as the builtin does
            if self._star
            else iter(iterables[0])
        )
        self._limit = buffersize
        self._deadline = deadline_after(timeout)
        self._ordered = ordered
        self._inbox = _Inbox(ordered)
        self._pending: collections.deque[Future[Any]] = collections.deque()
        self._progress = progress
        self._bar: Any = None
        self._count = 0
        self._closed = False
        self._running = False  # a task awaits __anext__ now
        self._soon = _loop_call_soon()  # where __del__ hands the cancelling to
        try:
            self._fill()
        except BaseException:
            self._close()
            raise

    # -- the input side -------------------------------------------------------------------------

    def _fill(self) -> None:
        """Submit tasks until ``buffersize`` are in flight or the input is exhausted.

        A call that cannot be submitted (the pool is shut down, the arguments cannot be
        pickled) or an input iterable that raises takes its place in the order as a failed
        future, and no more input is read: its error is raised where its result would have
        been, after the results before it (sync ``map`` raises it from the call that reads it).
        """
        inputs = self._inputs
        while inputs is not None and len(self._pending) < self._limit:
            future: Future[Any]
            try:
                item = next(inputs)
            except StopIteration:
                self._inputs = None
                return
            except Exception as exc:
                future = _failed(exc)
                self._inputs = inputs = None
            else:
                try:
                    future = self._submit(self._fn, item if self._star else (item,))
                except Exception as exc:
                    future = _failed(exc)
                    self._inputs = inputs = None
            future.add_done_callback(self._inbox.put)
            self._pending.append(future)

    # -- the output side ------------------------------------------------------------------------

    async def __anext__(self) -> T:
        if self._closed:
            raise StopAsyncIteration
        if self._running:
            # as an async generator refuses it: the second waiter would take the first's wake-up
            raise RuntimeError("amap() results are already being awaited by another task")
        self._running = True
        try:
            if self._soon is None:
                self._soon = _loop_call_soon()
            self._count += 1
            if self._count % _ITEMS_PER_YIELD == 0:
                await aio.checkpoint()  # results that are always ready: let others run
            if self._progress is not None and self._bar is None:
                self._bar = self._progress()
            future = await (self._next_ordered() if self._ordered else self._next_unordered())
            if future is None:
                self._close()
                raise StopAsyncIteration
            # A failed task raises here, and the handler below cancels the rest (as sync map
            # does); so does a task cancelled by someone else (CancelledError, as result() does).
            result: T = future.result(0)
            del future
            self._fill()
            if self._bar is not None:
                self._bar.update(1)
            return result
        except BaseException:
            # cancelled, timed out, failed or exhausted: nothing more runs for this map
            self._close()
            raise
        finally:
            self._running = False

    async def _next_ordered(self) -> Future[Any] | None:
        if not self._pending:
            return None
        future = self._pending[0]
        if not future.done():
            await self._wait(future.done, future)
        self._pending.popleft()
        return future

    async def _next_unordered(self) -> Future[Any] | None:
        if not self._pending:
            return None
        inbox = self._inbox
        future = inbox.pop_finished()
        if future is None:
            await self._wait(lambda: bool(inbox.finished), None)
            future = inbox.pop_finished()
            assert future is not None
        self._pending.remove(future)
        return future

    async def _wait(self, ready: Callable[[], bool], watched: Future[Any] | None) -> None:
        """Await ``ready()``, woken by the futures' done-callbacks, until the deadline."""
        inbox = self._inbox
        while True:
            left = remaining(self._deadline)
            if left == 0:
                _timed_out()
            waker = aio.make_waker()
            inbox.arm(waker, watched)
            try:
                if ready():
                    return
                await waker.wait(left)
                if ready():
                    return
            finally:
                inbox.disarm()
                waker.close()

    # -- closing --------------------------------------------------------------------------------

    def _close(self) -> None:
        """Read no more input; cancel every task not yet done (idempotent, synchronous)."""
        self._inputs = None
        pending, self._pending = self._pending, collections.deque()
        bar, self._bar = self._bar, None
        self._progress = None
        self._closed = True
        _cancel_all(pending, bar)

    async def aclose(self) -> None:
        """Stop the map: cancel every task not yet done (running process tasks are killed)."""
        self._close()

    async def asend(self, value: None) -> T:
        """The next result (``value`` is ignored: a map takes nothing in)."""
        return await self.__anext__()

    async def athrow(self, typ: Any, val: Any = None, tb: Any = None) -> NoReturn:
        """Close the map, then raise the given exception here, as an async generator does."""
        self._close()
        if val is None:
            val = typ() if isinstance(typ, type) else typ
        if tb is not None:
            val = val.with_traceback(tb)
        raise val

    def __del__(self) -> None:
        # Dropped without aclose() (a `break` out of `async for`): cancel in the event loop,
        # never here (see the module doc: the collector may run this under a pool's lock).
        pending = getattr(self, "_pending", None)
        if not pending and getattr(self, "_bar", None) is None:
            return
        bar, self._bar = self._bar, None
        self._pending = collections.deque()
        soon = self._soon
        if soon is not None:
            try:
                soon(lambda: _cancel_all(pending, bar))
                return
            except Exception:  # the loop is closed: nothing else to hand it to (rare)
                pass
        _cancel_all(pending, bar)


def _cancel_all(pending: Iterable[Future[Any]] | None, bar: Any) -> None:
    for future in pending or ():
        future.cancel()
    if bar is not None:
        bar.close()


def _loop_call_soon() -> Callable[[Callable[[], object]], object] | None:
    """The running event loop's thread-safe ``call_soon`` (asyncio or trio), if any."""
    try:
        return asyncio.get_running_loop().call_soon_threadsafe
    except RuntimeError:
        pass
    trio = sys.modules.get("trio")  # not imported: no trio run can be going on
    if trio is None:
        return None
    try:
        return trio.lowlevel.current_trio_token().run_sync_soon  # type: ignore[no-any-return]
    except RuntimeError:
        return None


def _failed(exc: BaseException) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_running_or_notify_cancel()
    future.set_exception(exc)
    return future


def _timed_out() -> NoReturn:
    raise TimeoutError("amap() did not finish within its timeout")

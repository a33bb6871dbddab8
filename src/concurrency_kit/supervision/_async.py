"""The async face of both supervisors: ``wait_async`` and ``aevents`` (issue 18).

Written once for both models, over two hooks of :class:`~._restart.SupervisorCore`:
``_add_listener`` and ``_remove_listener``. A *listener* is told of every event as it is
recorded and of the supervisor's stop, from whichever thread records it (the supervisor's
loop, a caller of ``start_child``...), under the supervisor's ``_notify_lock``, which is
never held for long: an event loop that registers or forgets a listener never waits for a
restart or a stop to finish::

    supervisor thread                               event-loop thread (one task)
    _record(event) ──> feed.event(event):           __anext__: take from the buffer
                         buffer.append (or drop        └ empty: arm a waker, await it
                         the oldest: lost += 1)               ── woken: take again
                         waker.wake() ─────────────────────>
    _set_stopped() ──> feed.stopped(): done,         buffer empty and done: StopAsyncIteration
                         waker.wake()

A :class:`~concurrency_kit._core.aio.Waker`'s ``wake()`` may be called from any thread and
never blocks, so no thread waits on behalf of a task. The take is synchronous and the only
await is the wait, so a cancelled step has taken nothing.

Imported with the package, but :mod:`concurrency_kit._core.aio` (and with it asyncio and
anyio) only at the first await: a program that never awaits a supervisor does not load them.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING

from typing_extensions import Self

from concurrency_kit._core.deadline import remaining, wait_slice
from concurrency_kit.errors import SupervisorEventsLost
from concurrency_kit.supervision._spec import SupervisorEvent

if TYPE_CHECKING:
    from concurrency_kit._core.aio import Waker
    from concurrency_kit.supervision._restart import SupervisorCore

__all__ = ["SupervisorEventStream", "wait_stopped"]

_EVENTS_PER_YIELD = 64
"""``async for`` lets the event loop run at least once per this many events found waiting."""


class _StopWaiter:
    """The listener of one ``wait_async``: wakes its task when the supervisor stops."""

    __slots__ = ("_waker",)
    abandoned = False  # removed by its own task, always

    def __init__(self, waker: Waker) -> None:
        self._waker = waker

    def event(self, event: SupervisorEvent) -> None:
        pass  # only the stop matters

    def stopped(self) -> None:
        self._waker.wake()


async def wait_stopped(supervisor: SupervisorCore, deadline: float | None) -> None:
    """Await until ``supervisor`` has stopped or ``deadline`` (``time.monotonic``) has passed."""
    from concurrency_kit._core import aio

    while not supervisor._stopped.is_set():
        left = remaining(deadline)
        if left == 0:
            return
        waker = aio.make_waker()
        waiter = _StopWaiter(waker)
        if not supervisor._add_listener(waiter, replay=False):
            return  # stopped meanwhile: nothing was registered
        try:
            await waker.wait(wait_slice(left))  # a slice: no timer past what a loop can count
        finally:
            waker.close()
            supervisor._remove_listener(waiter)


class _Feed:
    """The listener of one :class:`SupervisorEventStream`: the buffer between the threads.

    Filled by the supervisor's threads, emptied by the stream's tasks, under its own lock
    (never held while waiting).
    """

    __slots__ = (
        "abandoned",
        "buffer",
        "closed",
        "done",
        "lock",
        "lost",
        "max_buffered",
        "wakers",
    )

    def __init__(self, max_buffered: int) -> None:
        self.abandoned = False  # its stream was garbage-collected (see _remove_listener)
        self.lock = threading.Lock()
        self.max_buffered = max_buffered
        self.buffer: collections.deque[SupervisorEvent] = collections.deque()
        self.lost = 0  # dropped since the consumer last heard of a loss
        self.done = False  # the supervisor has stopped: no event follows
        self.closed = False  # the stream was closed: its tasks end now
        self.wakers: dict[Waker, None] = {}  # the tasks waiting (an ordered set)

    def event(self, event: SupervisorEvent) -> None:
        with self.lock:
            if self.closed:
                return
            if len(self.buffer) >= self.max_buffered:
                self.buffer.popleft()  # the oldest goes: the newest (the stop) always arrives
                self.lost += 1
            self.buffer.append(event)
            wakers = list(self.wakers)
        for waker in wakers:
            waker.wake()

    def stopped(self) -> None:
        self._end(closed=False)

    def _end(self, *, closed: bool) -> None:
        with self.lock:
            self.done = True
            if closed:
                self.closed = True
                self.buffer.clear()
                self.lost = 0
            wakers = list(self.wakers)
        for waker in wakers:
            waker.wake()

    def close(self) -> None:
        self._end(closed=True)


class SupervisorEventStream(AsyncIterator[SupervisorEvent]):
    """The events of a supervisor, as an async iterator: what
    :meth:`ProcessSupervisor.aevents` and :meth:`ThreadSupervisor.aevents` return.

    ``async for event in stream`` yields each :class:`SupervisorEvent` as it happens and ends
    once the supervisor has stopped and every event was taken. A consumer that fell more
    than ``max_buffered`` events behind gets :exc:`~concurrency_kit.SupervisorEventsLost` at
    the gap, once; iterating again goes on from the oldest event kept.

    ``aclose()`` (or leaving ``async with``) unsubscribes at once and ends every iteration;
    an iterator left behind (``break``) unsubscribes when it is garbage-collected. Several
    tasks may iterate over one stream: each event goes to one of them.
    """

    __slots__ = ("__weakref__", "_count", "_feed", "_supervisor")
    _supervisor: SupervisorCore | None
    _feed: _Feed
    _count: int

    def __init__(self) -> None:
        raise TypeError("a SupervisorEventStream is made by a supervisor's aevents()")

    @classmethod
    def _open(
        cls, supervisor: SupervisorCore, *, replay: bool, max_buffered: int
    ) -> SupervisorEventStream:
        if isinstance(max_buffered, bool) or not isinstance(max_buffered, int):
            raise TypeError(f"max_buffered must be an int, got {max_buffered!r}")
        if max_buffered < 1:
            raise ValueError(f"max_buffered must be >= 1, got {max_buffered!r}")
        self = object.__new__(cls)
        self._supervisor = supervisor
        self._feed = _Feed(max_buffered)
        self._count = 0
        if not supervisor._add_listener(self._feed, replay=replay):
            self._supervisor = None  # stopped already: nothing registered, nothing to forget
        return self

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SupervisorEvent:
        from concurrency_kit._core import aio

        feed = self._feed
        self._count += 1
        if self._count % _EVENTS_PER_YIELD == 0:
            # a step that finds an event returns without suspending: a consumer of a long
            # replay (or of a busy supervisor) still lets the other tasks run
            await aio.checkpoint()
        while True:
            waker = aio.make_waker()
            with feed.lock:
                if feed.closed:
                    raise StopAsyncIteration
                if feed.lost:
                    lost, feed.lost = feed.lost, 0
                    raise SupervisorEventsLost(
                        f"the consumer fell more than {feed.max_buffered} events behind: "
                        f"{lost} unread events were dropped, the oldest first",
                        lost,
                    )
                if feed.buffer:
                    return feed.buffer.popleft()
                if feed.done:
                    finished = True
                else:
                    finished = False
                    feed.wakers[waker] = None
            if finished:
                self._close()
                raise StopAsyncIteration
            try:
                await waker.wait(None)
            finally:
                waker.close()
                with feed.lock:
                    feed.wakers.pop(waker, None)

    def _close(self, *, blocking: bool = True) -> None:
        """Unsubscribe (idempotent)."""
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor._remove_listener(self._feed, blocking=blocking)

    async def aclose(self) -> None:
        """Stop iterating: unsubscribe, drop the events not taken, end every iteration."""
        self._close()
        self._feed.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # The garbage collector may run this in any thread, at any allocation, even one made
        # while that thread holds another stream's feed lock, which a supervisor thread that
        # holds _notify_lock may be waiting for: never wait for a lock here.
        try:
            self._close(blocking=False)
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

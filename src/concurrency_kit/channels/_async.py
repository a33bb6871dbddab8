"""The async face of both channels: ``asend``, ``arecv``, ``async for`` and ``aselect``.

Imported at the first async call (``_base.py``, ``_select.py``), not with the package: it
brings asyncio and anyio, which a program that never awaits a channel need not import.

Written once for both models, over the hooks ``select`` already uses (``_select_try``,
``_select_arm``, ``_select_disarm``) and two for senders (``_room_arm``, ``_room_disarm``),
with the event-loop side in :mod:`concurrency_kit._core.aio`::

    take now (synchronous) ── got one ── return
        └ nothing ── arm (a waker; a process channel's fds are watched by the loop)
                     ── take again ── got one ── disarm, return
                          └ nothing ── await the waker (or the deadline) ── disarm ── loop

The only await is the wait, and the take is synchronous, so a cancelled ``arecv`` has taken
nothing, and a cancelled ``asend`` has put nothing: an item is either in the channel or in the
caller's hands. ``disarm`` runs in a ``finally``; a wake-up that reached a task cancelled
before it could use it is handed on (``ThreadChannel._select_disarm``, ``aio.unwatch``).

Sending: a :class:`~concurrency_kit.ThreadChannel` wakes an async sender like a sleeping
one when room comes (on a rendezvous: when a receiver starts waiting). A buffered
:class:`~concurrency_kit.ProcessChannel` queues it in its monitor with the sleeping senders,
and a receive's wake-up reaches it through the monitor's bell (``_core/monitor.py``). On a
process rendezvous, a sender waits for a receiver on the pipe, which an event loop cannot
watch for that: an async send polls ``send_nowait`` with a bounded backoff
(:class:`~concurrency_kit._core.aio.Backoff`: at most 2 ms late).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import Any

from concurrency_kit._core import aio
from concurrency_kit._core.deadline import check_timeout, deadline_after, remaining
from concurrency_kit._core.monitor import SLICE_SECONDS
from concurrency_kit.channels._select import try_all
from concurrency_kit.errors import ChannelClosed, ChannelFull, ChannelTimeout

__all__ = ["AsyncItems", "receive", "send"]

_clock = time.perf_counter
_monotonic = time.monotonic
_sched_yield = os.sched_yield
_SPIN_SECONDS = 20e-6
"""How long a receive looks again (yielding to the loop between looks) before it arms and
sleeps: about what sleeping in the loop's poll and being woken costs (see process.py)."""

_HOLD_SECONDS = 4e-6
"""The first few microseconds of that, the receive looks without yielding to the loop: one
iteration of the loop costs a few microseconds itself, and a peer that is awake answers
sooner (issue 18: async ping-pong <= 1.5x the sync one)."""

_ITEMS_PER_YIELD = 64
"""``async for`` lets the event loop run at least once per this many items taken at once."""


def _try_one(channel: Any) -> tuple[Any, Any] | None:
    ready, item = channel._select_try()  # raises the channel's own ChannelClosed
    return (channel, item) if ready else None


def _try_all(order: tuple[Any, ...]) -> tuple[Any, Any] | None:
    return try_all(order, "aselect()")


async def receive(order: tuple[Any, ...], timeout: float | None, many: bool) -> tuple[Any, Any]:
    """Take an item from the first of ``order`` to have one: ``(channel, item)``."""
    deadline = deadline_after(check_timeout(timeout))
    look = _try_all if many else _try_one
    arg: Any = order if many else order[0]
    spin = True
    pause = aio.yielder()
    release_at: float | None = None
    while True:
        found = look(arg)
        if found is not None:
            return found
        left = remaining(deadline)
        if left != 0 and spin:
            # A busy peer is usually about to answer: look again a few times for up to
            # _SPIN_SECONDS, yielding to the event loop between looks (other tasks run; the
            # loop is not held), before arming and sleeping in the loop's poll.
            spin = False
            now = _clock()
            end = now + _HOLD_SECONDS
            while now < end:  # first without yielding to the loop (its iteration costs more)
                _sched_yield()
                found = look(arg)
                if found is not None:
                    return found
                now = _clock()
            end = now + _SPIN_SECONDS
            while True:
                _sched_yield()  # on a busy machine, the peer may need this CPU to answer
                await pause()
                found = look(arg)
                if found is not None:
                    return found
                if _clock() >= end:
                    break
            left = remaining(deadline)
        if left == 0:
            if many:
                raise ChannelTimeout("aselect timed out: no channel had an item")
            raise ChannelTimeout(f"recv timed out: channel {order[0].name!r} stayed empty")
        waker = aio.make_waker()
        armed = 0  # order[:armed] are armed (counts, not lists: a waiter's memory, issue 18)
        watched: tuple[int, ...] = ()
        try:
            for channel in order:
                fds = channel._select_arm(waker)
                armed += 1
                for fd in fds:
                    aio.watch(fd, waker)
                    watched += (fd,)
            found = look(arg)
            if found is not None:
                return found
            if any(channel.closed for channel in order):
                # a closed process channel may still get a send in flight, from a live
                # process or a dead one (found by the next look): wait in slices
                left = SLICE_SECONDS if left is None else min(left, SLICE_SECONDS)
            if not many:
                # an idle process channel gives back the pages of a burst (as recv does)
                release_at = order[0]._select_idle(release_at)
                if release_at is not None:
                    until = max(release_at - _monotonic(), 0.0)
                    left = until if left is None else min(left, until)
            await waker.wait(left)
        finally:
            waker.close()
            for fd in watched:
                aio.unwatch(fd, waker)
            for channel in order[:armed]:
                channel._select_disarm(waker)


async def send(channel: Any, item: Any, timeout: float | None) -> None:
    """Send ``item`` on ``channel``, waiting (awaiting) while it is full."""
    deadline = deadline_after(check_timeout(timeout))
    backoff: aio.Backoff | None = None
    try_send = channel._send_try
    while True:
        try:
            try_send(item)
            return
        except ChannelFull:
            pass
        left = remaining(deadline)
        if left == 0:
            if channel.capacity == 0:
                raise ChannelTimeout(
                    f"send timed out: no receiver took the item on {channel.name!r}"
                )
            raise ChannelTimeout(f"send timed out: channel {channel.name!r} stayed full")
        if not channel._room_by_waker:
            if backoff is None:
                backoff = aio.Backoff()
            await backoff.pause(left)
            continue
        waker = aio.make_waker()
        channel._room_arm(waker)
        try:
            try:
                try_send(item)
                return
            except ChannelFull:
                pass
            # in slices: a process channel discounts senders that died mid-send between them
            await waker.wait(SLICE_SECONDS if left is None else min(left, SLICE_SECONDS))
        finally:
            waker.close()
            channel._room_disarm(waker)


class AsyncItems(AsyncIterator[Any]):
    """``async for item in channel``: items as they come, until closed and drained."""

    __slots__ = ("_channel", "_count")

    def __init__(self, channel: Any) -> None:
        self._channel = channel
        self._count = 0

    def __aiter__(self) -> AsyncItems:
        return self

    async def __anext__(self) -> Any:
        self._count += 1
        if self._count % _ITEMS_PER_YIELD == 0:
            # an arecv that finds an item returns without suspending (as asyncio.Queue.get
            # does): a loop over a channel that never runs dry still lets others run
            await aio.checkpoint()
        channel = self._channel
        try:
            ready, item = channel._select_try()
            if ready:
                return item
            return (await receive((channel,), None, False))[1]
        except ChannelClosed:
            raise StopAsyncIteration from None

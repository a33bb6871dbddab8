"""select(): wait for the first of several channels, of either model, to have an item.

Each channel offers three hooks (``_select_try``, ``_select_arm``, ``_select_disarm``). A
thread channel is armed with a *waker* it calls like a sleeping receiver's wake-up; a process
channel returns its pipe's read end, which becomes readable when an item (or a doorbell)
arrives. ``select`` tries every channel, arms them all, tries again (so nothing that came
in between is missed), then sleeps on the waker and the pipes together::

    try all ── none ready ── arm all ── try all again ── sleep (waker lock, or poll)
       ^                                                      │
       └───────────────────── disarm all ─────────────────────┘
"""

from __future__ import annotations

import os
import random
import select as _select_module
from _thread import allocate_lock
from typing import Any

from concurrency_kit._core.deadline import check_timeout, deadline_after, remaining, wait_slice
from concurrency_kit._core.monitor import SLICE_SECONDS
from concurrency_kit.channels._base import ChannelBase
from concurrency_kit.errors import ChannelClosed, ChannelTimeout

__all__ = ["aselect", "select"]


class _Waker:
    """What a thread channel calls when an item arrives: releases a lock or writes a pipe."""

    __slots__ = ("_lock", "_pipe")

    def __init__(self, with_pipe: bool) -> None:
        self._lock = allocate_lock()
        self._lock.acquire()
        self._pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC) if with_pipe else None

    def wake(self) -> None:
        if self._pipe is not None:
            try:
                os.write(self._pipe[1], b"!")
            except BlockingIOError:  # already woken
                pass
        elif self._lock.locked():
            try:
                self._lock.release()
            except RuntimeError:  # two channels woke it at once
                pass

    def wait(self, fds: list[int], timeout: float | None) -> None:
        """Sleep one bounded slice at most (the caller looks again and loops)."""
        if self._pipe is None:
            self._lock.acquire(True, wait_slice(timeout))
            return
        poller = _select_module.poll()
        for fd in (*fds, self._pipe[0]):
            poller.register(fd, _select_module.POLLIN)
        poller.poll(_poll_ms(timeout))

    def close(self) -> None:
        if self._pipe is not None:
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None


def select(*channels: ChannelBase[Any], timeout: float | None = None) -> tuple[Any, Any]:
    """Wait for the first of ``channels`` to have an item, take it, return ``(channel, item)``.

    Channels may be :class:`~concurrency_kit.ThreadChannel` and
    :class:`~concurrency_kit.ProcessChannel` mixed. When several are ready one is picked at
    random, so no channel starves. Closed channels are skipped once drained.

    >>> from concurrency_kit import ThreadChannel, select
    >>> numbers, words = ThreadChannel(), ThreadChannel()
    >>> words.send("hello")
    >>> channel, item = select(numbers, words, timeout=1)
    >>> channel is words, item
    (True, 'hello')

    Raises:
        ValueError: no channels were given.
        TypeError: an argument is not a channel.
        ChannelClosed: every channel is closed and drained.
        ChannelTimeout: no item came within ``timeout`` seconds.
    """
    order = in_random_order(channels, "select()")
    deadline = deadline_after(check_timeout(timeout))
    while True:
        found = try_all(order)
        if found is not None:
            return found
        left = remaining(deadline)
        if left == 0:
            raise ChannelTimeout("select timed out: no channel had an item")
        process_side = [c._select_by_fd for c in order]
        waker = _Waker(with_pipe=any(process_side) and not all(process_side))
        armed: list[ChannelBase[Any]] = []
        try:
            fds: list[int] = []
            for channel in order:
                fds.extend(channel._select_arm(waker))
                armed.append(channel)
            found = try_all(order)
            if found is not None:
                return found
            if any(getattr(c, "closed", False) for c in order):
                # a closed process channel may be waiting for a send in flight from a process
                # that died: look again after a slice
                left = SLICE_SECONDS if left is None else min(left, SLICE_SECONDS)
            if fds and not waker._pipe:
                poller = _select_module.poll()
                for fd in fds:
                    poller.register(fd, _select_module.POLLIN)
                poller.poll(_poll_ms(left))
            else:
                waker.wait(fds, left)
        finally:
            for channel in armed:
                channel._select_disarm(waker)
            waker.close()


async def aselect(*channels: ChannelBase[Any], timeout: float | None = None) -> tuple[Any, Any]:
    """Await the first of ``channels`` to have an item, take it, return ``(channel, item)``.

    The awaitable :func:`~concurrency_kit.select`, for asyncio and trio: channels may be
    :class:`~concurrency_kit.ThreadChannel` and :class:`~concurrency_kit.ProcessChannel`
    mixed; when several are ready one is picked at random, so no channel starves; closed
    channels are skipped once drained. It waits in the event loop, with no thread: a process
    channel's pipe is watched by the loop, a thread channel wakes the loop. Cancelled, it has
    taken nothing (see the "Async programs" guide).

    Raises:
        ValueError: no channels were given.
        TypeError: an argument is not a channel.
        ChannelClosed: every channel is closed and drained.
        ChannelTimeout: no item came within ``timeout`` seconds.
    """
    from concurrency_kit.channels._async import receive  # asyncio and anyio, on first use

    return await receive(in_random_order(channels, "aselect()"), timeout, True)


def _poll_ms(seconds: float | None) -> int:
    """``poll``'s timeout in whole milliseconds (at least 1) for one bounded slice."""
    return max(1, int(wait_slice(seconds) * 1000 + 0.999))


def in_random_order(
    channels: tuple[ChannelBase[Any], ...], caller: str
) -> tuple[ChannelBase[Any], ...]:
    """``channels`` checked, then rotated to start at a random one (so no channel starves)."""
    if not channels:
        raise ValueError(f"{caller} needs at least one channel")
    for channel in channels:
        if not isinstance(channel, ChannelBase):
            raise TypeError(f"{caller} takes channels, got {type(channel).__name__}")
    start = random.randrange(len(channels))
    return channels[start:] + channels[:start]


def try_all(
    order: tuple[ChannelBase[Any], ...], caller: str = "select()"
) -> tuple[Any, Any] | None:
    """Take an item from the first ready channel; raise ChannelClosed if all are drained."""
    still_open = 0
    for channel in order:
        try:
            ready, item = channel._select_try()
        except ChannelClosed:
            continue
        still_open += 1
        if ready:
            return channel, item
    if not still_open:
        raise ChannelClosed(f"every channel given to {caller} is closed and drained")
    return None

"""What both channel classes share: argument checks, statistics, and the calls built on the rest.

Each model's class implements the primitive operations (``send``, ``send_nowait``, ``recv``,
``recv_nowait``, ``close``, ``statistics`` and the three ``_select_*`` hooks ``select`` uses);
:class:`ChannelBase` builds the batch forms, iteration and the context manager on top of them,
once for both.

Every ``timeout`` follows the library's one rule, :mod:`concurrency_kit._core.deadline`:
``None``, ``math.inf`` and values too large for any clock wait forever, ``0`` does not wait,
NaN and negatives are :class:`ValueError` and non-numbers :class:`TypeError` at the call; no
system call is ever handed more than :func:`~concurrency_kit._core.deadline.wait_slice`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any, ClassVar, Generic, TypeVar

import attrs

from concurrency_kit._core.deadline import check_timeout, deadline_after, remaining
from concurrency_kit.errors import ChannelClosed, ChannelEmpty, ChannelFull, ChannelTimeout

__all__ = [
    "DEFAULT_CAPACITY",
    "ChannelBase",
    "ChannelStatistics",
    "check_capacity",
    "check_max_items",
]

T = TypeVar("T")

DEFAULT_CAPACITY = 256
"""A channel's capacity when none is given: bounded, so a fast producer cannot exhaust memory."""


@attrs.frozen
class ChannelStatistics:
    """A snapshot of a channel's counters, the same for both models.

    Attributes:
        capacity: the most items the channel holds (0: rendezvous; ``None``: unbounded).
        queued: items sent and not yet received (rendezvous: offers waiting for a receiver).
        sent: items sent since the channel was made (a rendezvous send that times out or is
            cut short by ``close()`` takes its item back and is not counted).
        received: items received since the channel was made.
        closed: whether ``close()`` has been called.
    """

    capacity: int | None
    queued: int
    sent: int
    received: int
    closed: bool


def check_capacity(capacity: object) -> int | None:
    """Validate a ``capacity`` argument: ``None`` (unbounded) or an ``int`` >= 0."""
    if capacity is None:
        return None
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        raise TypeError(
            f"capacity must be an int >= 0 or None (unbounded), got {type(capacity).__name__}"
        )
    if capacity < 0:
        raise ValueError(f"capacity must be >= 0 (0 is a rendezvous channel), got {capacity}")
    return capacity


def check_max_items(max_items: object) -> int:
    """Validate ``recv_many``'s ``max_items``: an ``int`` >= 1."""
    if isinstance(max_items, bool) or not isinstance(max_items, int):
        raise TypeError(f"max_items must be an int >= 1, got {type(max_items).__name__}")
    if max_items < 1:
        raise ValueError(f"max_items must be >= 1, got {max_items}")
    return max_items


class ChannelBase(Generic[T]):
    """The calls written once for both models, over each model's primitive operations."""

    __slots__ = ()
    _select_by_fd: ClassVar[bool] = False  # True: _select_arm returns fds to poll
    _room_by_waker: ClassVar[bool] = False  # True: _room_arm wakes a sender waiting for room

    def send(self, item: T, timeout: float | None = None) -> None:
        raise NotImplementedError  # pragma: no cover - each model implements it

    def send_nowait(self, item: T) -> None:
        raise NotImplementedError  # pragma: no cover - each model implements it

    def recv(self, timeout: float | None = None) -> T:
        raise NotImplementedError  # pragma: no cover - each model implements it

    def recv_nowait(self) -> T:
        raise NotImplementedError  # pragma: no cover - each model implements it

    def close(self) -> None:
        raise NotImplementedError  # pragma: no cover - each model implements it

    def send_many(self, items: Iterable[T], timeout: float | None = None) -> None:
        """Send ``items`` in order, waiting for room as needed.

        Raises:
            ChannelTimeout: ``timeout`` seconds passed first; its ``sent`` attribute says how
                many of the items were sent (the rest were not).
            ChannelClosed: the channel was closed (items sent before it stay sent).
        """
        deadline = deadline_after(check_timeout(timeout))
        for sent, item in enumerate(items):
            try:
                self.send(item, remaining(deadline))
            except ChannelTimeout:
                raise ChannelTimeout(
                    f"send_many timed out after sending {sent} item(s)", sent
                ) from None

    def recv_many(self, max_items: int, timeout: float | None = None) -> list[T]:
        """Wait for at least one item, then take up to ``max_items`` that are there already.

        Raises:
            ChannelTimeout: no item came within ``timeout`` seconds.
            ChannelClosed: the channel is closed and every item has been received.
        """
        check_max_items(max_items)
        timeout = check_timeout(timeout)
        items = [self.recv(timeout)]
        try:
            while len(items) < max_items:
                items.append(self.recv_nowait())
        except (ChannelEmpty, ChannelClosed):
            pass
        return items

    def __iter__(self) -> Iterator[T]:
        """Yield items as they come, until the channel is closed and drained."""
        while True:
            try:
                yield self.recv()
            except ChannelClosed:
                return

    # the async face (channels/_async.py) ---------------------------------------------------

    async def asend(self, item: T, timeout: float | None = None) -> None:
        """Send ``item``, awaiting room while the channel is full (at most ``timeout`` s).

        Runs on asyncio or trio and waits without a thread. Cancelled, it has put nothing: the
        item is sent only by the synchronous step that returns. On a rendezvous
        (``capacity=0``) it returns once a receiver that was waiting has been handed the item
        (if that receiver is cancelled in turn, the item waits for the next receiver). A
        :class:`~concurrency_kit.ProcessChannel` that is full is polled (every 2 ms at most).

        Raises:
            ChannelClosed: the channel is closed (or was closed while this call waited).
            ChannelTimeout: ``timeout`` seconds passed first (the item was not sent).
        """
        if timeout is not None:
            timeout = check_timeout(timeout)  # the sync call's errors, before anything is sent
        try:
            self._send_try(item)  # the common case: room now, no coroutine of _async's
            return
        except ChannelFull:
            pass
        from concurrency_kit.channels._async import send  # asyncio and anyio, on first use

        await send(self, item, timeout)

    async def arecv(self, timeout: float | None = None) -> T:
        """Take the next item, awaiting one at most ``timeout`` seconds.

        Runs on asyncio or trio and waits without a thread (a process channel's pipe is
        watched by the event loop). Cancelled, it has taken nothing. Like
        :meth:`asyncio.Queue.get`, a call that finds an item returns it without suspending.

        Raises:
            ChannelClosed: the channel is closed and every item has been received.
            ChannelTimeout: no item came within ``timeout`` seconds.
        """
        if timeout is not None:
            timeout = check_timeout(timeout)  # the sync call's errors, before anything is taken
        ready, item = self._select_try()  # the common case: an item now
        if ready:
            return item  # type: ignore[no-any-return]
        from concurrency_kit.channels._async import receive  # asyncio and anyio, on first use

        return (await receive((self,), timeout, False))[1]  # type: ignore[no-any-return]

    def __aiter__(self) -> AsyncIterator[T]:
        """``async for item in channel``: items as they come, until closed and drained."""
        from concurrency_kit.channels._async import AsyncItems

        return AsyncItems(self)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # select() hooks ------------------------------------------------------------------------

    def _select_try(self) -> tuple[bool, Any]:
        """Take an item if one is there: ``(True, item)``, else ``(False, None)``.

        Raises ChannelClosed once the channel is closed and drained.
        """
        try:
            return True, self.recv_nowait()
        except ChannelEmpty:
            return False, None

    def _select_arm(self, waker: Any) -> tuple[int, ...]:
        """Ask to be woken when an item may be there: by ``waker.wake()``, or return fds
        that become readable (the caller polls them)."""
        raise NotImplementedError  # pragma: no cover - each model implements it

    def _select_disarm(self, waker: Any) -> None:
        """Undo :meth:`_select_arm`."""
        raise NotImplementedError  # pragma: no cover - each model implements it

    def _select_idle(self, release_at: float | None) -> float | None:
        """Housekeeping for a receiver about to sleep (a process channel gives back the pages
        of a burst): returns when to call again (``time.monotonic``), or ``None``."""
        return None

    # asend() hooks ---------------------------------------------------------------------------

    def _send_try(self, item: T) -> None:
        """Send ``item`` now or raise ChannelFull (or ChannelClosed): what ``asend`` tries."""
        self.send_nowait(item)

    def _room_arm(self, waker: Any) -> None:  # only where _room_by_waker
        """Ask to be woken, by ``waker.wake()``, when a send may find room."""
        raise NotImplementedError  # pragma: no cover - only if _room_by_waker

    def _room_disarm(self, waker: Any) -> None:
        """Undo :meth:`_room_arm`."""
        raise NotImplementedError  # pragma: no cover - only if _room_by_waker

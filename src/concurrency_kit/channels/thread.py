"""ThreadChannel: the thread model's channel — a deque, one lock, and queues of sleeping callers.

Items are passed by reference: nothing is copied or pickled. The design is
:class:`threading.Condition`'s, cut to what a channel needs: each sleeping caller waits on a
lock of its own, queued FIFO per direction, and a caller that changes the state wakes exactly
one sleeper of the other direction — a send wakes one receiver, a receive wakes one sender —
so there is no thundering herd and no Condition object on the fast path (which is why it
beats :class:`queue.Queue`)::

    send ─ lock ─ room? ─ append ─ wake one receiver ─ unlock
                   └ no: queue a sleeper lock, unlock, sleep, lock, look again
    recv ─ lock ─ item? ─ popleft ─ wake one sender ─ unlock
                   └ no: the same, on the receivers' queue

A rendezvous channel (``capacity=0``) holds *offers*, in a deque of their own: a send
appends its item with a lock of its own and sleeps until a receiver has taken it; if its
timeout comes first it takes the offer back, so a timed-out send never delivers its item later.

The fast paths (a send with room, a receive with an item) cost one lock hold and a few
attribute loads each (issue 17: >= 2x :class:`queue.Queue` between two threads). So they
take the lock with ``acquire``/``release`` (a ``with`` block costs about 0.1 us more), a
send tests one number, ``_room``, for "open, buffered and not full", and only the receive
side counts (``sent`` is ``received`` plus what is queued). Everything they read or change
is read and changed under the lock: nothing relies on the GIL.
"""

from __future__ import annotations

import sys
from _thread import allocate_lock
from collections import deque
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from concurrency_kit._core.deadline import check_timeout, deadline_after, remaining, wait_slice
from concurrency_kit.channels._base import (
    DEFAULT_CAPACITY,
    ChannelBase,
    ChannelStatistics,
    check_capacity,
)
from concurrency_kit.errors import ChannelClosed, ChannelEmpty, ChannelFull, ChannelTimeout

__all__ = ["ThreadChannel"]

T = TypeVar("T")


class _Offer:
    """A rendezvous send: the item, and the lock its sender sleeps on until it is taken."""

    __slots__ = ("committed", "done", "item", "taken")

    def __init__(self, item: Any, committed: bool) -> None:
        self.item = item
        self.committed = committed  # send_nowait: already sent, never taken back
        self.taken = False
        self.done = allocate_lock()
        self.done.acquire()


class ThreadChannel(ChannelBase[T]):
    """A channel between threads of one process: Go-like, bounded by default.

    Args:
        capacity: the most items held at once (a ``send`` waits while it is full); ``0`` for
            a rendezvous (a ``send`` waits until a receiver has taken its item); ``None``
            for unbounded.
        name: a label for ``repr`` and logs.

    Multi-producer and multi-consumer; items from one producer arrive in the order sent;
    none is ever lost or duplicated. Items are passed by reference (for another process, use
    :class:`~concurrency_kit.ProcessChannel`).

    >>> from concurrency_kit import ThreadChannel
    >>> with ThreadChannel(2) as channel:
    ...     channel.send("a")
    ...     channel.send_nowait("b")
    ...     channel.recv(), channel.recv_nowait()
    ('a', 'b')
    """

    __slots__ = (
        "__weakref__",
        "_capacity",
        "_closed",
        "_items",
        "_lock",
        "_name",
        "_offers",
        "_received",
        "_receivers",
        "_room",
        "_senders",
    )

    def __init__(self, capacity: int | None = DEFAULT_CAPACITY, *, name: str | None = None):
        self._capacity = check_capacity(capacity)
        self._name = name if name is not None else f"ThreadChannel-{id(self):x}"
        self._lock = allocate_lock()
        self._items: deque[Any] = deque()  # buffered items (a rendezvous holds none)
        self._offers: deque[_Offer] = deque()  # a rendezvous's offers, oldest first
        # A send appends at once while len(_items) < _room: the capacity (unbounded: the
        # largest length a deque can have), 0 on a rendezvous (every send makes an offer),
        # -1 once closed. Changed only under the lock, like everything else.
        self._room = sys.maxsize if self._capacity is None else self._capacity
        self._receivers: deque[Callable[[], object]] = deque()  # wake-ups of sleeping receivers
        self._senders: deque[Callable[[], object]] = deque()  # wake-ups of sleeping senders
        self._closed = False
        self._received = 0

    @property
    def name(self) -> str:
        """The channel's label, for ``repr`` and logs."""
        return self._name

    @property
    def capacity(self) -> int | None:
        """The most items the channel holds at once (``0`` is a rendezvous, ``None`` unbounded)."""
        return self._capacity

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called (items may still be waiting to be received)."""
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        queued = len(self._items) + len(self._offers)
        return f"<ThreadChannel {self.name!r} {state} queued={queued}>"

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a ThreadChannel connects threads of one process and cannot be pickled; "
            "use a ProcessChannel to talk to another process"
        )

    # sending -------------------------------------------------------------------------------

    def send(self, item: T, timeout: float | None = None) -> None:
        """Send ``item``, waiting while the channel is full (at most ``timeout`` seconds).

        Raises:
            ChannelClosed: the channel is closed (or was closed while this call waited).
            ChannelTimeout: ``timeout`` seconds passed without room (the item was not sent).
        """
        if timeout is not None:
            timeout = check_timeout(timeout)
        lock = self._lock
        lock.acquire()
        try:
            items = self._items
            if len(items) < self._room:
                items.append(item)
                if self._receivers:
                    self._receivers.popleft()()
                return
            if self._closed:
                raise ChannelClosed(f"send on closed channel {self.name!r}")
            deadline = deadline_after(timeout)
            if self._capacity == 0:
                self._send_offer(item, deadline)
            else:
                self._wait_for_room(item, deadline)
        finally:
            lock.release()

    def send_nowait(self, item: T) -> None:
        """Send ``item`` if that needs no waiting.

        Raises:
            ChannelFull: the channel is full (rendezvous: no receiver is waiting right now).
            ChannelClosed: the channel is closed.
        """
        lock = self._lock
        lock.acquire()
        try:
            items = self._items
            if len(items) < self._room:
                items.append(item)
                if self._receivers:
                    self._receivers.popleft()()
                return
            if self._closed:
                raise ChannelClosed(f"send on closed channel {self.name!r}")
            if self._capacity != 0:
                raise ChannelFull(f"channel {self.name!r} is full ({self._capacity} items)")
            if len(self._receivers) <= len(self._offers):
                raise ChannelFull(f"no receiver is waiting on rendezvous {self.name!r}")
            self._offers.append(_Offer(item, committed=True))
            self._receivers.popleft()()  # there is one: more receivers wait than offers
        finally:
            lock.release()

    def _wait_for_room(self, item: Any, deadline: float | None) -> None:
        """Called with the lock held, the channel full: sleep until there is room."""
        assert self._capacity is not None
        while True:
            woken = self._sleep(self._senders, deadline)
            if self._closed:
                raise ChannelClosed(f"channel {self.name!r} was closed while send waited")
            if len(self._items) < self._capacity:
                self._items.append(item)
                if self._receivers:
                    self._receivers.popleft()()
                return
            if not woken and deadline is not None and remaining(deadline) == 0:
                raise ChannelTimeout(f"send timed out: channel {self.name!r} stayed full")

    def _send_offer(self, item: Any, deadline: float | None) -> None:
        """Called with the lock held, on a rendezvous: offer ``item``, sleep until taken."""
        offer = _Offer(item, committed=False)
        self._offers.append(offer)
        if self._receivers:
            self._receivers.popleft()()
        lock = self._lock
        lock.release()
        try:
            while not offer.done.acquire(True, wait_slice(remaining(deadline))):
                if remaining(deadline) == 0:
                    break
        finally:
            lock.acquire()
            if not offer.taken:
                try:
                    self._offers.remove(offer)
                except ValueError:  # close() already took it back
                    pass
        if offer.taken:
            return
        if self._closed:
            raise ChannelClosed(f"channel {self.name!r} was closed while send waited")
        raise ChannelTimeout(f"send timed out: no receiver took the item on {self.name!r}")

    # receiving -----------------------------------------------------------------------------

    def recv(self, timeout: float | None = None) -> T:
        """Take the next item, waiting for one at most ``timeout`` seconds.

        A timeout or cancellation *around* the call does not stop it: a thread cannot be
        interrupted, so an ``asyncio.to_thread(channel.recv)`` abandoned by
        :func:`asyncio.wait_for` or ``task.cancel()`` still takes the next item, for nobody.
        Pass ``timeout`` to the call itself, or poll :meth:`recv_nowait` from the event loop
        (docs/channels.rst, "Receiving from asyncio").

        Raises:
            ChannelClosed: the channel is closed and every item has been received.
            ChannelTimeout: no item came within ``timeout`` seconds.
        """
        if timeout is not None:
            timeout = check_timeout(timeout)
        lock = self._lock
        lock.acquire()
        try:
            items = self._items
            if items:
                item = items.popleft()
                self._received += 1
                if self._senders:
                    self._senders.popleft()()
                return item  # type: ignore[no-any-return]
            if self._offers:
                return self._take_offer()  # type: ignore[no-any-return]
            if self._closed:
                raise ChannelClosed(f"channel {self.name!r} is closed and drained")
            return self._wait_for_item(deadline_after(timeout))  # type: ignore[no-any-return]
        finally:
            lock.release()

    def recv_nowait(self) -> T:
        """Take the next item if there is one.

        Raises:
            ChannelEmpty: there is none right now.
            ChannelClosed: the channel is closed and every item has been received.
        """
        lock = self._lock
        lock.acquire()
        try:
            items = self._items
            if items:
                item = items.popleft()
                self._received += 1
                if self._senders:
                    self._senders.popleft()()
                return item  # type: ignore[no-any-return]
            if self._offers:
                return self._take_offer()  # type: ignore[no-any-return]
            if self._closed:
                raise ChannelClosed(f"channel {self.name!r} is closed and drained")
            raise ChannelEmpty(f"channel {self.name!r} is empty")
        finally:
            lock.release()

    def _wait_for_item(self, deadline: float | None) -> Any:
        """Called with the lock held, the channel empty and open: sleep until an item comes."""
        while True:
            self._sleep(self._receivers, deadline)
            if self._items:
                item = self._items.popleft()
                self._received += 1
                if self._senders:
                    self._senders.popleft()()
                return item
            if self._offers:
                return self._take_offer()
            if self._closed:
                raise ChannelClosed(f"channel {self.name!r} is closed and drained")
            if deadline is not None and remaining(deadline) == 0:
                raise ChannelTimeout(f"recv timed out: channel {self.name!r} stayed empty")

    def _take_offer(self) -> Any:
        """Called with the lock held on a rendezvous with an offer there: take the oldest."""
        offer = self._offers.popleft()
        self._received += 1
        offer.taken = True
        offer.done.release()
        return offer.item

    def _sleep(self, sleepers: deque[Callable[[], object]], deadline: float | None) -> bool:
        """Called with the lock held: join ``sleepers``, sleep, retake the lock.

        Returns whether this caller was woken (rather than timing out). A caller that was
        woken but finds nothing to do does not swallow the wake-up: the next caller that
        changes the state wakes the next sleeper.
        """
        waiter = allocate_lock()
        waiter.acquire()
        wake = waiter.release
        sleepers.append(wake)
        if self._capacity == 0 and sleepers is self._receivers and self._senders:
            self._senders.popleft()()  # an async rendezvous send waits for a receiver
        lock = self._lock
        lock.release()
        try:
            # One bounded slice; a caller that was not woken looks again and sleeps again.
            woken = waiter.acquire(True, wait_slice(remaining(deadline)))
        finally:
            lock.acquire()
        if not woken:
            try:
                sleepers.remove(wake)
            except ValueError:  # woken between the timeout and retaking the lock
                woken = True
        return woken

    # closing, statistics, select -----------------------------------------------------------

    def close(self) -> None:
        """Close the channel (idempotent): sends fail from now on; receivers drain what is left.

        Sends waiting for room, and rendezvous sends not yet taken, fail with
        :class:`~concurrency_kit.ChannelClosed` (their items were not sent).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._room = -1  # no send takes the fast path again
            withdrawn = [offer for offer in self._offers if not offer.committed]
            for offer in withdrawn:
                self._offers.remove(offer)
                offer.done.release()  # its sender sees it untaken: not sent
            while self._senders:
                self._senders.popleft()()
            while self._receivers:
                self._receivers.popleft()()

    def statistics(self) -> ChannelStatistics:
        """The channel's counters now (see :class:`~concurrency_kit.ChannelStatistics`)."""
        with self._lock:
            queued = len(self._items) + len(self._offers)
            return ChannelStatistics(
                capacity=self._capacity,
                queued=queued,
                sent=self._received + queued,
                received=self._received,
                closed=self._closed,
            )

    def _select_arm(self, waker: Any) -> tuple[int, ...]:
        with self._lock:
            self._receivers.append(waker.wake)
            if self._capacity == 0 and self._senders:
                self._senders.popleft()()  # an async rendezvous send waits for a receiver
        return ()

    def _select_disarm(self, waker: Any) -> None:
        with self._lock:
            try:
                self._receivers.remove(waker.wake)
            except ValueError:
                # This channel woke the selector, which may take its item from another
                # channel: hand the wake-up on so no sleeping receiver misses this item.
                if (self._items or self._offers) and self._receivers:
                    self._receivers.popleft()()

    # asend() -------------------------------------------------------------------------------

    _room_by_waker = True

    def _room_arm(self, waker: Any) -> None:
        """Queue ``waker`` with the sleeping senders: a receive (on a rendezvous: a receiver
        that starts waiting) or ``close()`` wakes it."""
        with self._lock:
            self._senders.append(waker.wake)

    def _room_disarm(self, waker: Any) -> None:
        with self._lock:
            try:
                self._senders.remove(waker.wake)
            except ValueError:
                # Woken, and maybe cancelled before it could send: hand the wake-up on to the
                # next sender if the room is still there.
                if self._capacity == 0:
                    room = len(self._receivers) > len(self._offers)
                else:
                    room = len(self._items) < self._room
                if room and self._senders:
                    self._senders.popleft()()

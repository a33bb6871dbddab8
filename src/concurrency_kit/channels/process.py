"""ProcessChannel: the process model's channel — a packet-mode pipe, and a shared-memory store.

Two paths, chosen per item by the sender::

    send(item) ── pickle (protocol 5) ──┬─ small (<= PIPE_BUF), no buffers, store empty
                                        │     └─ one write() of one packet to the pipe ─────┐
                                        └─ large, out-of-band buffers, rendezvous, pipe full │
                                              └─ robust mutex ─ copy into the store ─ unlock │
                                                                                             v
    recv() ── read() one packet ── got one? ── unpickle                 (pipe first, then store)
                  └ pipe empty ── store not empty? ── mutex ─ copy out of the store ─ unlock

*The pipe* is opened in packet mode (``O_DIRECT``): every write of at most ``PIPE_BUF``
bytes is one atomic packet and every read returns exactly one packet, so any number of
processes can write and read it with no lock at all, and a process killed mid-``write`` never
leaves half a packet. It holds 256 packets (1 MiB). Other processes open the same pipe
through ``/proc/<creator>/fd``; the inode is checked, so a stale handle can never open an
unrelated file.

*The store* is a byte ring in a shared-memory segment (sparse: pages are used only when
written, and the ring restarts at offset 0 whenever it empties), guarded by the robust mutex
of a :class:`~concurrency_kit._core.monitor.ProcessMonitor`. An item is copied in and out
under the mutex and published by advancing the head last, so a producer killed mid-copy
leaves nothing visible, and a consumer killed mid-copy leaves the item for the next one.
The common entry (a pickle without out-of-band buffers, or a large ``bytes``) is put and
taken by one compiled call each (``_native.ByteRing``); the rest by ``_ring.py``.
``send_many`` stores a run of small items as one *batch entry*, one pickle of their list,
which receivers still take one item at a time or many at once.

*Waiting*: a receiver that finds nothing looks again a few times (``poll`` with no wait, and
a yield), then sleeps in ``poll`` on the pipe and on a second pipe, the *bell*, which holds a
byte exactly while the store holds items and from :meth:`ProcessChannel.close` on: whatever
arrives, by either path, wakes it. Senders that wait for room sleep in the monitor.

*Order*: once the store holds an item, every sender uses the store until it empties, and a
receiver takes a store entry only when no older packet of its producer can wait in the pipe:
the entry was put before the receiver's last look found the pipe empty, or the receiver looks
again under the mutex (``_store_take``); so items from one producer are received in the order
sent, across both paths, with one look at the pipe per backlog rather than per item.
*Rendezvous*: the sender's offer is a store entry; it looks a few times for the receiver's
acknowledgement, with the mutex released, before it sleeps in the monitor.

*Counting*: ``sent`` and ``received`` are atomic counters in shared memory (``_core.atomics``),
so the capacity is exact; a sender reserves room before it writes, a receiver counts an item just
after taking it. Each thread also keeps, in a slot of its own (pid and thread id), a *mark*:
what it has counted in ``sent`` and not yet delivered. The mark goes up just before the count
and down just after the packet is written, or in the same mutex hold that publishes a store
entry; a send asleep waiting for room holds neither. So after :meth:`ProcessChannel.close`
receivers know from the marks when the last send has landed, and a sender killed anywhere is
found dead and discounted by exactly its mark, once (issue #15: the mark used to cover the
whole send, and every producer killed while waiting for room let one more item in). Only a
kill in the few instructions between a ``write`` and the mark's update can leave the count
off, and then by one item of extra room, never toward a channel that stays full.

*Trust*: the store and the state words are shared memory that any process of this user can
write, so every offset, length and count read from them is checked before it is used (a store
entry carries its exact payload length and a sequence number); a value the channel could not
have written raises :class:`~concurrency_kit.SharedMemoryCorruptError` (a
:class:`RuntimeError`) instead of reading past an entry or returning stale bytes.

The parts, one private module each: ``_pipe.py`` (making, opening and checking the pipes),
``_items.py`` (an item to bytes and back), ``_ring.py`` (the store: its entry layout, copying
in and out), ``_slots.py`` (the per-thread slots: marks, sleepers, rendezvous
acknowledgements), ``_layout.py`` (the state words, one ctypes structure); this module
composes them into the channel's sending, receiving, waiting and counting.
"""

from __future__ import annotations

import os
import pickle
import select as _select_module
import time
import weakref
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import islice
from threading import get_ident
from typing import Any, TypeVar

from concurrency_kit._core import _native, atomics, shm
from concurrency_kit._core.atomics import AtomicWord
from concurrency_kit._core.deadline import check_timeout, deadline_after, remaining, wait_slice
from concurrency_kit._core.monitor import SLICE_SECONDS, ProcessMonitor
from concurrency_kit.channels import _pipe
from concurrency_kit.channels._base import (
    DEFAULT_CAPACITY,
    ChannelBase,
    ChannelStatistics,
    check_capacity,
    check_max_items,
)
from concurrency_kit.channels._items import (
    BATCH,
    PICKLED,
    PLAIN,
    RAW_BYTES,
    SIZED,
    Failed,
    decode,
    encode,
)
from concurrency_kit.channels._layout import (
    CAPACITY,
    CLOSED,
    ENTRIES,
    KIND,
    PIPE_PACKETS,
    PUT_SEQ,
    Q_ACK,
    Q_ROOM,
    Q_STORE,
    RECEIVED,
    SENT,
    SPACE_WAITERS,
    SPILLED,
    STORE_SIZE,
    TAKE_SEQ,
    ChannelState,
    state_address,
    state_words,
)
from concurrency_kit.channels._pipe import PACKET
from concurrency_kit.channels._ring import (
    ENTRY,
    IDLE_RELEASE,
    OFFER,
    RETRACTED,
    Ring,
    batch_payload,
    corrupt,
)
from concurrency_kit.channels._slots import MAX_MARK, SlotTable
from concurrency_kit.errors import (
    ChannelClosed,
    ChannelEmpty,
    ChannelFull,
    ChannelTimeout,
    SerializationError,
    SharedMemoryCorruptError,
)

__all__ = ["DEFAULT_SHARED_MEMORY_SIZE", "ProcessChannel"]

T = TypeVar("T")

DEFAULT_SHARED_MEMORY_SIZE = 256 * 1024 * 1024
"""Bytes of the store by default: the largest item, and the most data held beyond the pipe."""

_MIN_STORE = 64 * 1024  # the smallest shared_memory_size
_NOTHING: Any = object()
_SPIN_SECONDS = 20e-6
"""How long a wait looks again and again (with a yield between) before it sleeps: about what
falling asleep and being woken costs on a Linux VM, so a peer that answers within it is
seen at once, and a slow one costs at most this much CPU per wait (``process_wait_cpu``)."""
_RUN = MAX_MARK  # send_many reserves and writes small items this many at a time
_BATCH_BYTES = 1 << 20  # the largest batch entry (see _setup)
_ENTRY_SIZE = ENTRY.size
_loads = pickle.loads
_clock = time.perf_counter
_read_nowait = _native.read_nowait  # a packet, or None if the pipe is empty (no exception)
_dumps_plain = pickle.dumps


def _spin() -> Iterator[None]:
    """Give the CPU away once, then let the caller look, until :data:`_SPIN_SECONDS` pass."""
    end = _clock() + _SPIN_SECONDS
    while True:
        os.sched_yield()
        yield
        if _clock() >= end:
            return


def _drop(fds: tuple[int, ...], store: shm.Segment, monitor: ProcessMonitor) -> None:
    """Finalizer: close this handle's pipe ends; the creator also removes the segments."""
    _pipe.close_ends(fds)
    for segment in (store, monitor.segment):
        segment.unlink()
        segment.close()


class ProcessChannel(ChannelBase[T]):
    """A channel between processes: Go-like, bounded by default, picklable.

    Args:
        capacity: the most items held at once (a ``send`` waits while it is full); ``0`` for
            a rendezvous (a ``send`` waits until a receiver has taken its item); ``None``
            for unbounded (bounded only by ``shared_memory_size``).
        name: a label for ``repr`` and logs.
        shared_memory_size: process-only: bytes of the shared-memory store that carries large
            items and whatever the pipe cannot hold; the largest item that can be sent.
            Pages are only used as needed.

    Pass it to :class:`~concurrency_kit.ProcessPool` tasks, supervised children or any
    :mod:`multiprocessing` process, with any start method. Items are pickled (protocol 5,
    cloudpickle as a fallback); bytes and out-of-band buffers (NumPy arrays) are copied once
    into shared memory and once out. See the module docstring for the design.
    """

    _select_by_fd = True

    def __init__(
        self,
        capacity: int | None = DEFAULT_CAPACITY,
        *,
        name: str | None = None,
        shared_memory_size: int = DEFAULT_SHARED_MEMORY_SIZE,
    ) -> None:
        capacity = check_capacity(capacity)
        if isinstance(shared_memory_size, bool) or not isinstance(shared_memory_size, int):
            raise TypeError("shared_memory_size must be an int number of bytes")
        if shared_memory_size < _MIN_STORE:
            raise ValueError(f"shared_memory_size must be >= 65536, got {shared_memory_size}")
        monitor = ProcessMonitor.create(KIND, ChannelState)
        try:
            store = shm.create(shared_memory_size)
            try:
                fds, packets, origin = _pipe.create_pipes()
            except BaseException:
                store.unlink()
                raise
        except BaseException:
            monitor.segment.unlink()
            raise
        state = monitor.state
        state.capacity = -1 if capacity is None else capacity
        state.store_size = shared_memory_size
        state.pipe_packets = packets
        self._setup(monitor, store, fds, origin, name)

    def _setup(
        self,
        monitor: ProcessMonitor,
        store: shm.Segment,
        fds: tuple[int, ...],
        origin: _pipe.Origin,
        name: str | None,
    ) -> None:
        self._m = monitor
        self._store = store
        self._rfd, self._wfd, self._bell_r, self._bell_w = fds
        self._origin = origin
        label = f"{type(self).__name__}-{monitor.segment.name[3:15]}"
        self._name = name if name is not None else label
        self._w = w = state_words(monitor)  # plain reads and writes; it keeps the mapping
        # The atomic counters: each word holds the mapping (monitor.state) while it exists,
        # so no call can run on unmapped memory, whatever another thread drops meanwhile.
        self._sent, self._received, self._spilled_count, self._space_waiters = (
            AtomicWord(monitor.state, state_address(monitor, word), 8)
            for word in (SENT, RECEIVED, SPILLED, SPACE_WAITERS)
        )
        self._capacity_value = int(w[CAPACITY])
        self._room_tickets: dict[Any, Any] = {}  # an awaiting sender's waker -> its ticket
        # A send_many run whose pickle is larger goes item by item (large items take the
        # store one by one anyway, and a batch entry must leave room for others).
        self._batch_bytes = min(int(w[STORE_SIZE]) // 4, _BATCH_BYTES)
        self._ring = Ring(
            memoryview(store.buffer).cast("B"),
            store.address,
            w,
            state_address(monitor, 0),
            int(w[STORE_SIZE]),
            self._name,
        )
        self._slots = SlotTable(w, monitor, self._sent, self._name)
        self._marks = self._slots.marks  # thread ident -> its in-flight mark (the fast path)
        self._backlog: deque[Any] | None = None  # see _decode_all
        self._batch: tuple[int, list[Any]] | None = None  # see _ring.Ring.take_from_batch
        self._looked = 0  # put_seq before this handle's last look at an empty pipe (_store_take)
        self._finalizer = weakref.finalize(self, _drop, fds, store, monitor)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        if self._finalizer.alive is False:
            kind = type(self).__name__
            raise ValueError(f"cannot pickle {kind} {self.name!r}: its handle was released")
        segments = (self._m.segment.name, self._store.name)
        return _attach, (*segments, self._origin, self.name, type(self))

    @property
    def name(self) -> str:
        """The channel's label (the same in every process's handle)."""
        return self._name

    @property
    def capacity(self) -> int | None:
        """The most items the channel holds at once (``0`` is a rendezvous, ``None`` unbounded)."""
        return None if self._capacity_value < 0 else self._capacity_value

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called, in any process."""
        return bool(self._w[CLOSED])

    def __repr__(self) -> str:
        state = "closed" if self._w[CLOSED] else "open"
        queued = self._w[SENT] - self._w[RECEIVED]
        return f"<{type(self).__name__} {self.name!r} {state} queued={max(queued, 0)}>"

    # counting --------------------------------------------------------------------------

    def _asleep(self, delta: int) -> None:
        """Count this thread as asleep in a receive (rendezvous ``send_nowait`` looks)."""
        self._w[self._slots.asleep_word()] += delta
        # A full fence: the count is seen before the next look (the Dekker shape: a sender
        # writes its mark, then reads ``closed``; a receiver writes ``asleep``, then reads the
        # pipe).
        atomics.fence()

    def _spilled(self, delta: int) -> None:
        """Under the mutex: change the store's item count, keeping the bell pipe readable
        exactly while the store holds items (or the channel is closed)."""
        before = self._spilled_count.add(delta)
        after = before + delta
        if before == 0 and after > 0:
            os.write(self._bell_w, b"s")
        elif before > 0 and after == 0:
            try:
                os.read(self._bell_r, 1)
            except BlockingIOError:  # pragma: no cover - a process died between the two
                pass

    # sending -----------------------------------------------------------------------------

    def send(self, item: T, timeout: float | None = None) -> None:
        """Send ``item``, waiting while the channel is full (at most ``timeout`` seconds).

        Raises:
            ChannelClosed: the channel is closed (or was closed while this call waited).
            ChannelTimeout: ``timeout`` seconds passed first (the item was not sent).
            SerializationError: ``item`` cannot be pickled (the channel is unaffected).
            ValueError: ``item`` is larger than ``shared_memory_size``.
        """
        timeout = check_timeout(timeout)
        data = None
        kind: Any = type(item)
        capacity = self._capacity_value
        if kind in PLAIN and capacity and (kind not in SIZED or len(item) <= PACKET):  # type: ignore[arg-type]
            # The fast path: one packet straight into the pipe, room permitting.
            data = _dumps_plain(item, 5)
            w = self._w
            sent = self._sent
            at = self._marks.get(get_ident())
            if at is None:
                at = self._slots.mark()
            before = w[at]
            w[at] += 1  # in flight; the reservation below is a full fence after it
            try:
                queued = sent.add(1) - w[RECEIVED]
                if (capacity < 0 or queued < capacity) and len(data) <= PACKET and not w[CLOSED]:
                    if not w[SPILLED]:
                        try:
                            os.write(self._wfd, data)
                            w[at] -= 1  # landed
                            return
                        except BlockingIOError:
                            pass  # the pipe is full: the general path decides
                    else:
                        # The store holds items, so this one goes there too (order): the
                        # reservation stands, and the mutex hold that publishes it clears
                        # the mark.
                        self._store_put(PICKLED, data, [], deadline_after(timeout), True, at)
                        return
            except BaseException:
                if w[at] > before:  # it never landed: the reservation is given back
                    self._give_back(at, 1)
                raise
            self._give_back(at, 1)
        self._send(item, deadline_after(timeout), wait=True, data=data)

    def send_many(self, items: Iterable[T], timeout: float | None = None) -> None:
        """Send ``items`` in order, waiting for room as needed.

        Plain items (``int``, ``float``, ``str``, ``bytes``, ``bool``, ``None``) go in runs
        of up to 256, each one reservation, one pickle of the run's list and one store entry
        (a run whose pickle passes 1 MiB, or a quarter of the store, goes item by item);
        receivers still take them one at a time or many at once.

        Raises:
            ChannelTimeout: ``timeout`` seconds passed first; its ``sent`` attribute says how
                many of the items were sent (the rest were not).
            ChannelClosed: the channel was closed (items sent before it stay sent).
        """
        deadline = deadline_after(check_timeout(timeout))
        if type(items) is list and len(items) <= _RUN:
            self._send_run(items, deadline, 0)  # the usual call: one run, not copied
            return
        sent = 0
        chunks = iter(items)
        while run := list(islice(chunks, _RUN)):
            sent = self._send_run(run, deadline, sent)

    def _send_run(self, run: list[Any], deadline: float | None, sent: int) -> int:
        """Send ``run`` (``sent`` items of the call already went); return the new count.

        Small plain items go into the store as *batch entries*, as many per entry as there is
        room for: one mutex hold and one reservation per entry, and a receiver still takes
        them one at a time (``recv``) or many at once (``recv_many``).
        """
        i = 0
        capacity = self._capacity_value
        payload = None
        if capacity and len(run) > 1 and PLAIN.issuperset(map(type, run)):
            # Plain items only (immutable, so one pickle of the list changes nothing a
            # receiver sees), and not too many bytes at once, or they go one by one.
            payload = batch_payload(run)
            if len(payload) > self._batch_bytes:
                payload = None
        if payload is not None:
            try:
                while i < len(run):
                    i += self._send_batch(run[i:] if i else run, capacity, deadline, payload)
                    payload = None
            except ChannelTimeout:
                raise ChannelTimeout(
                    f"send_many timed out after sending {sent + i} item(s)", sent + i
                ) from None
            return sent + i
        for item in run:
            try:
                self._send(item, deadline, wait=True)
            except ChannelTimeout:
                raise ChannelTimeout(
                    f"send_many timed out after sending {sent + i} item(s)", sent + i
                ) from None
            i += 1
        return sent + i

    def _send_batch(
        self, items: list[Any], capacity: int, deadline: float | None, payload: bytes | None
    ) -> int:
        """Reserve room for some of ``items`` (waiting for at least one), store them as one
        batch entry (one pickle of their list; ``payload``, when it was made already for all
        of them); return how many went."""
        w = self._w
        sent = self._sent
        at = self._slots.mark()
        before = w[at]
        want = len(items)
        while True:
            w[at] += want  # marked before the reservation, which is a full fence after it
            total = sent.add(want) + want
            if w[CLOSED]:
                self._give_back(at, want)
                raise ChannelClosed(f"send on closed channel {self.name!r}")
            if capacity < 0:
                count = want
                break
            count = max(0, min(want, capacity - (total - w[RECEIVED]) + want))
            if count < want:
                sent.add(count - want)
                w[at] -= want - count
            if count:
                break
            self._wait_room(capacity, deadline)
        if payload is None or count < want:
            payload = batch_payload(items[:count])
        try:
            self._store_put(BATCH, payload, [], deadline, True, at, count)
        except BaseException:
            if w[at] > before:  # not stored: the reservation is given back
                self._give_back(at, count)
            raise
        return count

    def send_nowait(self, item: T) -> None:
        """Send ``item`` if that needs no waiting.

        Raises:
            ChannelFull: the channel is full (rendezvous: no receiver is waiting right now).
            ChannelClosed: the channel is closed.
        """
        self._send(item, None, wait=False)

    def _send_try(self, item: T) -> None:
        """``asend``'s look: ``send_nowait``, through ``send``'s fast path where it applies
        (a send with ``timeout=0`` on a buffered channel sends now or raises, never waits)."""
        if self._capacity_value == 0:
            self._send(item, None, wait=False)
            return
        try:
            self.send(item, 0)
        except ChannelTimeout:
            raise ChannelFull(f"channel {self.name!r} is full") from None

    def _send(
        self, item: Any, deadline: float | None, *, wait: bool, data: bytes | None = None
    ) -> None:
        """Send one item; ``data``: its pickle, when the caller has made it already."""
        kind, data, buffers = encode(item) if data is None else (PICKLED, data, [])
        w = self._w
        at = self._slots.mark()
        before = w[at]
        capacity = self._capacity_value
        self._reserve(at, capacity, deadline, wait)
        try:
            small = kind == PICKLED and not buffers and len(data) <= PACKET
            if (
                small
                and capacity != 0
                and not w[SPILLED]
                and self._write_packet(data, capacity, deadline, wait, at)
            ):
                return
            self._store_put(kind, data, buffers, deadline, wait, at)
        except BaseException:
            if w[at] > before:  # it never landed: the reservation is given back
                self._give_back(at, 1)
            raise

    def _write_packet(
        self, data: bytes, capacity: int, deadline: float | None, wait: bool, mark: int
    ) -> bool:
        """Write one reserved packet to the pipe, clearing the thread's in-flight ``mark``
        at once; ``False``: it goes to the store instead.

        A full pipe with room reserved is transient when the capacity fits in the pipe
        (receivers count an item just before reading it), so a blocking send waits for
        the pipe rather than moving every later item onto the slower store path.
        """
        wfd = self._wfd
        while True:
            try:
                os.write(wfd, data)
                self._w[mark] -= 1  # landed
                return True
            except BlockingIOError:
                if not wait or capacity < 0 or capacity > self._w[PIPE_PACKETS]:
                    return False
            left = remaining(deadline)
            if left == 0:
                raise ChannelTimeout(f"send timed out: channel {self.name!r} stayed full")
            if left is None or left > SLICE_SECONDS:
                left = SLICE_SECONDS
            poller = _select_module.poll()
            poller.register(wfd, _select_module.POLLOUT)
            poller.poll(max(1, int(left * 1000 + 0.999)))
            if self._w[CLOSED]:
                return False  # the store path raises ChannelClosed

    def _reserve(self, mark: int, capacity: int, deadline: float | None, wait: bool) -> None:
        """Count one more item in the channel (and in this thread's in-flight ``mark``),
        waiting for room while it is full; raise if the channel is closed.

        The mark is set before the count and cleared after it is taken back, so that at
        every instant the mark covers what this thread has counted and not yet delivered:
        while it sleeps for room it holds nothing, and if it is killed there, nothing is
        discounted for it. The count is a full fence between the mark and the look at
        ``CLOSED`` (a receiver draining a closed channel looks the other way round).
        """
        w = self._w
        sent = self._sent
        while True:
            w[mark] += 1
            total = sent.add(1) + 1
            if w[CLOSED]:
                self._give_back(mark, 1)
                raise ChannelClosed(f"send on closed channel {self.name!r}")
            if capacity <= 0 or total - w[RECEIVED] <= capacity:
                return
            sent.add(-1)
            w[mark] -= 1
            if not wait:
                raise ChannelFull(f"channel {self.name!r} is full ({capacity} items)")
            self._wait_room(capacity, deadline)

    def _give_back(self, mark: int, n: int) -> None:
        """Take back ``n`` items this thread counted and did not deliver: the count first,
        then the mark (a kill in between errs toward room, never toward a channel that
        stays full)."""
        w = self._w
        self._sent.add(-n)
        w[mark] -= n
        # A sender that found the channel full because of this reservation may sleep: wake
        # one if there is room now (a channel full without it keeps its senders asleep, and
        # an awaiting sender's own failed try does not wake it again).
        capacity = self._capacity_value
        if w[SPACE_WAITERS] and (capacity <= 0 or w[SENT] - w[RECEIVED] < capacity):
            self._wake(Q_ROOM)

    def _wait_room(self, capacity: int, deadline: float | None) -> None:
        """Sleep until the item count may be below ``capacity``, or raise on timeout/close."""
        w = self._w
        m = self._m
        woken = True
        if remaining(deadline) != 0:
            # A receiver that is taking items makes room within microseconds: a few looks,
            # with a yield between, cost less than sleeping and being woken (and while this
            # sender only looks, receivers have no one to wake).
            for _ in _spin():
                if w[SENT] - w[RECEIVED] < capacity or w[CLOSED]:
                    if w[CLOSED]:
                        raise ChannelClosed(f"channel {self.name!r} was closed while send waited")
                    return
        self._space_waiters.add(1)
        try:
            m.enter()
            try:
                if w[SENT] - w[RECEIVED] >= capacity and not w[CLOSED]:
                    if remaining(deadline) == 0:
                        raise ChannelTimeout(f"send timed out: channel {self.name!r} stayed full")
                    woken = m.wait(Q_ROOM, deadline)
            finally:
                m.exit()
        finally:
            self._space_waiters.add(-1)
        if w[CLOSED]:
            raise ChannelClosed(f"channel {self.name!r} was closed while send waited")
        if not woken:  # a whole slice without room: discount senders that died mid-send
            self._slots.scan()

    def _wake(self, queue: int) -> None:
        m = self._m
        m.enter()
        try:
            m.wake(1, queue)
        finally:
            m.exit()

    def _store_put(
        self,
        kind: int,
        data: bytes,
        buffers: list[pickle.PickleBuffer],
        deadline: float | None,
        wait: bool,
        mark: int,
        items: int = 1,
    ) -> None:
        """Copy an entry (one item, or ``items`` for a batch) into the store, under the
        mutex, and wake a sleeping receiver.

        Publishing the entry clears those items from this thread's in-flight ``mark``, under
        the same mutex hold: a dead thread's mark never covers an item that was stored.
        """
        views = [b.raw() for b in buffers]
        ring = self._ring
        rendezvous = self._capacity_value == 0
        # A pickle without buffers, or raw bytes, not offered: one compiled step (put_plain).
        plain = not views and not rendezvous
        payload = size = 0
        if not plain:
            payload, size = ring.entry_size(kind, data, views)
        w = self._w
        m = self._m
        ack = -1
        m.enter()
        try:
            if rendezvous and not wait and self._slots.scan(locked=True)[1] <= w[SPILLED]:
                raise ChannelFull(f"no receiver is waiting on rendezvous {self.name!r}")
            while True:
                if w[CLOSED]:
                    raise ChannelClosed(f"send on closed channel {self.name!r}")
                if plain:
                    at = ring.put_plain(kind, data)
                    if at >= 0:
                        break
                    if at == -2:  # not for the compiled step after all: the general path
                        plain = False
                        payload, size = ring.entry_size(kind, data, views)
                        continue
                else:
                    at = ring.allocate(size)
                    if at >= 0:
                        if rendezvous and wait:
                            ack = self._slots.claim_ack(int(w[PUT_SEQ]), mark)
                        ring.put(at, size, kind, data, views, payload, ack)
                        break
                if not wait:
                    raise ChannelFull(f"the shared memory of channel {self.name!r} is full")
                if remaining(deadline) == 0:
                    raise ChannelTimeout(f"send timed out: channel {self.name!r} stayed full")
                m.wait(Q_STORE, deadline)
            w[mark] -= items  # landed
            self._spilled(items)  # the bell rings: sleeping receivers wake
            if ack >= 0:
                self._await_ack(at, ack, deadline)
        finally:
            m.exit()

    def _await_ack(self, at: int, ack: int, deadline: float | None) -> None:
        """Under the mutex: sleep until a receiver takes the offer, or take it back.

        An offer taken back is no longer counted as sent (under the same mutex hold); one
        whose sender dies while it waits stays whole in the store, counted, and may still
        be taken.
        """
        w = self._w
        m = self._m
        slots = self._slots
        try:
            if not slots.ack_taken(ack) and not w[CLOSED] and remaining(deadline) != 0:
                # A receiver that is waiting takes it within microseconds: a few looks, with
                # the mutex released, cost less than falling asleep and being woken.
                m.exit()
                try:
                    for _ in _spin():
                        if slots.ack_taken(ack) or w[CLOSED]:
                            break
                finally:
                    m.enter()
            while not slots.ack_taken(ack) and not w[CLOSED] and remaining(deadline) != 0:
                m.wait(Q_ACK, deadline)
        finally:
            taken = slots.ack_taken(ack)
            slots.free_ack(ack)
            if not taken:
                self._ring.retract(at)
                self._spilled(-1)
                self._sent.add(-1)
        if taken:
            return
        if w[CLOSED]:
            raise ChannelClosed(f"channel {self.name!r} was closed while send waited")
        raise ChannelTimeout(f"send timed out: no receiver took the item on {self.name!r}")

    # receiving ---------------------------------------------------------------------------

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
            SerializationError: the item could not be unpickled here (it is consumed).
            SharedMemoryCorruptError: the channel's shared memory holds a length or offset it
                could not have written (it is refused, never read past).
        """
        timeout = check_timeout(timeout)
        if self._backlog:
            return self._from_backlog()  # type: ignore[no-any-return]
        w = self._w
        data = None
        if not (w[SPILLED] and w[TAKE_SEQ] < self._looked):
            looking = w[PUT_SEQ]
            data = _read_nowait(self._rfd, PACKET)
            if data is None:
                self._looked = looking
        if data is None:
            if w[SPILLED]:
                # The store holds items, and its oldest is older than the pipe's (_store_take).
                taken = self._store_take(1)
                if taken:
                    if w[SPACE_WAITERS]:
                        self._wake(Q_ROOM)
                    return taken[0]  # type: ignore[no-any-return]
            return self._recv_wait(timeout)  # type: ignore[no-any-return]
        self._received.add(1)  # the fast path: one packet from the pipe
        if self._w[SPACE_WAITERS]:
            self._wake(Q_ROOM)
        try:
            return _loads(data)  # type: ignore[no-any-return]
        except Exception as exc:
            raise self._unpickling_error(exc) from exc

    def _recv_wait(self, timeout: float | None) -> Any:
        """The slow path of :meth:`recv`: the store, a short spin, then sleep in ``poll``."""
        deadline = deadline_after(timeout)
        if timeout != 0:
            # A busy sender is usually about to write: a few cheap looks (a read that finds
            # nothing raises nothing, and the store's count is a word of shared memory) with
            # a yield between cost less than falling asleep and being woken.
            for _ in _spin():
                item = self._take()
                if item is not _NOTHING:
                    return item
                if self._w[CLOSED]:
                    break  # sleep in slices below
        w = self._w
        release_at: float | None = None  # when an idle ring gives its pages back (_ring.py)
        self._asleep(1)
        try:
            while True:
                item = self._take()
                if item is not _NOTHING:
                    return item
                closed = w[CLOSED]
                if closed and self._drained():
                    # A send that landed between the look and the count of sends in flight
                    # cleared its mark after writing: one more look finds its item.
                    item = self._take()
                    if item is not _NOTHING:
                        return item
                    raise ChannelClosed(f"channel {self.name!r} is closed and drained")
                left = remaining(deadline)
                if left == 0:
                    raise ChannelTimeout(f"recv timed out: channel {self.name!r} stayed empty")
                if self._ring.holds_idle_pages():
                    now = time.monotonic()
                    if release_at is None:
                        release_at = now + IDLE_RELEASE
                    elif now >= release_at:
                        self._release_idle_pages()
                        release_at = None
                    if release_at is not None:
                        left = release_at - now if left is None else min(left, release_at - now)
                self._sleep(closed, left)
        finally:
            self._asleep(-1)

    def _select_idle(self, release_at: float | None) -> float | None:
        """For an async receiver about to sleep: what ``_recv_wait`` does between sleeps with
        the pages of a burst. Returns when to call again (``time.monotonic``), or ``None``:
        the ring holds no idle pages (or just gave them back)."""
        if not self._ring.holds_idle_pages():
            return None
        now = time.monotonic()
        if release_at is None:
            return now + IDLE_RELEASE
        if now < release_at:
            return release_at
        self._release_idle_pages()
        return None

    def _release_idle_pages(self) -> None:
        """Give back the pages of a burst the ring no longer holds (see ``_ring.py``)."""
        m = self._m
        m.enter()
        try:
            self._ring.release_idle_pages()
        finally:
            m.exit()

    def _sleep(self, closed: int, left: float | None) -> None:
        """Sleep until the pipe or the bell (store items, close) is readable, or ``left``.

        Once the channel is closed the bell stays readable, so the sleep is on the pipe
        alone, in slices: what can still come is a send in flight, from a live process or
        from one that died (found by the next look).
        """
        poller = _select_module.poll()
        poller.register(self._rfd, _select_module.POLLIN)
        if closed:
            if left is None or left > SLICE_SECONDS:
                left = SLICE_SECONDS
        else:
            poller.register(self._bell_r, _select_module.POLLIN)
        poller.poll(max(1, int(wait_slice(left) * 1000 + 0.999)))

    def _unpickle(self, data: Any) -> Any:
        try:
            return _loads(data)
        except Exception as exc:
            raise self._unpickling_error(exc) from exc

    def _corrupt(self, what: str) -> SharedMemoryCorruptError:
        return corrupt(self.name, what)

    def _unpickling_error(self, exc: Exception) -> SerializationError:
        error = SerializationError(
            f"an item received on channel {self.name!r} could not be unpickled "
            f"(it is consumed; the channel works on): {type(exc).__name__}: {exc}"
        )
        error.__cause__ = exc
        return error

    def recv_many(self, max_items: int, timeout: float | None = None) -> list[T]:
        """Wait for at least one item, then take up to ``max_items`` that are there already.

        Raises:
            ChannelTimeout: no item came within ``timeout`` seconds.
            ChannelClosed: the channel is closed and every item has been received.
        """
        check_max_items(max_items)
        timeout = check_timeout(timeout)
        items = self._take_many(max_items)
        if not items:
            items = [self.recv(timeout)]
            if max_items > 1:
                items += self._take_many(max_items - 1)
        return items

    def _take_many(self, limit: int) -> list[Any]:
        """Take up to ``limit`` items without waiting: pipe packets first, then the store."""
        w = self._w
        if self._backlog:
            return [self._from_backlog()]
        packets: list[tuple[int, Any, Any]] = []
        rfd = self._rfd
        while len(packets) < limit:
            looking = w[PUT_SEQ]
            data = _read_nowait(rfd, PACKET)
            if data is None:
                self._looked = looking
                break
            packets.append((PICKLED, data, None))
        if packets:
            self._received.add(len(packets))
        items = self._decode_all(packets)
        while len(items) < limit and w[SPILLED]:
            taken = self._store_take(limit - len(items))
            if not taken:
                break
            items.extend(taken)
        if items and w[SPACE_WAITERS]:
            self._wake(Q_ROOM)
        return items

    def _decode_all(self, raw: list[tuple[int, Any, Any]]) -> list[Any]:
        """Rebuild taken items from their bytes (after the mutex is released).

        Taken items are never dropped: if one fails to unpickle, the items before it are
        returned, and the error and the items after it wait in this handle's backlog for
        the next receive.
        """
        batches: dict[int, list[Any]] = {}
        items, failed = decode(raw, self._unpickling_error, self._corrupt, batches)
        if batches:  # the last batch taken from and not used up, for the next take
            self._batch = max(batches.items())
        if failed:
            self._backlog = deque(failed)
            if not items:
                items.append(self._from_backlog())
        return items

    def _from_backlog(self) -> Any:
        """The next item kept back after an unpickling failure (raising that failure)."""
        assert self._backlog
        item = self._backlog.popleft()
        if type(item) is Failed:
            raise item.error
        return item

    def recv_nowait(self) -> T:
        """Take the next item if there is one.

        Raises:
            ChannelEmpty: there is none right now.
            ChannelClosed: the channel is closed and every item has been received.
            SharedMemoryCorruptError: the channel's shared memory holds a length or offset it
                could not have written (it is refused, never read past).
        """
        item = self._take()
        if item is not _NOTHING:
            return item  # type: ignore[no-any-return]
        if self._w[CLOSED] and self._drained():
            item = self._take()  # a send that landed while we looked
            if item is not _NOTHING:
                return item  # type: ignore[no-any-return]
            raise ChannelClosed(f"channel {self.name!r} is closed and drained")
        raise ChannelEmpty(f"channel {self.name!r} is empty")

    def _select_try(self) -> tuple[bool, Any]:
        """``recv_nowait`` without raising ChannelEmpty (select and the async calls look
        often: an exception per empty look costs more than the look)."""
        item = self._take()
        if item is not _NOTHING:
            return True, item
        if self._w[CLOSED] and self._drained():
            item = self._take()  # a send that landed while we looked
            if item is not _NOTHING:
                return True, item
            raise ChannelClosed(f"channel {self.name!r} is closed and drained")
        return False, None

    def _drained(self) -> bool:
        """After close: no send in flight, and nothing left in the pipe or the store."""
        atomics.fence()  # CLOSED was read before the marks are (see _asleep)
        return self._slots.scan()[0] == 0 and not self._w[SPILLED]

    def _take(self) -> Any:
        """Take one item (pipe first, then store) without waiting, or return ``_NOTHING``.

        An item is counted as received just after it is taken (a receiver killed in between
        lets one more item in than the capacity; an early count could let it in for good).
        """
        if self._backlog:
            return self._from_backlog()
        looking = self._w[PUT_SEQ]
        data = _read_nowait(self._rfd, PACKET)
        if data is None:
            self._looked = looking
            if not self._w[SPILLED]:
                return _NOTHING
            taken = self._store_take(1)
            if not taken:
                return _NOTHING
            if self._w[SPACE_WAITERS]:
                self._wake(Q_ROOM)
            return taken[0]
        self._received.add(1)
        if self._w[SPACE_WAITERS]:
            self._wake(Q_ROOM)
        return self._unpickle(data)

    def _store_take(self, limit: int) -> list[Any]:
        """Take up to ``limit`` items from the store (or a packet in the pipe older than the
        store's oldest entry); ``[]`` if there were none.

        *Order*: a producer writes to the pipe only while the store is empty, so its packets
        are older than its entries, and a receiver must not take an entry while an older
        packet of the same producer waits in the pipe. An entry put before a look that found
        the pipe empty has none: every packet written before it was read. So the handle
        remembers, in ``_looked``, the ``put_seq`` read just before its last empty look, and
        takes the entries numbered below it with no look at the pipe; for a newer one it
        looks again, under the mutex (then every entry in the store is older than the look).
        In a backlog that is one look per store-full, not two failed reads per item.

        The bytes are copied out and counted under the mutex, and unpickled after it. Every
        offset and length read from the shared memory is checked before it is used (see
        ``_ring.py``).
        """
        w = self._w
        m = self._m
        ring = self._ring
        received = self._received
        raw: list[tuple[int, Any, Any]] = []  # (kind, bytes, buffers or batch lengths)
        m.enter()
        try:
            looked_now = w[TAKE_SEQ] >= self._looked
            if looked_now:
                data = _read_nowait(self._rfd, PACKET)
                if data is not None:
                    raw.append((PICKLED, data, None))
                    received.add(1)
                    limit = 0
                else:
                    self._looked = int(w[PUT_SEQ])  # every entry now is older than the look
            taken = 0
            while w[ENTRIES] and taken < limit and (looked_now or w[TAKE_SEQ] < self._looked):
                cached = self._batch
                plain = ring.take_plain(limit - taken, -1 if cached is None else cached[0])
                if type(plain) is tuple:  # the common entry, compiled
                    n = 1
                    if plain[0] == BATCH:
                        number, first, n, count = plain[2]
                        if cached is not None and cached[0] == number:
                            if plain[1] is None:
                                plain = (BATCH, cached[1], plain[2])
                            if first + n == count:
                                self._batch = None
                    raw.append(plain)
                    received.add(n)
                    self._spilled(-n)
                    taken += n
                    continue
                if plain == 0:
                    break
                at, size, state, kind, ack, length, number = ring.next_entry()
                pos = at + _ENTRY_SIZE
                done = True
                if state == RETRACTED:
                    pass
                elif kind == BATCH:
                    cached = self._batch
                    done, n = ring.take_from_batch(
                        pos,
                        length,
                        limit - taken,
                        number,
                        cached[1] if cached is not None and cached[0] == number else None,
                        raw,
                    )
                    if done and cached is not None and cached[0] == number:
                        self._batch = None
                    received.add(n)
                    self._spilled(-n)
                    taken += n
                else:
                    # Copied first: a receiver killed while copying leaves the item in place.
                    raw.append(ring.copy_out(pos, length, kind))
                if done:
                    ring.pop(at, size)
                if state != RETRACTED and kind != BATCH:
                    received.add(1)
                    self._spilled(-1)
                    taken += 1
                    if state == OFFER:
                        self._slots.acknowledge(ack, number)
            ring.rewind_if_empty()
            if taken:
                m.wake_all(Q_STORE)  # senders waiting for bytes (free when there are none)
        finally:
            m.exit()
        if len(raw) == 1 and raw[0][2] is None:  # one item, no buffers: the common case
            kind, data, _ = raw[0]
            return [data if kind == RAW_BYTES else self._unpickle(data)]
        return self._decode_all(raw)

    # closing, statistics, select ---------------------------------------------------------

    def close(self) -> None:
        """Close the channel for every process (idempotent).

        Sends fail from now on; receivers, in any process, still get every item sent before,
        then :class:`~concurrency_kit.ChannelClosed` (handles can still be unpickled, to
        drain it). The shared memory and the pipe are released when the last handle is
        garbage collected, and the names when the creating process's handle is, or when
        that process exits.
        """
        w = self._w
        m = self._m
        m.enter()
        try:
            if not w[CLOSED]:
                w[CLOSED] = 1
                os.write(self._bell_w, b"c")  # the bell stays readable: sleepers wake
            m.wake_all(Q_ROOM)
            m.wake_all(Q_STORE)
            m.wake_all(Q_ACK)
        finally:
            m.exit()

    def statistics(self) -> ChannelStatistics:
        """The channel's counters now (see :class:`~concurrency_kit.ChannelStatistics`)."""
        w = self._w
        sent, received = int(w[SENT]), int(w[RECEIVED])
        return ChannelStatistics(
            capacity=self.capacity,
            queued=max(sent - received, 0),
            sent=sent,
            received=received,
            closed=bool(w[CLOSED]),
        )

    def _select_arm(self, waker: Any) -> tuple[int, ...]:
        self._asleep(1)
        return (self._rfd,) if self._w[CLOSED] else (self._rfd, self._bell_r)

    def _select_disarm(self, waker: Any) -> None:
        self._asleep(-1)

    # An awaiting sender of a buffered channel waits for room in the monitor, as a sleeping
    # one does: a receive's wake-up rings the monitor's bell, which wakes the task (see
    # _core/monitor.py). On a rendezvous, a sender waits for a receiver on the pipe: polled.
    @property
    def _room_by_waker(self) -> bool:  # type: ignore[override]
        return self._capacity_value != 0

    def _room_arm(self, waker: Any) -> None:
        self._space_waiters.add(1)
        m = self._m
        m.enter()
        try:
            self._room_tickets[waker] = m.prepare_async(Q_ROOM, waker)
        finally:
            m.exit()

    def _room_disarm(self, waker: Any) -> None:
        ticket = self._room_tickets.pop(waker, None)
        if ticket is None:
            return
        w = self._w
        m = self._m
        m.enter()
        try:
            woken = m.finish(ticket)
            if woken and w[SENT] - w[RECEIVED] < self._capacity_value:
                # Woken, and maybe cancelled before it could send: the next sender may.
                m.wake(1, Q_ROOM)
        finally:
            m.exit()
            self._space_waiters.add(-1)
        if not woken:  # a slice (or a cancellation) without room: discount dead senders
            self._slots.scan()


def _attach(
    segment_name: str,
    store_name: str,
    origin: _pipe.Origin,
    name: str,
    cls: type[ProcessChannel[Any]] = ProcessChannel,
) -> ProcessChannel[Any]:
    """Unpickle a handle: map the segments, open the pipes through the creator's /proc.

    ``cls`` is the handle's class: ``ProcessChannel`` or a subclass (``InterpreterChannel``).
    """
    try:
        monitor = ProcessMonitor.attach(segment_name, KIND, ChannelState)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{cls.__name__} {name!r} no longer exists: its creator released it or exited"
        ) from None
    try:
        store_size = int(monitor.state.store_size)
        if store_size < _MIN_STORE:  # read from shared memory: checked before it is used
            raise SharedMemoryCorruptError(
                f"the shared memory of {cls.__name__} {name!r} is corrupt: it says its store "
                f"holds {store_size} bytes"
            )
        store = shm.attach(store_name, store_size)
    except BaseException as exc:
        monitor.segment.close()
        if isinstance(exc, FileNotFoundError):
            raise FileNotFoundError(
                f"{cls.__name__} {name!r} no longer exists: its creator released it or exited"
            ) from None
        raise
    try:
        fds = _pipe.open_pipes(origin)
    except BaseException:
        store.close()
        monitor.segment.close()
        raise
    channel: ProcessChannel[Any] = cls.__new__(cls)
    channel._setup(monitor, store, fds, origin, name)
    return channel

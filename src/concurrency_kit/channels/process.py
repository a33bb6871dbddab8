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
``send_many`` stores runs of small items as one *batch entry*, which receivers still take
one item at a time.

*Waiting*: a receiver that finds nothing looks again a few times (``poll`` with no wait, and
a yield), then sleeps in ``poll`` on the pipe and on a second pipe, the *bell*, which holds a
byte exactly while the store holds items and from :meth:`ProcessChannel.close` on: whatever
arrives, by either path, wakes it. Senders that wait for room sleep in the monitor.

*Order*: once the store holds an item, every sender uses the store until it empties, and a
receiver that finds the pipe empty re-reads it under the mutex before taking from the store;
so items from one producer are received in the order sent, across both paths.

*Counting*: ``sent`` and ``received`` are atomic counters in shared memory (libatomic), so the
capacity is exact; a sender reserves room before it writes, a receiver counts an item just
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
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import pickle
import select as _select_module
import stat
import struct
import weakref
from collections import deque
from collections.abc import Iterable
from threading import get_ident, get_native_id
from typing import Any, TypeVar

import cloudpickle

from concurrency_kit._core import atomics, shm
from concurrency_kit._core.deadline import check_timeout, deadline_after, remaining, wait_slice
from concurrency_kit._core.liveness import thread_alive
from concurrency_kit._core.monitor import SLICE_SECONDS, SLOTS, ProcessMonitor
from concurrency_kit._core.serialize import _short_repr
from concurrency_kit.channels._base import (
    DEFAULT_CAPACITY,
    ChannelBase,
    ChannelStatistics,
    check_capacity,
    check_max_items,
)
from concurrency_kit.errors import (
    ChannelClosed,
    ChannelEmpty,
    ChannelFull,
    ChannelTimeout,
    SerializationError,
    SharedMemoryCorruptError,
    UntrustedSegmentError,
)

__all__ = ["DEFAULT_SHARED_MEMORY_SIZE", "ProcessChannel"]

T = TypeVar("T")

DEFAULT_SHARED_MEMORY_SIZE = 256 * 1024 * 1024
"""Bytes of the store by default: the largest item, and the most data held beyond the pipe."""

_MIN_STORE = 64 * 1024  # the smallest shared_memory_size
PACKET = 4096  # PIPE_BUF on Linux: the largest atomic packet
_PIPE_BYTES = 1 << 20  # 256 packets; the unprivileged maximum (/proc/sys/fs/pipe-max-size)
_F_SETPIPE_SZ = 1031
_F_GETPIPE_SZ = 1032
_KIND = 0x43484E4C  # "CHNL"
_THREAD_SLOTS = 256

# State words (int64) in the monitor's state area. SENT/RECEIVED/SPILLED/SLEEPERS/WAITING
# are changed with atomic instructions, the rest under the mutex.
_SENT, _RECEIVED, _SPILLED, _SPACE_WAITERS = range(4)
_CLOSED, _CAPACITY, _HEAD, _TAIL, _ENTRIES, _STORE_SIZE, _PIPE_PACKETS = range(5, 12)
_PUT_SEQ, _TAKE_SEQ = 12, 13  # numbers of the next entry written / taken (under the mutex)
_SLOTS_AT = 16  # then per thread: pid, native thread id, its sends in flight, asleep or not
_SLOT_WORDS = 4
_WORDS = _SLOTS_AT + _SLOT_WORDS * _THREAD_SLOTS
_ACKS_AT = _WORDS  # then one word per rendezvous acknowledgement slot (see _claim_ack)
_ALL_WORDS = _ACKS_AT + SLOTS


class _State(ctypes.Structure):
    _fields_ = (("words", ctypes.c_int64 * _ALL_WORDS),)


# Monitor queues.
_Q_ROOM = 0  # senders waiting for capacity
_Q_STORE = 1  # senders waiting for bytes in the store
_Q_ACK = 2  # rendezvous senders waiting for their offer to be taken

# Store entries: header (total size, state, kind, ack slot, payload length) then the payload.
# The total size is rounded up to 8 bytes (it says where the next entry starts); the payload
# length is exact (it says how many bytes are the item's: the padding is not, and may hold
# bytes of an earlier item).
_ENTRY = struct.Struct("<QHHIQQ")  # ... and the entry's number (stale entries never match)
_STATES = frozenset({1, 2, 3, 4})
_KINDS = frozenset({0, 1, 2})
_READY, _OFFER, _RETRACTED, _WRAP = 1, 2, 3, 4
_PICKLED, _RAW_BYTES, _BATCH = 0, 1, 2
_BATCH_HEAD = struct.Struct("<III")  # items, items taken, offset of the next one; then lengths
_PAYLOAD = struct.Struct("<QI")  # pickle length, buffer count; then one Q per buffer length
_NOTHING: Any = object()
_SPINS = 16  # looks (with a yield between) before sleeping: about 1 us each
_RUN = 256  # send_many reserves and writes small items this many at a time
_PLAIN = frozenset({int, float, str, bytes, bool, type(None)})  # never out-of-band buffers
_SIZED = frozenset({str, bytes})
_loads = pickle.loads
_dumps_plain = pickle.dumps
_fork_generation = 0


def _forked() -> None:
    global _fork_generation
    _fork_generation += 1


os.register_at_fork(after_in_child=_forked)


def _align(n: int) -> int:
    return (n + 7) & ~7


def _ack_word(number: int, owner: int, state: int) -> int:
    """A rendezvous acknowledgement word: entry number, sender's thread slot, state."""
    return number << 10 | owner << 2 | state


def _small_plain(item: Any) -> bool:
    """Whether ``item`` is of a type that never has out-of-band buffers, and not too long
    to fit one packet (the pickle's length is checked after)."""
    kind = type(item)
    return kind in _PLAIN and (kind not in _SIZED or len(item) <= PACKET)


def _dumps(item: Any) -> tuple[int, bytes, list[pickle.PickleBuffer]]:
    """Pickle ``item`` for the wire: (kind, main bytes, out-of-band buffers)."""
    kind = type(item)
    if kind is bytes and len(item) > PACKET:
        return _RAW_BYTES, item, []
    if kind is bytearray and len(item) > PACKET:
        item = pickle.PickleBuffer(item)  # out of band: arrives as a bytearray
    elif kind is memoryview:
        item = _View(item)
    buffers: list[pickle.PickleBuffer] = []
    try:
        data = pickle.dumps(item, 5, buffer_callback=buffers.append)
    except Exception:
        buffers.clear()
        try:
            data = cloudpickle.dumps(item, 5, buffer_callback=buffers.append)
        except Exception as exc:
            raise SerializationError(
                f"cannot send {_short_repr(item)} on a ProcessChannel: it cannot be pickled: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    return _PICKLED, data, buffers


class _View:
    """A memoryview on its way: its bytes out of band, its format and shape in the pickle.

    (A memoryview cannot be pickled at all; this one arrives as a memoryview of the same
    format and shape over a new bytearray, or of bytes when the format is not native; an
    empty one arrives one-dimensional, as :meth:`memoryview.cast` makes no empty shapes.)
    """

    __slots__ = ("view",)

    def __init__(self, view: memoryview) -> None:
        self.view = view

    def __reduce__(self) -> tuple[Any, ...]:
        view = self.view
        data = view if view.c_contiguous else view.tobytes()
        return _rebuild_view, (pickle.PickleBuffer(data), view.format, view.shape)


def _rebuild_view(data: Any, format: str, shape: tuple[int, ...]) -> memoryview:
    view = memoryview(data).cast("B")
    try:
        if not view.nbytes:  # memoryview.cast refuses a shape with a zero in it
            return view.cast(format)  # type: ignore[call-overload,no-any-return]
        return view.cast(format, shape)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError):
        return view


class _Failed:
    """An item that could not be unpickled, kept in order in a handle's backlog."""

    __slots__ = ("error",)

    def __init__(self, error: SerializationError) -> None:
        self.error = error


def _drop(fds: tuple[int, ...], store: shm.Segment, monitor: ProcessMonitor) -> None:
    """Finalizer: close this handle's pipe ends; the creator also removes the segments."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
    for segment in (store, monitor.segment):
        segment.unlink()
        segment.close()


def _open_pipe_end(pid: int, fd: int, inode: int, flags: int) -> int:
    """Open our own description of the creator's pipe end ``fd``.

    Checked on the open descriptor: a pipe with the recorded inode, made by this user. A pid
    can be reused, and root may open any process's descriptors: never read another user's pipe.
    """
    try:
        mine = os.open(f"/proc/{pid}/fd/{fd}", flags | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise FileNotFoundError(
            f"cannot open the pipe of a ProcessChannel created by process {pid}: it was "
            f"closed or its creator exited ({exc})"
        ) from None
    st = os.fstat(mine)
    if st.st_ino != inode or not stat.S_ISFIFO(st.st_mode):
        os.close(mine)
        raise FileNotFoundError(f"the ProcessChannel's pipe in process {pid} no longer exists")
    if st.st_uid != os.geteuid():
        os.close(mine)
        raise UntrustedSegmentError(
            errno.EPERM,
            f"refusing the ProcessChannel's pipe in process {pid}: it is owned by uid "
            f"{st.st_uid}, not by this user (was the process gone and its pid reused?)",
        )
    return mine


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
        monitor = ProcessMonitor.create(_KIND, _State)
        fds: list[int] = []
        try:
            store = shm.create(shared_memory_size)
            fds.extend(os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC | os.O_DIRECT))
            fds.extend(os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC))
        except BaseException:
            for fd in fds:
                os.close(fd)
            monitor.segment.unlink()
            raise
        try:
            fcntl.fcntl(fds[1], _F_SETPIPE_SZ, _PIPE_BYTES)
        except OSError:  # a lower pipe-max-size: the pipe holds fewer packets, that is all
            pass
        words = monitor.state.words
        words[_CAPACITY] = -1 if capacity is None else capacity
        words[_STORE_SIZE] = shared_memory_size
        words[_PIPE_PACKETS] = fcntl.fcntl(fds[1], _F_GETPIPE_SZ) // PACKET
        inodes = (os.fstat(fds[0]).st_ino, os.fstat(fds[2]).st_ino)
        self._setup(monitor, store, tuple(fds), (os.getpid(), tuple(fds), inodes), name)

    def _setup(
        self,
        monitor: ProcessMonitor,
        store: shm.Segment,
        fds: tuple[int, ...],
        origin: tuple[int, tuple[int, ...], tuple[int, int]],
        name: str | None,
    ) -> None:
        self._m = monitor
        self._store = store
        self._rfd, self._wfd, self._bell_r, self._bell_w = fds
        self._origin = origin
        base = monitor.state_offset + _State.words.offset
        self._w = memoryview(monitor.segment.buffer).cast("B")[base : base + 8 * _ALL_WORDS]
        self._w = self._w.cast("q")
        self._buf = memoryview(store.buffer).cast("B")
        self._store_size = int(self._w[_STORE_SIZE])
        # The counters' addresses, for atomics.add (the monitor keeps the mapping alive).
        words = monitor.segment.address + base
        self._address = [words + 8 * i for i in range(_WORDS)]
        self._p_sent = self._address[_SENT]
        self._p_received = self._address[_RECEIVED]
        self._capacity_value = int(self._w[_CAPACITY])
        self._backlog: deque[Any] | None = None  # see _decode_all
        self._slot_generation = -1  # _fork_generation when _slots was filled
        self._slots: dict[int, int] = {}  # thread ident -> its slot's first word
        self._name = name if name is not None else f"ProcessChannel-{monitor.segment.name[3:15]}"
        self._finalizer = weakref.finalize(self, _drop, fds, store, monitor)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        if self._finalizer.alive is False:
            raise ValueError("cannot pickle a ProcessChannel whose handle was released")
        return _attach, (self._m.segment.name, self._store.name, self._origin, self.name)

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
        return bool(self._w[_CLOSED])

    def __repr__(self) -> str:
        state = "closed" if self._w[_CLOSED] else "open"
        queued = self._w[_SENT] - self._w[_RECEIVED]
        return f"<ProcessChannel {self.name!r} {state} queued={max(queued, 0)}>"

    # counting --------------------------------------------------------------------------

    def _inc(self, word: int, delta: int) -> int:
        return atomics.add(self._address[word], delta)

    def _slot(self) -> int:
        """The first word of this thread's slot (claimed on first use, per thread).

        A slot holds the thread's pid and native id, its sends in flight and whether it is
        asleep in a receive; only its own thread writes the last two, with plain stores.
        """
        if self._slot_generation != _fork_generation:
            self._slots = {}
            self._slot_generation = _fork_generation
        at = self._slots.get(get_ident())
        if at is None:
            at = self._claim_slot()
            self._slots[get_ident()] = at
        return at

    def _claim_slot(self) -> int:
        pid, tid = os.getpid(), get_native_id()
        w = self._w
        m = self._m
        m.enter()
        try:
            free = -1
            for i in range(_THREAD_SLOTS):
                at = _SLOTS_AT + _SLOT_WORDS * i
                if w[at] == pid and w[at + 1] == tid:
                    return at
                if free < 0 and (w[at] == 0 or not thread_alive(int(w[at]), int(w[at + 1]))):
                    free = at
            if free < 0:
                raise RuntimeError(
                    f"more than {_THREAD_SLOTS} threads use channel {self.name!r} at once"
                )
            self._discount_dead_slot(free)
            w[free], w[free + 1] = pid, tid
            return free
        finally:
            m.exit()

    def _discount_dead_slot(self, at: int) -> None:
        """Under the mutex: forget a dead thread — what its in-flight mark covers was counted
        and never delivered (see :meth:`_reserve`), and it no longer waits."""
        w = self._w
        in_flight = int(w[at + 2])
        if not 0 <= in_flight <= _RUN:  # read from shared memory: checked before it is used
            raise self._corrupt(f"a dead thread has {in_flight} sends in flight")
        if in_flight:
            self._inc(_SENT, -in_flight)
            self._m.wake(in_flight, _Q_ROOM)
        owner = (at - _SLOTS_AT) // _SLOT_WORDS
        for i in range(_ACKS_AT, _ACKS_AT + SLOTS):  # its offer, if any, waits for nobody
            if w[i] and (w[i] >> 2) & 0xFF == owner:
                w[i] = 0
        w[at + 2] = w[at + 3] = 0
        w[at] = w[at + 1] = 0

    def _scan_slots(self, *, locked: bool = False) -> tuple[int, int]:
        """Sends in flight and receivers asleep, in live threads (dead ones are reaped).

        ``locked``: the caller holds the mutex already (it is not recursive: entering it
        again would wait for ever).
        """
        w = self._w
        in_flight = asleep = 0
        for i in range(_THREAD_SLOTS):
            at = _SLOTS_AT + _SLOT_WORDS * i
            if not w[at] or not (w[at + 2] or w[at + 3]):
                continue
            if thread_alive(int(w[at]), int(w[at + 1])):
                in_flight += int(w[at + 2])
                asleep += int(w[at + 3])
            elif locked:
                self._discount_dead_slot(at)
            else:
                self._m.enter()
                try:
                    if w[at] and not thread_alive(int(w[at]), int(w[at + 1])):
                        self._discount_dead_slot(at)
                finally:
                    self._m.exit()
        return in_flight, asleep

    def _asleep(self, delta: int) -> None:
        """Count this thread as asleep in a receive (rendezvous ``send_nowait`` looks)."""
        at = self._slot()
        self._w[at + 3] += delta
        atomics.add(self._p_sent, 0)  # a full fence: seen before the next look

    def _spilled(self, delta: int) -> None:
        """Under the mutex: change the store's item count, keeping the bell pipe readable
        exactly while the store holds items (or the channel is closed)."""
        before = self._inc(_SPILLED, delta)
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
        if kind in _PLAIN and capacity and (kind not in _SIZED or len(item) <= PACKET):  # type: ignore[arg-type]
            # The fast path: one packet straight into the pipe, room permitting.
            data = _dumps_plain(item, 5)
            w = self._w
            add = atomics.add
            at = self._slots.get(get_ident()) if self._slot_generation == _fork_generation else None
            at = (self._slot() if at is None else at) + 2
            w[at] += 1  # in flight; the reservation below is a full fence after it
            try:
                queued = add(self._p_sent, 1) - w[_RECEIVED]
                if (
                    (capacity < 0 or queued < capacity)
                    and len(data) <= PACKET
                    and not w[_CLOSED]
                    and not w[_SPILLED]
                ):
                    try:
                        os.write(self._wfd, data)
                        return
                    except BlockingIOError:
                        pass
                add(self._p_sent, -1)
            finally:
                w[at] -= 1
        self._send(item, deadline_after(timeout), wait=True, data=data)

    def send_many(self, items: Iterable[T], timeout: float | None = None) -> None:
        """Send ``items`` in order, waiting for room as needed.

        Small items are reserved and written in runs: one atomic reservation per run rather
        than per item.

        Raises:
            ChannelTimeout: ``timeout`` seconds passed first; its ``sent`` attribute says how
                many of the items were sent (the rest were not).
            ChannelClosed: the channel was closed (items sent before it stay sent).
        """
        deadline = deadline_after(check_timeout(timeout))
        sent = 0
        run: list[Any] = []
        for item in items:
            run.append(item)
            if len(run) == _RUN:
                sent = self._send_run(run, deadline, sent)
                run = []
        if run:
            self._send_run(run, deadline, sent)

    def _send_run(self, run: list[Any], deadline: float | None, sent: int) -> int:
        """Send ``run`` (``sent`` items of the call already went); return the new count.

        Small plain items go into the store as *batch entries*, as many per entry as there is
        room for: one mutex hold and one reservation per entry, and a receiver still takes
        them one at a time (``recv``) or many at once (``recv_many``).
        """
        i = 0
        capacity = self._capacity_value
        if capacity and len(run) > 1 and all(map(_small_plain, run)):
            datas = [_dumps_plain(item, 5) for item in run]
            if max(map(len, datas)) <= PACKET:
                try:
                    while i < len(datas):
                        i += self._send_batch(datas[i:], capacity, deadline)
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

    def _send_batch(self, datas: list[bytes], capacity: int, deadline: float | None) -> int:
        """Reserve room for some of ``datas`` (waiting for at least one), store them as one
        batch entry; return how many went."""
        w = self._w
        add = atomics.add
        at = self._slot() + 2
        before = w[at]
        want = len(datas)
        while True:
            w[at] += want  # marked before the reservation, which is a full fence after it
            total = add(self._p_sent, want) + want
            if w[_CLOSED]:
                self._give_back(at, want)
                raise ChannelClosed(f"send on closed channel {self.name!r}")
            if capacity < 0:
                count = want
                break
            count = max(0, min(want, capacity - (total - w[_RECEIVED]) + want))
            if count < want:
                add(self._p_sent, count - want)
                w[at] -= want - count
            if count:
                break
            self._wait_room(capacity, deadline)
        lengths = struct.pack(f"<{count}I", *map(len, datas[:count]))
        payload = b"".join((_BATCH_HEAD.pack(count, 0, 0), lengths, *datas[:count]))
        try:
            self._store_put(_BATCH, payload, [], deadline, True, at, count)
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

    def _send(
        self, item: Any, deadline: float | None, *, wait: bool, data: bytes | None = None
    ) -> None:
        """Send one item; ``data``: its pickle, when the caller has made it already."""
        kind, data, buffers = _dumps(item) if data is None else (_PICKLED, data, [])
        w = self._w
        at = self._slot() + 2
        before = w[at]
        capacity = self._capacity_value
        self._reserve(at, capacity, deadline, wait)
        try:
            small = kind == _PICKLED and not buffers and len(data) <= PACKET
            if (
                small
                and capacity != 0
                and not w[_SPILLED]
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
                if not wait or capacity < 0 or capacity > self._w[_PIPE_PACKETS]:
                    return False
            left = remaining(deadline)
            if left == 0:
                raise ChannelTimeout(f"send timed out: channel {self.name!r} stayed full")
            if left is None or left > SLICE_SECONDS:
                left = SLICE_SECONDS
            poller = _select_module.poll()
            poller.register(wfd, _select_module.POLLOUT)
            poller.poll(max(1, int(left * 1000 + 0.999)))
            if self._w[_CLOSED]:
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
        while True:
            w[mark] += 1
            total = self._inc(_SENT, 1) + 1
            if w[_CLOSED]:
                self._give_back(mark, 1)
                raise ChannelClosed(f"send on closed channel {self.name!r}")
            if capacity <= 0 or total - w[_RECEIVED] <= capacity:
                return
            self._inc(_SENT, -1)
            w[mark] -= 1
            if not wait:
                raise ChannelFull(f"channel {self.name!r} is full ({capacity} items)")
            self._wait_room(capacity, deadline)

    def _give_back(self, mark: int, n: int) -> None:
        """Take back ``n`` items this thread counted and did not deliver: the count first,
        then the mark (a kill in between errs toward room, never toward a channel that
        stays full)."""
        self._inc(_SENT, -n)
        self._w[mark] -= n
        if self._w[_SPACE_WAITERS]:
            self._wake(_Q_ROOM)

    def _wait_room(self, capacity: int, deadline: float | None) -> None:
        """Sleep until the item count may be below ``capacity``, or raise on timeout/close."""
        w = self._w
        m = self._m
        woken = True
        self._inc(_SPACE_WAITERS, 1)
        try:
            m.enter()
            try:
                if w[_SENT] - w[_RECEIVED] >= capacity and not w[_CLOSED]:
                    if remaining(deadline) == 0:
                        raise ChannelTimeout(f"send timed out: channel {self.name!r} stayed full")
                    woken = m.wait(_Q_ROOM, deadline)
            finally:
                m.exit()
        finally:
            self._inc(_SPACE_WAITERS, -1)
        if w[_CLOSED]:
            raise ChannelClosed(f"channel {self.name!r} was closed while send waited")
        if not woken:  # a whole slice without room: discount senders that died mid-send
            self._scan_slots()[0]

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
        if kind != _PICKLED:
            payload_size = len(data)
        else:
            payload_size = _PAYLOAD.size + 8 * len(views) + len(data) + sum(v.nbytes for v in views)
        size = _align(_ENTRY.size + payload_size)
        store_size = self._store_size
        if size > store_size:
            raise ValueError(
                f"an item of {payload_size} bytes does not fit the channel's shared memory "
                f"({store_size} bytes); make the channel with a larger shared_memory_size"
            )
        w = self._w
        m = self._m
        rendezvous = self._capacity_value == 0
        m.enter()
        try:
            if rendezvous and not wait and self._scan_slots(locked=True)[1] <= w[_SPILLED]:
                raise ChannelFull(f"no receiver is waiting on rendezvous {self.name!r}")
            while True:
                if w[_CLOSED]:
                    raise ChannelClosed(f"send on closed channel {self.name!r}")
                at = self._allocate(size, store_size)
                if at >= 0:
                    break
                if not wait:
                    raise ChannelFull(f"the shared memory of channel {self.name!r} is full")
                if remaining(deadline) == 0:
                    raise ChannelTimeout(f"send timed out: channel {self.name!r} stayed full")
                m.wait(_Q_STORE, deadline)
            ack = -1
            if rendezvous and wait:
                ack = self._claim_ack(int(w[_PUT_SEQ]), mark)
            buf = self._buf
            pos = at + _ENTRY.size
            if kind != _PICKLED:
                buf[pos : pos + len(data)] = data
            else:
                _PAYLOAD.pack_into(buf, pos, len(data), len(views))
                pos += _PAYLOAD.size
                for v in views:
                    struct.pack_into("<Q", buf, pos, v.nbytes)
                    pos += 8
                buf[pos : pos + len(data)] = data
                pos += len(data)
                for v in views:
                    buf[pos : pos + v.nbytes] = v.cast("B")
                    pos += v.nbytes
            state = _OFFER if ack >= 0 else _READY
            _ENTRY.pack_into(buf, at, size, state, kind, max(ack, 0), payload_size, w[_PUT_SEQ])
            w[_PUT_SEQ] += 1
            w[_HEAD] = at + size  # published: the entry is complete
            w[_ENTRIES] += 1
            w[mark] -= items  # landed
            self._spilled(items)  # the bell rings: sleeping receivers wake
            if ack >= 0:
                self._await_ack(at, ack, deadline)
        finally:
            m.exit()

    def _allocate(self, size: int, store_size: int) -> int:
        """Under the mutex: where an entry of ``size`` bytes goes, or -1 if it does not fit.

        The ring's used part runs from the tail to the head, wrapping at the end of the store;
        ``head == tail`` means empty or full, told apart by the entry count.
        """
        w = self._w
        if w[_ENTRIES] == 0:
            w[_HEAD] = w[_TAIL] = 0
            return 0
        head, tail = int(w[_HEAD]), int(w[_TAIL])
        if not (0 <= head <= store_size and 0 <= tail <= store_size) or (head | tail) & 7:
            raise self._corrupt(f"its ring runs from {tail} to {head} in {store_size} bytes")
        if head > tail:
            if store_size - head >= size:
                return head
            if tail >= size:  # wrap: mark the end, start again at 0
                if store_size - head >= _ENTRY.size:
                    _ENTRY.pack_into(self._buf, head, 0, _WRAP, 0, 0, 0, 0)
                w[_HEAD] = 0
                return 0
            return -1
        if tail - head >= size:
            return head
        return -1

    def _claim_ack(self, number: int, mark: int) -> int:
        """Under the mutex: an acknowledgement word for the offer entry ``number`` made by
        the thread whose in-flight mark is ``mark``.

        The word holds the entry's number, the sender's thread slot and a state (1: offered,
        2: taken); 0 is free. A receiver marks it taken only if it still names the entry it
        took, and frees it instead if that sender is dead; reaping a dead thread's slot frees
        its words too. So a sender killed while its offer waits leaks no word, and a word used
        again is never taken for the old offer.
        """
        w = self._w
        owner = (mark - 2 - _SLOTS_AT) // _SLOT_WORDS
        for i in range(SLOTS):
            if w[_ACKS_AT + i] == 0:
                w[_ACKS_AT + i] = _ack_word(number, owner, 1)
                return i
        raise RuntimeError(f"more than {SLOTS} rendezvous sends wait on {self.name!r}")

    def _acknowledge(self, ack: int, number: int) -> None:
        """Under the mutex: tell the sender of offer ``number`` that it was taken; if that
        sender died, free its word instead (nobody else would)."""
        w = self._w
        word = int(w[_ACKS_AT + ack])
        if word >> 10 != number or word & 3 != 1:
            return  # its sender died and was reaped: the word is free, or someone else's
        owner = _SLOTS_AT + _SLOT_WORDS * ((word >> 2) & 0xFF)
        if thread_alive(int(w[owner]), int(w[owner + 1])):
            w[_ACKS_AT + ack] = word + 1  # taken
            self._m.wake_all(_Q_ACK)
        else:
            w[_ACKS_AT + ack] = 0

    def _await_ack(self, at: int, ack: int, deadline: float | None) -> None:
        """Under the mutex: sleep until a receiver takes the offer, or take it back.

        An offer taken back is no longer counted as sent (under the same mutex hold); one
        whose sender dies while it waits stays whole in the store, counted, and may still
        be taken.
        """
        w = self._w
        m = self._m
        word = _ACKS_AT + ack
        try:
            while w[word] & 3 != 2 and not w[_CLOSED] and remaining(deadline) != 0:
                m.wait(_Q_ACK, deadline)
        finally:
            taken = w[word] & 3 == 2
            w[word] = 0
            if not taken:
                struct.pack_into("<H", self._buf, at + 8, _RETRACTED)  # the entry's state
                self._spilled(-1)
                self._inc(_SENT, -1)
        if taken:
            return
        if w[_CLOSED]:
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
        try:
            data = os.read(self._rfd, PACKET)
        except BlockingIOError:
            return self._recv_wait(timeout)  # type: ignore[no-any-return]
        atomics.add(self._p_received, 1)  # the fast path: one packet from the pipe
        if self._w[_SPACE_WAITERS]:
            self._wake(_Q_ROOM)
        try:
            return _loads(data)  # type: ignore[no-any-return]
        except Exception as exc:
            raise self._unpickling_error(exc) from exc

    def _recv_wait(self, timeout: float | None) -> Any:
        """The slow path of :meth:`recv`: the store, a short spin, then sleep in ``poll``."""
        deadline = deadline_after(timeout)
        if timeout != 0:
            # A busy sender is usually about to write: a few cheap looks (poll with no wait:
            # no exception raised, and no pipe lock taken that the sender needs) with a yield
            # between cost less than falling asleep and being woken.
            look = _select_module.poll()
            look.register(self._rfd, _select_module.POLLIN)
            look.register(self._bell_r, _select_module.POLLIN)
            for _ in range(_SPINS):
                if look.poll(0):
                    item = self._take()
                    if item is not _NOTHING:
                        return item
                    if self._w[_CLOSED]:
                        break  # the bell rings for good: sleep in slices below
                os.sched_yield()
        w = self._w
        self._asleep(1)
        try:
            while True:
                item = self._take()
                if item is not _NOTHING:
                    return item
                closed = w[_CLOSED]
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
                self._sleep(closed, left)
        finally:
            self._asleep(-1)

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
        read = os.read
        rfd = self._rfd
        try:
            while len(packets) < limit:
                packets.append((_PICKLED, read(rfd, PACKET), None))
        except BlockingIOError:
            pass
        if packets:
            atomics.add(self._p_received, len(packets))
        items = self._decode_all(packets)
        while len(items) < limit and w[_SPILLED]:
            taken = self._store_take(limit - len(items))
            if not taken:
                break
            items.extend(taken)
        if items and w[_SPACE_WAITERS]:
            self._wake(_Q_ROOM)
        return items

    def _decode_all(self, raw: list[tuple[int, Any, Any]]) -> list[Any]:
        """Rebuild taken items from their bytes (after the mutex is released).

        ``raw`` holds ``(kind, bytes, buffers or batch lengths)``. Taken items are never
        dropped: if one fails to unpickle, the items before it are returned, and the error
        and the items after it wait in this handle's backlog for the next receive.
        """
        items: list[Any] = []
        failed: list[Any] | None = None
        for kind, data, extra in raw:
            if kind == _BATCH:
                view = memoryview(data)
                parts = []
                at = 0
                for length in extra:
                    parts.append((_PICKLED, view[at : at + length], None))
                    at += length
            else:
                parts = [(kind, data, extra)]
            for part_kind, part, buffers in parts:
                item: Any
                if part_kind == _RAW_BYTES:
                    item = part
                else:
                    try:
                        item = _loads(part, buffers=buffers)
                    except Exception as exc:
                        item = _Failed(self._unpickling_error(exc))
                        if failed is None:
                            failed = []
                if failed is None:
                    items.append(item)
                else:
                    failed.append(item)
        if failed:
            self._backlog = deque(failed)
            if not items:
                items.append(self._from_backlog())
        return items

    def _from_backlog(self) -> Any:
        """The next item kept back after an unpickling failure (raising that failure)."""
        assert self._backlog
        item = self._backlog.popleft()
        if type(item) is _Failed:
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
        if self._w[_CLOSED] and self._drained():
            item = self._take()  # a send that landed while we looked
            if item is not _NOTHING:
                return item  # type: ignore[no-any-return]
            raise ChannelClosed(f"channel {self.name!r} is closed and drained")
        raise ChannelEmpty(f"channel {self.name!r} is empty")

    def _drained(self) -> bool:
        """After close: no send in flight, and nothing left in the pipe or the store."""
        atomics.add(self._p_sent, 0)  # a full fence: CLOSED was read before
        return self._scan_slots()[0] == 0 and not self._w[_SPILLED]

    def _take(self) -> Any:
        """Take one item (pipe first, then store) without waiting, or return ``_NOTHING``.

        An item is counted as received just after it is taken (a receiver killed in between
        lets one more item in than the capacity; an early count could let it in for good).
        """
        if self._backlog:
            return self._from_backlog()
        try:
            data = os.read(self._rfd, PACKET)
        except BlockingIOError:
            if not self._w[_SPILLED]:
                return _NOTHING
            taken = self._store_take(1)
            if not taken:
                return _NOTHING
            if self._w[_SPACE_WAITERS]:
                self._wake(_Q_ROOM)
            return taken[0]
        atomics.add(self._p_received, 1)
        if self._w[_SPACE_WAITERS]:
            self._wake(_Q_ROOM)
        return self._unpickle(data)

    def _store_take(self, limit: int) -> list[Any]:
        """Take up to ``limit`` items from the store (or a packet that raced into the pipe,
        which is older than anything in the store); ``[]`` if there were none.

        The bytes are copied out and counted under the mutex, and unpickled after it. Every
        offset and length read from the shared memory is checked before it is used: the
        segment is writable by any process of this user, so a bad value raises (see
        :meth:`_corrupt`) rather than reading past an entry or returning stale bytes.
        """
        w = self._w
        m = self._m
        buf = self._buf
        store_size = self._store_size
        raw: list[tuple[int, Any, Any]] = []  # (kind, bytes, buffers or batch lengths)
        m.enter()
        try:
            try:  # re-read the pipe: it holds older items than the store
                raw.append((_PICKLED, os.read(self._rfd, PACKET), None))
                atomics.add(self._p_received, 1)
                limit = 0
            except BlockingIOError:
                pass
            taken = 0
            while w[_ENTRIES] and taken < limit:
                at, head = int(w[_TAIL]), int(w[_HEAD])
                if not (0 <= at <= store_size and 0 <= head <= store_size) or (at | head) & 7:
                    raise self._corrupt(f"its ring runs from {at} to {head} in {store_size} bytes")
                if at + _ENTRY.size > store_size or _ENTRY.unpack_from(buf, at)[1] == _WRAP:
                    if at < head or at == 0:  # the end is marked only when the ring wraps
                        raise self._corrupt(f"a wrap at offset {at}, with the head at {head}")
                    w[_TAIL] = 0
                    continue
                size, state, kind, ack, length, seq = _ENTRY.unpack_from(buf, at)
                if (
                    seq != w[_TAKE_SEQ]
                    or state not in _STATES
                    or kind not in _KINDS
                    or ack >= SLOTS
                    or size != _align(_ENTRY.size + length)
                    or at + size > store_size
                    or at < head < at + size
                ):
                    raise self._corrupt(
                        f"the entry at offset {at} (size {size}, payload {length} bytes, "
                        f"state {state}, kind {kind}, number {seq}) is not the next one it "
                        f"wrote (number {w[_TAKE_SEQ]})"
                    )
                pos = at + _ENTRY.size
                done = True
                if state == _RETRACTED:
                    pass
                elif kind == _BATCH:
                    done, n = self._take_from_batch(pos, length, limit - taken, raw)
                    taken += n
                else:
                    # Copied first: a receiver killed while copying leaves the item in place.
                    raw.append(self._copy_entry(pos, length, kind))
                if done:
                    w[_TAIL] = at + size
                    w[_ENTRIES] -= 1
                    w[_TAKE_SEQ] += 1
                if state != _RETRACTED and kind != _BATCH:
                    atomics.add(self._p_received, 1)
                    self._spilled(-1)
                    taken += 1
                    if state == _OFFER:
                        self._acknowledge(ack, seq)
            if w[_ENTRIES] == 0:
                w[_HEAD] = w[_TAIL] = 0
            if taken and m.waiters(_Q_STORE):
                m.wake_all(_Q_STORE)
        finally:
            m.exit()
        return self._decode_all(raw)

    def _take_from_batch(
        self, pos: int, length: int, limit: int, raw: list[tuple[int, Any, Any]]
    ) -> tuple[bool, int]:
        """Under the mutex: take up to ``limit`` items of the batch entry of ``length`` bytes
        at ``pos`` into ``raw``; return whether the entry is used up, and how many were taken.

        A batch is its head (items, items taken, offset of the next), a table of lengths,
        then the items' pickles back to back: the lengths must add up to the rest exactly.
        """
        buf = self._buf
        if length < _BATCH_HEAD.size:
            raise self._corrupt(f"a batch entry of {length} bytes at offset {pos}")
        count, taken, offset = _BATCH_HEAD.unpack_from(buf, pos)
        table = _BATCH_HEAD.size + 4 * count
        if not 0 <= taken < count or table > length:
            raise self._corrupt(f"a batch at offset {pos} of {count} items, {taken} taken")
        lengths = struct.unpack_from(f"<{count}I", buf, pos + _BATCH_HEAD.size)
        before = table + sum(lengths[:taken])
        if table + sum(lengths) != length or offset != (before if taken else 0):
            raise self._corrupt(f"the lengths of the batch at offset {pos} do not add up")
        n = min(count - taken, limit)
        mine = lengths[taken : taken + n]
        start = pos + before
        end = start + sum(mine)
        raw.append((_BATCH, bytes(buf[start:end]), mine))
        _BATCH_HEAD.pack_into(buf, pos, count, taken + n, end - pos)
        self._inc(_RECEIVED, n)
        self._spilled(-n)
        return taken + n == count, n

    def _copy_entry(self, pos: int, length: int, kind: int) -> tuple[int, Any, Any]:
        """Under the mutex: copy one item's ``length`` payload bytes out of the store.

        A raw ``bytes`` item is its payload, exactly; a pickled one is its pickle's length
        and its buffers' lengths, then the pickle and the buffers, adding up to ``length``.
        """
        buf = self._buf
        if kind == _RAW_BYTES:
            return kind, bytes(buf[pos : pos + length]), None
        end = pos + length
        if length < _PAYLOAD.size:
            raise self._corrupt(f"an item of {length} bytes at offset {pos}")
        size, count = _PAYLOAD.unpack_from(buf, pos)
        pos += _PAYLOAD.size
        if 8 * count > end - pos:
            raise self._corrupt(f"an item at offset {pos} with {count} buffers")
        sizes = struct.unpack_from(f"<{count}Q", buf, pos)
        pos += 8 * count
        if size + sum(sizes) != end - pos:
            raise self._corrupt(f"the lengths of the item at offset {pos} do not add up")
        data = bytes(buf[pos : pos + size])
        pos += size
        buffers = []
        for n in sizes:
            buffers.append(bytearray(buf[pos : pos + n]))
            pos += n
        return kind, data, buffers

    def _corrupt(self, what: str) -> SharedMemoryCorruptError:
        """The error for a value in the channel's shared memory that it could not have
        written (another process of this user wrote over it, or memory was damaged)."""
        return SharedMemoryCorruptError(
            f"the shared memory of ProcessChannel {self.name!r} is corrupt: {what}; the "
            f"channel cannot be used safely any more"
        )

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
            if not w[_CLOSED]:
                w[_CLOSED] = 1
                os.write(self._bell_w, b"c")  # the bell stays readable: sleepers wake
            m.wake_all(_Q_ROOM)
            m.wake_all(_Q_STORE)
            m.wake_all(_Q_ACK)
        finally:
            m.exit()

    def statistics(self) -> ChannelStatistics:
        """The channel's counters now (see :class:`~concurrency_kit.ChannelStatistics`)."""
        w = self._w
        sent, received = int(w[_SENT]), int(w[_RECEIVED])
        return ChannelStatistics(
            capacity=self.capacity,
            queued=max(sent - received, 0),
            sent=sent,
            received=received,
            closed=bool(w[_CLOSED]),
        )

    def _select_arm(self, waker: Any) -> tuple[int, ...]:
        self._asleep(1)
        return (self._rfd,) if self._w[_CLOSED] else (self._rfd, self._bell_r)

    def _select_disarm(self, waker: Any) -> None:
        self._asleep(-1)


def _attach(
    segment_name: str,
    store_name: str,
    origin: tuple[int, tuple[int, ...], tuple[int, int]],
    name: str,
) -> ProcessChannel[Any]:
    """Unpickle a handle: map the segments, open the pipes through the creator's /proc."""
    try:
        monitor = ProcessMonitor.attach(segment_name, _KIND, _State)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"ProcessChannel {name!r} no longer exists: its creator released it or exited"
        ) from None
    try:
        store_size = int(monitor.state.words[_STORE_SIZE])
        if store_size < _MIN_STORE:  # read from shared memory: checked before it is used
            raise SharedMemoryCorruptError(
                f"the shared memory of ProcessChannel {name!r} is corrupt: it says its store "
                f"holds {store_size} bytes"
            )
        store = shm.attach(store_name, store_size)
    except BaseException as exc:
        monitor.segment.close()
        if isinstance(exc, FileNotFoundError):
            raise FileNotFoundError(
                f"ProcessChannel {name!r} no longer exists: its creator released it or exited"
            ) from None
        raise
    pid, fds, (pipe_inode, bell_inode) = origin
    mine: list[int] = []
    try:
        if pid == os.getpid():
            mine.extend(os.dup(fd) for fd in fds)
        else:
            for fd, inode, flags in zip(
                fds,
                (pipe_inode, pipe_inode, bell_inode, bell_inode),
                (os.O_RDONLY, os.O_WRONLY, os.O_RDONLY, os.O_WRONLY),
                strict=True,
            ):
                mine.append(_open_pipe_end(pid, fd, inode, flags))
            # Packet mode belongs to the open file description: set it on our writing end.
            flags = fcntl.fcntl(mine[1], fcntl.F_GETFL)
            fcntl.fcntl(mine[1], fcntl.F_SETFL, flags | os.O_DIRECT)
    except BaseException:
        for fd in mine:
            os.close(fd)
        store.close()
        monitor.segment.close()
        raise
    channel: ProcessChannel[Any] = ProcessChannel.__new__(ProcessChannel)
    channel._setup(monitor, store, tuple(mine), origin, name)
    return channel

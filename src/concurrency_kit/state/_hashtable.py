"""The engine of ``ProcessSharedDict``: a hash table of bytes in one shared-memory segment.

Several processes use the table at once, without a server: every change takes the table's
robust process-shared mutex (``_core/mutex.py``), writes the segment through :mod:`ctypes`
views, and lets go. Keys and values arrive already pickled; the caller hashes the key bytes
with :func:`key_hash` (CRC-32: the same in every process, unlike :func:`hash`, and about 70 ns
against 450 ns for an 8-byte BLAKE2b of a short key; only 27 of its bits are used)::

    offset           area      what
    0                header    robust recursive mutex (64 B), then 8-byte words: magic,
                               root, version, arena area size A, recoveries, repairs,
                               bytes committed in each of the four areas,
                               and per index area: top, limit, count, used
    PAGE             index 0   ┐ open addressing, linear probing; one 8-byte word a slot:
    PAGE + A/2       index 1   ┘ 0 empty | 1 << 63 deleted | tag (27 bits) << 36 | offset / 8
    PAGE + A         arena 0   ┐ records appended at ``top`` (8-aligned):
    PAGE + 2A        arena 1   ┘ [klen | vlen << 32] [key bytes] [value bytes]

    root word = dirty << 63 | generation << 16 | arena area << 9 | index area << 8 | log2(slots)

Growth without remapping: the segment's file is sparse (``ftruncate``, ``A`` is half the size
of ``/dev/shm``) and mapped whole in every process, so the table never moves; tmpfs allocates
a page only when it is touched. Before any byte of an area is used, :func:`_commit` allocates
its pages with ``madvise(MADV_POPULATE_WRITE)`` (``posix_fallocate`` on the file before Linux
5.14), which *fails* when ``/dev/shm`` is full: :exc:`SharedMemoryFullError` (a :exc:`MemoryError`)
and the table unchanged, where touching an unallocated page would kill the process with
``SIGBUS``. When 70% of the slots are taken, or the arena is full, a *rebuild* writes a new
index into the other index area (twice the slots), and if half the arena is garbage (records
overwritten or deleted) copies the live records, compacted, into the other arena area; then
one store of the root word publishes it. The areas left idle are given back with
``madvise(MADV_REMOVE)``, but for :data:`_KEEP` bytes each, reused by the next rebuild.

Crash safety: a process may die at any instruction (SIGKILL). Every change is written where
nothing refers to it yet, then published by one aligned 8-byte store (``ctypes`` stores a
``c_uint64`` with ``memcpy``: one ``mov``): a record is written above ``top``, ``top`` is
raised, then the slot word is stored; a rebuild is invisible until the root word switches;
pages are committed before an area's committed size says so. All a death can leave wrong is
derived: the counts (``count``, ``used``) and pages not yet given back. The next locker gets
``EOWNERDEAD`` from the robust mutex, counts the recovery, and marks the root dirty; the next
operation *repairs*: recounts from the index and gives back idle pages. An exception inside a
change (a ``KeyboardInterrupt`` from a signal handler) marks the root dirty the same way.
Tests kill a writer at every store of a sequence of growing sets.

Reads: each handle keeps a small cache of what it read (``_CACHE_ENTRIES``), valid while the
header's version word is unchanged; every change bumps the version (before its publishing
store), so a read that finds the version unchanged is served without the mutex: one word read
and a dict lookup. Otherwise it takes the mutex, reads, and refills the cache. The version is
read with a plain load: on x86-64 (TSO) a change is seen as soon as the ``set`` that made it
has returned; on aarch64, as soon as the store reaches the reader's core, which anything that
orders the two processes (a pipe, a lock) implies.

Trust: the segment is this user's (``shm.attach`` checks the owner and the mode), but its
bytes are read as data, never trusted as addresses. Every length and offset read from the
table is checked before it is used: a root word must describe a geometry that fits the
reservation, a slot must point at a record inside the current arena (below its ``top``), and
a record's lengths must keep it there and, in a walk over every record (``items``, ``keys``,
a rebuild), clear of the next one. A table that fails a check raises
:exc:`SharedMemoryCorruptError`: never a read out of bounds, and never another entry's bytes as
this one's.

Speed: the table's logic is Python on :mod:`ctypes` views: a ``c_uint64`` array over the
whole segment (one index operation reads a word, ~25 ns), ``c_char`` slices for payloads (one
``bytes`` copy); the mutex is taken with the compiled ``pthread_mutex_trylock`` of
``_core/mutex.py`` (no GIL release for a call that cannot block). A busy mutex is retried a
few times, then waited for with the GIL released, in slices (``mutex.acquire``).
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import sys
import threading
import weakref
import zlib
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import attrs

from concurrency_kit._core import _native, mutex, registry, shm
from concurrency_kit._core.handles import Closed
from concurrency_kit._core.mutex import EOWNERDEAD, ETIMEDOUT
from concurrency_kit.errors import SharedMemoryCorruptError, SharedMemoryFullError

__all__ = ["SharedHashTable", "TableStatistics", "key_hash"]

# Never block: the cheapest calls, made on every operation's hot path.
_trylock: Final = mutex.trylock
_unlock: Final = mutex.unlock

key_hash: Final = zlib.crc32
"""The hash of a key's bytes the table expects: deterministic in every process (CRC-32)."""

_MAGIC: Final = 0x314854534B43  # "CKSTH1"
_PAGE: Final = mmap.PAGESIZE

# Header words (8-byte units from the start of the segment); the mutex is words 0-7.
_W_MAGIC: Final = 8
_W_ROOT: Final = 9  # the root word; bit 63: dirty (a change was interrupted: repair first)
_W_VERSION: Final = 10  # bumped by every change: validates the handles' read caches
_W_ARENA_SIZE: Final = 11
_W_RECOVERIES: Final = 12
_W_REPAIRS: Final = 13
_W_COMMITTED: Final = 16  # 4 words: bytes committed in index 0, index 1, arena 0, arena 1
_W_GEN: Final = 24  # 2 x 4 words, one set per index area: top, limit, count, used
_TOP, _LIMIT, _COUNT, _USED = 0, 1, 2, 3
_DIRTY: Final = 1 << 63

# Slot words.
_OFF_BITS: Final = 36
_OFF_MASK: Final = (1 << _OFF_BITS) - 1
_TAG_MASK: Final = (1 << 27) - 1
_TOMB: Final = 1 << 63
_LOW32: Final = 0xFFFFFFFF

_MAX_LOAD: Final = 0.7
_MIN_SLOTS: Final = 16
_MIN_ARENA: Final = 64 * 1024
_KEEP: Final = 256 * 1024  # an idle area keeps this much committed, for the next rebuild
_MIN_AREA: Final = 1 << 20
_MAX_AREA: Final = 1 << 37  # offsets are 36 bits of 8-byte units: 512 GiB of segment
_SPIN: Final = 200  # trylock attempts (~20 us) before sleeping on a busy mutex

_CACHE_ENTRIES: Final = 2048  # a handle's read cache holds at most this many keys ...
_CACHE_VALUE_BYTES: Final = 4096  # ... of values at most this long
_ABSENT: Final = b""  # in a read cache: the key is not in the table (a value is never empty)
_BYTEORDER: Final = sys.byteorder  # records are read as native c_uint64 words

_MADV_REMOVE: Final = 9
_MADV_POPULATE_WRITE: Final = 23


def _corrupt(name: str, what: str) -> SharedMemoryCorruptError:
    return SharedMemoryCorruptError(
        f"the shared dict {name} is corrupt: {what} (something other than concurrency_kit "
        "wrote into its shared memory); recreate it"
    )


@attrs.frozen
class TableStatistics:
    """A snapshot of a table's shape and history.

    Attributes:
        count: live entries.
        slots: slots in the index.
        used_slots: slots that are not empty (live entries and deletion markers).
        arena_bytes: bytes of records in the arena, live and garbage.
        garbage_bytes: bytes of overwritten and deleted records, reclaimed by the next
            compaction.
        committed_bytes: bytes of shared memory allocated to the table now.
        reserved_bytes: the size of the reservation (address space, not memory).
        rebuilds: times the index was rebuilt (growth, compaction, :meth:`clear`).
        mutex_recoveries: times a process died holding the table's mutex and the next user
            took it over.
        repairs: times the counts were recomputed after an interrupted change.
    """

    count: int
    slots: int
    used_slots: int
    arena_bytes: int
    garbage_bytes: int
    committed_bytes: int
    reserved_bytes: int
    rebuilds: int
    mutex_recoveries: int
    repairs: int


# -- memory: commit and give back pages --------------------------------------------------------


_populate_supported = True


def _madvise(address: int, length: int, advice: int) -> int:
    """``madvise``; returns 0 or the error number."""
    return _native.advise(address, length, advice) or 0


def _commit(base: int, segment: shm.Segment, offset: int, length: int) -> None:
    """Allocate the pages of ``[offset, offset + length)`` of the segment mapped at ``base``.

    Raises:
        SharedMemoryFullError: ``/dev/shm`` has no room for them (nothing is left allocated).
    """
    global _populate_supported
    if length <= 0:
        return
    if _populate_supported:
        err = _madvise(base + offset, length, _MADV_POPULATE_WRITE)
        if err == 0:
            return
        if err == errno.EINVAL:  # Linux < 5.14: no MADV_POPULATE_WRITE
            _populate_supported = False
        else:
            _punch(base, offset, length)
            raise SharedMemoryFullError(
                f"shared memory exhausted: cannot allocate {length} more bytes for a shared "
                f"dict in {shm.SHM_DIR} ({os.strerror(err)})"
            )
    try:
        fd = segment.reopen()  # checked: never another file put under the name
    except FileNotFoundError:
        raise SharedMemoryFullError(
            "cannot grow the shared dict: its segment was removed (by its creator, or by hand) "
            "and this kernel has no MADV_POPULATE_WRITE (Linux 5.14)"
        ) from None
    try:
        os.posix_fallocate(fd, offset, length)
    except OSError as exc:
        _punch(base, offset, length)
        raise SharedMemoryFullError(
            f"shared memory exhausted: cannot allocate {length} more bytes for a shared dict "
            f"in {shm.SHM_DIR} ({exc.strerror})"
        ) from None
    finally:
        os.close(fd)


def _punch(base: int, offset: int, length: int) -> None:
    """Give the pages of ``[offset, offset + length)`` back to the system (they read zero)."""
    if length > 0:
        _madvise(base + offset, length, _MADV_REMOVE)  # failing only keeps memory allocated


def _round_page(n: int) -> int:
    return (n + _PAGE - 1) // _PAGE * _PAGE


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def _default_area_size() -> int:
    """The arena area size: half of ``/dev/shm`` (compaction copies), as a power of two."""
    try:
        st = os.statvfs(shm.SHM_DIR)
        total = st.f_blocks * st.f_frsize
    except OSError:  # pragma: no cover - no /dev/shm: shm.create fails anyway
        total = _MIN_AREA
    return min(_MAX_AREA, max(_MIN_AREA, _pow2_at_least(total) // 2))


def _segment_size(area: int) -> int:
    # header page, two index areas of area / 2 bytes, two arena areas of ``area`` bytes
    return _PAGE + 3 * area


# -- one mapping per segment per process -----------------------------------------------------


class _Mapping(registry.Mapping):
    """This process's mapping of one table, shared by every handle of it here (``registry``).

    Every handle reads through these views; a hot path keeps the mapping in a local variable
    for the duration of a call, so another thread's ``close`` cannot unmap it under the call.
    """

    __slots__ = ("area", "base", "buf", "mvb", "mvq", "words")

    def __init__(self, segment: shm.Segment, area: int) -> None:
        super().__init__(segment, 0)  # the mutex is the header's first field
        self.area = area
        buf = segment.buffer
        self.buf: Any = buf
        self.base = ctypes.addressof(buf)
        self.words: Any = (ctypes.c_uint64 * (segment.size // 8)).from_buffer(buf)
        self.mvb = memoryview(buf).cast("B")
        self.mvq = self.mvb.cast("Q")


_registry: registry.Registry[_Mapping] = registry.Registry()


def _forget(m: _Mapping, segment: shm.Segment | None) -> None:
    """The finalizer of a handle collected without :meth:`SharedHashTable.close`."""
    if segment is not None:
        segment.unlink()
    _registry.release(m)


_CLOSED: Any = Closed("the shared hash table")


_NO_CACHE: tuple[int, dict[bytes, bytes]] = (-1, {})


# -- the table ---------------------------------------------------------------------------------


class SharedHashTable:
    """A handle on a shared hash table of ``bytes`` keys and values (see the module docstring).

    Every method takes the table's mutex for its duration; :meth:`locked` (or
    :meth:`enter`/:meth:`exit`) holds it across several calls. The mutex is recursive: the
    holder may call any method. Handles are picklable: unpickling attaches by name.

    Attributes:
        name: the segment's name; :meth:`attach` takes it.
    """

    __slots__ = (
        "__weakref__",
        "_buf",
        "_cache",
        "_finalizer",
        "_geo",
        "_m",
        "_mvb",
        "_segment",
        "_words",
        "name",
    )

    def __init__(self, m: _Mapping, owner: bool) -> None:
        self._m: Any = m
        self._segment = m.segment if owner else None
        self.name = m.name
        self._buf = m.buf
        self._words = m.words
        self._mvb = m.mvb
        self._geo: tuple[int, ...] = (-1,)
        # (version, {key: value or _ABSENT}): what this handle read, valid while the table's
        # version word is unchanged (every change bumps it).
        self._cache: tuple[int, dict[bytes, bytes]] = _NO_CACHE
        # Collected without close(): let go of the mapping and, for the creator, the name.
        self._finalizer = weakref.finalize(self, _forget, m, self._segment)

    # -- lifecycle -----------------------------------------------------------------------------

    @classmethod
    def create(cls, initial_capacity: int = 8, *, max_bytes: int | None = None) -> SharedHashTable:
        """Create a new, empty table in a new segment; this handle owns its name.

        Args:
            initial_capacity: entries to make room for up front (the table grows anyway).
            max_bytes: bound the arena (the bytes of records) to about this much; by default
                the size of ``/dev/shm``.

        Raises:
            OSError: the segment could not be created.
            SharedMemoryFullError: ``/dev/shm`` has no room for the initial size.
        """
        if initial_capacity < 0:
            raise ValueError(f"initial_capacity must be >= 0, got {initial_capacity}")
        if max_bytes is None:
            area = _default_area_size()
        else:
            area = min(_MAX_AREA, max(_MIN_AREA, _pow2_at_least(max_bytes)))
        while True:
            try:
                segment = shm.create(_segment_size(area))
                break
            except OSError as exc:  # address space limited (ulimit -v): reserve less
                if exc.errno != errno.ENOMEM or area <= _MIN_AREA:
                    raise
                area //= 2
        try:
            m = _Mapping(segment, area)
            _commit(m.base, m.segment, 0, _PAGE)
            mutex.init(m.mutex_address, recursive=True)
            words = m.words
            words[_W_ARENA_SIZE] = area
            slots = max(_MIN_SLOTS, _pow2_at_least(int(initial_capacity / _MAX_LOAD * 1.5) + 1))
            slots = min(slots, area // 16)
            arena = _round_page(max(_MIN_ARENA, initial_capacity * 64))
            table = cls(m, owner=True)
            root = table._build(0, [], slots, 0, arena, None)
            words[_W_ROOT] = root
            words[_W_MAGIC] = _MAGIC  # last: the table is complete
        except BaseException:
            segment.unlink()
            raise
        _registry.add(m)
        return table

    @classmethod
    def attach(cls, name: str) -> SharedHashTable:
        """Map the existing table ``name`` in this process (never owns or unlinks it).

        Raises:
            FileNotFoundError: its creator removed it (closed it or exited).
            ValueError: ``name`` is not a shared hash table.
        """

        def attach() -> _Mapping:
            try:
                # The header page tells the size of the whole reservation.
                first = shm.attach(name, _PAGE)
                header = (ctypes.c_uint64 * 16).from_buffer(first.buffer)
                magic, area = int(header[_W_MAGIC]), int(header[_W_ARENA_SIZE])
                del header
                first.close()
                if magic != _MAGIC:
                    raise ValueError(f"segment {name!r} does not hold a shared hash table")
                if not (_MIN_AREA <= area <= _MAX_AREA and area & (area - 1) == 0):
                    raise _corrupt(name, f"its header gives an arena size of {area} bytes")
                segment = shm.attach(name, _segment_size(area))
            except FileNotFoundError:
                raise FileNotFoundError(
                    f"the shared dict {name!r} no longer exists: the process that created "
                    "it closed it or exited"
                ) from None
            return _Mapping(segment, area)

        m = _registry.open(name, attach)
        return cls(m, owner=False)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return SharedHashTable.attach, (self.name,)

    def close(self) -> None:
        """Let go of this handle (idempotent); the last handle of a process unmaps the table.

        This does not remove the table: the creator calls :meth:`unlink` for that.

        Raises:
            RuntimeError: the calling thread holds the table's mutex (inside :meth:`locked`).
        """
        m = self._m
        if m is not _CLOSED and mutex.holder(m.mutex_address) == threading.get_native_id():
            raise RuntimeError("cannot close a shared hash table while holding its lock")
        if self._finalizer.detach() is not None:
            m = self._m
            self._m = self._buf = self._words = self._mvb = _CLOSED
            self._cache = _NO_CACHE
            _registry.release(m)

    def unlink(self) -> None:
        """Remove the table's name, from the handle that created it only (idempotent).

        Processes that have the table mapped keep using it; no more can attach. Elsewhere (an
        attached handle, a forked copy of the creator) this does nothing.
        """
        if self._segment is not None:
            self._segment.unlink()  # checks the pid: a forked copy is no creator

    @property
    def closed(self) -> bool:
        return self._m is _CLOSED

    # -- the mutex -----------------------------------------------------------------------------
    # Every method keeps the mapping in a local variable (``m``) while it uses the mutex: a
    # closed handle's ``_m`` raises on ``mutex_address``, and a running call keeps the memory
    # mapped.

    def enter(self) -> None:
        """Take the table's mutex (recursive); recover it if its holder died."""
        # An exception raised as the trylock call returns (a signal handler's) would leave the
        # mutex taken, as with ``threading.Lock.acquire``; the hot paths take it inside their
        # ``try`` instead.
        m = self._m
        rc = mutex.trylock(m.mutex_address)
        if rc:
            self._acquire_slow(m, rc)

    def acquire(self, deadline: float | None) -> bool:
        """Take the table's mutex (recursive) if it comes free by ``deadline``; whether taken.

        Args:
            deadline: a :func:`time.monotonic` time, or ``None`` to wait as long as it takes.
        """
        m = self._m
        rc = mutex.trylock(m.mutex_address)
        if rc:
            return self._acquire_slow(m, rc, deadline)
        return True

    def exit(self) -> None:
        """Release the table's mutex once.

        Raises:
            RuntimeError: the calling thread does not hold it.
            ValueError: the handle is closed.
        """
        m = self._m
        rc = mutex.unlock(m.mutex_address)
        if rc:
            raise RuntimeError(
                f"the shared hash table's mutex is not held by this thread ({os.strerror(rc)})"
            )

    @contextmanager
    def locked(self) -> Iterator[SharedHashTable]:
        """Hold the mutex across a block (re-entrant: the holder may call every method)."""
        self.enter()
        try:
            yield self
        finally:
            self.exit()

    def _acquire_slow(self, m: _Mapping, rc: int, deadline: float | None = None) -> bool:
        """Finish taking the mutex after a first ``trylock`` returned ``rc`` (not 0).

        Returns whether the mutex was taken by ``deadline`` (a :func:`time.monotonic` time;
        ``None``: wait as long as it takes, and the answer is ``True``). On an exception (a
        signal handler's, say) the mutex is not held when this returns.
        """
        address = m.mutex_address
        words = m.words
        if rc != EOWNERDEAD:
            deadline_ns = None if deadline is None else int(deadline * 1e9)
            rc = mutex.acquire(
                address, deadline_ns, spin=_SPIN, interrupted=lambda: self._mark_dirty(words)
            )
            if rc == ETIMEDOUT:
                return False  # not taken: nothing to undo
        if rc == EOWNERDEAD:
            try:
                words[_W_RECOVERIES] += 1
                self._mark_dirty(words)  # the holder may have died inside a change
            finally:
                mutex.consistent(address)
        return True

    @staticmethod
    def _mark_dirty(words: Any) -> None:
        """Under the mutex: make the next operation repair the table before using it."""
        words[_W_VERSION] += 1  # no read cache may outlive a change it did not see
        words[_W_ROOT] |= _DIRTY

    # -- geometry ------------------------------------------------------------------------------

    def _refresh(self, root: int) -> tuple[int, ...]:
        """The geometry for the root word ``root``, repairing the table first if it is dirty."""
        if root & _DIRTY:
            self._repair()
            root = self._words[_W_ROOT]
        return self._load(root)

    def _load(self, root: int) -> tuple[int, ...]:
        """The geometry of generation ``root`` (a clean root word), cached in ``_geo``.

        Raises:
            SharedMemoryCorruptError: the root word does not describe a geometry that fits.
        """
        area = self._m.area
        index_area = (root >> 8) & 1
        arena_area = (root >> 9) & 1
        log2 = root & 0xFF
        if (root >> 10) & 0x3F or not 4 <= log2 <= (area // 16).bit_length() - 1:
            raise _corrupt(self.name, f"its root word {root:#x} gives no valid geometry")
        slots = 1 << log2
        arena_start = _PAGE + area + arena_area * area
        gen = _W_GEN + 4 * index_area
        words = self._words
        if not arena_start <= words[gen + _TOP] <= words[gen + _LIMIT] <= arena_start + area:
            raise _corrupt(self.name, "the top of its arena is outside the arena")
        geo = (
            root,
            (_PAGE + index_area * (area // 2)) >> 3,  # 1: word of the first slot
            slots - 1,  # 2: slot mask
            _W_GEN + 4 * index_area,  # 3: word of the generation's counters
            arena_start,  # 4: arena start (bytes)
            int(slots * _MAX_LOAD),  # 5: used slots that trigger a rebuild
            index_area,  # 6
            arena_area,  # 7
            arena_start + area,  # 8: arena end (bytes)
        )
        self._geo = geo
        return geo

    def _current(self) -> tuple[int, ...]:
        """The geometry of the current generation (under the mutex)."""
        root = self._words[_W_ROOT]
        geo = self._geo
        return geo if geo[0] == root else self._refresh(root)

    # -- reads ---------------------------------------------------------------------------------

    def get(self, key: bytes, h: int) -> bytes | None:
        """The value stored for ``key`` (whose :func:`key_hash` is ``h``), or ``None``."""
        cache = self._cache
        if self._words[10] == cache[0]:  # _W_VERSION: nothing changed since it was cached
            value = cache[1].get(key)
            if value is not None:
                return None if value is _ABSENT else value
        return self._get(key, h)

    def _get(self, key: bytes, h: int) -> bytes | None:
        """:meth:`get` under the mutex; remember the answer in the read cache."""
        m = self._m
        ptr = m.mutex_address
        try:
            # Inside the try: an exception raised as the call returns still unlocks.
            rc = _trylock(ptr)
            if rc:
                self._acquire_slow(m, rc)
            words = self._words
            root = words[9]  # _W_ROOT; literals on the hot paths: no global lookups
            geo = self._geo
            if geo[0] != root:
                geo = self._refresh(root)
            version = words[10]  # _W_VERSION
            ib = geo[1]
            mask = geo[2]
            tag = (h >> 5) & 0x7FFFFFF  # _TAG_MASK
            i = start = tag & mask
            value = _ABSENT
            while True:
                w = words[ib + i]
                if not w:
                    break
                if w >> 36 == tag:  # never a deletion marker: its "tag" is 1 << 27
                    a, b, end = self._record(geo, w)
                    buf = self._buf
                    if buf[a:b] == key:
                        value = buf[b:end]
                        break
                i = (i + 1) & mask
                if i == start:
                    raise _corrupt(self.name, "its index has no empty slot")
        finally:
            _unlock(ptr)
        if len(value) <= _CACHE_VALUE_BYTES:
            cache = self._cache
            if cache[0] == version and len(cache[1]) < _CACHE_ENTRIES:
                cache[1][key] = value
            else:
                self._cache = (version, {key: value})
        return None if value is _ABSENT else value

    def _record(self, geo: tuple[int, ...], w: int) -> tuple[int, int, int]:
        """Where the record of slot word ``w`` keeps its key (``[a, b)``) and value (``[b, end)``).

        Raises:
            SharedMemoryCorruptError: the slot or the record's lengths point outside the arena.
        """
        words = self._words
        off = w & 0xFFFFFFFFF  # _OFF_MASK
        a = (off + 1) << 3
        top = words[geo[3]]  # + _TOP
        if off << 3 < geo[4] or a > top:
            raise _corrupt(self.name, f"a slot points at byte {off << 3}, outside the arena")
        lens = words[off]
        b = a + (lens & 0xFFFFFFFF)
        end = b + (lens >> 32)
        if end > top:
            raise _corrupt(self.name, f"the record at byte {off << 3} runs past the arena's end")
        return a, b, end

    def __len__(self) -> int:
        self.enter()
        try:
            geo = self._current()
            count = int(self._words[geo[3] + _COUNT])
            if count > geo[2]:  # an index always keeps an empty slot
                raise _corrupt(self.name, f"it counts {count} entries in {geo[2] + 1} slots")
            return count
        finally:
            self.exit()

    def _live_words(self, geo: tuple[int, ...]) -> list[int]:
        """The live slot words of generation ``geo``, in arena order (order of last write).

        Raises:
            SharedMemoryCorruptError: a record is outside the arena, or overlaps the next one.
        """
        ib = geo[1]
        slots = self._m.mvq[ib : ib + geo[2] + 1].tolist()
        live = [w for w in slots if 0 < w < _TOMB]
        live.sort(key=_OFF_MASK.__and__)
        words = self._words
        end = geo[4]  # the end of the previous record: the next one starts at or above it
        top = words[geo[3] + _TOP]
        for w in live:
            start = (w & _OFF_MASK) << 3
            if start < geo[4] or start + 8 > top:
                raise _corrupt(self.name, f"a slot points at byte {start}, outside the arena")
            if start < end:
                raise _corrupt(self.name, f"the records at bytes {start} and below overlap")
            lens = words[start >> 3]
            end = start + ((15 + (lens & _LOW32) + (lens >> 32)) & ~7)
            if end > top:
                raise _corrupt(self.name, f"the record at byte {start} runs past the arena's end")
        return live

    def items(self) -> list[tuple[bytes, bytes]]:
        """A snapshot of every (key, value), in the order of their last write."""
        self.enter()
        try:
            words = self._words
            buf = self._buf
            out = []
            for w in self._live_words(self._current()):
                off = w & _OFF_MASK
                lens = words[off]
                a = (off + 1) << 3
                b = a + (lens & _LOW32)
                out.append((buf[a:b], buf[b : b + (lens >> 32)]))
            return out
        finally:
            self.exit()

    def keys(self) -> list[bytes]:
        """A snapshot of every key, in the order of their last write."""
        self.enter()
        try:
            words = self._words
            buf = self._buf
            out = []
            for w in self._live_words(self._current()):
                off = w & _OFF_MASK
                a = (off + 1) << 3
                out.append(buf[a : a + (words[off] & _LOW32)])
            return out
        finally:
            self.exit()

    def values(self) -> list[bytes]:
        """A snapshot of every value, in the order of their last write."""
        return [v for _, v in self.items()]

    # -- writes --------------------------------------------------------------------------------

    def set(self, key: bytes, h: int, value: bytes) -> None:
        """Store ``value`` for ``key`` (whose :func:`key_hash` is ``h``).

        Raises:
            SharedMemoryFullError: no room left (``/dev/shm`` or the reservation is full); the table
                is unchanged.
            ValueError: the key or the value is longer than 4 GiB.
        """
        klen = len(key)
        vlen = len(value)
        if (klen | vlen) >> 32:
            raise ValueError("keys and values of a shared dict are limited to 4 GiB each")
        # The record, built before taking the mutex: [klen | vlen << 32] [key] [value].
        record = (klen | (vlen << 32)).to_bytes(8, _BYTEORDER) + key + value
        n = len(record)
        size = (n + 7) & ~7
        tag = (h >> 5) & 0x7FFFFFF  # _TAG_MASK
        m = self._m
        ptr = m.mutex_address
        try:
            rc = _trylock(ptr)
            if rc:
                self._acquire_slow(m, rc)
            words = self._words
            try:
                root = words[9]  # _W_ROOT
                geo = self._geo
                if geo[0] != root:
                    geo = self._refresh(root)
                gen = geo[3]
                top = words[gen]  # + _TOP
                limit = words[gen + 1]  # + _LIMIT: the committed end of the arena
                if top < geo[4] or limit > geo[8]:
                    raise _corrupt(self.name, "the top of its arena is outside the arena")
                if top + size > limit:
                    geo = self._make_room(geo, size, False)
                    gen = geo[3]
                    top = words[gen]
                ib = geo[1]
                mask = geo[2]
                i = start = tag & mask
                free = -1
                buf = self._buf
                while True:
                    w = words[ib + i]
                    if not w:
                        break
                    if w >> 36 == tag:
                        a, b, _ = self._record(geo, w)
                        if buf[a:b] == key:
                            # Overwrite: a new record, then one store switches the slot to it.
                            self._mvb[top : top + n] = record
                            words[gen] = top + size
                            words[10] += 1  # _W_VERSION
                            words[ib + i] = (tag << 36) | (top >> 3)
                            return
                    elif free < 0 and w == 0x8000000000000000:  # _TOMB: reusable
                        free = i
                    i = (i + 1) & mask
                    if i == start:
                        raise _corrupt(self.name, "its index has no empty slot")
                if free < 0:
                    if words[gen + 3] >= geo[5]:  # _USED: too many slots taken, rebuild first
                        geo = self._make_room(geo, size, True)
                        gen = geo[3]
                        top = words[gen]
                        ib = geo[1]
                        mask = geo[2]
                        i = tag & mask
                        while words[ib + i]:  # a fresh index has no deletion markers
                            i = (i + 1) & mask
                    words[gen + 3] += 1  # _USED, counted before the slot is taken
                else:
                    i = free
                self._mvb[top : top + n] = record
                words[gen] = top + size
                words[10] += 1  # _W_VERSION
                words[ib + i] = (tag << 36) | (top >> 3)
                words[gen + 2] += 1  # _COUNT
            except SharedMemoryFullError:
                raise  # raised before any change
            except BaseException:
                words[9] |= _DIRTY  # interrupted inside a change: recount before the next
                raise
        finally:
            _unlock(ptr)

    def delete(self, key: bytes, h: int) -> bool:
        """Remove ``key`` (whose :func:`key_hash` is ``h``); whether it was there."""
        m = self._m
        ptr = m.mutex_address
        try:
            rc = _trylock(ptr)
            if rc:
                self._acquire_slow(m, rc)
            words = self._words
            try:
                root = words[9]  # _W_ROOT
                geo = self._geo
                if geo[0] != root:
                    geo = self._refresh(root)
                ib = geo[1]
                mask = geo[2]
                tag = (h >> 5) & 0x7FFFFFF  # _TAG_MASK
                i = start = tag & mask
                buf = self._buf
                while True:
                    w = words[ib + i]
                    if not w:
                        return False
                    if w >> 36 == tag:
                        a, b, _ = self._record(geo, w)
                        if buf[a:b] == key:
                            break
                    i = (i + 1) & mask
                    if i == start:
                        raise _corrupt(self.name, "its index has no empty slot")
                gen = geo[3]
                words[_W_VERSION] += 1
                if words[ib + ((i + 1) & mask)]:
                    words[ib + i] = _TOMB
                else:
                    # The end of a probe chain: no lookup goes past it, so it can be empty,
                    # and so can the deletion markers just before it.
                    freed = 0
                    while True:
                        words[ib + i] = 0
                        freed += 1
                        i = (i - 1) & mask
                        if words[ib + i] != _TOMB:
                            break
                    words[gen + _USED] -= freed  # after the stores: too high is safe
                words[gen + _COUNT] -= 1
                return True
            except BaseException:
                words[_W_ROOT] |= _DIRTY
                raise
        finally:
            _unlock(ptr)

    def clear(self) -> None:
        """Remove every entry and give the memory back (one switch: a crash keeps all or none)."""
        self.enter()
        try:
            words = self._words
            try:
                geo = self._current()
                root = self._build(1 - geo[6], [], _MIN_SLOTS, 1 - geo[7], _MIN_ARENA, geo)
                words[_W_VERSION] += 1
                self._switch(root)
            except SharedMemoryFullError:
                raise  # raised before any change
            except BaseException:
                words[_W_ROOT] |= _DIRTY
                raise
        finally:
            self.exit()

    # -- growth --------------------------------------------------------------------------------

    def _make_room(self, geo: tuple[int, ...], size: int, slot: bool) -> tuple[int, ...]:
        """Make room for a record of ``size`` bytes (and with ``slot``, for one more slot).

        Returns the (new) current geometry.

        Raises:
            SharedMemoryFullError: there is no room (the table is unchanged).
        """
        words = self._words
        area = self._m.area
        gen = geo[3]
        top = words[gen + _TOP]
        arena_start = geo[4]
        room = top + size <= words[gen + _LIMIT]
        live = self._live_words(geo)
        live_bytes = self._record_bytes(live)
        arena_used = top - arena_start
        compact = not room and (
            2 * (arena_used - live_bytes) >= arena_used or size > area - arena_used
        )
        if compact and live_bytes + size > area:
            raise SharedMemoryFullError(
                f"the shared dict is full: {live_bytes + size} bytes of records do not fit in "
                f"its arena of {area} bytes"
            )
        if slot or compact:
            # Half the most load: the index doubles when it grows.
            slots = max(_MIN_SLOTS, _pow2_at_least(int(len(live) / _MAX_LOAD * 2) + 1))
            slots = min(slots, area // 16)
            if len(live) + 1 > slots * _MAX_LOAD:
                raise SharedMemoryFullError(
                    f"the shared dict is full: {len(live)} entries fill the index its "
                    f"reservation of {_segment_size(area)} bytes allows"
                )
            arena_area = 1 - geo[7] if compact else geo[7]
            arena = _round_page(max(_MIN_ARENA, 2 * (live_bytes + size))) if compact else 0
            root = self._build(1 - geo[6], live, slots, arena_area, min(arena, area), geo)
            geo = self._switch(root)
            gen = geo[3]
            top = words[gen + _TOP]
            if top + size <= words[gen + _LIMIT]:
                return geo
        # Commit more arena in place: double it, at least to what the record needs.
        w_committed = _W_COMMITTED + 2 + geo[7]
        committed = self._committed(w_committed)
        want = min(area, _round_page(max(2 * committed, top + size - arena_start)))
        if top + size > arena_start + want:
            raise SharedMemoryFullError(
                f"the shared dict is full: {top - arena_start + size} bytes of records do not "
                f"fit in its arena of {area} bytes"
            )
        m = self._m
        _commit(m.base, m.segment, arena_start + committed, want - committed)
        words[w_committed] = want  # what to give back later, then what may be used
        words[gen + _LIMIT] = arena_start + want
        return geo

    def _record_bytes(self, live: list[int]) -> int:
        """The bytes of the records the slot words ``live`` point to."""
        words = self._words
        total = 0
        for w in live:
            lens = words[w & _OFF_MASK]
            total += (15 + (lens & _LOW32) + (lens >> 32)) & ~7
        return total

    def _build(
        self,
        index_area: int,
        live: list[int],
        slots: int,
        arena_area: int,
        arena: int,
        old: tuple[int, ...] | None,
    ) -> int:
        """Write a complete generation where nothing refers; return the root that publishes it.

        ``live`` are the live slot words of the current generation ``old``, in arena order. If
        ``arena_area`` is ``old``'s, the records stay where they are; otherwise they are copied
        (compacted) into that area, committed to ``arena`` bytes first.
        """
        m = self._m
        words = self._words
        area = m.area
        index_off = _PAGE + index_area * (area // 2)
        self._prepare(index_off, _W_COMMITTED + index_area, _round_page(slots * 8))
        mask = slots - 1
        table = [0] * slots
        if old is not None and arena_area == old[7]:
            top = words[old[3] + _TOP]
            limit = words[old[3] + _LIMIT]
            for w in live:
                i = (w >> 36) & mask
                while table[i]:
                    i = (i + 1) & mask
                table[i] = w
        else:
            arena_off = _PAGE + area + arena_area * area
            limit = arena_off + self._prepare(arena_off, _W_COMMITTED + 2 + arena_area, arena)
            flat = m.mvb
            top = arena_off
            # Copy runs of adjacent live records with one memmove each.
            run_src = run_dst = run_len = 0
            for w in live:
                off = w & _OFF_MASK
                lens = words[off]
                src = off << 3
                size = (15 + (lens & _LOW32) + (lens >> 32)) & ~7
                if src == run_src + run_len:
                    run_len += size
                else:
                    if run_len:
                        flat[run_dst : run_dst + run_len] = flat[run_src : run_src + run_len]
                    run_src, run_dst, run_len = src, top, size
                i = (w >> 36) & mask
                while table[i]:
                    i = (i + 1) & mask
                table[i] = (w & ~_OFF_MASK) | (top >> 3)
                top += size
            if run_len:
                flat[run_dst : run_dst + run_len] = flat[run_src : run_src + run_len]
        index_word = index_off >> 3
        m.mvq[index_word : index_word + slots] = array("Q", table)
        gen = _W_GEN + 4 * index_area
        words[gen + _TOP] = top
        words[gen + _LIMIT] = limit
        words[gen + _COUNT] = len(live)
        words[gen + _USED] = len(live)
        generation = 0 if old is None else (old[0] >> 16) + 1
        return (generation << 16) | (arena_area << 9) | (index_area << 8) | (mask.bit_length())

    def _switch(self, root: int) -> tuple[int, ...]:
        """Publish generation ``root`` (one store), then free the areas it does not use."""
        self._words[_W_ROOT] = root
        geo = self._load(root)
        self._free_unused(geo)
        return geo

    def _prepare(self, start: int, w_committed: int, need: int) -> int:
        """Have the first ``need`` bytes of the idle area at ``start`` committed.

        Pages the area already holds are reused (up to :data:`_KEEP` more than needed: the
        rest is given back). Returns the bytes committed now, which may exceed ``need``.
        """
        m = self._m
        words = self._words
        committed = self._committed(w_committed)
        keep = max(need, _KEEP)
        if committed > keep:
            words[w_committed] = keep  # first: a recorded page is always an allocated page
            _punch(m.base, start + keep, committed - keep)
            committed = keep
        if committed < need:
            _commit(m.base, m.segment, start + committed, need - committed)
            words[w_committed] = committed = need
        return int(committed)

    def _committed(self, w: int) -> int:
        """The committed bytes of an area, from its header word ``w``.

        Raises:
            SharedMemoryCorruptError: more than the area holds (giving pages back would reach into
                the next area).
        """
        committed = int(self._words[w])
        size = self._m.area // 2 if w < _W_COMMITTED + 2 else self._m.area
        if committed > size:
            raise _corrupt(self.name, f"an area of {size} bytes claims {committed} committed")
        return committed

    def _free_unused(self, geo: tuple[int, ...], *, thorough: bool = False) -> None:
        """Give back the pages of the areas generation ``geo`` does not use, but :data:`_KEEP`.

        With ``thorough`` (after a crash), also every page past what each area records as
        committed, which an interrupted commit may have allocated.
        """
        m = self._m
        words = self._words
        area = m.area
        half = area // 2
        areas = (
            (_PAGE, half, 0),
            (_PAGE + half, half, 1),
            (_PAGE + area, area, 2),
            (_PAGE + 2 * area, area, 3),
        )
        in_use = (geo[6], 2 + geo[7])
        for start, size, k in areas:
            w = _W_COMMITTED + k
            committed = self._committed(w)
            if k not in in_use and committed > _KEEP:
                words[w] = _KEEP  # first: a recorded page is always an allocated page
                if not thorough:
                    _punch(m.base, start + _KEEP, committed - _KEEP)
                committed = _KEEP
            if thorough:
                _punch(m.base, start + committed, size - committed)

    # -- repair --------------------------------------------------------------------------------

    def _repair(self) -> None:
        """Recompute what an interrupted change may have left wrong (under the mutex).

        The structure is consistent at every instant (see the module docstring); only the
        counts may be stale, and areas not in use may still hold pages.
        """
        words = self._words
        geo = self._load(words[_W_ROOT] & ~_DIRTY)
        gen = geo[3]
        ib = geo[1]
        slots = self._m.mvq[ib : ib + geo[2] + 1].tolist()
        tombs = slots.count(_TOMB)
        count = len(slots) - slots.count(0) - tombs
        words[gen + _COUNT] = count
        words[gen + _USED] = count + tombs
        self._free_unused(geo, thorough=True)
        words[_W_REPAIRS] += 1
        words[_W_VERSION] += 1
        words[_W_ROOT] = geo[0]  # clean again

    # -- statistics ----------------------------------------------------------------------------

    def statistics(self) -> TableStatistics:
        """A snapshot of the table's shape and history (counts the garbage: O(entries))."""
        self.enter()
        try:
            words = self._words
            geo = self._current()
            gen = geo[3]
            arena_bytes = int(words[gen + _TOP] - geo[4])
            return TableStatistics(
                count=int(words[gen + _COUNT]),
                slots=geo[2] + 1,
                used_slots=int(words[gen + _USED]),
                arena_bytes=arena_bytes,
                garbage_bytes=arena_bytes - self._record_bytes(self._live_words(geo)),
                committed_bytes=_PAGE + sum(int(words[_W_COMMITTED + k]) for k in range(4)),
                reserved_bytes=_segment_size(self._m.area),
                rebuilds=geo[0] >> 16,
                mutex_recoveries=int(words[_W_RECOVERIES]),
                repairs=int(words[_W_REPAIRS]),
            )
        finally:
            self.exit()

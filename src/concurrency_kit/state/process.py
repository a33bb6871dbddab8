"""The process column of the shared-state row: containers in shared memory, no server process.

Processes do not share memory, so a process container lives in a shared-memory segment
(``_core/shm.py``: ``/dev/shm/ck_<pid>_<hex>``, mode 0600) that every process using it maps; a
handle is picklable and maps the same segment in the process that unpickles it. Nothing is
copied and no server process relays operations (a :func:`multiprocessing.Manager` value costs
a round trip per operation).

Counter and value: a :class:`~concurrency_kit._core.monitor.ProcessMonitor` segment (a robust
mutex, a header counting mutex recoveries, then this state)::

    offset  size  field
    0       64    mutex       robust process-shared pthread mutex (unused by the value)
    64      64    header      magic, kind, ..., mutex_recoveries
    128     4     mode        ATOMIC (1): the value is only ever updated by atomic instructions
    132     1     typecode    the array-module type code
    136     8     value       the value, 8-byte aligned, in its own width (1, 2, 4 or 8 bytes)

Every update is one hardware atomic instruction (``_core/atomics.py``): ``add`` a fetch-and-add,
``compare_and_set`` a compare-and-swap (floats compared as bit patterns), ``set`` an atomic
store, ``get`` one aligned load. A process killed at any moment leaves the value as it was
before or after its operation: there is no lock to leave held. (Before the compiled core, a
machine without a lock-free libatomic used the mutex instead: a segment in that mode, or in
any mode but ATOMIC, is refused.)

Array: a :class:`~concurrency_kit.ProcessRLock` (its own segment) and a data segment::

    offset  size            field
    0       64              header   magic, typecode, length
    64      length x size   items    what memoryview(), numpy and every index operation see

A process killed while holding the array's lock (in a slice assignment, or inside
``with arr.lock():``) is taken over by the next caller with a
:class:`~concurrency_kit.LockOwnerDiedWarning`: items are plain numbers, so nothing can be
corrupted, but a bulk update may be half done.

Lifecycle (both kinds): the creating handle owns the names. Its ``close()`` (or its finalizer,
or the resource tracker when the creator dies, however it dies) unlinks the segments; every
process unmaps its mapping when its handles are closed or collected (a memoryview or NumPy
array on an array's items keeps the items mapped until it goes). A process that only attached
never unlinks anything (``_core/shm.py``, CPython issue 82300).
"""

from __future__ import annotations

import ctypes
import io
import pickle
import weakref
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from typing import Any, NoReturn

from concurrency_kit._core import atomics, serialize, shm
from concurrency_kit._core.deadline import deadline_after
from concurrency_kit._core.handles import Closed, Closing, ProcessHandle, drop_segment
from concurrency_kit.errors import SerializationError, SharedMemoryCorruptError
from concurrency_kit.state._base import (
    ArrayCore,
    Codec,
    SharedCounterStatistics,
    SharedValueStatistics,
    codec,
)
from concurrency_kit.state._hashtable import SharedHashTable, key_hash
from concurrency_kit.state._mapping import MISSING, SharedDictCore, SharedDictStatistics
from concurrency_kit.sync import ProcessRLock

__all__ = [
    "ProcessSharedArray",
    "ProcessSharedCounter",
    "ProcessSharedDict",
    "ProcessSharedValue",
]

_KIND_COUNTER = 20
_KIND_VALUE = 21
_ATOMIC = 1
_MUTEX = 2

_INT64 = codec("q")


class _ScalarState(ctypes.Structure):
    _fields_ = (
        ("mode", ctypes.c_uint32),
        ("typecode", ctypes.c_char),
        ("value", ctypes.c_uint64),  # storage only: viewed through the type code's ctype
    )


_VALUE_OFFSET = _ScalarState.value.offset


class _ProcessScalar(Closing, ProcessHandle):
    """What the counter and the value share: the word, ``set``, ``get``, ``close``, ``with``.

    ``_word`` is the value's :class:`~concurrency_kit._core.atomics.AtomicWord` (it keeps the
    mapping alive during every call, and raises :exc:`ValueError` once closed); ``_view`` a
    ctypes view of the value's type, for loads.
    """

    _STATE = _ScalarState
    _codec: Codec
    _view: Any
    _word: atomics.AtomicWord

    def _create_scalar(self, codec_: Codec, initial: Any) -> None:
        """Create the segment holding ``initial`` (already checked)."""
        state = self._create()
        state.mode = _ATOMIC
        state.typecode = codec_.typecode.encode()
        codec_.ctype.from_buffer(state, _VALUE_OFFSET).value = initial
        self._bind()

    def _restore(self, extra: Any) -> None:
        self._bind()

    def _bind(self) -> None:
        state = self._s
        if state.mode != _ATOMIC:
            raise SharedMemoryCorruptError(
                f"{type(self).__qualname__} {self._name}: its segment is in mode "
                f"{state.mode}, not the atomic mode this version updates values in"
            )
        self._codec = codec(state.typecode.decode("latin-1"))
        self._view = self._codec.ctype.from_buffer(state, _VALUE_OFFSET)
        self._word = atomics.AtomicWord(
            self._view, ctypes.addressof(self._view), self._codec.itemsize, check=self._codec.check
        )

    def get(self) -> Any:
        """Return the value (one aligned load from shared memory)."""
        return self._view.value

    def set(self, value: Any) -> None:
        """Replace the value.

        Raises:
            TypeError: ``value`` is not a number of the type code's kind (unchanged).
            OverflowError: it is outside the type code's range (unchanged).
            ValueError: the handle is closed.
        """
        codec_ = self._codec
        self._word.store(codec_.bits(codec_.check(value)))

    def compare_and_set(self, expected: Any, new: Any) -> bool:
        """Set the value to ``new`` if it is ``expected`` (same bits), atomically.

        Returns:
            Whether the value was ``expected`` (and is now ``new``).

        Raises:
            TypeError: ``expected`` or ``new`` is not a number of the type code's kind.
            OverflowError: ``new`` is outside the type code's range.
            ValueError: the handle is closed.
        """
        codec_ = self._codec
        new = codec_.check(new)
        try:
            expected = codec_.check(expected)
        except OverflowError:
            return False  # the value cannot hold it, so does not
        return self._word.compare_exchange(codec_.bits(expected), codec_.bits(new))

    def close(self) -> None:
        """Release this process's mapping (idempotent).

        Closing the handle that created the container also removes its shared-memory segment:
        processes that have it keep using it, but no more handles can be unpickled. A handle
        that is garbage collected is closed by a finalizer, and the segment is removed when the
        creating process exits, however it exits. Using a closed handle raises
        :exc:`ValueError`.
        """
        what = f"{type(self).__qualname__} {self._name}"
        # The word first: a thread still in a call holds the mapping through it.
        self._word.close(f"{what} is closed")
        self._view = Closed(what)
        super().close()


class ProcessSharedCounter(_ProcessScalar):
    """A 64-bit signed integer that processes update atomically, in shared memory.

    :meth:`add` is one hardware atomic instruction (a fetch-and-add): no lock, no server
    process, and no lock for a killed process to leave held. The same API as
    :class:`ThreadSharedCounter`.

    A picklable handle: pass it to a :class:`~concurrency_kit.ProcessPool` task or to a
    :class:`multiprocessing.Process` with any start method, and the other process updates the
    same counter. Unlike :func:`multiprocessing.Value`, nothing needs to be inherited at fork
    time. Linux with glibc (x86_64 or aarch64) only, as :class:`~concurrency_kit.ProcessLock`.

    Example::

        hits = ProcessSharedCounter()
        with ProcessPool(2) as pool:
            pool.map(lambda c: c.add(), [hits] * 1000)
        assert hits.get() == 1000
        hits.close()
    """

    _KIND = _KIND_COUNTER

    def _bind(self) -> None:
        super()._bind()
        # The method call is most of an add's cost: each handle's ``add`` is the compiled
        # ``add_fetch`` of its word, bound once (the method below documents it).
        self.add = self._word.add_fetch  # type: ignore[method-assign,assignment]

    def __init__(self, initial: int = 0) -> None:
        """Create a counter holding ``initial``.

        Raises:
            TypeError: ``initial`` is not an integer.
            OverflowError: it is outside the signed 64-bit range.
            OSError: the shared-memory segment could not be created.
        """
        self._create_scalar(_INT64, _INT64.check(initial))

    def get(self) -> int:
        """Return the value (one aligned load from shared memory)."""
        value: int = self._view.value
        return value

    def set(self, value: int) -> None:
        """Replace the value.

        Raises:
            TypeError: ``value`` is not an integer.
            OverflowError: it is outside the signed 64-bit range (the counter is unchanged).
            ValueError: the handle is closed.
        """
        super().set(value)

    def add(self, n: int = 1) -> int:
        """Add ``n`` (negative to subtract) atomically and return the new value.

        Past the signed 64-bit range the value wraps around, as a C ``int64_t``, Java's
        ``AtomicLong`` and Rust's ``AtomicI64`` do: a failed add cannot be undone without
        other processes seeing it, and checking first would need a compare-and-swap loop at
        twice the cost.

        Raises:
            TypeError: ``n`` is not an integer.
            OverflowError: ``n`` itself is outside the signed 64-bit range (nothing added).
            ValueError: the handle is closed.
        """
        return self._word.add_fetch(n)

    def compare_and_set(self, expected: int, new: int) -> bool:
        """Set the value to ``new`` if it is ``expected``, atomically; return whether it was.

        Raises:
            TypeError: ``expected`` or ``new`` is not an integer.
            OverflowError: ``new`` is outside the signed 64-bit range.
            ValueError: the handle is closed.
        """
        return super().compare_and_set(expected, new)

    def statistics(self) -> SharedCounterStatistics:
        """A snapshot: the value, whether it is updated lock-free, mutex recoveries.

        Raises:
            ValueError: the handle is closed.
        """
        return SharedCounterStatistics(
            value=self.get(), lock_free=True, mutex_recoveries=self._m.mutex_recoveries
        )

    def _describe(self) -> str:
        return f"value={self.get()}"


class ProcessSharedValue(_ProcessScalar):
    """A typed value (an :mod:`array` type code) that processes update atomically.

    The shared-memory counterpart of :func:`multiprocessing.Value` (without a lock to take
    around every read-modify-write, and passable to any process, not only inherited).
    :meth:`compare_and_set` is one hardware compare-and-swap for every type code (1, 2, 4 or
    8 bytes); floats are compared as bit patterns, so ``-0.0`` differs from ``0.0`` and a NaN
    matches itself. The same API as :class:`ThreadSharedValue`; a picklable handle,
    like :class:`ProcessSharedCounter`.

    Example::

        best = ProcessSharedValue("d", float("inf"))
        current = best.get()
        while score < current and not best.compare_and_set(current, score):
            current = best.get()
        best.close()
    """

    _KIND = _KIND_VALUE

    def __init__(self, typecode: str, initial: float = 0) -> None:
        """Create a value of type code ``typecode`` holding ``initial``.

        Args:
            typecode: one of ``b B h H i I l L q Q f d`` (the numeric :mod:`array` codes).
            initial: the first value.

        Raises:
            ValueError: ``typecode`` is not one of these.
            TypeError: ``initial`` is not a number of the code's kind.
            OverflowError: it is outside the code's range.
            OSError: the shared-memory segment could not be created.
        """
        codec_ = codec(typecode)
        self._create_scalar(codec_, codec_.check(initial))

    @property
    def typecode(self) -> str:
        """The value's :mod:`array` type code."""
        return self._codec.typecode

    def statistics(self) -> SharedValueStatistics:
        """A snapshot: type code, value, whether it is updated lock-free, mutex recoveries.

        Raises:
            ValueError: the handle is closed.
        """
        return SharedValueStatistics(
            typecode=self._codec.typecode,
            value=self.get(),
            lock_free=True,
            mutex_recoveries=self._m.mutex_recoveries,
        )

    def _describe(self) -> str:
        return f"typecode={self._codec.typecode!r} value={self.get()!r}"


# -- arrays ------------------------------------------------------------------------------------

_ARRAY_MAGIC = 0x59415243  # "CRAY"
_DATA_OFFSET = 64


class _ArrayHeader(ctypes.Structure):
    _fields_ = (
        ("magic", ctypes.c_uint32),
        ("typecode", ctypes.c_char),
        ("length", ctypes.c_uint64),
    )


class _ClosedLock(Closed):
    """The lock of a closed array: ``with`` on it raises :exc:`ValueError` too."""

    __slots__ = ()

    def __enter__(self) -> NoReturn:
        raise ValueError(f"{self._what} is closed")

    def __exit__(self, *exc: object) -> None:  # pragma: no cover - __enter__ raised
        pass


def _drop_array(lock: ProcessRLock, segment: shm.Segment, creator: bool) -> None:
    lock.close()
    drop_segment(segment, creator)


def _attach_array(lock: ProcessRLock, name: str, typecode: str, length: int) -> ProcessSharedArray:
    """Unpickle an array handle: map its data segment in this process."""
    codec_ = codec(typecode)
    try:
        try:
            segment = shm.attach(name, _DATA_OFFSET + length * codec_.itemsize)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"the shared array {name!r} no longer exists: the process that created it "
                "closed it or exited"
            ) from None
        header = _ArrayHeader.from_buffer(segment.buffer)
        if (header.magic, header.typecode, header.length) != (
            _ARRAY_MAGIC,
            typecode.encode(),
            length,
        ):
            del header
            segment.close()
            raise ValueError(f"segment {name!r} does not hold this shared array")
        del header
    except BaseException:
        lock.close()
        raise
    handle = ProcessSharedArray.__new__(ProcessSharedArray)
    handle._setup(codec_, lock, segment, length, creator=False)
    return handle


class ProcessSharedArray(ArrayCore, Closing):
    """A fixed-size typed array in shared memory, with a lock for bulk updates.

    The shared-memory counterpart of :func:`multiprocessing.Array`, passable to any process
    (not only inherited). Indexing, slicing, iteration (over a snapshot) and :meth:`tolist`
    hold the array's lock (a :class:`~concurrency_kit.ProcessRLock`), so ``with arr.lock():``
    makes several operations one update that no other process sees half-done.

    :meth:`memoryview` (and, on Python 3.12+, the buffer protocol: ``memoryview(arr)``,
    ``numpy.frombuffer(arr, ...)``) and ``numpy.asarray(arr)`` give the shared memory itself:
    a NumPy array on it is seen by every process at once, without copies.

    A picklable handle, like :class:`ProcessSharedCounter`. The same API as
    :class:`ThreadSharedArray`. Linux with glibc (x86_64 or aarch64) only.

    Example::

        arr = ProcessSharedArray("d", 1000)
        with ProcessPool(2) as pool:
            pool.map(fill_a_slice, [arr] * 4, range(4))
        total = numpy.frombuffer(arr.memoryview(), dtype=numpy.float64).sum()
        arr.close()
    """

    __slots__ = ("_finalizer", "_name", "_segment")
    _lock: ProcessRLock

    def __init__(self, typecode: str, size_or_initializer: int | Any) -> None:
        """Create an array of type code ``typecode`` in a new shared-memory segment.

        Args:
            typecode: one of ``b B h H i I l L q Q f d`` (the numeric :mod:`array` codes).
            size_or_initializer: a length (the items start at zero) or an iterable of the
                items, as for :func:`multiprocessing.Array`.

        Raises:
            ValueError: a bad type code, or a negative length.
            TypeError: an item is not a number of the code's kind.
            OverflowError: an item is outside the code's range.
            OSError: the shared-memory segments could not be created.
        """
        codec_ = codec(typecode)
        items = None
        if isinstance(size_or_initializer, int):
            if size_or_initializer < 0:
                raise ValueError(f"an array cannot have a negative length ({size_or_initializer})")
            length = size_or_initializer  # the segment starts zero-filled
        else:
            items = codec_.to_array(size_or_initializer)
            length = len(items)
        lock = ProcessRLock()
        try:
            segment = shm.create(_DATA_OFFSET + length * codec_.itemsize)
        except BaseException:
            lock.close()
            raise
        header = _ArrayHeader.from_buffer(segment.buffer)
        header.typecode = typecode.encode()
        header.length = length
        self._setup(codec_, lock, segment, length, creator=True)
        if items:
            self._mv[:] = items
        header.magic = _ARRAY_MAGIC  # last: the segment is complete

    def _setup(
        self,
        codec_: Codec,
        lock: ProcessRLock,
        segment: shm.Segment,
        length: int,
        *,
        creator: bool,
    ) -> None:
        self._codec = codec_
        self._lock = lock
        self._segment = segment
        self._name = segment.name
        self._length = length
        data = (ctypes.c_char * (length * codec_.itemsize)).from_buffer(
            segment.buffer, _DATA_OFFSET
        )
        self._mv = memoryview(data).cast("B").cast(codec_.typecode)  # type: ignore[call-overload]
        self._finalizer = weakref.finalize(self, _drop_array, lock, segment, creator)

    def lock(self) -> ProcessRLock:
        """The array's re-entrant lock: ``with arr.lock():`` holds it for a bulk update.

        Every indexing operation takes it too, in every process, so other callers wait for
        the block to end; the holder may index the array inside the block. It is a
        :class:`~concurrency_kit.ProcessRLock`: a holder that dies is taken over by the next
        caller, with a :class:`~concurrency_kit.LockOwnerDiedWarning`.

        Raises:
            ValueError: the handle is closed.
        """
        self._open_view()
        return self._lock

    def close(self) -> None:
        """Release this process's mappings (idempotent).

        Closing the handle that created the array also removes its shared memory: processes
        that have it keep using it, but no more handles can be unpickled. The items stay
        mapped in this process while a :meth:`memoryview` (or NumPy array) of them exists.
        Using a closed handle raises :exc:`ValueError`.
        """
        what = f"{type(self).__qualname__} {self._name}"
        self._mv = Closed(what)
        self._lock = _ClosedLock(what)  # type: ignore[assignment]
        self._finalizer()

    def __repr__(self) -> str:
        cls = type(self)
        state = "closed" if isinstance(self._mv, Closed) else self._describe()
        return f"<{cls.__module__}.{cls.__qualname__} {state} {self._name} at {id(self):#x}>"

    def __reduce__(self) -> tuple[Any, tuple[ProcessRLock, str, str, int]]:
        if isinstance(self._mv, Closed):
            raise ValueError(f"cannot pickle a closed {type(self).__qualname__}")
        return _attach_array, (self._lock, self._name, self._codec.typecode, self._length)


# -- SharedDict --------------------------------------------------------------------------------

_SMALL_INT = 10**18


def _encode_key(key: Any) -> bytes:
    """The bytes a key is stored and compared as: equal bytes, same key.

    ``str``, ``bytes``, ``int`` (``bool`` included: ``True`` is the key ``1``, as in a dict),
    ``None`` and tuples of those get a tagged form of their own, equal exactly when the keys
    are equal in a :class:`dict`; anything else is pickled without the memo, so that the same
    value gives the same bytes whoever built it.

    Raises:
        TypeError: the key is unhashable, as for a :class:`dict`.
        SerializationError: it cannot be pickled.
    """
    kind = type(key)
    if kind is str:
        return b"s" + str.encode(key, "utf-8", "surrogatepass")
    if kind is bytes:
        return b"b" + bytes(key)
    if (kind is int or kind is bool) and -_SMALL_INT < key < _SMALL_INT:
        return b"i%d" % key
    if key is None:
        return b"n"
    if kind is tuple:
        parts = [_encode_key(item) for item in key]
        return b"t" + b"".join(len(part).to_bytes(4, "little") + part for part in parts)
    hash(key)  # an unhashable key is refused as a dict refuses it
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=serialize.PROTOCOL)
    pickler.fast = True  # no memo: the bytes depend on the value only
    try:
        pickler.dump(key)
    except Exception as exc:
        raise SerializationError(
            f"cannot pickle {key!r:.80} as a ProcessSharedDict key: {type(exc).__name__}: {exc}"
        ) from exc
    return b"p" + buffer.getvalue()


def _decode_key(data: bytes) -> Any:
    """The key stored as ``data`` (by :func:`_encode_key`, in any process).

    Raises:
        SerializationError: it cannot be unpickled here (its class cannot be imported in this
            process, say), or the bytes are no stored key.
    """
    try:
        return _decode_key_part(data)
    except SerializationError:
        raise
    except Exception as exc:
        raise SerializationError(
            f"cannot unpickle a key of a ProcessSharedDict (stored as {data[:60]!r}"
            f"{'...' if len(data) > 60 else ''}): {type(exc).__name__}: {exc}"
        ) from exc


def _decode_key_part(data: bytes) -> Any:
    tag = data[:1]
    if tag == b"s":
        return data[1:].decode("utf-8", "surrogatepass")
    if tag == b"b":
        return data[1:]
    if tag == b"i":
        return int(data[1:])
    if tag == b"n" and len(data) == 1:
        return None
    if tag == b"t":
        items = []
        position = 1
        while position < len(data):
            size = int.from_bytes(data[position : position + 4], "little")
            position += 4
            if len(data) - position < size:  # the lengths are data: never read past the key
                raise ValueError("a tuple key's item runs past its end")
            items.append(_decode_key_part(data[position : position + size]))
            position += size
        return tuple(items)
    if tag == b"p":
        return pickle.loads(data[1:])
    raise ValueError(f"unknown key tag {tag!r}")


def _decode_value(key_data: bytes, data: bytes) -> Any:
    """The value stored as ``data`` for the key stored as ``key_data``.

    Raises:
        SerializationError: it cannot be unpickled here; the message names the key.
    """
    try:
        if data[-1:] != b".":  # every pickle ends with STOP: a wrong length is seen here
            raise pickle.UnpicklingError("the stored pickle does not end where it should")
        return serialize.loads(data)
    except Exception as exc:
        try:
            key = repr(_decode_key(key_data))
        except SerializationError:
            key = f"stored as {key_data[:60]!r}"
        raise SerializationError(
            f"cannot unpickle the value of the key {key:.100} of a ProcessSharedDict: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


_KEYS, _VALUES, _ITEMS = 0, 1, 2


class _Decoding(Iterator[Any]):
    """Iterates over stored entries, unpickling each as it is reached.

    An entry that cannot be unpickled raises :exc:`SerializationError` when it is reached, and
    the iteration goes on after it at the next call: ``next()`` never gets stuck on it.
    """

    __slots__ = ("_keys", "_next", "_values", "_what")

    def __init__(self, keys: list[bytes], values: list[bytes] | None, what: int) -> None:
        self._keys = keys
        self._values = values
        self._what = what
        self._next = 0

    def __iter__(self) -> _Decoding:
        return self

    def __next__(self) -> Any:
        i = self._next
        keys = self._keys
        if i >= len(keys):
            raise StopIteration
        self._next = i + 1  # first: an entry that fails is behind the next call
        what = self._what
        if what == _VALUES:
            return _decode_value(keys[i], self._values[i])  # type: ignore[index]
        key = _decode_key(keys[i])
        if what == _KEYS:
            return key
        return key, _decode_value(keys[i], self._values[i])  # type: ignore[index]

    def __length_hint__(self) -> int:
        return len(self._keys) - self._next


class _Snapshot(Mapping[Any, Any]):
    """The entries of a ProcessSharedDict at one moment, still pickled: read, they unpickle."""

    __slots__ = ("_index", "_keys", "_values")

    def __init__(self, keys: list[bytes], values: list[bytes] | None) -> None:
        self._keys = keys
        self._values = values
        self._index: dict[bytes, int] | None = None  # built at the first lookup

    def _find(self, key: Any) -> int:
        try:
            data = _encode_key(key)
        except SerializationError:  # never stored
            return -1
        index = self._index
        if index is None:
            index = self._index = {k: i for i, k in enumerate(self._keys)}
        return index.get(data, -1)

    def __getitem__(self, key: Any) -> Any:
        i = self._find(key)
        if i < 0 or self._values is None:
            raise KeyError(key)
        return _decode_value(self._keys[i], self._values[i])

    def __contains__(self, key: object) -> bool:
        return self._find(key) >= 0

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[Any]:
        return _Decoding(self._keys, None, _KEYS)

    def __reversed__(self) -> Iterator[Any]:
        return _Decoding(self._keys[::-1], None, _KEYS)


class _KeysView(KeysView[Any]):
    __slots__ = ()
    _mapping: _Snapshot

    def __iter__(self) -> Iterator[Any]:
        return _Decoding(self._mapping._keys, None, _KEYS)

    def __reversed__(self) -> Iterator[Any]:
        return reversed(self._mapping)


class _ValuesView(ValuesView[Any]):
    __slots__ = ()
    _mapping: _Snapshot

    def __iter__(self) -> Iterator[Any]:
        return _Decoding(self._mapping._keys, self._mapping._values, _VALUES)

    def __reversed__(self) -> Iterator[Any]:
        m = self._mapping
        return _Decoding(m._keys[::-1], m._values[::-1], _VALUES)  # type: ignore[index]

    def __contains__(self, value: object) -> bool:
        return any(v is value or v == value for v in self)


class _ItemsView(ItemsView[Any, Any]):
    __slots__ = ()
    _mapping: _Snapshot

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return _Decoding(self._mapping._keys, self._mapping._values, _ITEMS)

    def __reversed__(self) -> Iterator[tuple[Any, Any]]:
        m = self._mapping
        return _Decoding(m._keys[::-1], m._values[::-1], _ITEMS)  # type: ignore[index]


class _TableLock:
    """The table's recursive mutex as a ``with`` lock, for the mapping algorithm."""

    __slots__ = ("__enter__", "_exit")

    def __init__(self, table: SharedHashTable) -> None:
        self.__enter__ = table.enter
        self._exit = table.exit

    def __exit__(self, *exc: object) -> None:
        self._exit()


def _attach_dict(name: str) -> ProcessSharedDict:
    """Unpickle a ProcessSharedDict handle: map its table in this process."""
    handle = ProcessSharedDict.__new__(ProcessSharedDict)
    handle._setup(SharedHashTable.attach(name))
    return handle


class ProcessSharedDict(SharedDictCore, Closing):
    """A dict shared by processes, in shared memory, without a server process.

    The same API as :class:`ThreadSharedDict`: a full :class:`collections.abc.MutableMapping`
    plus :meth:`update_item` and :meth:`transaction`. Keys and values are pickled into a hash
    table in a shared-memory segment that every process maps; an operation is a few memory
    accesses under a robust mutex, where a :func:`multiprocessing.Manager` dict makes a round
    trip to a server process. Reads of unchanged entries are served from a per-handle cache
    validated by the table's version, without the mutex. The table grows (and compacts) as
    needed. A picklable handle: pass it to pool tasks or to any process, with any start
    method.

    Differences from a :class:`dict`, all due to pickling:

    * a value read back is a copy: mutating it does not change the dict (use
      :meth:`update_item`);
    * keys are equal when their stored forms are: ``str``, ``bytes``, ``int``, ``None`` and
      tuples of those behave exactly as in a dict, but ``1``, ``1.0`` and an ``IntEnum`` of
      value 1 are different keys (``True`` is ``1``, as in a dict).

    A process killed in the middle of an update never leaves the table corrupt or locked: the
    next user takes the mutex over (counted in :meth:`statistics`) and repairs the counts.

    A value (or a key) that cannot be unpickled in this process (its class cannot be imported
    here, or its ``__setstate__`` raises) is a :exc:`~concurrency_kit.SerializationError`
    naming the key, with the original error as ``__cause__``, raised by the operation that
    reads that entry only: ``d[key]``, ``get``, ``pop``, ``setdefault``, ``update_item`` and
    ``popitem`` raise it and leave the entry as it is; ``in``, ``len``, ``del d[key]``,
    ``d[key] = new`` and ``clear`` never unpickle a value, so they work. Unpickling happens
    outside the dict's lock (or, inside a compound operation, it is released as the error
    propagates): other keys stay readable and writable by every process.

    Iterating (over the dict, :meth:`keys`, :meth:`values` or :meth:`items`) unpickles each
    entry as it is reached: the entries before a bad one come out, the bad one raises
    :exc:`~concurrency_kit.SerializationError` from that ``next()``, and the next ``next()``
    goes on with the entry after it, so a caller can skip bad entries::

        it = iter(d.items())
        while True:
            try:
                key, value = next(it)
            except StopIteration:
                break
            except SerializationError as exc:
                log.warning("skipped: %s", exc)
                continue
            ...

    A ``for`` loop stops at the first bad entry (with its error), as it does for any
    exception. :meth:`to_dict` and ``==`` need every value, ``popitem`` the last one, and
    raise for a bad one. Keys of ``str``, ``bytes``, ``int``, ``None`` and tuples of those are
    not pickled, so iterating over the keys fails only on keys of other types (pickled).

    The bytes of the table are checked before they are used (every length and offset): a
    table that another program wrote into raises an error that is a
    :exc:`~concurrency_kit.ConcurrencyKitError` and a :exc:`RuntimeError` ("is corrupt"),
    never a read out of place or another entry's bytes.

    Example::

        counts = ProcessSharedDict()
        with ProcessPool(2) as pool:
            pool.map(count_words, [counts] * 4, chunks)
        print(counts.to_dict())
        counts.close()
    """

    __slots__ = ("__weakref__", "_lock", "_table")

    def __init__(self, data: Mapping[Any, Any] | Iterable[tuple[Any, Any]] = (), /) -> None:
        """Create a dict in a new shared-memory segment, filled from ``data`` as ``dict()``.

        Raises:
            OSError: the segment could not be created.
            SerializationError: a key or value of ``data`` cannot be pickled (nothing leaks).
        """
        self._setup(SharedHashTable.create())
        try:
            self._initial(data)
        except BaseException:
            self.close()
            raise

    def _setup(self, table: SharedHashTable) -> None:
        self._table = table
        self._lock = _TableLock(table)

    def _lookup(self, key: Any) -> Any:
        try:
            data = _encode_key(key)
        except SerializationError:  # a key that cannot be pickled was never stored
            return MISSING
        value = self._table.get(data, key_hash(data))
        return MISSING if value is None else _decode_value(data, value)

    def __contains__(self, key: object) -> bool:
        try:
            data = _encode_key(key)
        except SerializationError:  # a key that cannot be pickled was never stored
            return False
        return self._table.get(data, key_hash(data)) is not None  # the value is not unpickled

    def _store(self, key: Any, value: Any) -> None:
        data = _encode_key(key)
        self._table.set(
            data, key_hash(data), serialize.dumps_value(value, "into a ProcessSharedDict")
        )

    def _remove(self, key: Any) -> bool:
        try:
            data = _encode_key(key)
        except SerializationError:  # a key that cannot be pickled was never stored
            return False
        return self._table.delete(data, key_hash(data))

    def _store_many(self, pairs: list[tuple[Any, Any]]) -> None:
        # Everything is pickled before anything is stored: bad input leaves the dict unchanged.
        dumps = serialize.dumps_value
        encoded = []
        for key, value in pairs:
            data = _encode_key(key)
            encoded.append((data, key_hash(data), dumps(value, "into a ProcessSharedDict")))
        table = self._table
        with self._lock:
            for data, h, value_data in encoded:
                table.set(data, h, value_data)

    def _snapshot(self) -> dict[Any, Any]:
        return dict(_Decoding(*self._raw_items(), _ITEMS))

    def _acquire(self, seconds: float | None) -> bool:
        return self._table.acquire(deadline_after(seconds))

    def _raw_items(self) -> tuple[list[bytes], list[bytes]]:
        pairs = self._table.items()
        return [k for k, _ in pairs], [v for _, v in pairs]

    def __iter__(self) -> Iterator[Any]:
        """Iterate over the keys as of now; each is unpickled as it is reached (see the class)."""
        return _Decoding(self._table.keys(), None, _KEYS)

    def keys(self) -> KeysView[Any]:
        """The keys, as of now (a snapshot: later changes do not show in it).

        Iterating unpickles each key as it is reached; a key that cannot be unpickled raises
        :exc:`~concurrency_kit.SerializationError` there (see the class). ``len`` and ``in``
        unpickle nothing.
        """
        return _KeysView(_Snapshot(self._table.keys(), None))

    def values(self) -> ValuesView[Any]:
        """The values, as of now (a snapshot: later changes do not show in it).

        Iterating unpickles each value as it is reached; a value that cannot be unpickled
        raises :exc:`~concurrency_kit.SerializationError` there, naming its key (see the
        class).
        """
        return _ValuesView(_Snapshot(*self._raw_items()))

    def items(self) -> ItemsView[Any, Any]:
        """The (key, value) pairs, as of now (a snapshot: later changes do not show in it).

        Iterating unpickles each pair as it is reached; a pair that cannot be unpickled
        raises :exc:`~concurrency_kit.SerializationError` there, naming its key (see the
        class). ``(key, value) in items`` unpickles that key's value only.
        """
        return _ItemsView(_Snapshot(*self._raw_items()))

    def popitem(self) -> tuple[Any, Any]:
        """Remove and return the last (key, value) pair in iteration order.

        Raises:
            KeyError: the dict is empty.
            SerializationError: the last pair cannot be unpickled (it stays in the dict).
        """
        with self._lock:
            pairs = self._table.items()
            if not pairs:
                raise KeyError("popitem(): dictionary is empty")
            data, value_data = pairs[-1]
            pair = _decode_key(data), _decode_value(data, value_data)
            self._table.delete(data, key_hash(data))
            return pair

    def __len__(self) -> int:
        return len(self._table)

    def clear(self) -> None:
        """Remove every entry."""
        self._table.clear()

    def statistics(self) -> SharedDictStatistics:
        """Return a snapshot: length, shared memory committed and used, growths, recoveries."""
        t = self._table.statistics()
        return SharedDictStatistics(
            length=t.count,
            capacity_bytes=t.committed_bytes,
            used_bytes=t.arena_bytes - t.garbage_bytes,
            growths=t.rebuilds,
            mutex_recoveries=t.mutex_recoveries,
        )

    def close(self) -> None:
        """Release this process's mapping (idempotent); the creating handle also removes the
        table, which processes that have it mapped keep using. Using a closed handle raises
        :exc:`ValueError`."""
        self._table.unlink()
        self._table.close()

    def __repr__(self) -> str:
        cls = type(self)
        table = self._table
        state = "closed" if table.closed else f"len={len(table)}"
        return f"<{cls.__module__}.{cls.__qualname__} {state} {table.name} at {id(self):#x}>"

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        if self._table.closed:
            raise ValueError("cannot pickle a closed ProcessSharedDict")
        return _attach_dict, (self._table.name,)

"""What both models' scalar and array containers share: type codes, checks, statistics, arrays.

A *codec* per :mod:`array` type code knows how a value of that code is checked, stored and
compared, so that a thread container and a process container accept, refuse and return exactly
the same values::

    user value ── Codec.check ──> canonical value (int, or float rounded to the code's width)
                     │ TypeError: not a number of the code's kind
                     │ OverflowError: outside the code's range (float32: finite but too large)
                     v
    thread model: kept as a Python object    process model: Codec.arg -> ctypes object of the
                                                              code's width, stored in shared memory

Comparisons (``compare_and_set``) are on the stored *bit pattern*, in both models: the process
model compares memory with a hardware compare-and-swap, and the thread model compares packed
bytes to match. For integers that is plain equality; for floats it means that ``-0.0`` and
``0.0`` differ and that a NaN matches the same NaN.

:class:`ArrayCore` is the whole array algorithm, written once over a typed :class:`memoryview`
(of an :class:`array.array` for threads, of a shared-memory segment for processes) and a
re-entrant lock (:class:`~concurrency_kit.ThreadRLock` or :class:`~concurrency_kit.ProcessRLock`).
"""

from __future__ import annotations

import array
import builtins
import ctypes
import functools
import operator
import struct
import sys
from collections.abc import Iterable, Iterator
from typing import Any, Final

import attrs

from concurrency_kit.sync import LockStatistics

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "TYPECODES",
    "ArrayCore",
    "Codec",
    "SharedArrayStatistics",
    "SharedCounterStatistics",
    "SharedValueStatistics",
    "codec",
    "initial_items",
    "wrap_int64",
]

TYPECODES: Final = ("b", "B", "h", "H", "i", "I", "l", "L", "q", "Q", "f", "d")
"""The :mod:`array` type codes a shared value or array may have (``'u'``/``'w'`` are not
numbers and are refused)."""

INT64_MIN: Final = -(1 << 63)
INT64_MAX: Final = (1 << 63) - 1
_UINT64: Final = 1 << 64

_CTYPES: Final[dict[str, type[Any]]] = {
    "b": ctypes.c_byte,
    "B": ctypes.c_ubyte,
    "h": ctypes.c_short,
    "H": ctypes.c_ushort,
    "i": ctypes.c_int,
    "I": ctypes.c_uint,
    "l": ctypes.c_long,
    "L": ctypes.c_ulong,
    "q": ctypes.c_longlong,
    "Q": ctypes.c_ulonglong,
    "f": ctypes.c_float,
    "d": ctypes.c_double,
}
_ENDIAN: Final = "<" if sys.byteorder == "little" else ">"


def wrap_int64(value: int) -> int:
    """``value`` wrapped into the signed 64-bit range, as the hardware adds (two's complement)."""
    if INT64_MIN <= value <= INT64_MAX:
        return value
    return (value - INT64_MIN) % _UINT64 + INT64_MIN


def check_typecode(typecode: object) -> str:
    """Return ``typecode`` if it is one of :data:`TYPECODES`.

    Raises:
        ValueError: it is not (``'u'``, ``'w'``, anything else), naming the valid codes.
    """
    if not isinstance(typecode, str) or typecode not in TYPECODES:
        raise ValueError(
            f"bad typecode {typecode!r}: must be one of {', '.join(TYPECODES)} "
            "(the numeric type codes of the array module)"
        )
    return typecode


class Codec:
    """How values of one type code are checked, stored and compared (module docstring).

    Attributes:
        typecode: the :mod:`array` type code.
        itemsize: bytes per value.
        is_float: ``'f'`` or ``'d'``.
        low, high: the range of an integer code (``None`` for floats).
        ctype: the :mod:`ctypes` type of a stored value.
        typestr: the NumPy ``__array_interface__`` type string (``'<i4'``).
    """

    __slots__ = (
        "_compatible",
        "_mask",
        "_prefix",
        "_struct",
        "ctype",
        "high",
        "is_float",
        "itemsize",
        "low",
        "typecode",
        "typestr",
    )

    def __init__(self, typecode: str) -> None:
        self.typecode = typecode
        self.ctype = _CTYPES[typecode]
        self.itemsize = ctypes.sizeof(self.ctype)
        self._mask = (1 << (8 * self.itemsize)) - 1
        self.is_float = typecode in "fd"
        # Floats: "=" (standard sizes, native order), which refuses a finite float beyond
        # float32 where native "f" gives inf. Integers: native sizes ("=l" has 4 bytes).
        self._prefix = "=" if self.is_float else ""
        self._struct = struct.Struct(self._prefix + typecode)
        if self.is_float:
            self.low = self.high = None
            kind = "f"
        else:
            bits = self.itemsize * 8
            signed = typecode.islower()
            self.low = -(1 << (bits - 1)) if signed else 0
            self.high = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
            kind = "i" if signed else "u"
        self.typestr = f"{_ENDIAN}{kind}{self.itemsize}"
        # Buffer formats whose items are bit-for-bit this code's ('l' and 'q' on LP64, ...).
        same_kind = [
            other
            for other in TYPECODES
            if (other in "fd") == self.is_float
            and (self.is_float or other.islower() == typecode.islower())
            and struct.calcsize(other) == self.itemsize
        ]
        self._compatible = {prefix + other for other in same_kind for prefix in ("", "@")}

    @property
    def kind(self) -> str:
        """``"floats"`` or ``"integers"``, for error messages."""
        return "floats" if self.is_float else "integers"

    def range_text(self) -> str:
        if self.is_float:
            return "float32" if self.typecode == "f" else "float64"
        return f"{self.low} to {self.high}"

    def check(self, value: object) -> Any:
        """Return ``value`` as it will be stored and read back.

        Raises:
            TypeError: ``value`` is not a number of this code's kind (a float for an integer
                code; a string, ``None``, ... for any code).
            OverflowError: it is outside the code's range.
        """
        if not self.is_float:
            if type(value) is not int:
                try:
                    value = operator.index(value)  # type: ignore[arg-type]
                except TypeError:
                    raise TypeError(
                        f"typecode {self.typecode!r} holds integers, not {type(value).__name__}"
                    ) from None
            assert isinstance(value, int)
            if not self.low <= value <= self.high:  # type: ignore[operator]
                raise OverflowError(
                    f"{value} is out of range for typecode {self.typecode!r} ({self.range_text()})"
                )
            return value
        return self._struct.unpack(self._pack_float(value))[0]

    def _pack_float(self, value: object) -> bytes:
        if isinstance(value, (str, bytes, bytearray)):
            raise TypeError(f"typecode {self.typecode!r} holds floats, not {type(value).__name__}")
        try:
            return self._struct.pack(value)
        except struct.error:
            raise TypeError(
                f"typecode {self.typecode!r} holds floats, not {type(value).__name__}"
            ) from None
        except OverflowError:
            raise OverflowError(
                f"{value!r} is out of range for typecode {self.typecode!r} ({self.range_text()})"
            ) from None

    def same(self, a: Any, b: Any) -> bool:
        """Whether two canonical values have the same bit pattern."""
        if self.is_float:
            return self._struct.pack(a) == self._struct.pack(b)
        return bool(a == b)

    def bits(self, value: Any) -> int:
        """A canonical value's bit pattern, as an unsigned int (what the atomics take)."""
        if self.is_float:
            return int.from_bytes(self._struct.pack(value), sys.byteorder)
        return int(value) & self._mask

    def to_array(self, values: object) -> array.array[Any]:
        """Check every value of ``values`` (an iterable) and return them as an array.

        A buffer of this code's format (an :class:`array.array`, a NumPy array of the same
        dtype, ...) is copied as it is; anything else is converted item by item.

        Raises:
            TypeError: ``values`` is not iterable, or an item is not a number of this kind.
            OverflowError: an item is outside the code's range.
        """
        tc = self.typecode
        if isinstance(values, str):
            raise TypeError(f"cannot fill a typecode {tc!r} array from a str")
        if not isinstance(values, (list, tuple)):
            try:
                view = memoryview(values)  # type: ignore[arg-type]
            except TypeError:
                pass
            else:
                with view:
                    if view.format in self._compatible and view.ndim == 1 and view.c_contiguous:
                        result = array.array(tc)
                        with view.cast("B") as raw:  # frombytes takes byte buffers only
                            result.frombytes(raw)
                        return result
            if not isinstance(values, Iterable):
                raise TypeError(
                    f"a typecode {tc!r} array is filled from an iterable of {self.kind}, "
                    f"not {type(values).__name__}"
                )
            values = list(values)
        # struct packs a list about twice as fast as array.array(tc, values) converts it.
        try:
            packed = _packer(f"{self._prefix}{len(values)}{tc}").pack(*values)
        except (struct.error, TypeError, OverflowError):
            for item in values:
                self.check(item)  # the error a single value gets, for the first bad item
            raise  # pragma: no cover - struct and check agree on what they refuse
        result = array.array(tc)
        result.frombytes(packed)
        return result


@functools.lru_cache(maxsize=64)
def _packer(fmt: str) -> struct.Struct:
    # A Struct's own pack is twice as fast as struct.pack(fmt, ...) on 100k items (3.11).
    return struct.Struct(fmt)


_CODECS: Final = {tc: Codec(tc) for tc in TYPECODES}


def codec(typecode: object) -> Codec:
    """The codec of ``typecode``.

    Raises:
        ValueError: not one of :data:`TYPECODES` (the message names the valid codes).
    """
    return _CODECS[check_typecode(typecode)]


def initial_items(codec_: Codec, size_or_initializer: object) -> array.array[Any]:
    """The first items of an array: ``size`` zeros, or the checked items of an iterable."""
    if isinstance(size_or_initializer, int):
        if size_or_initializer < 0:
            raise ValueError(f"an array cannot have a negative length ({size_or_initializer})")
        return array.array(codec_.typecode, bytes(size_or_initializer * codec_.itemsize))
    return codec_.to_array(size_or_initializer)


# -- statistics --------------------------------------------------------------------------------


@attrs.frozen
class SharedCounterStatistics:
    """A snapshot of a shared counter.

    Attributes:
        value: the counter's value.
        lock_free: whether updates are single hardware atomic instructions (always, for
            processes) rather than made under a lock (threads).
        mutex_recoveries: times a process died holding the segment's mutex and a later caller
            took it over; the value itself takes no lock, so this stays 0.
    """

    value: int
    lock_free: bool
    mutex_recoveries: int


@attrs.frozen
class SharedValueStatistics:
    """A snapshot of a shared typed value.

    Attributes:
        typecode: the value's :mod:`array` type code.
        value: the value.
        lock_free: whether updates are single hardware atomic instructions (always, for
            processes) rather than made under a lock (threads).
        mutex_recoveries: times a process died holding the segment's mutex and a later caller
            took it over; the value itself takes no lock, so this stays 0.
    """

    typecode: str
    value: int | float
    lock_free: bool
    mutex_recoveries: int


@attrs.frozen
class SharedArrayStatistics:
    """A snapshot of a shared array.

    Attributes:
        typecode: the items' :mod:`array` type code.
        length: the number of items (fixed).
        lock: the statistics of the array's re-entrant lock; for processes its
            ``owner_deaths_recovered`` counts holders that died in the middle of an update.
    """

    typecode: str
    length: int
    lock: LockStatistics


# -- arrays --------------------------------------------------------------------------------------


class ArrayCore:
    """The array algorithm over ``_mv`` (a typed memoryview) and ``_lock`` (a re-entrant lock).

    Every indexing and slicing operation, read or write, holds the lock, so a caller holding
    :meth:`lock` sees no other caller's update half-done (the design of
    :func:`multiprocessing.Array`'s synchronized wrapper). Values are checked before the lock
    is taken: a bad value or index raises and changes nothing.
    """

    __slots__ = ("__weakref__", "_codec", "_length", "_lock", "_mv")
    _codec: Codec
    _length: int
    _lock: Any
    _mv: Any

    @property
    def typecode(self) -> str:
        """The items' :mod:`array` type code."""
        return self._codec.typecode

    @property
    def itemsize(self) -> int:
        """Bytes per item."""
        return self._codec.itemsize

    def _open_view(self) -> builtins.memoryview:
        """The items' memoryview, or :exc:`ValueError` if the handle is closed."""
        mv = self._mv
        if type(mv) is not builtins.memoryview:
            raise ValueError(f"{type(self).__qualname__} is closed")
        return mv

    def __len__(self) -> int:
        return int(self._open_view().shape[0])  # type: ignore[index]

    def _index(self, mv: builtins.memoryview, index: object) -> int:
        n = int(mv.shape[0])  # type: ignore[index]
        try:
            i = operator.index(index)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(
                f"array indices must be integers or slices, not {type(index).__name__}"
            ) from None
        if not -n <= i < n:
            raise IndexError(f"array index {i} out of range for an array of length {n}")
        return i

    def __getitem__(self, index: int | slice) -> Any:
        """One item, or a list of the items of a slice (a copy)."""
        mv = self._open_view()
        if isinstance(index, slice):
            with self._lock:
                return mv[index].tolist()
        i = self._index(mv, index)
        with self._lock:
            return mv[i]

    def __setitem__(self, index: int | slice, value: Any) -> None:
        """Set one item, or the items of a slice (from an iterable of the same length).

        Raises:
            TypeError: a value of the wrong kind (a float in an integer array, a string, ...),
                or an index that is neither an integer nor a slice.
            OverflowError: a value outside the type code's range.
            IndexError: an index out of range.
            ValueError: a slice assigned a different number of values (the size is fixed).
        """
        mv = self._open_view()
        if isinstance(index, slice):
            items = self._codec.to_array(value)
            wanted = len(range(*index.indices(int(mv.shape[0]))))  # type: ignore[index]
            if len(items) != wanted:
                raise ValueError(
                    f"cannot assign {len(items)} values to a slice of {wanted} items: a shared "
                    "array has a fixed size"
                )
            with self._lock:
                mv[index] = items
            return
        i = self._index(mv, index)
        checked = self._codec.check(value)
        with self._lock:
            mv[i] = checked

    def __delitem__(self, index: object) -> None:
        raise TypeError("a shared array has a fixed size: items cannot be deleted")

    def __iter__(self) -> Iterator[Any]:
        """Iterate over a snapshot of the items, taken under the lock."""
        return iter(self.tolist())

    def __contains__(self, value: object) -> bool:
        return value in self.tolist()

    def tolist(self) -> list[Any]:
        """A list of all the items, copied under the lock (a consistent snapshot)."""
        mv = self._open_view()
        with self._lock:
            items: list[Any] = mv.tolist()
        return items

    def memoryview(self) -> builtins.memoryview:
        """A typed :class:`memoryview` of the items' memory, itself (no copy).

        Its format is the type code; writes through it are seen by every user of the array
        at once, without the lock: hold :meth:`lock` around a bulk update that others must not
        see half-done. ``numpy.frombuffer(arr.memoryview(), dtype=...)`` gives a NumPy array
        on the same memory. The view keeps the memory mapped while it exists, even after
        :meth:`close`.

        On Python 3.12 and newer the array itself supports the buffer protocol
        (``memoryview(arr)``, ``numpy.frombuffer(arr, ...)``); before 3.12 a class written in
        Python cannot (PEP 688), hence this method.
        """
        return memoryview(self._open_view())

    def __buffer__(self, flags: int) -> builtins.memoryview:
        """The buffer protocol (Python 3.12+): ``memoryview(arr)`` is :meth:`memoryview`."""
        return memoryview(self._open_view())

    @property
    def __array_interface__(self) -> dict[str, Any]:
        """NumPy's array interface: ``numpy.asarray(arr)`` is a view of the same memory."""
        mv = self._open_view()
        return {
            "shape": (len(mv),),
            "typestr": self._codec.typestr,
            "data": memoryview(mv),  # numpy keeps it, hence the memory, alive
            "version": 3,
        }

    def statistics(self) -> SharedArrayStatistics:
        """A snapshot: type code, length and the lock's statistics."""
        length = len(self)
        return SharedArrayStatistics(
            typecode=self._codec.typecode, length=length, lock=self._lock.statistics()
        )

    def _describe(self) -> str:
        return f"typecode={self._codec.typecode!r} length={len(self)}"

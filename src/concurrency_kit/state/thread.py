"""The thread column of the shared-state row: containers in the memory every thread shares.

Threads share one memory space, so a thread container is an ordinary object that every thread
uses directly; what it adds is atomicity that does not depend on the GIL::

    ThreadSharedCounter / ThreadSharedValue
      _value   the canonical value    read without the lock (one reference load: safe with or
                                      without the GIL); replaced only under _lock
      _lock    _thread.lock           held by every write: set, add, compare_and_set

    ThreadSharedDict
      _data    dict                   every operation under _lock (a C re-entrant lock); the
      _lock    _thread.RLock          MutableMapping algorithm is written once in _mapping.py

    ThreadSharedArray
      _store   array.array            the items; never resized, so views stay valid
      _mv      memoryview(_store)     what every operation indexes (ArrayCore in _base.py)
      _lock    ThreadRLock            held by every indexing operation, and by lock()

Values are checked exactly as the process containers check them (``_base.Codec``), so code
moved from one model to the other accepts and refuses the same values: a thread counter is a
64-bit signed integer that wraps around, like the process one, not an unbounded Python int.
"""

from __future__ import annotations

from _thread import RLock, allocate_lock
from collections.abc import Iterable, Mapping
from typing import Any

from concurrency_kit._core.deadline import deadline_after, remaining, wait_slice
from concurrency_kit._core.handles import Closing, ThreadHandle
from concurrency_kit.state._base import (
    ArrayCore,
    Codec,
    SharedCounterStatistics,
    SharedValueStatistics,
    codec,
    initial_items,
    wrap_int64,
)
from concurrency_kit.state._mapping import MISSING, SharedDictCore, SharedDictStatistics
from concurrency_kit.sync import ThreadRLock

__all__ = ["ThreadSharedArray", "ThreadSharedCounter", "ThreadSharedDict", "ThreadSharedValue"]

_INT64 = codec("q")


class _ThreadContainer(Closing, ThreadHandle):
    """``close()`` (nothing to release), no pickling, a repr, and ``with`` closing it."""

    __slots__ = ()


class ThreadSharedCounter(_ThreadContainer):
    """A 64-bit signed integer that threads update atomically.

    :meth:`add` is one atomic read-modify-write, which ``counter += 1`` on an ``int`` is not
    (two threads can read the same value and both write it plus one). Every update holds a
    lock, so the counter stays exact without the GIL too. The same API as
    :class:`ProcessSharedCounter`, including its 64-bit wrap-around.

    Example::

        hits = ThreadSharedCounter()
        with ThreadPool(4) as pool:
            pool.map(lambda _: hits.add(), range(1000))
        assert hits.get() == 1000
    """

    __slots__ = ("__weakref__", "_lock", "_value")

    def __init__(self, initial: int = 0) -> None:
        """Create a counter holding ``initial``.

        Raises:
            TypeError: ``initial`` is not an integer.
            OverflowError: it is outside the signed 64-bit range.
        """
        self._value: int = _INT64.check(initial)
        self._lock = allocate_lock()

    def get(self) -> int:
        """Return the value."""
        return self._value

    def set(self, value: int) -> None:
        """Replace the value.

        Raises:
            TypeError: ``value`` is not an integer.
            OverflowError: it is outside the signed 64-bit range (the counter is unchanged).
        """
        checked = _INT64.check(value)
        with self._lock:
            self._value = checked

    def add(self, n: int = 1) -> int:
        """Add ``n`` (negative to subtract) atomically and return the new value.

        Past the signed 64-bit range the value wraps around, as a C ``int64_t``, Java's
        ``AtomicLong`` and :class:`ProcessSharedCounter` do.

        Raises:
            TypeError: ``n`` is not an integer.
            OverflowError: ``n`` itself is outside the signed 64-bit range (nothing added).
        """
        if type(n) is not int or not -0x8000000000000000 <= n <= 0x7FFFFFFFFFFFFFFF:
            n = _INT64.check(n)
        # acquire/try/finally: a third cheaper than ``with`` on a _thread.lock (3.11).
        lock = self._lock
        lock.acquire()
        try:
            new = self._value + n
            if not -0x8000000000000000 <= new <= 0x7FFFFFFFFFFFFFFF:
                new = wrap_int64(new)
            self._value = new
        finally:
            lock.release()
        return new

    def compare_and_set(self, expected: int, new: int) -> bool:
        """Set the value to ``new`` if it is ``expected``, atomically; return whether it was.

        Raises:
            TypeError: ``expected`` or ``new`` is not an integer.
            OverflowError: ``new`` is outside the signed 64-bit range.
        """
        new = _INT64.check(new)
        try:
            expected = _INT64.check(expected)
        except OverflowError:
            return False  # the counter cannot hold it, so does not
        with self._lock:
            if self._value != expected:
                return False
            self._value = new
            return True

    def statistics(self) -> SharedCounterStatistics:
        """A snapshot: the value (threads always update under a lock)."""
        return SharedCounterStatistics(value=self._value, lock_free=False, mutex_recoveries=0)

    def _describe(self) -> str:
        return f"value={self._value}"


class ThreadSharedValue(_ThreadContainer):
    """A typed value (an :mod:`array` type code) that threads update atomically.

    The value is checked and rounded as the process model stores it (``'f'`` holds a
    float32, ``'B'`` an integer from 0 to 255, ...). :meth:`compare_and_set` compares bit
    patterns, as :class:`ProcessSharedValue` does: for floats, ``-0.0`` differs from ``0.0``
    and a NaN matches itself.

    Example::

        best = ThreadSharedValue("d", float("inf"))
        current = best.get()
        while score < current and not best.compare_and_set(current, score):
            current = best.get()
    """

    __slots__ = ("__weakref__", "_codec", "_lock", "_value")

    def __init__(self, typecode: str, initial: float = 0) -> None:
        """Create a value of type code ``typecode`` holding ``initial``.

        Args:
            typecode: one of ``b B h H i I l L q Q f d`` (the numeric :mod:`array` codes).
            initial: the first value.

        Raises:
            ValueError: ``typecode`` is not one of these.
            TypeError: ``initial`` is not a number of the code's kind.
            OverflowError: it is outside the code's range.
        """
        self._codec: Codec = codec(typecode)
        self._value: Any = self._codec.check(initial)
        self._lock = allocate_lock()

    @property
    def typecode(self) -> str:
        """The value's :mod:`array` type code."""
        return self._codec.typecode

    def get(self) -> Any:
        """Return the value."""
        return self._value

    def set(self, value: float) -> None:
        """Replace the value.

        Raises:
            TypeError: ``value`` is not a number of the code's kind (the value is unchanged).
            OverflowError: it is outside the code's range (the value is unchanged).
        """
        checked = self._codec.check(value)
        with self._lock:
            self._value = checked

    def compare_and_set(self, expected: float, new: float) -> bool:
        """Set the value to ``new`` if it is ``expected`` (same bits), atomically.

        Returns:
            Whether the value was ``expected`` (and is now ``new``).

        Raises:
            TypeError: ``expected`` or ``new`` is not a number of the code's kind.
            OverflowError: ``new`` is outside the code's range.
        """
        codec_ = self._codec
        new = codec_.check(new)
        try:
            expected = codec_.check(expected)
        except OverflowError:
            return False  # the value cannot hold it, so does not
        with self._lock:
            if not codec_.same(self._value, expected):
                return False
            self._value = new
            return True

    def statistics(self) -> SharedValueStatistics:
        """A snapshot: type code and value (threads always update under a lock)."""
        return SharedValueStatistics(
            typecode=self._codec.typecode, value=self._value, lock_free=False, mutex_recoveries=0
        )

    def _describe(self) -> str:
        return f"typecode={self._codec.typecode!r} value={self._value!r}"


class ThreadSharedArray(ArrayCore, _ThreadContainer):
    """A fixed-size typed array that threads share, with a lock for bulk updates.

    Indexing, slicing, iteration (over a snapshot) and :meth:`tolist` hold the array's lock
    (a :class:`~concurrency_kit.ThreadRLock`), so ``with arr.lock():`` makes several
    operations one update that no other thread sees half-done. :meth:`memoryview` (and, on
    Python 3.12+, the buffer protocol) and ``numpy.asarray(arr)`` give the items' memory
    itself. The same API as :class:`ProcessSharedArray`.

    Example::

        arr = ThreadSharedArray("d", 4)
        arr[0] = 1.5
        with arr.lock():
            arr[1:3] = [2.0, 3.0]
        assert arr.tolist() == [1.5, 2.0, 3.0, 0.0]
    """

    __slots__ = ("_store",)
    _lock: ThreadRLock

    def __init__(self, typecode: str, size_or_initializer: int | Any) -> None:
        """Create an array of type code ``typecode``.

        Args:
            typecode: one of ``b B h H i I l L q Q f d`` (the numeric :mod:`array` codes).
            size_or_initializer: a length (the items start at zero) or an iterable of the
                items, as for :func:`multiprocessing.Array`.

        Raises:
            ValueError: a bad type code, or a negative length.
            TypeError: an item is not a number of the code's kind.
            OverflowError: an item is outside the code's range.
        """
        self._codec = codec(typecode)
        self._store = initial_items(self._codec, size_or_initializer)
        self._length = len(self._store)
        self._mv = memoryview(self._store)
        self._lock = ThreadRLock()

    def lock(self) -> ThreadRLock:
        """The array's re-entrant lock: ``with arr.lock():`` holds it for a bulk update.

        Every indexing operation takes it too, so other threads wait for the block to end;
        the holder may index the array inside the block.
        """
        return self._lock


class ThreadSharedDict(SharedDictCore, _ThreadContainer):
    """A dict that threads share, with atomic compound operations.

    A full :class:`collections.abc.MutableMapping` (every :class:`dict` method but
    ``fromkeys`` and ``copy``; :meth:`to_dict` makes a plain copy), plus
    :meth:`update_item`, an atomic read-modify-write, and :meth:`transaction`, which holds the
    dict's lock for several operations. Every operation holds a re-entrant lock: nothing
    relies on the GIL. Values are the very objects stored (no copies); iteration and the
    views work on a snapshot.

    Example::

        counts = ThreadSharedDict()
        counts.update_item("apples", lambda n: n + 1, default=0)
        with counts.transaction():
            counts["pears"] = counts.get("pears", 0) + counts.pop("apples")
    """

    __slots__ = ("_data", "_lock")

    def __init__(self, data: Mapping[Any, Any] | Iterable[tuple[Any, Any]] = (), /) -> None:
        """Create a dict, filled from ``data`` (a mapping or (key, value) pairs) as ``dict()``."""
        self._data: dict[Any, Any] = {}
        self._lock = RLock()
        self._initial(data)

    # The single operations are written out (not built on _lookup/_store) because they are the
    # hot path: one lock and one dict operation each.
    def __getitem__(self, key: Any) -> Any:
        with self._lock:
            return self._data[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        with self._lock:
            self._data[key] = value

    def __delitem__(self, key: Any) -> None:
        with self._lock:
            del self._data[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def _lookup(self, key: Any) -> Any:
        with self._lock:
            return self._data.get(key, MISSING)

    def _store(self, key: Any, value: Any) -> None:
        with self._lock:
            self._data[key] = value

    def _remove(self, key: Any) -> bool:
        with self._lock:
            return self._data.pop(key, MISSING) is not MISSING

    def _snapshot(self) -> dict[Any, Any]:
        with self._lock:
            return self._data.copy()

    def _acquire(self, seconds: float | None) -> bool:
        deadline = deadline_after(seconds)
        while True:
            left = remaining(deadline)
            if self._lock.acquire(True, wait_slice(left)):  # bounded: never an overflow
                return True
            if left is not None and remaining(deadline) == 0:
                return False

    def clear(self) -> None:
        """Remove every entry."""
        with self._lock:
            self._data.clear()

    def statistics(self) -> SharedDictStatistics:
        """Return a snapshot: the length (the other fields concern processes and are 0)."""
        return SharedDictStatistics(
            length=len(self), capacity_bytes=0, used_bytes=0, growths=0, mutex_recoveries=0
        )

    def _describe(self) -> str:
        return f"len={len(self)}"

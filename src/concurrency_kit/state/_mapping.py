"""The SharedDict algorithm, written once for both models: a MutableMapping over five primitives.

A model's dict provides a re-entrant lock and five operations on its storage; everything a
:class:`collections.abc.MutableMapping` offers, plus the atomic helpers, is built here on them::

    model provides            _lock (re-entrant; ``with``), _acquire(seconds) -> bool,
                              _lookup(key) -> value | MISSING, _store(key, value),
                              _remove(key) -> bool, _snapshot() -> dict, __len__
    built here                [], []=, del, in, iter, get, keys/values/items, pop, popitem,
                              setdefault, update, clear, update_item, transaction, to_dict

Single operations are atomic by themselves (each model's storage sees to that); the compound
ones (``pop``, ``setdefault``, ``update_item``, ``update``, ``popitem``) hold the lock across
their steps, so no other thread or process can come in between. Iteration and the views work
on a snapshot taken under the lock: they never fail with "changed size during iteration", and
they show the dict as it was when they were taken.
"""

from __future__ import annotations

import contextlib
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    MutableMapping,
    ValuesView,
)
from contextlib import AbstractContextManager
from typing import Any, Final

import attrs
from typing_extensions import Self

from concurrency_kit._core.deadline import check_timeout
from concurrency_kit.errors import LockTimeoutError

__all__ = ["MISSING", "SharedDictCore", "SharedDictStatistics"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = _Missing()
"""No value: what ``_lookup`` returns for an absent key, and an omitted ``default``."""


@attrs.frozen
class SharedDictStatistics:
    """A snapshot of a shared dict.

    Attributes:
        length: entries now.
        capacity_bytes: shared memory allocated to the table now (processes; 0 for threads).
        used_bytes: bytes of live keys and values in it (processes; 0 for threads).
        growths: times the table was rebuilt to grow or compact (processes; 0 for threads).
        mutex_recoveries: times a process died holding the dict's lock and the next user took
            it over (processes; 0 for threads).
    """

    length: int
    capacity_bytes: int
    used_bytes: int
    growths: int
    mutex_recoveries: int


class SharedDictCore(MutableMapping[Any, Any]):
    """The mapping methods of both models' shared dicts (see the module docstring)."""

    __slots__ = ()
    _lock: Any

    def _lookup(self, key: Any) -> Any:
        raise NotImplementedError

    def _store(self, key: Any, value: Any) -> None:
        raise NotImplementedError

    def _remove(self, key: Any) -> bool:
        raise NotImplementedError

    def _snapshot(self) -> dict[Any, Any]:
        raise NotImplementedError

    def _acquire(self, seconds: float | None) -> bool:
        """Take ``_lock`` (re-entrantly) within ``seconds`` (``None``: as long as it takes)."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, key: Any) -> Any:
        value = self._lookup(key)
        if value is MISSING:
            raise KeyError(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self._store(key, value)

    def __delitem__(self, key: Any) -> None:
        if not self._remove(key):
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return self._lookup(key) is not MISSING

    def __iter__(self) -> Iterator[Any]:
        return iter(self._snapshot())

    def get(self, key: Any, default: Any = None) -> Any:
        """Return the value of ``key``, or ``default`` when it is absent."""
        value = self._lookup(key)
        return default if value is MISSING else value

    def keys(self) -> KeysView[Any]:
        """The keys, as of now (a snapshot: later changes do not show in it)."""
        return self._snapshot().keys()

    def values(self) -> ValuesView[Any]:
        """The values, as of now (a snapshot)."""
        return self._snapshot().values()

    def items(self) -> ItemsView[Any, Any]:
        """The (key, value) pairs, as of now (a snapshot)."""
        return self._snapshot().items()

    def to_dict(self) -> dict[Any, Any]:
        """Return a plain :class:`dict` with the entries, as of now."""
        return self._snapshot()

    def pop(self, key: Any, default: Any = MISSING) -> Any:
        """Remove ``key`` and return its value, or ``default`` if it is absent.

        Raises:
            KeyError: the key is absent and no default was given.
        """
        with self._lock:
            value = self._lookup(key)
            if value is MISSING:
                if default is MISSING:
                    raise KeyError(key)
                return default
            self._remove(key)
            return value

    def popitem(self) -> tuple[Any, Any]:
        """Remove and return the last (key, value) pair in iteration order.

        Raises:
            KeyError: the dict is empty.
        """
        with self._lock:
            snapshot = self._snapshot()
            if not snapshot:
                raise KeyError("popitem(): dictionary is empty")
            key, value = snapshot.popitem()
            self._remove(key)
            return key, value

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """Return the value of ``key``; if it is absent, store ``default`` first."""
        with self._lock:
            value = self._lookup(key)
            if value is MISSING:
                self._store(key, default)
                return default
            return value

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Store every pair of ``other`` (a mapping or pairs) and of ``kwargs``, atomically.

        A pair that cannot be stored (a key or value that cannot be pickled, for processes)
        fails the call before anything is stored.
        """
        if isinstance(other, Mapping):
            pairs = list(other.items())
        elif hasattr(other, "keys"):
            pairs = [(key, other[key]) for key in other.keys()]  # noqa: SIM118 - dict() does
        else:
            pairs = [(key, value) for key, value in other]
        pairs += kwargs.items()
        self._store_many(pairs)

    def _store_many(self, pairs: list[tuple[Any, Any]]) -> None:
        with self._lock:
            for key, value in pairs:
                self._store(key, value)

    def clear(self) -> None:
        """Remove every entry."""
        with self._lock:
            for key in self._snapshot():
                self._remove(key)

    def update_item(self, key: Any, fn: Callable[[Any], Any], default: Any = MISSING) -> Any:
        """Replace the value of ``key`` with ``fn(value)`` atomically; return the new value.

        Nobody else reads or writes the dict between the read and the write. When the key is
        absent, ``fn(default)`` is stored.

        Raises:
            KeyError: the key is absent and no default was given (the dict is unchanged).
        """
        with self._lock:
            old = self._lookup(key)
            if old is MISSING:
                if default is MISSING:
                    raise KeyError(key)
                old = default
            new = fn(old)
            self._store(key, new)
            return new

    def transaction(self, timeout: float | None = None) -> AbstractContextManager[Self]:
        """Hold the dict's lock for a ``with`` block, which gets the dict.

        Every operation of the block (by the calling thread) works as usual; no other thread
        or process reads or writes the dict until the block ends. A block that raises leaves
        the changes it made before raising. Transactions nest (the lock is re-entrant).

        Args:
            timeout: how long to wait for the lock, in seconds (``None`` or ``math.inf``: as
                long as it takes; ``0``: not at all).

        Raises:
            LockTimeoutError: entering the block, the lock was not free within ``timeout``
                (a :exc:`TimeoutError`; the block does not run).
            ValueError: ``timeout`` is negative or NaN (at the call).
            TypeError: ``timeout`` is not a number.
        """
        seconds = check_timeout(timeout)
        return self._transaction(seconds, timeout)

    @contextlib.contextmanager
    def _transaction(self, seconds: float | None, timeout: object) -> Iterator[Self]:
        if not self._acquire(seconds):
            raise LockTimeoutError(
                f"{type(self).__name__}.transaction(): the dict's lock was not free within "
                f"{timeout} s"
            )
        try:
            yield self
        finally:
            self._lock.__exit__(None, None, None)

    def _initial(self, data: Mapping[Any, Any] | Iterable[tuple[Any, Any]]) -> None:
        if data:
            self.update(data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return self._snapshot() == dict(other.items())

    __hash__ = None  # type: ignore[assignment]  # mutable, as dict

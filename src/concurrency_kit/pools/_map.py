"""The lazy, chunked ``map`` both pools share.

Items are grouped into chunks; each chunk is one pool task running :func:`run_chunk`, which
calls the function on every item and records each outcome separately, so one failing item does
not hide the others. The iterator keeps at most ``buffersize`` items in flight and pulls new
input only as results are consumed.

Chunk size ("auto"): when the input's length is known it is ``ceil(n / (4 * workers))`` — the
rule of :meth:`multiprocessing.pool.Pool.map`, which makes a map of tiny calls cost a handful of
round trips. When it is unknown, chunks start at one item and double until the first chunk
reports how long its items took; from then on a chunk is sized to about
:data:`TARGET_CHUNK_SECONDS` of work.
"""

from __future__ import annotations

import collections
import math
import operator
import pickle
import queue
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Future
from typing import Any, Generic, Literal, TypeVar

from concurrency_kit import _serialize

T = TypeVar("T")

TARGET_CHUNK_SECONDS = 0.01
MAX_AUTO_CHUNK = 1 << 16
CHUNKS_PER_WORKER = 4


class ChunkResult:
    """The outcomes of one chunk: ``(True, value)`` or ``(False, exception)`` per item."""

    __slots__ = ("elapsed", "outcomes")

    def __init__(self, outcomes: list[tuple[bool, Any]], elapsed: float) -> None:
        self.outcomes = outcomes
        self.elapsed = elapsed

    def __reduce__(self) -> tuple[object, ...]:
        packed = [
            (True, value) if ok else (False, _serialize.ExceptionWithTraceback(value))
            for ok, value in self.outcomes
        ]
        return ChunkResult, (packed, self.elapsed)

    def sanitized(self) -> ChunkResult:
        """A copy whose unpicklable values are replaced by the error saying so."""
        outcomes: list[tuple[bool, Any]] = []
        for ok, value in self.outcomes:
            try:
                pickle.dumps(value if ok else _serialize.ExceptionWithTraceback(value))
            except Exception as exc:
                outcomes.append(
                    (False, _serialize.describe_unpicklable("a map result", value, exc))
                )
            else:
                outcomes.append((ok, value))
        return ChunkResult(outcomes, self.elapsed)


def run_chunk(fn: Callable[..., Any], items: list[tuple[Any, ...]]) -> ChunkResult:
    """Call ``fn(*item)`` for each item, keeping every outcome (runs in the worker)."""
    outcomes: list[tuple[bool, Any]] = []
    append = outcomes.append
    start = time.perf_counter()
    for item in items:
        try:
            append((True, fn(*item)))
        except Exception as exc:
            append((False, exc))
    return ChunkResult(outcomes, time.perf_counter() - start)


class _ChunkSizer:
    def __init__(
        self,
        chunksize: int | Literal["auto"],
        length: int | None,
        workers: int,
        buffersize: int | None,
    ) -> None:
        self._fixed: int | None = None
        self._next_probe = 1
        self._per_item: float | None = None
        if chunksize != "auto":
            self._fixed = chunksize
        elif length is not None:
            self._fixed = max(1, math.ceil(length / (CHUNKS_PER_WORKER * workers)))
        self._cap = buffersize if buffersize is not None else MAX_AUTO_CHUNK
        if self._fixed is not None:
            self._fixed = min(self._fixed, self._cap)

    def observe(self, result: ChunkResult) -> None:
        if result.outcomes:
            per_item = result.elapsed / len(result.outcomes)
            self._per_item = per_item if self._per_item is None else (self._per_item + per_item) / 2

    def next_size(self) -> int:
        if self._fixed is not None:
            return self._fixed
        if self._per_item is None:
            size = self._next_probe
            self._next_probe = min(self._next_probe * 2, self._cap)
            return size
        size = int(TARGET_CHUNK_SECONDS / max(self._per_item, 1e-9))
        return max(1, min(size, self._cap))


def _known_length(iterables: tuple[Iterable[Any], ...]) -> int | None:
    lengths = []
    for iterable in iterables:
        hint = operator.length_hint(iterable, -1)
        if hint < 0:
            return None
        lengths.append(hint)
    return min(lengths) if lengths else None


class MapIterator(Generic[T]):
    """The iterator :meth:`PoolBase.map` returns.

    Unlike a generator it survives an exception: after an item's exception is raised, ``next``
    goes on with the following items. ``close()`` (or garbage collection) cancels the calls
    still outstanding.
    """

    def __init__(
        self,
        submit_chunk: Callable[[Callable[..., Any], list[tuple[Any, ...]]], Future[Any]],
        fn: Callable[..., T],
        iterables: tuple[Iterable[Any], ...],
        *,
        workers: int,
        timeout: float | None,
        chunksize: int | Literal["auto"],
        ordered: bool,
        buffersize: int | None,
    ) -> None:
        self._submit_chunk = submit_chunk
        self._fn = fn
        self._inputs: Iterator[tuple[Any, ...]] | None = zip(*iterables)  # noqa: B905 - map() stops at the shortest, as the builtin does
        self._sizer = _ChunkSizer(chunksize, _known_length(iterables), workers, buffersize)
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._ordered = ordered
        self._max_items = buffersize
        self._max_chunks = None if buffersize is not None else CHUNKS_PER_WORKER * workers
        # Chunks submitted, in input order, with their item counts.
        self._pending: collections.deque[tuple[Future[Any], int]] = collections.deque()
        self._done: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()
        self._in_flight_items = 0
        self._ready: collections.deque[tuple[bool, Any]] = collections.deque()
        self._closed = False
        self._fill()

    def __iter__(self) -> MapIterator[T]:
        return self

    def __next__(self) -> T:
        while not self._ready:
            if self._closed:
                raise StopIteration
            if not self._pending:
                self._fill()
                if not self._pending:
                    self._closed = True
                    raise StopIteration
            self._take_one_chunk()
        ok, value = self._ready.popleft()
        if ok:
            return value  # type: ignore[no-any-return]
        raise value

    def _take_one_chunk(self) -> None:
        remaining = None if self._deadline is None else self._deadline - time.monotonic()
        if self._ordered:
            future, count = self._pending[0]
            try:
                future.result(remaining)
            except TimeoutError:
                if not future.done():
                    self.close()
                    raise
            except (Exception, CancelledError):
                pass
            self._pending.popleft()
        else:
            try:
                future = (
                    self._done.get(timeout=remaining)
                    if remaining is None or remaining > 0
                    else self._done.get_nowait()
                )
            except queue.Empty:
                self.close()
                raise TimeoutError("map() did not finish within its timeout") from None
            index = next(i for i, (f, _) in enumerate(self._pending) if f is future)
            count = self._pending[index][1]
            del self._pending[index]
        self._in_flight_items -= count
        self._ready.extend(self._outcomes(future, count))
        self._fill()

    def _outcomes(self, future: Future[Any], count: int) -> list[tuple[bool, Any]]:
        try:
            result: ChunkResult = future.result(0)
        except BaseException as exc:  # a whole-chunk failure fails each of its items
            return [(False, exc)] * count
        self._sizer.observe(result)
        return result.outcomes

    def _fill(self) -> None:
        while self._inputs is not None and not self._closed:
            if self._max_chunks is not None and len(self._pending) >= self._max_chunks:
                return
            size = self._sizer.next_size()
            if self._max_items is not None:
                size = min(size, self._max_items - self._in_flight_items)
                if size <= 0:
                    return
            items: list[tuple[Any, ...]] = []
            for item in self._inputs:
                items.append(item)
                if len(items) >= size:
                    break
            else:
                self._inputs = None
            if not items:
                return
            future = self._submit_chunk(self._fn, items)
            if not self._ordered:
                future.add_done_callback(self._done.put)
            self._pending.append((future, len(items)))
            self._in_flight_items += len(items)

    def close(self) -> None:
        """Stop: cancel every call still outstanding and read no more input."""
        self._closed = True
        self._inputs = None
        pending, self._pending = self._pending, collections.deque()
        for future, _ in pending:
            future.cancel()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()


def lazy_map(
    submit_chunk: Callable[[Callable[..., Any], list[tuple[Any, ...]]], Future[Any]],
    fn: Callable[..., T],
    iterables: tuple[Iterable[Any], ...],
    *,
    workers: int,
    timeout: float | None,
    chunksize: int | Literal["auto"],
    ordered: bool,
    buffersize: int | None,
) -> MapIterator[T]:
    return MapIterator(
        submit_chunk,
        fn,
        iterables,
        workers=workers,
        timeout=timeout,
        chunksize=chunksize,
        ordered=ordered,
        buffersize=buffersize,
    )

"""The lazy, chunked ``map`` both pools share.

Items are grouped into chunks; each chunk is one pool task running :func:`run_chunk`, which
calls the function on every item and records a failure per item, so one failing item does not
hide the others. The results come back as a generator that keeps at most ``buffersize`` items
in flight and pulls new input only as results are consumed.

Per item, the parent does almost nothing in Python: chunks are cut with :func:`itertools.islice`,
a chunk without failures comes back as a plain list that is pickled and unpickled in C, and the
generator hands it out with ``yield from``. That is what lets a map of tiny calls keep up with
:meth:`multiprocessing.pool.Pool.map`, which is not even lazy.

Chunk size ("auto"): when the input's length is known it is ``ceil(n / (4 * workers))`` — the
rule of :meth:`multiprocessing.pool.Pool.map`. When it is unknown, chunks start at one item and
double until the first chunk reports how long its items took; from then on a chunk is sized to
about :data:`TARGET_CHUNK_SECONDS` of work.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import math
import operator
import pickle
import queue
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future
from typing import Any, Literal, TypeVar

from concurrency_kit._core import serialize
from concurrency_kit._core.deadline import deadline_after, remaining, wait_slice
from concurrency_kit.pools._progress import Opener

T = TypeVar("T")

TARGET_CHUNK_SECONDS = 0.01
MAX_AUTO_CHUNK = 1 << 16
CHUNKS_PER_WORKER = 4

SubmitChunk = Callable[[Callable[..., Any], list[Any], bool], "Future[ChunkResult]"]


class ChunkResult:
    """The outcome of one chunk.

    ``values`` has one entry per item (``None`` where the call failed); ``errors`` maps the
    index of each failed item to its exception, or is ``None`` when every call succeeded.
    """

    __slots__ = ("elapsed", "errors", "values")

    def __init__(
        self, values: list[Any], errors: dict[int, BaseException] | None, elapsed: float
    ) -> None:
        self.values = values
        self.errors = errors
        self.elapsed = elapsed

    def __reduce__(self) -> tuple[object, ...]:
        errors: dict[int, Any] | None = None
        if self.errors:
            errors = {i: serialize.ExceptionWithTraceback(e) for i, e in self.errors.items()}
        return ChunkResult, (self.values, errors, self.elapsed)

    def sanitized(self) -> ChunkResult:
        """A copy whose unpicklable values are replaced by the error saying so."""
        errors = dict(self.errors or {})
        values = list(self.values)
        for index, value in enumerate(values):
            try:
                pickle.dumps(value)
            except Exception as exc:
                errors[index] = serialize.describe_unpicklable("a map result", value, exc)
                values[index] = None
        return ChunkResult(values, errors or None, self.elapsed)


def dumps_result(result: object) -> bytes:
    """Pickle a task's result where the task ran, so that a result that cannot travel fails
    there, as its own task's error, instead of on the way back.

    A map chunk is never refused as a whole: its unpicklable values become their items' errors.

    Raises:
        SerializationError: ``result`` cannot be pickled (the message names it).
    """
    try:
        return serialize.dumps_fast(result)
    except Exception as exc:
        if isinstance(result, ChunkResult):
            return serialize.dumps_fast(result.sanitized())
        raise serialize.describe_unpicklable("the result", result, exc) from None


def run_chunk(fn: Callable[..., Any], items: list[Any], star: bool) -> ChunkResult:
    """Call ``fn`` on each item (``fn(*item)`` when ``star``), keeping every outcome.

    The calls run in C (``list.extend`` over :func:`map`). When one raises, the items before
    it are already in ``values`` and the iterator has moved past it, so the loop records the
    failure and carries on with the rest: each item runs exactly once.
    """
    values: list[Any] = []
    errors: dict[int, BaseException] | None = None
    rest = iter(items)
    start = time.perf_counter()
    while True:
        try:
            values.extend(itertools.starmap(fn, rest) if star else map(fn, rest))
        except Exception as exc:
            if errors is None:
                errors = {}
            errors[len(values)] = exc
            values.append(None)
        else:
            return ChunkResult(values, errors, time.perf_counter() - start)


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
        if self._fixed is None and result.values:
            per_item = result.elapsed / len(result.values)
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


def known_length(iterables: tuple[Iterable[Any], ...]) -> int | None:
    lengths = []
    for iterable in iterables:
        hint = operator.length_hint(iterable, -1)
        if hint < 0:
            return None
        lengths.append(hint)
    return min(lengths) if lengths else None


class _MapState:
    """The chunks of one ``map`` call: what is in flight and what comes next."""

    def __init__(
        self,
        submit_chunk: SubmitChunk,
        fn: Callable[..., Any],
        iterables: tuple[Iterable[Any], ...],
        *,
        workers: int,
        timeout: float | None,
        chunksize: int | Literal["auto"],
        ordered: bool,
        buffersize: int | None,
        flush: Callable[[], None] | None = None,
    ) -> None:
        self._submit_chunk = submit_chunk
        self._flush = flush
        self._fn = fn
        self._star = len(iterables) > 1
        self._inputs: Iterator[Any] | None = (
            zip(*iterables)  # noqa: B905 - map() stops at the shortest, as the builtin does
            if self._star
            else iter(iterables[0])
        )
        self._sizer = _ChunkSizer(chunksize, known_length(iterables), workers, buffersize)
        self._deadline = deadline_after(timeout)
        self._ordered = ordered
        self._max_items = buffersize
        self._max_chunks = None if buffersize is not None else CHUNKS_PER_WORKER * workers
        self._pending: collections.deque[tuple[Future[ChunkResult], int]] = collections.deque()
        self._done: queue.SimpleQueue[Future[ChunkResult]] = queue.SimpleQueue()
        self._in_flight = 0
        self.fill()

    def fill(self) -> None:
        """Submit chunks until the buffer is full or the input is exhausted.

        A pool that sends chunks in batches (``flush``; ``ClusterPool``, whose every
        message to the scheduler has a cost) holds them back until the end of the pass.
        """
        try:
            self._fill()
        finally:
            if self._flush is not None:
                self._flush()

    def _fill(self) -> None:
        while self._inputs is not None:
            if self._max_chunks is not None and len(self._pending) >= self._max_chunks:
                return
            size = self._sizer.next_size()
            if self._max_items is not None:
                size = min(size, self._max_items - self._in_flight)
                if size <= 0:
                    return
            items = list(itertools.islice(self._inputs, size))
            if len(items) < size:
                self._inputs = None
            if not items:
                return
            future = self._submit_chunk(self._fn, items, self._star)
            if not self._ordered:
                future.add_done_callback(self._done.put)
            self._pending.append((future, len(items)))
            self._in_flight += len(items)

    def next_chunk(self) -> tuple[list[Any], dict[int, BaseException] | None] | None:
        """Wait for the next chunk (in input order if ordered); None when all are consumed."""
        if not self._pending:
            return None
        if self._ordered:
            future, count = self._pending[0]
            self._wait(future)
            self._pending.popleft()
        else:
            future = self._next_done()
            index = next(i for i, (f, _) in enumerate(self._pending) if f is future)
            count = self._pending[index][1]
            del self._pending[index]
        self._in_flight -= count
        try:
            result = future.result(0)
        except BaseException as exc:  # the whole chunk failed: each of its items fails
            return [None] * count, dict.fromkeys(range(count), exc)
        self._sizer.observe(result)
        self.fill()
        return result.values, result.errors

    def _wait(self, future: Future[ChunkResult]) -> None:
        """Wait until ``future`` is done, in bounded slices, or raise at the deadline.

        A ``timeout`` of 0 checks without waiting: the results must be ready now.
        """
        while not future.done():
            left = remaining(self._deadline)
            if left == 0:
                raise TimeoutError("map() did not finish within its timeout")
            try:
                future.exception(wait_slice(left))
            except concurrent.futures.TimeoutError:
                pass
            except concurrent.futures.CancelledError:
                return

    def _next_done(self) -> Future[ChunkResult]:
        """The next chunk to finish (unordered), waiting in bounded slices up to the deadline."""
        while True:
            left = remaining(self._deadline)
            try:
                if left == 0:
                    return self._done.get_nowait()
                return self._done.get(timeout=wait_slice(left))
            except queue.Empty:
                if remaining(self._deadline) == 0:
                    raise TimeoutError("map() did not finish within its timeout") from None

    def close(self) -> None:
        """Read no more input and cancel every chunk still outstanding."""
        self._inputs = None
        pending, self._pending = self._pending, collections.deque()
        for future, _ in pending:
            future.cancel()


def _results(state: _MapState, progress: Opener | None) -> Generator[Any, None, None]:
    bar = progress() if progress is not None else None
    try:
        while True:
            chunk = state.next_chunk()
            if chunk is None:
                return
            values, errors = chunk
            del chunk
            if bar is not None:
                bar.update(len(values))
            # Each value leaves the list as it is handed out (popped from the reversed list,
            # in C), so the map holds no reference to a result its caller has let go of
            # (CPython's test_free_reference, bpo-14406).
            values.reverse()
            if errors is None:
                yield from itertools.starmap(values.pop, itertools.repeat((), len(values)))
            else:
                for index in range(len(values)):
                    if index in errors:
                        raise errors[index]
                    yield values.pop()
    finally:
        try:
            state.close()
        finally:
            if bar is not None:
                bar.close()


def lazy_map(
    submit_chunk: SubmitChunk,
    fn: Callable[..., T],
    iterables: tuple[Iterable[Any], ...],
    *,
    workers: int,
    timeout: float | None,
    chunksize: int | Literal["auto"],
    ordered: bool,
    buffersize: int | None,
    flush: Callable[[], None] | None = None,
    progress: Opener | None = None,
) -> Generator[T, None, None]:
    """Start a map (the first chunks are submitted now) and return its results' generator;
    ``progress`` opens the bar it updates as chunks come back (see ``_progress``)."""
    state = _MapState(
        submit_chunk,
        fn,
        iterables,
        workers=workers,
        timeout=timeout,
        chunksize=chunksize,
        ordered=ordered,
        buffersize=buffersize,
        flush=flush,
    )
    return _results(state, progress)

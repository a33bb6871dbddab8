"""Typing protocols that the process and thread columns both satisfy.

Write a function against a protocol and it accepts either model's class::

    def run_all(pool: Pool, jobs: list[int]) -> list[int]:
        return list(pool.map(abs, jobs))
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Mapping
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import attrs
from typing_extensions import Self

__all__ = ["Pool", "PoolStatistics"]

T = TypeVar("T")


@attrs.frozen
class PoolStatistics:
    """A snapshot of a pool's state and counters.

    Attributes:
        model: ``"process"``, ``"thread"``, ``"cluster"`` or ``"interpreter"``.
        max_workers: the most workers the pool runs at once.
        workers_alive: workers running now (busy or idle).
        workers_busy: workers running a task now.
        tasks_queued: tasks accepted but not started.
        tasks_completed: tasks that returned a value.
        tasks_failed: tasks that raised an exception.
        tasks_crashed: tasks whose worker died under them.
        tasks_timed_out: tasks stopped by their ``timeout``.
        tasks_cancelled: tasks cancelled before they finished.
        workers_replaced: workers started to replace one that died, was killed, was recycled
            by ``max_tasks_per_worker`` or (threads) was abandoned.
        workers_abandoned: thread workers still stuck in a task that timed out (always 0 for
            processes, whose late workers are killed).
    """

    model: str
    max_workers: int
    workers_alive: int
    workers_busy: int
    tasks_queued: int
    tasks_completed: int
    tasks_failed: int
    tasks_crashed: int
    tasks_timed_out: int
    tasks_cancelled: int
    workers_replaced: int
    workers_abandoned: int


@runtime_checkable
class Pool(Protocol):
    """What :class:`~concurrency_kit.ProcessPool`, :class:`~concurrency_kit.ThreadPool` and
    :class:`~concurrency_kit.ClusterPool` share."""

    @property
    def max_workers(self) -> int:
        """The most workers the pool runs at once."""

    @property
    def name(self) -> str:
        """The pool's name."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` in a worker."""

    def schedule(
        self,
        fn: Callable[..., T],
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` in a worker with a per-task timeout."""

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | Literal["auto"] = "auto",
        ordered: bool = True,
        buffersize: int | None = None,
        progress: Any = False,
    ) -> Generator[T, None, None]:
        """Lazily apply ``fn`` to the items of ``iterables``.

        ``progress``: ``False``, ``True``, a mapping of tqdm options or a progress bar (see
        :func:`~concurrency_kit.as_completed`); ``Any`` here because this module cannot name
        the pools' bar type.
        """

    async def arun(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in a worker and await its result (asyncio or trio)."""

    def amap(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        ordered: bool = True,
        buffersize: int | None = None,
        progress: Any = False,
    ) -> AsyncGenerator[T, None]:
        """Apply ``fn`` to the items of ``iterables``; ``async for`` the results."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting tasks and release the workers."""

    def statistics(self) -> PoolStatistics:
        """A snapshot of the pool's workers and counters."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

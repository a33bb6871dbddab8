"""Typing protocols that the process and thread columns both satisfy.

Write a function against a protocol and it accepts either model's class::

    def run_all(pool: Pool, jobs: list[int]) -> list[int]:
        return list(pool.map(abs, jobs))
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from typing_extensions import Self

from concurrency_kit.pools._base import PoolStatistics

__all__ = ["Pool"]

T = TypeVar("T")


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
    ) -> Generator[T, None, None]:
        """Lazily apply ``fn`` to the items of ``iterables``."""

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

"""Progress bars: ``map(..., progress=...)`` and ``as_completed(..., progress=...)`` on every
pool model. The bar counts every finished task, its total is the number of tasks, results are
unchanged, and a bar the library opened is closed however the loop ends."""

from __future__ import annotations

import io
import sys
import threading
from concurrent.futures import Future
from typing import Any

import pytest

from concurrency_kit import PoolModel, ThreadPool, as_completed

tqdm_std = pytest.importorskip("tqdm.std")


class Recorded(tqdm_std.tqdm):  # type: ignore[misc,name-defined]
    """A tqdm bar writing to a buffer, remembered so that a test can look at it."""

    made: list[Recorded] = []  # noqa: RUF012 - reset by the fixture

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("file", io.StringIO())
        super().__init__(*args, **kwargs)
        self.closed = False
        Recorded.made.append(self)

    def close(self) -> None:
        self.closed = True
        super().close()


@pytest.fixture(autouse=True)
def _no_tqdm_monitor(monkeypatch: pytest.MonkeyPatch) -> None:
    # tqdm starts a daemon "monitor" thread with its first bar, which outlives the test (and
    # the leak check counts it): these tests need none.
    monkeypatch.setattr(tqdm_std.tqdm, "monitor_interval", 0)


@pytest.fixture
def bars(monkeypatch: pytest.MonkeyPatch) -> list[Recorded]:
    import tqdm.auto

    Recorded.made = []
    monkeypatch.setattr(tqdm.auto, "tqdm", Recorded)
    return Recorded.made


def square(x: int) -> int:
    return x * x


def fail_on_five(x: int) -> int:
    if x == 5:
        raise ValueError("five")
    return x


def test_map_progress_counts_every_item(pool_model: PoolModel, bars: list[Recorded]) -> None:
    with pool_model.Pool(2) as pool:
        results = list(pool.map(square, range(40), progress=True))
    assert results == [x * x for x in range(40)]
    (bar,) = bars
    assert bar.total == 40
    assert bar.n == 40
    assert bar.closed
    assert bar.desc.startswith("square")


def test_map_progress_unordered_and_chunked(pool_model: PoolModel, bars: list[Recorded]) -> None:
    with pool_model.Pool(2) as pool:
        results = pool.map(square, range(25), chunksize=4, ordered=False, progress={"desc": "sq"})
        assert sorted(results) == [x * x for x in range(25)]
    (bar,) = bars
    assert (bar.total, bar.n, bar.closed) == (25, 25, True)
    assert bar.desc.startswith("sq")


def test_map_progress_unknown_length(bars: list[Recorded]) -> None:
    with ThreadPool(2) as pool:
        assert list(pool.map(square, (x for x in range(7)), progress=True)) == [
            x * x for x in range(7)
        ]
    (bar,) = bars
    assert bar.total is None
    assert bar.n == 7


def test_map_progress_closed_on_a_failing_item(pool_model: PoolModel, bars: list[Recorded]) -> None:
    with pool_model.Pool(2) as pool:
        results = pool.map(fail_on_five, range(10), chunksize=1, progress=True)
        seen = [next(results) for _ in range(5)]
        with pytest.raises(ValueError, match="five"):
            next(results)
    assert seen == [0, 1, 2, 3, 4]
    (bar,) = bars
    assert bar.closed
    assert bar.total == 10
    assert 6 <= bar.n <= 10  # the failed item is counted: it finished


def test_map_progress_closed_when_the_map_is_closed(bars: list[Recorded]) -> None:
    with ThreadPool(2) as pool:
        results = pool.map(square, range(100), chunksize=1, progress=True)
        assert next(results) == 0
        results.close()
    (bar,) = bars
    assert bar.closed
    assert 1 <= bar.n <= 100


def test_map_progress_writes_a_bar() -> None:
    out = io.StringIO()
    with ThreadPool(2) as pool:
        list(pool.map(square, range(12), progress={"file": out, "bar_format": "{n}/{total}"}))
    assert out.getvalue().rstrip().endswith("12/12")


def test_a_bar_of_your_own_is_updated_and_left_open() -> None:
    bar = tqdm_std.tqdm(total=30, file=io.StringIO())
    with ThreadPool(2) as pool:
        list(pool.map(square, range(10), progress=bar))
        futures = [pool.submit(square, x) for x in range(20)]
        assert sorted(f.result() for f in as_completed(futures, progress=bar)) == sorted(
            x * x for x in range(20)
        )
    assert bar.n == 30
    assert not bar.disable  # not closed
    bar.close()


def test_as_completed_progress(pool_model: PoolModel, bars: list[Recorded]) -> None:
    with pool_model.Pool(2) as pool:
        futures = [pool.submit(fail_on_five, x) for x in range(10)]
        futures.append(futures[0])  # a duplicate is yielded once
        yielded = list(as_completed(futures, progress=True))
    assert len(yielded) == 10
    assert set(yielded) == set(futures)
    assert sorted(f.result() for f in yielded if f.exception() is None) == [
        x for x in range(10) if x != 5
    ]
    (bar,) = bars
    assert (bar.total, bar.n, bar.closed) == (10, 10, True)


def test_as_completed_progress_closed_on_break(bars: list[Recorded]) -> None:
    with ThreadPool(2) as pool:
        futures = [pool.submit(square, x) for x in range(5)]
        for _ in as_completed(futures, progress=True):
            break
    (bar,) = bars
    assert bar.closed
    assert bar.n == 1


def test_as_completed_progress_closed_on_timeout(bars: list[Recorded]) -> None:
    never: Future[int] = Future()
    done: Future[int] = Future()
    done.set_result(1)
    loop = as_completed([done, never], timeout=0, progress=True)
    assert next(loop) is done
    with pytest.raises(TimeoutError, match=r"1 \(of 2\) futures unfinished"):
        next(loop)
    (bar,) = bars
    assert bar.closed
    assert (bar.total, bar.n) == (2, 1)


def test_as_completed_progress_closed_on_cancel(bars: list[Recorded]) -> None:
    release = threading.Event()
    with ThreadPool(1) as pool:
        blocker = pool.submit(release.wait, 60)
        queued = pool.submit(square, 3)
        assert queued.cancel()
        loop = as_completed([queued, blocker], progress=True)
        assert next(loop) is queued
        release.set()
        assert next(loop) is blocker
        with pytest.raises(StopIteration):
            next(loop)
    (bar,) = bars
    assert (bar.n, bar.closed) == (2, True)


def test_as_completed_without_progress_works_on_stdlib_futures() -> None:
    done: Future[int] = Future()
    done.set_result(4)
    assert [f.result() for f in as_completed([done])] == [4]


def test_missing_tqdm_is_a_clear_import_error_at_the_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with ThreadPool(1) as pool:
        with pytest.raises(ImportError, match=r"concurrency_kit\[progress\]"):
            pool.map(square, range(3), progress=True)
        with pytest.raises(ImportError, match=r"concurrency_kit\[progress\]"):
            as_completed([pool.submit(square, 2)], progress=True)
        # No bar asked for: tqdm is not needed.
        assert list(pool.map(square, range(3))) == [0, 1, 4]


@pytest.mark.parametrize("bad", [42, "yes", {1: 2}])
def test_bad_progress_values_are_refused(bad: object) -> None:
    with ThreadPool(1) as pool, pytest.raises(TypeError, match="progress"):
        pool.map(square, range(3), progress=bad)  # type: ignore[arg-type]

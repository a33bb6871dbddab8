"""Process-pool workers' ``logging`` records reach the parent's handlers, with the worker's
name on each record; ``forward_logs=False`` leaves them in the worker."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import _memory_tasks as tasks
import pytest

from concurrency_kit import ProcessPool, ThreadPool


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def collected(request: pytest.FixtureRequest) -> Iterator[tuple[str, Collect]]:
    name = f"ck.tests.worker_logs.{request.node.name}"
    logger = logging.getLogger(name)
    handler = Collect()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield name, handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


@pytest.mark.parametrize(
    "start_method", ["forkserver", "spawn", pytest.param("fork", marks=pytest.mark.fork)]
)
def test_worker_records_reach_the_parent(start_method: str, collected: tuple[str, Collect]) -> None:
    name, handler = collected
    with ProcessPool(
        1,
        name="LogPool",
        start_method=start_method,
        initializer=tasks.log_in_initializer,
        initargs=(name,),
    ) as pool:
        assert pool.submit(tasks.log_and_return, name, 7).result() == 7
    # shutdown(wait=True) returns once every record the workers sent has been handled.
    messages = [record.getMessage() for record in handler.records]
    assert messages == ["initializer ran", "task got 7", "task failed on purpose"]
    for record in handler.records:
        assert record.worker == "LogPool-worker-1"  # type: ignore[attr-defined]
        assert record.processName == "LogPool-worker-1"
        assert record.name == name
    failed = handler.records[2]
    assert failed.levelno == logging.ERROR
    assert failed.exc_text is not None
    assert "KeyError: 7" in failed.exc_text


def test_forward_logs_false_keeps_records_in_the_worker(collected: tuple[str, Collect]) -> None:
    name, handler = collected
    with ProcessPool(1, forward_logs=False) as pool:
        assert pool.submit(tasks.log_and_return, name, 3).result() == 3
    assert handler.records == []


def test_thread_pool_accepts_forward_logs(collected: tuple[str, Collect]) -> None:
    # Threads log through this process's handlers already: the option changes nothing.
    name, handler = collected
    for forward in (True, False):
        with ThreadPool(1, forward_logs=forward) as pool:
            assert pool.submit(tasks.log_and_return, name, 1).result() == 1
    assert [r.getMessage() for r in handler.records].count("task got 1") == 2


@pytest.mark.parametrize(
    "start_method", ["forkserver", pytest.param("fork", marks=pytest.mark.fork)]
)
def test_each_record_is_handled_once(
    start_method: str, collected: tuple[str, Collect], tmp_path: Path
) -> None:
    # A propagating logger with a file handler of its own: under fork the worker inherits a
    # copy of that handler, which must not write the record there as well as in the parent.
    name, _ = collected
    logger = logging.getLogger(name)
    logger.propagate = True
    log_file = tmp_path / "worker.log"
    file_handler = logging.FileHandler(log_file)
    logger.addHandler(file_handler)
    try:
        with ProcessPool(1, start_method=start_method) as pool:
            assert pool.submit(tasks.log_and_return, name, 5).result() == 5
    finally:
        logger.removeHandler(file_handler)
        file_handler.close()
    lines = log_file.read_text().splitlines()
    assert lines.count("task got 5") == 1
    assert lines.count("task failed on purpose") == 1

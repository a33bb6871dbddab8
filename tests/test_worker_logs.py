"""Worker logs (``_core/worker_logs.py``): records logged in a child process reach the parent's
handlers, with the child's name, through a :class:`~concurrency_kit.ProcessChannel`.

Synchronization: each test joins the child process, then stops the forwarder, which drains
the channel; so every record the child sent has been handled when the test looks, whatever
the timing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

import _worker_log_targets as targets
from concurrency_kit import ProcessChannel
from concurrency_kit._core import worker_logs
from concurrency_kit._core.startmethod import default_start_method, mp_context


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def handler() -> Iterator[ListHandler]:
    """A handler on the ``ck_test`` logger (level INFO), removed afterwards."""
    logger = logging.getLogger("ck_test")
    handler = ListHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logging.getLogger("ck_test.noisy").setLevel(logging.NOTSET)


def run_child(forwarder: worker_logs.LogForwarder, target: Any, *args: Any) -> int:
    context = mp_context(default_start_method())
    process = context.Process(
        target=target,
        args=(forwarder.sink, forwarder.level, *args),
        name="log-child",
    )
    process.start()
    process.join()
    exitcode = process.exitcode
    process.close()
    assert exitcode is not None
    return exitcode


def messages(handler: ListHandler) -> list[str]:
    return [record.getMessage() for record in handler.records]


def test_records_reach_the_parent_with_the_child_name_and_levels(handler: ListHandler) -> None:
    forwarder = worker_logs.LogForwarder(ProcessChannel(None))
    forwarder.start()
    try:
        assert run_child(forwarder, targets.log_levels) == 0
    finally:
        forwarder.stop()
    assert messages(handler) == ["info from the child 1", "warning from the child"]
    for record in handler.records:
        assert record.processName == "log-child"
        assert record.__dict__["worker"] == "log-child"
        assert record.name == "ck_test.child"
        assert record.args is None
    assert [r.levelno for r in handler.records] == [logging.INFO, logging.WARNING]


def test_parent_level_is_the_lowest_level_set(handler: ListHandler) -> None:
    assert worker_logs.parent_level() <= logging.INFO
    logging.getLogger("ck_test.noisy").setLevel(logging.DEBUG)
    assert worker_logs.parent_level() == logging.DEBUG


def test_an_unpicklable_argument_does_not_kill_the_worker(handler: ListHandler) -> None:
    forwarder = worker_logs.LogForwarder(ProcessChannel(None))
    forwarder.start()
    try:
        assert run_child(forwarder, targets.log_unpicklable) == 0
    finally:
        forwarder.stop()
    assert messages(handler) == ["value <unpicklable thing>", "it failed", "still alive"]
    assert "Unpicklable object" in handler.records[0].__dict__["thing"]
    failed = handler.records[1]
    assert failed.exc_info is None
    assert failed.exc_text is not None
    assert "ZeroDivisionError: division by zero" in failed.exc_text
    text = logging.Formatter().format(failed)
    assert text.startswith("it failed\nTraceback (most recent call last):")


@pytest.mark.parametrize("started", [True, False], ids=["listening", "never-started"])
def test_stop_drains_every_record_sent(handler: ListHandler, started: bool) -> None:
    count = 2000  # more than the channel's pipe holds: some go through its store
    forwarder = worker_logs.LogForwarder(ProcessChannel(None))
    if started:
        forwarder.start()
    try:
        assert run_child(forwarder, targets.log_many, count) == 0
    finally:
        forwarder.stop()
    assert messages(handler) == [f"record {i}" for i in range(count)]
    assert not forwarder.running
    forwarder.stop()  # idempotent
    with pytest.raises(RuntimeError, match="stopped"):
        forwarder.sink  # noqa: B018


def test_install_forwards_each_record_once_in_process() -> None:
    """In one process (no child): what install() does to the loggers, undone after."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    own = logging.getLogger("ck_test.own")  # a handler of its own (a copy under fork, say)
    private = logging.getLogger("ck_test.private")  # does not propagate to the root
    local = ListHandler()
    own.addHandler(local)
    private.addHandler(local)
    private.propagate = False
    channel: ProcessChannel[Any] = ProcessChannel(None)
    try:
        handler = worker_logs.install(channel, level=logging.DEBUG, worker="w-1")
        assert root.handlers == [handler]
        assert root.level == logging.DEBUG
        assert own.handlers == []  # the parent's "ck_test.own" handles the record
        assert private.handlers == [handler]
        logging.getLogger("ck_test.inproc").debug("hello %s", "there")
        own.info("own")
        private.info("private")
        records = channel.recv_many(10, 0)
        assert [r.getMessage() for r in records] == ["hello there", "own", "private"]
        assert {(r.processName, r.worker) for r in records} == {("w-1", "w-1")}
        assert local.records == []  # handled once: in the parent
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        own.handlers.clear()
        private.handlers.clear()
        private.propagate = True
        channel.close()


def test_a_record_after_stop_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    channel: ProcessChannel[Any] = ProcessChannel(None)
    forwarder = worker_logs.LogForwarder(channel)
    forwarder.stop()
    handler = worker_logs.ForwardingHandler(channel, worker="w-2")
    logger = logging.getLogger("ck_test.late")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("too late %d", 7)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    assert capsys.readouterr().err == "too late 7\n"

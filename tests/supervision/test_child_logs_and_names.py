"""Process children: their logging records reach the supervising process's handlers (unless
``forward_logs=False``), and each child process is named after its child.

Synchronization: a child logs, then reports on a channel; the test waits for the report, then
stops the supervisor, whose log forwarder drains every record the child sent before (so the
record is there when the test looks, whatever the timing).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from concurrency_kit import TEMPORARY, ChildSpec, ProcessChannel, ProcessSupervisor
from supervision import _log_targets as targets

DEADLOCK = 30.0
"""Seconds after which a wait that should have ended is a deadlock (a failure, not a pass)."""

CHILD_ID = "log-child-with-a-long-id"


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def handler() -> Iterator[ListHandler]:
    logger = logging.getLogger("ck_test")
    handler = ListHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


def run_child(**options: Any) -> tuple[str, tuple[str, str, bool]]:
    """Run one child that logs and reports; return the supervisor's name and the report."""
    report: ProcessChannel[Any] = ProcessChannel()
    spec = ChildSpec(CHILD_ID, targets.log_and_report, args=(report,), restart=TEMPORARY)
    with ProcessSupervisor([spec], **options) as supervisor:
        got = report.recv(timeout=DEADLOCK)
    report.close()
    return supervisor.name, got


def test_child_records_reach_the_parent_named_after_the_child(handler: ListHandler) -> None:
    _, (process_name, _, forwarding) = run_child(name="logsup")
    assert forwarding
    assert process_name == f"logsup:{CHILD_ID}"
    [record] = handler.records
    assert record.getMessage() == f"hello from logsup:{CHILD_ID}"
    assert record.name == "ck_test.sup"
    assert record.levelno == logging.WARNING
    assert record.processName == f"logsup:{CHILD_ID}"
    assert record.__dict__["worker"] == f"logsup:{CHILD_ID}"


def test_forward_logs_false_leaves_the_child_logging_alone(handler: ListHandler) -> None:
    _, (_, _, forwarding) = run_child(forward_logs=False)
    assert not forwarding
    assert handler.records == []


def test_each_child_process_is_named_after_its_child() -> None:
    name, (process_name, comm, _) = run_child(forward_logs=False)
    assert name.startswith("ProcessSupervisor-")
    assert process_name == f"{name}:{CHILD_ID}"  # not "...:standby"
    assert comm == CHILD_ID[:15]  # the kernel's name: ps -o comm, top, pgrep


def test_a_grandchild_record_keeps_the_grandchild_name(handler: ListHandler) -> None:
    # The record goes grandchild -> the child's supervisor -> the child's root logger -> here;
    # stopping the outer supervisor stops the inner one first, which drains its own forwarder.
    report: ProcessChannel[Any] = ProcessChannel()
    spec = ChildSpec("middle", targets.subtree, args=(report,), shutdown=30.0)
    with ProcessSupervisor([spec], name="outer"):
        process_name, comm, forwarding = report.recv(timeout=DEADLOCK)
    report.close()
    assert (process_name, comm, forwarding) == ("inner:grandchild", "grandchild", True)
    [record] = handler.records
    assert record.getMessage() == "hello from inner:grandchild"
    assert record.processName == "inner:grandchild"
    assert record.__dict__["worker"] == "inner:grandchild"

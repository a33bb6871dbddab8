"""Targets of process children for tests/supervision/test_child_logs_and_names.py."""

from __future__ import annotations

import logging
import multiprocessing
from typing import Any

from concurrency_kit._core.worker_logs import ForwardingHandler


def log_and_report(report: Any) -> None:
    """Log one record, then report this process's names and whether it forwards its logs."""
    name = multiprocessing.current_process().name
    logging.getLogger("ck_test.sup").addHandler(logging.NullHandler())  # no lastResort
    logging.getLogger("ck_test.sup").warning("hello from %s", name)
    with open("/proc/self/comm") as file:
        comm = file.read().rstrip("\n")
    forwarding = any(isinstance(h, ForwardingHandler) for h in logging.getLogger().handlers)
    report.send((name, comm, forwarding))


def run_until_stopped() -> None:
    """A child that waits for its stop request (either model), then returns."""
    from concurrency_kit import current_child

    current_child().wait_stop()


def subtree(report: Any) -> None:
    """A child that runs a supervisor of its own, whose one child logs and reports."""
    from concurrency_kit import TEMPORARY, ChildSpec, ProcessSupervisor

    spec = ChildSpec("grandchild", log_and_report, args=(report,), restart=TEMPORARY)
    ProcessSupervisor([spec], name="inner").run()

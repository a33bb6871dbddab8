"""Targets for tests/test_worker_logs.py: run in child processes, log, and exit."""

from __future__ import annotations

import logging
import threading
from typing import Any

from concurrency_kit._core import worker_logs


class Unpicklable:
    """An object that cannot be pickled (it holds a lock), with a readable ``str``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __str__(self) -> str:
        return "<unpicklable thing>"


def log_levels(sink: Any, level: int) -> None:
    worker_logs.install(sink, level=level)
    log = logging.getLogger("ck_test.child")
    log.debug("debug from the child")
    log.info("info %s %d", "from the child", 1)
    log.warning("warning from the child")
    noisy = logging.getLogger("ck_test.noisy")
    noisy.setLevel(logging.DEBUG)  # passes the child's levels; the parent's logger drops it
    noisy.debug("noisy debug")


def log_unpicklable(sink: Any, level: int) -> None:
    worker_logs.install(sink, level=level)
    log = logging.getLogger("ck_test.child")
    log.warning("value %s", Unpicklable(), extra={"thing": Unpicklable()})
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        log.exception("it failed")
    log.warning("still alive")


def log_many(sink: Any, level: int, count: int) -> None:
    worker_logs.install(sink, level=level)
    log = logging.getLogger("ck_test.child")
    for i in range(count):
        log.info("record %d", i)

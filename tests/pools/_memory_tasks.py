"""Tasks for the memory-limit tests, importable by reference in every worker process (only
the standard library is imported here)."""

from __future__ import annotations

import os
from typing import Any

KEPT: list[bytes] = []
"""What :func:`grow_and_keep` allocated, kept for the worker's life (a leak, on purpose)."""


def getpid() -> int:
    return os.getpid()


def grow_and_keep(size: int) -> int:
    """Allocate ``size`` bytes, touching every page, keep them, return the pid."""
    KEPT.append(b"\x01" * size)
    return os.getpid()


def grow_and_wait(size: int, event: Any) -> int:
    """Allocate ``size`` bytes (every page touched), then wait for ``event``: the pool is
    expected to kill this worker long before anyone sets it."""
    block = b"\x01" * size
    event.wait(120)
    return len(block)


def log_and_return(name: str, value: int) -> int:
    """Log a warning (with an argument to format) and an error with a traceback."""
    import logging

    logger = logging.getLogger(name)
    logger.warning("task got %s", value)
    try:
        raise KeyError(value)
    except KeyError:
        logger.exception("task failed on purpose")
    logger.debug("below every level the parent takes")
    return value


def log_in_initializer(name: str) -> None:
    import logging

    logging.getLogger(name).warning("initializer ran")

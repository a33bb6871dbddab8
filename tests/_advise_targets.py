"""Functions for the advise() tests, in a module of their own so that pool workers import
them by name (and ``python -m concurrency_kit advise _advise_targets:...`` finds them)."""

from __future__ import annotations

import time


def crunch(n: int) -> int:
    """Pure-Python work that keeps a CPU busy for some tens of milliseconds."""
    total = 0
    for i in range(800_000):
        total += (i * n) % 7
    return total


def wait(n: int) -> int:
    """Work that only waits, as I/O does."""
    time.sleep(0.04)
    return n

"""Functions for the advise() tests, in a module of their own so that pool workers import
them by name (and ``python -m concurrency_kit advise _advise_targets:...`` finds them).

The four kinds of work that advise() must get right: a CPU-bound pure-Python loop
(processes), a sleep (threads), hashlib over large buffers, which releases the GIL (threads,
or serial where neither pool helps), and a call too small for a task of its own (batch).
"""

from __future__ import annotations

import hashlib
import time

_BUFFER = bytes(range(256)) * (64 * 1024)  # 16 MiB: hashlib releases the GIL above 2 KiB


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


def hashit(n: int) -> str:
    """SHA-256 of 16 MiB, computed in C with the GIL released (some milliseconds to tens).

    The buffer is passed as a view, not copied: a copy would be made holding the GIL.
    """
    return hashlib.sha256(memoryview(_BUFFER)[n % 256 :]).hexdigest()


def tiny(n: int) -> int:
    """A call far shorter than what a task costs to hand to a worker."""
    return n * n


def needs_faulthandler(n: int) -> int:
    """Pure-Python work behind an import that subinterpreters refuse (Python 3.14, 3.15):
    ``faulthandler`` stands for numpy, which cannot be installed on every Python we test."""
    import faulthandler

    return crunch(n) + faulthandler.is_enabled()

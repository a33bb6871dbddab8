"""A gate that works across threads and processes alike: a named FIFO.

A worker calls :func:`wait_at` and blocks opening the FIFO for reading; the test calls
:meth:`Gate.release`, whose open-for-writing returns only once a reader is there. So the test
knows a worker has *reached* the gate when ``release`` returns, with no sleep and no polling,
in both models.
"""

from __future__ import annotations

import os
from pathlib import Path


def wait_at(path: str, value: object = None) -> object:
    """Block until the gate at ``path`` is released; return ``value``."""
    with open(path, "rb") as fifo:
        fifo.read()
    return value


def pass_two(first: str, second: str, value: object = None) -> object:
    """Wait at two gates in turn: releasing the first proves the task has started."""
    wait_at(first)
    return wait_at(second, value)


class Gate:
    def __init__(self, directory: Path, name: str = "gate") -> None:
        self.path = str(directory / name)
        os.mkfifo(self.path)

    def release(self) -> None:
        """Wait for one worker to reach the gate, then let it through."""
        with open(self.path, "wb") as fifo:
            fifo.write(b"go")

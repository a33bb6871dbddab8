"""Functions the cluster tests run on dask workers (importable there: tests/ is on their path)."""

from __future__ import annotations

import os
from pathlib import Path

from contract._gates import pass_two

initialized: list[str] = []


def add(a: int, b: int = 0) -> int:
    return a + b


def pid_then_wait(pid_path: str, first: str, second: str, value: object = None) -> object:
    """Write the worker's pid, then wait at two gates: releasing ``first`` proves it wrote."""
    Path(pid_path).write_text(str(os.getpid()))
    return pass_two(first, second, value)


def fail_to_start() -> None:
    raise RuntimeError("this initializer always fails")


def getpid() -> int:
    return os.getpid()

"""What the fault tests of the process primitives share (sync and async faces)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from test_process_locks import Child

METHOD = "forkserver"
"""How the children of the fault tests start."""


@pytest.fixture
def children() -> Iterator[Callable[..., Child]]:
    """``children(target, primitive, *args)`` starts a child; all are killed and reaped after."""
    started: list[Child] = []

    def start(target: Callable[..., None], *args: Any) -> Child:
        child = Child(METHOD, target, *args)
        started.append(child)
        return child

    yield start
    for child in started:
        child.finish()

"""Fixtures of the channel tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from concurrency_kit import ProcessChannel


@pytest.fixture
def make() -> Iterator[Callable[..., ProcessChannel[Any]]]:
    """``make(*args, **kwargs)`` makes a :class:`ProcessChannel`, closed when the test ends."""
    made: list[ProcessChannel[Any]] = []

    def build(*args: Any, **kwargs: Any) -> ProcessChannel[Any]:
        channel = ProcessChannel[Any](*args, **kwargs)
        made.append(channel)
        return channel

    yield build
    for channel in made:
        channel.close()
    made.clear()  # a closed channel's resources go with its last handle

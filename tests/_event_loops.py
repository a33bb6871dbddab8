"""The event loops the async faces are tested on, for every async test module.

``backend`` (a fixture in ``conftest.py``) is ``"asyncio"`` or ``"trio"`` (trio skipped where
it is not installed); :func:`run` runs a test's coroutine function on it (through anyio, which
calls the backend's own ``run``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio

BACKENDS = ["asyncio", "trio"]


def run(backend: str, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """``fn(*args)`` run to its end on ``backend``; its result."""
    return anyio.run(fn, *args, backend=backend)

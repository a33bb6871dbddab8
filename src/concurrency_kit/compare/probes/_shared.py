"""What several probes use: a channel echo task (importable by pool workers), the wording of a
lower-is-better comparison, and whether the interpreter column can be measured here."""

from __future__ import annotations

import importlib
import platform
from typing import Any

__all__ = ["cheaper", "echo", "interpreter_id", "interpreters_missing"]


def interpreters_missing() -> str:
    """Why the interpreter column cannot be measured here, or ``""`` when it can."""
    try:
        importlib.import_module("concurrent.interpreters")
    except ImportError:
        return f"interpreters need Python 3.14+ (this is {platform.python_version()})"
    return ""


def interpreter_id() -> int:
    """The id of the interpreter running this code (0, the main one, before Python 3.14)."""
    try:
        interpreters = importlib.import_module("concurrent.interpreters")
    except ImportError:
        return 0
    current: int = interpreters.get_current().id
    return current


def echo(ping: Any, pong: Any) -> None:
    """Send back every item received on ``ping``, until ``ping`` is closed."""
    for item in ping:
        pong.send(item)


def cheaper(thread: float, process: float) -> str:
    """``"threads 3.1x cheaper"``, ``"processes 1.4x cheaper"`` or ``"about the same"``."""
    if max(thread, process) < 1.05 * min(thread, process):
        return "about the same"
    if thread < process:
        return f"threads {process / thread:.1f}x cheaper"
    return f"processes {thread / process:.1f}x cheaper"

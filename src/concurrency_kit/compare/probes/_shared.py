"""What several probes use: a channel echo task (importable by pool workers) and the wording
of a lower-is-better comparison."""

from __future__ import annotations

from typing import Any

__all__ = ["cheaper", "echo"]


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

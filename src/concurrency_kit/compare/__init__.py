"""The table as data — each aspect of processes versus threads and the classes that embody it.

:data:`ASPECTS` holds the ten rows. ``python -m concurrency_kit table`` prints them;
:func:`advise` turns a workload's measured timings into a recommended model.
"""

from __future__ import annotations

from concurrency_kit.compare._advise import Advice, advise
from concurrency_kit.compare._render import render_json, render_markdown, render_text
from concurrency_kit.compare._table import ASPECTS, Aspect, Claim

__all__ = [
    "ASPECTS",
    "Advice",
    "Aspect",
    "Claim",
    "advise",
    "render_json",
    "render_markdown",
    "render_text",
]

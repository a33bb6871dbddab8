"""The table as data — each aspect of processes versus threads and the classes that embody it.

:data:`ASPECTS` holds the ten rows. ``python -m concurrency_kit table`` prints them.
"""

from __future__ import annotations

from concurrency_kit.compare._render import render_json, render_markdown, render_text
from concurrency_kit.compare._table import ASPECTS, Aspect, Claim

__all__ = ["ASPECTS", "Aspect", "Claim", "render_json", "render_markdown", "render_text"]

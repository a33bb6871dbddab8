"""Progress bars for long work: ``map(..., progress=...)`` and ``as_completed(..., progress=...)``.

The display is tqdm's (the ``progress`` extra), through ``tqdm.auto``: a text bar in a terminal,
a widget in Jupyter. tqdm is imported only when a bar is asked for, at the call, so that a
missing extra is reported where the user asked for it, not at the first result.

The bar lives in the caller's thread: it is updated where results are handed to the caller
(never from a pool's own threads, whose time belongs to delivering results), and a bar the
library opened is closed in a ``finally`` of the generator that feeds it, so that an exception,
a timeout or an early ``close()`` of the generator closes it too.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

__all__ = ["Opener", "ProgressBar", "ProgressOption", "open_progress"]

EXTRA_HINT = "pip install 'concurrency_kit[progress]'"


class ProgressBar(Protocol):
    """What a progress display must offer to be passed as ``progress=``: a tqdm bar, say.

    Each finished task calls ``update(1)`` (a ``map`` calls ``update(n)`` once per chunk of
    ``n`` items). A bar you pass in is never closed by the library: it is yours, and may follow
    several calls.
    """

    def update(self, n: int = 1) -> object:
        """Count ``n`` more finished tasks."""


ProgressOption = bool | Mapping[str, Any] | ProgressBar
"""``progress=``: ``False`` (no bar), ``True`` (a tqdm bar), a mapping of tqdm options, or a
:class:`ProgressBar` to update."""

Opener = Callable[[], Any]


def open_progress(
    progress: ProgressOption, *, total: int | None, desc: str | None, unit: str = "task"
) -> Opener | None:
    """Check ``progress`` now; return what opens the bar later (``None``: no bar).

    The bar itself is opened by calling the result, in the generator that will close it: a
    generator that is never started runs no ``finally``, so a bar opened before it would leak.

    Raises:
        ImportError: a bar is asked for and tqdm is not installed (the message names the extra).
        TypeError: ``progress`` is none of the accepted kinds.
    """
    if isinstance(progress, bool):
        if not progress:
            return None
        options: dict[str, Any] = {}
    elif isinstance(progress, Mapping):
        options = dict(progress)
        if not all(isinstance(key, str) for key in options):
            raise TypeError("progress options must be a mapping of tqdm keyword arguments")
    elif callable(getattr(progress, "update", None)):
        bar = progress
        return lambda: _Borrowed(bar)
    else:
        raise TypeError(
            "progress must be a bool, a mapping of tqdm options or an object with an "
            f"update(n) method (a tqdm bar), not {type(progress).__name__}"
        )
    try:
        # tqdm ships no type information: imported by name, it is Any to mypy.
        tqdm = importlib.import_module("tqdm.auto").tqdm
    except ImportError as exc:
        raise ImportError(
            f"progress bars need the 'tqdm' package: {EXTRA_HINT} (or pip install tqdm)"
        ) from exc
    settings: dict[str, Any] = {"total": total, "unit": unit}
    if desc is not None:
        settings["desc"] = desc
    settings.update(options)
    return lambda: tqdm(**settings)


class _Borrowed:
    """A bar the caller passed in: updated, never closed."""

    __slots__ = ("update",)

    def __init__(self, bar: ProgressBar) -> None:
        self.update = bar.update

    def close(self) -> None:
        pass

"""How every process the library starts is started: the start method and its context."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context

__all__ = ["default_start_method", "mp_context"]


def default_start_method() -> str:
    """``forkserver`` where it exists (POSIX), else ``spawn``: never ``fork`` by default (a
    forked child of a threaded parent may inherit locks held by threads it does not have)."""
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


def mp_context(start_method: str) -> multiprocessing.context.BaseContext:
    """The :mod:`multiprocessing` context of ``start_method``, for every process we start.

    With ``forkserver``, ``concurrency_kit`` is added to the modules the fork server imports
    before it forks anything (it keeps any the user set): each child then starts with the
    library imported, in about 10 ms instead of the 100+ ms a fresh import takes. (The server
    is meant to preload ``__main__`` too, but CPython 3.11 looks for the wrong key and never
    does.) It only has effect if the server is not running yet; it starts on first use.
    """
    context = multiprocessing.get_context(start_method)
    if start_method == "forkserver":
        from multiprocessing import forkserver

        modules = list(getattr(forkserver._forkserver, "_preload_modules", ["__main__"]))
        if "concurrency_kit" not in modules:
            context.set_forkserver_preload([*modules, "concurrency_kit"])
    return context

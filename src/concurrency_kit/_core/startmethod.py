"""How every process the library starts is started: the start method and its context."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import multiprocessing.process
import os
import sys

__all__ = ["default_start_method", "main_module_problem", "mp_context"]


def default_start_method() -> str:
    """``forkserver`` where it exists (POSIX), else ``spawn``: never ``fork`` by default (a
    forked child of a threaded parent may inherit locks held by threads it does not have)."""
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


def main_module_problem(start_method: str) -> str | None:
    """Why a ``spawn`` or ``forkserver`` child of this program cannot start, or ``None``.

    Such a child re-runs the parent's main module before it does anything else (that is how
    :mod:`multiprocessing` makes ``__main__``'s functions importable there): by module name
    under ``python -m``, otherwise from the file named by ``__main__.__file__``. A script read
    from standard input (``python - <<EOF``) has ``__file__ == "<stdin>"``, which is no file:
    every child then dies with :class:`FileNotFoundError` before it runs a line of ours, and
    prints the traceback on its way out. The same happens to a script deleted while it runs.
    This finds it in the parent, from the same data :mod:`multiprocessing` would send, so
    that the caller gets one clear error instead. Without a ``__file__`` (the interactive
    prompt, ``python -c``, Jupyter) nothing is re-run and all is well.
    """
    if start_method == "fork":
        return None
    main = sys.modules.get("__main__")
    if main is None or getattr(getattr(main, "__spec__", None), "name", None) is not None:
        return None
    main_path = getattr(main, "__file__", None)
    if not isinstance(main_path, str):
        return None
    original_dir: str | None = getattr(multiprocessing.process, "ORIGINAL_DIR", None)
    if not os.path.isabs(main_path) and original_dir is not None:
        main_path = os.path.join(original_dir, main_path)
    if os.path.isfile(main_path):
        return None
    what = (
        "the script was read from standard input"
        if os.path.basename(main_path) == "<stdin>"
        else f"the main module's file {main_path!r} does not exist"
    )
    return (
        f"{what}, and a {start_method!r} worker re-runs the main module from its file "
        "before it can start. Save the script to a file and run that (or make it a module "
        "and run it with 'python -m'), or pass start_method='fork' (safe only while the "
        "parent runs no other threads)"
    )


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

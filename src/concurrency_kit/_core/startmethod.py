"""How every process the library starts is started: the start method and its context."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import multiprocessing.process
import os
import sys
import threading

__all__ = ["default_start_method", "main_module_path", "main_module_problem", "mp_context"]


def default_start_method() -> str:
    """``forkserver`` where it exists (POSIX), else ``spawn``: never ``fork`` by default (a
    forked child of a threaded parent may inherit locks held by threads it does not have)."""
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


def _main_path_to_rerun() -> str | None:
    """The path a ``spawn`` or ``forkserver`` child re-runs as the main module, as
    :mod:`multiprocessing` computes it (whether or not the file exists); ``None`` when it
    re-runs nothing by path (``python -m``, ``python -c``, the interactive prompt)."""
    main = sys.modules.get("__main__")
    if main is None or getattr(getattr(main, "__spec__", None), "name", None) is not None:
        return None
    main_path = getattr(main, "__file__", None)
    if not isinstance(main_path, str):
        return None
    original_dir: str | None = getattr(multiprocessing.process, "ORIGINAL_DIR", None)
    if not os.path.isabs(main_path) and original_dir is not None:
        main_path = os.path.join(original_dir, main_path)
    return os.path.normpath(main_path)


def main_module_path() -> str | None:
    """The main script a ``spawn`` or ``forkserver`` child re-runs, if it is a file."""
    main_path = _main_path_to_rerun()
    return main_path if main_path is not None and os.path.isfile(main_path) else None


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
    main_path = _main_path_to_rerun()
    if main_path is None or os.path.isfile(main_path):
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


_server_lock = threading.Lock()


def mp_context(start_method: str) -> multiprocessing.context.BaseContext:
    """The :mod:`multiprocessing` context of ``start_method``, for every process we start.

    With ``forkserver``, the fork server is started now (if it is not running yet), and with
    the right preloads, so that it boots while the caller goes on and each worker it forks
    starts with nothing left to import:

    * ``concurrency_kit``: each child starts with the library imported, in about 10 ms instead
      of the 100+ ms a fresh import takes (any modules the user set stay in the list);
    * the parent's main script, run once in the server (:mod:`._core.forkserver_main`): CPython
      means to preload it but never does, so without this every worker re-runs the script and
      its imports before its first task.

    A server started earlier (by another pool, or by the standard library) is used as it is.
    """
    context = multiprocessing.get_context(start_method)
    if start_method == "forkserver":
        from multiprocessing import forkserver

        modules = list(getattr(forkserver._forkserver, "_preload_modules", ["__main__"]))
        wanted = [name for name in ("concurrency_kit", _FORKSERVER_MAIN) if name not in modules]
        if wanted:
            context.set_forkserver_preload([*modules, *wanted])
        _start_forkserver()
    return context


_FORKSERVER_MAIN = "concurrency_kit._core.forkserver_main"


def _start_forkserver() -> None:
    """Start the fork server now, telling it the main script to preload (an environment
    variable the server reads once; ``ensure_running`` passes it no other way)."""
    from multiprocessing import forkserver

    from concurrency_kit._core.forkserver_main import ENVIRONMENT_KEY, encode

    main_path = main_module_path()
    with _server_lock:
        if main_path is not None:
            os.environ[ENVIRONMENT_KEY] = encode(main_path, list(sys.argv))
        try:
            forkserver.ensure_running()
        finally:
            os.environ.pop(ENVIRONMENT_KEY, None)

"""Small helpers shared by the whole package."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import types
from collections.abc import Iterable


def fixup_module_metadata(
    module_name: str, names: Iterable[str], namespace: dict[str, object]
) -> None:
    """Make public objects report ``module_name`` as their module.

    Tracebacks, reprs, Sphinx and pickled handles then show ``concurrency_kit.ThreadPool``
    rather than the private module that happens to define it.
    """
    seen: set[int] = set()

    def fix(obj: object, qualname_prefix: str) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        mod = getattr(obj, "__module__", None)
        if mod is None or not mod.startswith(module_name + "."):
            return
        try:
            obj.__module__ = module_name
        except (AttributeError, TypeError):  # pragma: no cover - builtins cannot be changed
            return
        if isinstance(obj, type):
            for attr_name, attr in vars(obj).items():
                if isinstance(attr, (types.FunctionType, type)):
                    fix(attr, f"{qualname_prefix}.{attr_name}")

    for name in names:
        obj = namespace[name]
        if isinstance(obj, (type, types.FunctionType)):
            fix(obj, name)


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

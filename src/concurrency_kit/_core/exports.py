"""How public objects present themselves: as ``concurrency_kit.Name``, not as the private
module that happens to define them."""

from __future__ import annotations

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

    def fix(obj: object) -> None:
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
            for attr in vars(obj).values():
                if isinstance(attr, (types.FunctionType, type)):
                    fix(attr)

    for name in names:
        obj = namespace[name]
        if isinstance(obj, (type, types.FunctionType)):
            fix(obj)

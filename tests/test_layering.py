"""The package's layering, checked from every module's imports (issue 16).

    __init__ / __main__          the public face and the command line
    models.py                    the columns: one name per model, over the rows' packages
    pools/ channels/ state/      the rows of the table, side by side: each imports its own
    sync/ supervision/ compare/  folder, and another row only through that row's package
    protocols.py  errors.py      what every row shares: shapes and exceptions
    _core/                       the shared machinery: segments, mutexes, atomics, ...

A row never reaches into another row's modules (``sync/process.py``, ``state/_hashtable.py``):
what two rows share belongs in ``_core/``. Imports under ``if TYPE_CHECKING:`` are ignored
(they exist for annotations only).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import concurrency_kit

PACKAGE = Path(concurrency_kit.__file__).parent
ROWS = frozenset({"pools", "channels", "state", "sync", "supervision", "compare"})
SHARED = frozenset({"errors", "protocols"})


def runtime_imports(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every ``concurrency_kit`` import outside ``TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(), str(path))
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(child) for child in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "concurrency_kit":
                found += [(node.lineno, f"concurrency_kit.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.append((node.lineno, "<relative>"))
    return [
        (line, name)
        for line, name in found
        if name.split(".")[0] in ("concurrency_kit", "<relative>")
    ]


def allowed(layer: str, target: list[str]) -> bool:
    """Whether a module of ``layer`` may import ``concurrency_kit.<target...>``."""
    if not target or target[0] == "<relative>":
        return False  # absolute imports only: the layer of every import is plain to see
    top = target[0]
    if layer == "_core":
        return top in ("_core", "errors")
    if layer in SHARED:
        return top in ("_core", "errors")
    if layer in ROWS:
        public_row = top in ROWS and len(target) == 1
        return top in ("_core", "models", layer) or top in SHARED or public_row
    if layer == "models":
        return top in ("_core", *SHARED) or (top in ROWS and len(target) == 1)
    if layer == "__init__":
        return top in ("_core", "models", *SHARED, "__version__") or (
            top in ROWS and len(target) == 1
        )
    if layer == "__main__":  # the command line of the compare row
        return top in ("_core", "models", "compare", "__version__", *SHARED)
    return False


def layer_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    layers = {layer_of(path) for path in MODULES}
    assert layers == ROWS | SHARED | {"_core", "models", "__init__", "__main__"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_layers(path: Path) -> None:
    layer = layer_of(path)
    wrong = [
        f"{path.relative_to(PACKAGE)}:{line}: {name}"
        for line, name in runtime_imports(path)
        if not allowed(layer, name.split(".")[1:] if name != "<relative>" else ["<relative>"])
    ]
    assert not wrong, f"{layer} may not import these (see this file's docstring): {wrong}"


def test_the_checker_catches_a_row_reaching_into_another() -> None:
    # The rule itself, on the imports the renovation removed.
    assert not allowed("channels", ["sync", "_monitor"])
    assert not allowed("state", ["sync", "process"])
    assert not allowed("protocols", ["pools", "_base"])
    assert not allowed("_core", ["sync"])
    assert allowed("state", ["sync"])  # another row's public package
    assert allowed("channels", ["_core", "monitor"])
    assert allowed("sync", ["sync", "_algorithms"])

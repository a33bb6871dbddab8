"""The offline intersphinx fallback: ``docs/_ext/stdlib_inventory.py`` writes a valid inventory.

CI has no network, so the Python documentation's references resolve against this generated
file. It must load with Sphinx's own reader and hold the entries our pages use, with the roles
and URIs of docs.python.org.
"""

from __future__ import annotations

import importlib.util
import io
import posixpath
from pathlib import Path
from types import ModuleType

import pytest

# Sphinx is in the docs extra, not the test one: a run with only the test extra skips this file.
InventoryFile = pytest.importorskip("sphinx.util.inventory").InventoryFile

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "_ext" / "stdlib_inventory.py"
BASE = "https://docs.python.org/3"


def load_script() -> ModuleType:
    """Import the script from its path without touching ``sys.path`` or ``sys.modules``."""
    spec = importlib.util.spec_from_file_location("ck_docs_stdlib_inventory", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_inventory(data: bytes) -> dict[str, dict[str, str]]:
    """Read an inventory with Sphinx's own reader: ``{role: {name: uri}}``."""
    if hasattr(InventoryFile, "loads"):  # Sphinx >= 8.2
        loaded = InventoryFile.loads(data, uri=BASE)
        return {
            role: {name: item.uri for name, item in items.items()}
            for role, items in loaded.data.items()
        }
    old = InventoryFile.load(io.BytesIO(data), BASE, posixpath.join)
    return {role: {name: item[2] for name, item in items.items()} for role, items in old.items()}


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """The written inventory, read back."""
    path = load_script().write_inventory(tmp_path_factory.mktemp("inv") / "objects.inv")
    return read_inventory(path.read_bytes())


@pytest.mark.parametrize(
    ("role", "name", "uri"),
    [
        ("py:module", "concurrent.futures", "concurrent.futures.html#module-concurrent.futures"),
        (
            "py:module",
            "multiprocessing.shared_memory",
            "multiprocessing.shared_memory.html#module-multiprocessing.shared_memory",
        ),
        ("py:class", "concurrent.futures.Future", "concurrent.futures.html#$"),
        ("py:class", "concurrent.futures.Executor", "concurrent.futures.html#$"),
        ("py:method", "concurrent.futures.Executor.map", "concurrent.futures.html#$"),
        ("py:method", "concurrent.futures.Future.result", "concurrent.futures.html#$"),
        ("py:method", "threading.Lock.acquire", "threading.html#$"),
        ("py:method", "multiprocessing.pool.Pool.map", "multiprocessing.html#$"),
        ("py:attribute", "multiprocessing.Process.exitcode", "multiprocessing.html#$"),
        ("py:method", "asyncio.loop.run_in_executor", "asyncio-eventloop.html#$"),
        ("py:exception", "TimeoutError", "exceptions.html#$"),
        ("py:exception", "concurrent.futures.BrokenExecutor", "concurrent.futures.html#$"),
        ("py:exception", "pickle.PickleError", "pickle.html#$"),
        ("py:class", "int", "functions.html#$"),
        ("py:class", "str", "stdtypes.html#$"),
        ("py:function", "map", "functions.html#$"),
        ("py:function", "os.getpid", "os.html#$"),
        ("py:data", "None", "constants.html#$"),
        ("py:data", "signal.SIGKILL", "signal.html#$"),
    ],
)
def test_entry(inventory: dict[str, dict[str, str]], role: str, name: str, uri: str) -> None:
    """``uri`` is relative to ``library/``; ``$`` stands for the name, as in the format."""
    expected = f"{BASE}/library/{uri.replace('$', name)}"
    assert inventory.get(role, {}).get(name) == expected


def test_glossary_terms(inventory: dict[str, dict[str, str]]) -> None:
    assert inventory["std:term"]["global interpreter lock"] == (
        f"{BASE}/glossary.html#term-global-interpreter-lock"
    )


def test_an_unchanged_inventory_is_not_rewritten(tmp_path: Path) -> None:
    script = load_script()
    path = script.write_inventory(tmp_path / "objects.inv")
    inode = path.stat().st_ino
    script.write_inventory(path)
    assert path.stat().st_ino == inode  # a rewrite replaces the file: a new inode
    assert [p.name for p in tmp_path.iterdir()] == ["objects.inv"]

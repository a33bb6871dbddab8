"""Write an intersphinx inventory of the standard library by introspecting the running Python.

CI has no network, so ``intersphinx`` cannot download ``objects.inv`` from docs.python.org.
``conf.py`` calls :func:`write_inventory` at build time and lists the file it writes as the
fallback location of the ``python`` intersphinx project: with a network Sphinx uses the real
inventory, without one it uses this file (and only logs an info message).

The inventory covers the modules in :data:`MODULES` — what our pages and docstrings refer to —
with the roles the Python documentation uses (``py:module``, ``py:class``, ``py:exception``,
``py:function``, ``py:method``, ``py:attribute``, ``py:data``) and URIs in the layout of
docs.python.org (``library/concurrent.futures.html#concurrent.futures.Future``). It is built
from live objects, so it can only list what exists; the few documented names that are not
importable objects (``asyncio.loop.run_in_executor``, ``threading.Lock`` as a class on 3.11,
glossary terms) are listed in :data:`EXTRA_ENTRIES`.

Run it by hand to inspect the result::

    python docs/_ext/stdlib_inventory.py /tmp/python-objects.inv
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import tempfile
import types
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

__all__ = ["EXTRA_ENTRIES", "MODULES", "Entry", "inventory_bytes", "write_inventory"]


class Entry(NamedTuple):
    """One line of an inventory: ``name domain:role priority uri dispname``."""

    name: str
    role: str
    uri: str


MODULES: dict[str, str] = {
    # module name -> page under https://docs.python.org/3/ documenting it
    "builtins": "library/functions.html",
    "abc": "library/abc.html",
    "array": "library/array.html",
    "asyncio": "library/asyncio.html",
    "collections": "library/collections.html",
    "collections.abc": "library/collections.abc.html",
    "concurrent.futures": "library/concurrent.futures.html",
    "contextlib": "library/contextlib.html",
    "ctypes": "library/ctypes.html",
    "faulthandler": "library/faulthandler.html",
    "functools": "library/functools.html",
    "hashlib": "library/hashlib.html",
    "multiprocessing": "library/multiprocessing.html",
    "multiprocessing.connection": "library/multiprocessing.html",
    "multiprocessing.managers": "library/multiprocessing.html",
    "multiprocessing.pool": "library/multiprocessing.html",
    "multiprocessing.shared_memory": "library/multiprocessing.shared_memory.html",
    "multiprocessing.sharedctypes": "library/multiprocessing.html",
    "os": "library/os.html",
    "pickle": "library/pickle.html",
    "queue": "library/queue.html",
    "selectors": "library/selectors.html",
    "signal": "library/signal.html",
    "subprocess": "library/subprocess.html",
    "sys": "library/sys.html",
    "threading": "library/threading.html",
    "time": "library/time.html",
    "types": "library/types.html",
    "typing": "library/typing.html",
    "weakref": "library/weakref.html",
    "zlib": "library/zlib.html",
}

# The builtins are spread over several pages.
_BUILTIN_TYPES_ON_STDTYPES = frozenset(
    [
        "bytearray",
        "bytes",
        "dict",
        "frozenset",
        "list",
        "memoryview",
        "range",
        "set",
        "str",
        "tuple",
    ]
)
# Classes the Python docs document as functions (``.. function:: map``).
_BUILTIN_CLASSES_AS_FUNCTIONS = frozenset(
    ["classmethod", "enumerate", "filter", "map", "reversed", "staticmethod", "zip"]
)
_BUILTIN_CONSTANTS = ("None", "True", "False", "Ellipsis", "NotImplemented", "__debug__")

# asyncio documents its objects on one page per topic; route them by defining submodule.
_ASYNCIO_PAGES: dict[str, str] = {
    "asyncio.events": "library/asyncio-eventloop.html",
    "asyncio.base_events": "library/asyncio-eventloop.html",
    "asyncio.exceptions": "library/asyncio-exceptions.html",
    "asyncio.futures": "library/asyncio-future.html",
    "asyncio.locks": "library/asyncio-sync.html",
    "asyncio.queues": "library/asyncio-queue.html",
    "asyncio.runners": "library/asyncio-runner.html",
    "asyncio.streams": "library/asyncio-stream.html",
    "asyncio.subprocess": "library/asyncio-subprocess.html",
    "asyncio.taskgroups": "library/asyncio-task.html",
    "asyncio.tasks": "library/asyncio-task.html",
    "asyncio.threads": "library/asyncio-task.html",
    "asyncio.timeouts": "library/asyncio-task.html",
}

EXTRA_ENTRIES: tuple[Entry, ...] = (
    # Documented as classes, but factory functions on some versions (3.11: _thread functions).
    Entry("threading.Lock", "py:class", "library/threading.html#threading.Lock"),
    Entry("threading.Lock.acquire", "py:method", "library/threading.html#threading.Lock.acquire"),
    Entry("threading.Lock.release", "py:method", "library/threading.html#threading.Lock.release"),
    Entry("threading.Lock.locked", "py:method", "library/threading.html#threading.Lock.locked"),
    Entry("threading.RLock", "py:class", "library/threading.html#threading.RLock"),
    Entry("threading.RLock.acquire", "py:method", "library/threading.html#threading.RLock.acquire"),
    Entry("threading.RLock.release", "py:method", "library/threading.html#threading.RLock.release"),
    # The event loop is documented under the name ``loop``, which is no importable object.
    Entry(
        "asyncio.loop.run_in_executor",
        "py:method",
        "library/asyncio-eventloop.html#asyncio.loop.run_in_executor",
    ),
    Entry(
        "asyncio.loop.set_default_executor",
        "py:method",
        "library/asyncio-eventloop.html#asyncio.loop.set_default_executor",
    ),
    # Glossary terms (:term:`...`) and the pages we link with :doc:.
    Entry("global interpreter lock", "std:term", "glossary.html#term-global-interpreter-lock"),
    Entry("GIL", "std:term", "glossary.html#term-GIL"),
    Entry("free threading", "std:term", "glossary.html#term-free-threading"),
    Entry("picklable", "std:term", "glossary.html#term-picklable"),
    Entry("library/multiprocessing", "std:doc", "library/multiprocessing.html"),
    Entry("library/concurrent.futures", "std:doc", "library/concurrent.futures.html"),
    Entry("library/threading", "std:doc", "library/threading.html"),
    Entry("library/pickle", "std:doc", "library/pickle.html"),
)


def _public_names(module: types.ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [name for name in vars(module) if not name.startswith("_")]
    return sorted(set(names))


def _is_exception(obj: object) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseException)


def _role_of(obj: object) -> str:
    if _is_exception(obj):
        return "py:exception"
    if isinstance(obj, type):
        return "py:class"
    if isinstance(obj, types.ModuleType):
        return "py:module"
    if callable(obj) and not hasattr(obj, "__origin__"):
        return "py:function"
    return "py:data"


def _builtin_page(name: str, obj: object) -> str:
    if _is_exception(obj):
        return "library/exceptions.html"
    if name in _BUILTIN_TYPES_ON_STDTYPES:
        return "library/stdtypes.html"
    return "library/functions.html"


def _member_role(owner: type, name: str) -> str | None:
    """The role of ``owner.name`` as the Python docs list it, or None to leave it out."""
    try:
        raw = inspect.getattr_static(owner, name)
    except AttributeError:  # pragma: no cover - listed by dir() but not found
        return None
    if isinstance(raw, (classmethod, staticmethod)):
        return "py:method"
    if isinstance(raw, type):
        return "py:exception" if _is_exception(raw) else "py:class"
    if isinstance(raw, (property, types.GetSetDescriptorType, types.MemberDescriptorType)):
        return "py:attribute"
    if callable(raw):
        return "py:method"
    return "py:attribute"


def _members(owner: type) -> Iterator[tuple[str, str]]:
    """Public members of a class, inherited ones included but not those of ``object``."""
    # Exceptions are documented with their own attributes only (``OSError.errno``, not
    # ``TimeoutError.errno``); other classes with what they inherit, as the Python docs do
    # (``multiprocessing.Process.exitcode`` is defined on a private base class).
    names = vars(owner) if _is_exception(owner) else dir(owner)
    for name in sorted(names):
        if name.startswith("_"):
            continue
        if owner is not object and name in vars(object):
            continue
        role = _member_role(owner, name)
        if role is not None:
            yield name, role


def _module_entries(module_name: str, page: str) -> Iterator[Entry]:
    module = importlib.import_module(module_name)
    yield Entry(module_name, "py:module", f"{page}#module-{module_name}")
    is_builtins = module_name == "builtins"
    for name in _public_names(module):
        try:
            obj = getattr(module, name)
        except AttributeError:  # a name in __all__ that this platform does not provide
            continue
        if isinstance(obj, types.ModuleType) or (is_builtins and name in _BUILTIN_CONSTANTS):
            continue
        full = name if is_builtins else f"{module_name}.{name}"
        obj_page = page
        if is_builtins:
            obj_page = _builtin_page(name, obj)
        elif module_name == "asyncio":
            obj_page = _ASYNCIO_PAGES.get(getattr(obj, "__module__", ""), page)
        role = _role_of(obj)
        if is_builtins and name in _BUILTIN_CLASSES_AS_FUNCTIONS:
            role = "py:function"
        yield Entry(full, role, f"{obj_page}#{full}")
        if isinstance(obj, type):
            member_page = obj_page
            if is_builtins and not _is_exception(obj):
                member_page = "library/stdtypes.html"  # int.bit_length, str.join, ...
            for member, member_role in _members(obj):
                member_full = f"{full}.{member}"
                yield Entry(member_full, member_role, f"{member_page}#{member_full}")
    if is_builtins:
        for constant in _BUILTIN_CONSTANTS:
            yield Entry(constant, "py:data", f"library/constants.html#{constant}")


def iter_entries(modules: dict[str, str] | None = None) -> list[Entry]:
    """Every entry of the inventory, sorted and without duplicates (first one wins)."""
    seen: dict[tuple[str, str], Entry] = {}
    for module_name, page in (MODULES if modules is None else modules).items():
        for entry in _module_entries(module_name, page):
            seen.setdefault((entry.role, entry.name), entry)
    overridden = {entry.name for entry in EXTRA_ENTRIES}
    seen = {key: entry for key, entry in seen.items() if entry.name not in overridden}
    for entry in EXTRA_ENTRIES:
        seen[entry.role, entry.name] = entry
    return sorted(seen.values(), key=lambda e: (e.role, e.name))


def inventory_bytes(entries: list[Entry], version: str | None = None) -> bytes:
    """Encode entries in the Sphinx inventory format, version 2 (a header, then zlib)."""
    if version is None:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
    header = (
        "# Sphinx inventory version 2\n"
        "# Project: Python\n"
        f"# Version: {version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    ).encode()
    lines = []
    for entry in entries:
        uri = entry.uri
        if uri.endswith("#" + entry.name):  # the format's shorthand for "the name again"
            uri = uri[: -len(entry.name)] + "$"
        priority = "-1" if entry.role == "std:doc" else "1"
        dispname = entry.name if entry.role in ("std:term", "std:doc") else "-"
        lines.append(f"{entry.name} {entry.role} {priority} {uri} {dispname}\n")
    return header + zlib.compress("".join(lines).encode(), 9)


def write_inventory(path: str | os.PathLike[str]) -> Path:
    """Write the inventory to ``path`` (atomically, and only when it changed); return the path."""
    target = Path(path)
    data = inventory_bytes(iter_entries())
    if target.is_file() and target.read_bytes() == data:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".objects-", suffix=".inv", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; this is an ordinary build artifact
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
    return target


if __name__ == "__main__":
    out = write_inventory(sys.argv[1] if len(sys.argv) > 1 else "python-objects.inv")
    print(f"wrote {out}")

"""What ``docs/api.rst`` documents: the names of its autodoc directives for ``concurrency_kit``.

The API page documents each public name with exactly one directive of the form
``.. autoclass:: concurrency_kit.NAME`` (or ``autoexception``, ``autofunction``, ``autodata``).
Tests use :func:`documented` to check that what is exported is documented, and the reverse.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

API_RST = Path(__file__).resolve().parent.parent / "docs" / "api.rst"

DIRECTIVE = re.compile(
    r"^\.\.[ \t]+auto(?P<kind>class|exception|function|data)::[ \t]+"
    r"concurrency_kit\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)[ \t]*$",
    re.MULTILINE,
)


def directives(path: Path = API_RST) -> list[tuple[str, str]]:
    """The ``(kind, name)`` of every matching directive, in page order.

    Fails the calling test, with a message saying what is missing, if the page does not exist.
    """
    if not path.is_file():
        pytest.fail(
            f"{path} does not exist: the API reference must document every name in "
            "concurrency_kit.__all__ with '.. autoclass:: concurrency_kit.NAME' (or "
            "autoexception, autofunction, autodata)",
            pytrace=False,
        )
    return [(m["kind"], m["name"]) for m in DIRECTIVE.finditer(path.read_text(encoding="utf-8"))]


def documented(path: Path = API_RST) -> dict[str, str]:
    """Map each name documented in ``path`` to the kind of its directive."""
    return {name: kind for kind, name in directives(path)}

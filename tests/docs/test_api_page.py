"""The API reference documents every public name once, with the directive that fits it.

``docs/api.rst`` must hold, for each name in ``concurrency_kit.__all__`` (``__version__``
aside), exactly one ``.. autoclass::``, ``.. autoexception::``, ``.. autofunction::`` or
``.. autodata::`` directive naming ``concurrency_kit.NAME`` — so that a new export cannot be
forgotten, and the table's links (which need the targets) keep resolving.
"""

from __future__ import annotations

import collections
import inspect
import re
from pathlib import Path

import concurrency_kit
import concurrency_kit.compare

DOCS = Path(__file__).resolve().parents[2] / "docs"
DIRECTIVE = re.compile(
    r"^\.\. (autoclass|autoexception|autofunction|autodata):: (concurrency_kit\.[\w.]+)[ \t]*$",
    re.MULTILINE,
)


def directives() -> list[tuple[str, str]]:
    """Every (kind, target) auto-directive in the docs' pages."""
    found = []
    for page in sorted(DOCS.glob("*.rst")):
        found.extend(DIRECTIVE.findall(page.read_text()))
    return found


def expected_kind(obj: object) -> str:
    if isinstance(obj, type) and issubclass(obj, BaseException):
        return "autoexception"
    if isinstance(obj, type):
        return "autoclass"
    if inspect.isfunction(obj):
        return "autofunction"
    return "autodata"


def test_every_public_name_is_documented_exactly_once() -> None:
    public = {f"concurrency_kit.{name}" for name in concurrency_kit.__all__} - {
        "concurrency_kit.__version__"
    }
    counts = collections.Counter(target for _, target in directives())
    top_level = {target for target in counts if target.count(".") == 1}

    assert top_level == public
    assert {target: counts[target] for target in public if counts[target] != 1} == {}


def test_each_directive_fits_its_object() -> None:
    wrong = {}
    for kind, target in directives():
        module_name, _, name = target.rpartition(".")
        module = concurrency_kit if module_name == "concurrency_kit" else concurrency_kit.compare
        assert module.__name__ == module_name, f"unexpected module in {target}"
        if kind != expected_kind(getattr(module, name)):
            wrong[target] = kind
    assert wrong == {}


def test_the_table_data_is_documented() -> None:
    targets = {target for _, target in directives()}
    for name in ("ASPECTS", "Aspect", "Claim"):
        assert f"concurrency_kit.compare.{name}" in targets

"""The seed table as data: ten aspects in the seed's order, each naming real, documented classes."""

from __future__ import annotations

import pytest

import concurrency_kit
from _docs_api import documented
from concurrency_kit.compare import ASPECTS, Aspect, Claim

# The rows of the seed table (seed-table.md beside DESIGN.md), in its order, with its titles.
SEED_TITLES = [
    "Definition",
    "Memory Space",
    "Resource Sharing",
    "Creation Time",
    "Context Switching",
    "Communication",
    "Overhead",
    "Crash Impact",
    "Synchronization",
    "Use Cases",
]

# The folders of DESIGN.md's layout that serve rows of the table.
PACKAGES = {"pools", "channels", "state", "sync", "supervision", "compare"}


def _pairs() -> list[tuple[Aspect, str]]:
    return [(aspect, model) for aspect in ASPECTS for model in ("process", "thread", "interpreter")]


CLAIMS = [pytest.param(aspect, model, id=f"{aspect.key}-{model}") for aspect, model in _pairs()]


def _claim(aspect: Aspect, model: str) -> Claim:
    claim = getattr(aspect, model)
    assert isinstance(claim, Claim)
    return claim


def test_ten_aspects_in_seed_order() -> None:
    assert [aspect.title for aspect in ASPECTS] == SEED_TITLES


def test_keys_are_unique_identifiers() -> None:
    keys = [aspect.key for aspect in ASPECTS]
    assert len(set(keys)) == len(keys)
    assert all(key.isidentifier() and key == key.lower() for key in keys)


@pytest.mark.parametrize("aspect", ASPECTS, ids=lambda a: a.key)
def test_package_is_a_row_folder(aspect: Aspect) -> None:
    assert aspect.package in PACKAGES


@pytest.mark.parametrize(("aspect", "model"), CLAIMS)
def test_claim_text_is_not_empty(aspect: Aspect, model: str) -> None:
    assert _claim(aspect, model).text.strip()


@pytest.mark.parametrize(("aspect", "model"), CLAIMS)
def test_implemented_means_classes(aspect: Aspect, model: str) -> None:
    claim = _claim(aspect, model)
    assert claim.implemented is bool(claim.classes)


@pytest.mark.parametrize(("aspect", "model"), CLAIMS)
def test_classes_are_exported_by_the_right_model(aspect: Aspect, model: str) -> None:
    # Interpreters use the process model's shared-memory classes where they have no own ones.
    others = {"process": ("Thread", "Interpreter"), "thread": ("Process", "Interpreter")}
    for name in _claim(aspect, model).classes:
        assert hasattr(concurrency_kit, name), f"concurrency_kit has no {name}"
        assert name in concurrency_kit.__all__
        assert not name.startswith(others.get(model, ("Thread",))), f"{name} for {model}"
    assert len(set(_claim(aspect, model).classes)) == len(_claim(aspect, model).classes)


def test_classes_are_documented() -> None:
    docs = documented()
    named = {name for aspect, model in _pairs() for name in _claim(aspect, model).classes}
    missing = sorted(named - docs.keys())
    assert not missing, f"named by the table but not documented in docs/api.rst: {missing}"

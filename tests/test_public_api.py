"""The public surface: ``__all__`` is exactly what is public, reports its public module, and is
documented; ``PROCESS`` and ``THREAD`` bundle matching classes."""

from __future__ import annotations
import __future__

import collections
import inspect
import types

import attrs
import pytest

import concurrency_kit
from _docs_api import directives, documented

EXPORTED = sorted(set(concurrency_kit.__all__) - {"__version__"})

# Public attributes only one model has, by design (DESIGN.md: "a clearly named process-only
# keyword"). Everything else must match between the Process* and Thread* class of a field.
PROCESS_ONLY = {"start_method", "shared_memory_size", "max_memory_per_worker"}


def test_all_is_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(concurrency_kit).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)  # submodules
        and not isinstance(value, __future__._Feature)  # `from __future__ import annotations`
    }
    assert set(concurrency_kit.__all__) == public | {"__version__"}
    duplicates = [n for n, c in collections.Counter(concurrency_kit.__all__).items() if c > 1]
    assert not duplicates


def test_version_is_a_string() -> None:
    assert isinstance(concurrency_kit.__version__, str)
    assert concurrency_kit.__version__


@pytest.mark.parametrize("name", EXPORTED)
def test_public_module(name: str) -> None:
    obj = getattr(concurrency_kit, name)
    if isinstance(obj, type) or inspect.isfunction(obj):
        assert obj.__module__ == "concurrency_kit"
        assert obj.__qualname__ == name


def _expected_directives(obj: object) -> set[str]:
    if isinstance(obj, type):
        return {"exception", "class"} if issubclass(obj, BaseException) else {"class"}
    if inspect.isfunction(obj):
        return {"function"}
    return {"data"}


def test_every_export_is_documented() -> None:
    docs = documented()
    missing = [name for name in EXPORTED if name not in docs]
    assert not missing, f"not documented in docs/api.rst: {missing}"
    wrong_kind = {
        name: docs[name]
        for name in EXPORTED
        if docs[name] not in _expected_directives(getattr(concurrency_kit, name))
    }
    assert not wrong_kind, f"documented with the wrong directive: {wrong_kind}"


def test_only_exports_are_documented_and_once() -> None:
    names = [name for _, name in directives()]
    assert sorted(set(names) - set(EXPORTED)) == [], "documented but not exported"
    assert [n for n, c in collections.Counter(names).items() if c > 1] == []


def test_models_bundle_their_classes() -> None:
    assert concurrency_kit.PROCESS.Pool is concurrency_kit.ProcessPool
    assert concurrency_kit.THREAD.Pool is concurrency_kit.ThreadPool
    assert concurrency_kit.PROCESS.name == "process"
    assert concurrency_kit.THREAD.name == "thread"


@pytest.mark.parametrize(
    "field", [f.name for f in attrs.fields(concurrency_kit.Model) if f.name != "name"]
)
def test_model_fields_follow_the_naming_rule(field: str) -> None:
    # PROCESS.X is ProcessX and THREAD.X is ThreadX, both exported.
    process_cls = getattr(concurrency_kit.PROCESS, field)
    thread_cls = getattr(concurrency_kit.THREAD, field)
    assert process_cls is getattr(concurrency_kit, f"Process{field}")
    assert thread_cls is getattr(concurrency_kit, f"Thread{field}")
    assert {f"Process{field}", f"Thread{field}"} <= set(concurrency_kit.__all__)
    assert process_cls is not thread_cls


def _public_api(cls: type) -> dict[str, inspect.Signature | None]:
    api: dict[str, inspect.Signature | None] = {}
    for name in dir(cls):
        if (name.startswith("_") and name != "__init__") or name in PROCESS_ONLY:
            continue
        value = inspect.getattr_static(cls, name)
        func = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
        api[name] = inspect.signature(func) if callable(func) else None
    return api


def _without_process_only(sig: inspect.Signature | None) -> inspect.Signature | None:
    """The signature without process-only parameters and without annotations.

    Names, kinds and defaults must match; the types may not, since each model takes its own
    (a ``ProcessCondition`` needs a process lock, a ``ThreadCondition`` takes any lock).
    """
    if sig is None:
        return None
    kept = [
        p.replace(annotation=inspect.Parameter.empty)
        for p in sig.parameters.values()
        if p.name not in PROCESS_ONLY
    ]
    return sig.replace(parameters=kept, return_annotation=inspect.Signature.empty)


@pytest.mark.parametrize(
    "field", [f.name for f in attrs.fields(concurrency_kit.Model) if f.name != "name"]
)
def test_model_classes_have_the_same_api(field: str) -> None:
    # DESIGN.md: same method names and signatures in both columns.
    process_api = _public_api(getattr(concurrency_kit.PROCESS, field))
    thread_api = _public_api(getattr(concurrency_kit.THREAD, field))
    assert sorted(process_api) == sorted(thread_api)
    different = {
        name: (process_api[name], thread_api[name])
        for name in process_api
        if _without_process_only(process_api[name]) != _without_process_only(thread_api[name])
    }
    assert not different

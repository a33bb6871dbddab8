"""The models the row contract suites run over: conftest's ``model`` with INTERPRETER added.

INTERPRETER (Python 3.14+; skipped before) has the process classes for synchronization and
shared state and a process channel of its own, and its peers in these suites are other
interpreters of this process, so the suites that run over it ask :func:`is_process` rather
than comparing the model's name.
"""

from __future__ import annotations

import sys

import pytest

import concurrency_kit as ck
from concurrency_kit import InterpreterModel, Model

__all__ = ["is_process", "with_interpreter_model"]


def is_process(model: Model | InterpreterModel) -> bool:
    """Whether the model's classes are the process ones (INTERPRETER's are)."""
    return model.name in ("process", "interpreter")


def with_interpreter_model(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``model`` (conftest's indirect fixture) over PROCESS, THREAD and
    INTERPRETER; call it from a test module's ``pytest_generate_tests``."""
    if "model" in metafunc.fixturenames:
        metafunc.definition.add_marker(
            pytest.mark.parametrize(
                "model",
                [
                    ck.PROCESS,
                    ck.THREAD,
                    pytest.param(
                        ck.INTERPRETER,
                        marks=pytest.mark.skipif(
                            sys.version_info < (3, 14), reason="subinterpreters need Python 3.14+"
                        ),
                    ),
                ],
                ids=["process", "thread", "interpreter"],
                indirect=True,
            )
        )

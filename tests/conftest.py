"""Shared test configuration: the leak check for every test, and the ``model`` fixture."""

from __future__ import annotations

import pytest

import concurrency_kit
from concurrency_kit import Model

pytest_plugins = ["ck_leakcheck"]


@pytest.fixture(params=[concurrency_kit.PROCESS, concurrency_kit.THREAD], ids=["process", "thread"])
def model(request: pytest.FixtureRequest) -> Model:
    """Each model of concurrency in turn: a test that takes ``model`` runs once per model.

    Meant for ``tests/contract/``, where one behaviour suite runs over both models::

        def test_map_keeps_order(model: Model) -> None:
            with model.Pool(2) as pool:
                assert list(pool.map(abs, [-1, -2])) == [1, 2]
    """
    model: Model = request.param
    return model

"""The cluster tests: ClusterPool on loopback dask clusters (skipped without ``distributed``)."""

from __future__ import annotations

import importlib.util

import pytest


@pytest.fixture(scope="session", autouse=True)
def _dask_globals_before_the_leak_check(request: pytest.FixtureRequest) -> None:
    """Start distributed's process-wide thread before the first snapshot (see ``dask_globals``)."""
    if importlib.util.find_spec("distributed") is not None:
        request.getfixturevalue("dask_globals")

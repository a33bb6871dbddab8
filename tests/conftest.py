"""Shared test configuration: the leak check for every test, and the ``model`` fixtures."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import concurrency_kit
from concurrency_kit import ClusterPool, Model, PoolModel

pytest_plugins = ["ck_leakcheck"]

SHARED_CLUSTER_WORKERS = 2

# Runs in a child process: a LocalCluster on loopback with the settings and options ClusterPool
# gives the clusters it starts; prints the scheduler's address, lives until its stdin closes.
_SHARED_CLUSTER_SCRIPT = """
import sys

import dask
import distributed

from concurrency_kit.pools.cluster import LOCAL_CLUSTER_CONFIG, LOCAL_CLUSTER_OPTIONS


def main():
    with dask.config.set(LOCAL_CLUSTER_CONFIG):
        cluster = distributed.LocalCluster(n_workers=int(sys.argv[1]), **LOCAL_CLUSTER_OPTIONS)
    print(cluster.scheduler_address, flush=True)
    sys.stdin.read()
    cluster.close()


if __name__ == "__main__":
    main()
"""


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


@pytest.fixture(
    params=[concurrency_kit.PROCESS, concurrency_kit.THREAD, concurrency_kit.CLUSTER],
    ids=["process", "thread", "cluster"],
)
def pool_model(request: pytest.FixtureRequest) -> PoolModel:
    """Each model that has a pool in turn: ``PROCESS``, ``THREAD`` and ``CLUSTER``.

    For ``CLUSTER``, ``pool_model.Pool(n)`` is a :class:`ClusterPool` on the session's shared
    loopback cluster (:func:`shared_cluster`) that runs at most ``n`` tasks at once; it is
    skipped when dask's ``distributed`` is not installed.
    """
    chosen: PoolModel = request.param
    if chosen is not concurrency_kit.CLUSTER:
        return chosen
    address: str = request.getfixturevalue("shared_cluster")

    class SharedClusterPool(ClusterPool):
        def __init__(self, max_workers: Any = None, **kwargs: Any) -> None:
            kwargs.setdefault("cluster", address)
            super().__init__(max_workers, **kwargs)

    return PoolModel(name=chosen.name, Pool=SharedClusterPool)


def _uses_shared_cluster(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return callspec is not None and callspec.params.get("pool_model") is concurrency_kit.CLUSTER


@pytest.fixture(scope="session", autouse=True)
def _shared_cluster_before_the_leak_check(request: pytest.FixtureRequest) -> None:
    """Start the shared cluster before the first test's leak-check snapshot, if a test uses it.

    A session fixture first requested from inside a test (``pool_model`` asks for
    :func:`shared_cluster` only for its ``CLUSTER`` parameter) would be set up after that
    test's baseline was taken, and its processes charged to the test as leaks. An autouse
    session fixture is set up before every function-scoped one, the leak check included.
    """
    if importlib.util.find_spec("distributed") is None:
        return  # the CLUSTER tests skip themselves
    if any(_uses_shared_cluster(item) for item in request.session.items):
        request.getfixturevalue("shared_cluster")


@pytest.fixture(scope="session")
def dask_globals() -> None:
    """Start the thread ``distributed`` keeps for the whole process once it is first used.

    ``distributed.utils`` offloads (de)serialization to one process-wide thread,
    ``Dask-Offload_0``, started on first use and never stopped. It is not a leak: starting it
    before the first cluster test puts it in every baseline of the leak check, which still
    catches every other thread, process and descriptor a pool leaves behind.
    """
    pytest.importorskip("distributed")
    from distributed.utils import _offload_executor  # private, but the thread is what we need

    _offload_executor.submit(int).result()


@pytest.fixture(scope="session")
def shared_cluster(dask_globals: None) -> Iterator[str]:
    """A loopback ``LocalCluster`` of two single-threaded workers for the whole session.

    It runs in a child process, so the scheduler's threads and connections are not in the
    test process (where the leak check would see them); its workers are started once, before
    the first test that uses it, so they are in that test's baseline. The child gets this
    process's ``sys.path``, so the workers can import the test modules whose functions the
    tests submit. Yields the scheduler's address.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SHARED_CLUSTER_SCRIPT, str(SHARED_CLUSTER_WORKERS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        address = proc.stdout.readline().strip()
        if not address:
            pytest.fail("the shared LocalCluster did not start (see the captured stderr)")
        yield address
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()

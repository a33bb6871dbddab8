"""Shared test configuration: the leak check for every test, the ``model`` fixtures, and
fork tests run with no thread of the harness's own beside them."""

from __future__ import annotations

import faulthandler
import importlib.util
import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

import concurrency_kit
from concurrency_kit import ClusterPool, Model, PoolModel

pytest_plugins = ["ck_leakcheck"]

SHARED_CLUSTER_WORKERS = 2

FORK_WARNING = r"This process \(pid=\d+\) is multi-threaded, use of fork\(\) may lead to deadlocks"
"""The start of the ``DeprecationWarning`` ``os.fork()`` gives from a multi-threaded process
(CPython 3.12+; 3.15 raises it from ``os.fork()`` under ``filterwarnings = error``, after the
child exists)."""

_THREAD_EXIT_DEADLINE = 5.0
"""Seconds to wait for pytest's faulthandler watchdog thread to exit once cancelled."""

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


# -- fork tests ------------------------------------------------------------------------------
#
# os.fork() copies only the calling thread; a lock another thread held at that moment stays
# held forever in the child. CPython 3.12+ says so with a DeprecationWarning whenever it
# forks a process that has other threads (it counts the OS threads, /proc/self/task), and
# pytest runs with filterwarnings = error. The suite's harness has such a thread of its own:
# pytest's faulthandler_timeout arms faulthandler.dump_traceback_later() for every test,
# which runs a C watchdog thread. So every fork made in a test would warn, although the test
# started no thread: a false alarm that would hide the real ones.
#
# A test that forks the test process (the "fork" start method, or os.fork()) carries the
# ``fork`` marker (added below to every test parametrized with "fork", or written by hand).
# For such a test the watchdog is cancelled (pytest-timeout, in its "signal" method, still
# stops and dumps a hung test: no thread), so the test forks a single-threaded process,
# and the warning stays an error: a fork from a thread the test (or the library) started is
# the real deadlock risk, and fails the test. A test that forks on purpose while threads run
# expects the warning itself (``pytest.warns``). One case is not the test's doing: threads
# the *session* started before the test (dask's offload thread, when the cluster extra is
# installed): then, for that test only, the warning is shown rather than raised, and the
# test is listed at the end of the run.


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``fork`` every test parametrized with the ``"fork"`` start method."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and any(
            isinstance(value, str) and value == "fork" for value in callspec.params.values()
        ):
            item.add_marker(pytest.mark.fork)


def _os_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:  # pragma: no cover - not Linux
        return threading.active_count()


_FORKED_BESIDE_SESSION_THREADS: list[tuple[str, list[str]]] = []


@pytest.fixture(autouse=True)
def _fork_from_one_thread(request: pytest.FixtureRequest) -> None:
    """For a ``fork`` test: no harness thread at the fork (see the comment above)."""
    if request.node.get_closest_marker("fork") is None:
        return
    faulthandler.cancel_dump_traceback_later()  # pytest re-arms it for the next test
    # The watchdog exits asynchronously once cancelled: wait until every OS thread is a
    # Python one (a bound on the exit, not a sleep that makes the test pass).
    deadline = time.monotonic() + _THREAD_EXIT_DEADLINE
    while _os_threads() > threading.active_count() and time.monotonic() < deadline:
        time.sleep(0.001)
    others = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    native = _os_threads() - threading.active_count()
    if native > 0:
        others.append(f"{native} thread(s) not started by Python")
    if others and sys.version_info >= (3, 12):  # older Pythons do not warn
        warnings.filterwarnings("always", message=FORK_WARNING, category=DeprecationWarning)
        _FORKED_BESIDE_SESSION_THREADS.append((request.node.nodeid, others))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """List the fork tests that ran beside threads the session had started."""
    if not _FORKED_BESIDE_SESSION_THREADS:
        return
    terminalreporter.section("fork tests run beside the session's threads")
    terminalreporter.line(
        "(forked while other threads ran, as the warnings above say: the fork warning was "
        "shown, not raised)"
    )
    for nodeid, threads in _FORKED_BESIDE_SESSION_THREADS:
        terminalreporter.line(f"{nodeid}: {', '.join(threads)}")


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> str:
    """The event loop of an async test (``tests/_event_loops.py``); trio where installed."""
    if request.param == "trio":
        pytest.importorskip("trio")
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def closing() -> Iterator[Any]:
    """``closing(primitive)`` registers a primitive (or anything with ``close()``) to be closed
    at teardown, in reverse order, and returns it."""
    made: list[Any] = []

    def register(primitive: Any, /) -> Any:
        made.append(primitive)
        return primitive

    yield register
    for primitive in reversed(made):
        primitive.close()

"""ClusterPool beyond the pool contract: the clusters it starts, worker death, timeouts on
clusters it owns and on clusters it is given, initializers, and the ways to name a cluster.

The contract suite (tests/contract/test_pools.py) runs over the session's shared loopback
cluster. Here, a test that kills or restarts a worker starts a cluster of its own
(``ClusterPool(n)``), so the shared one is never changed; tests that only read use the shared
one. Tests wait on FIFO gates and futures, never on sleeps.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cluster_tasks import add, fail_to_start, getpid, pid_then_wait

import concurrency_kit as ck
from contract._gates import Gate, pass_two, wait_at

distributed = pytest.importorskip("distributed")


@pytest.fixture
def given(shared_cluster: str) -> Iterator[ck.ClusterPool]:
    """A pool of one task at a time on the shared cluster (which it does not own)."""
    with ck.ClusterPool(1, cluster=shared_cluster) as pool:
        yield pool


# -- a cluster the pool starts ------------------------------------------------------------------


def test_owned_cluster_runs_tasks_and_goes_with_the_pool() -> None:
    with ck.ClusterPool(2) as pool:
        assert pool.max_workers == 2
        assert pool.submit(add, 1, b=2).result(timeout=60) == 3
        assert sum(pool.map(add, range(1000))) == sum(range(1000))
        workers = pool.client.nthreads()
        assert sorted(workers.values()) == [1, 1]
        assert all(address.startswith("tcp://127.0.0.1:") for address in workers)
        stats = pool.statistics()
    assert stats.model == "cluster"
    assert stats.workers_alive == 2
    assert pool.client.status == "closed"
    assert pool.statistics().workers_alive == 0
    # The leak check (autouse) fails this test if a worker process or thread is left.


def test_worker_killed_mid_task(tmp_path: Path) -> None:
    pid_path = tmp_path / "pid"
    started, never = Gate(tmp_path, "started"), Gate(tmp_path, "never")
    other_started, other_finish = Gate(tmp_path, "other-started"), Gate(tmp_path, "other-finish")
    with ck.ClusterPool(2) as pool:
        victim = pool.submit(pid_then_wait, str(pid_path), started.path, never.path)
        bystander = pool.submit(pid_then_wait, os.devnull, other_started.path, other_finish.path, 7)
        started.release()  # the victim has written its pid and runs on one worker...
        other_started.release()  # ...the bystander on the other
        pid = int(pid_path.read_text())
        os.kill(pid, signal.SIGKILL)
        error = victim.exception(timeout=60)
        assert isinstance(error, ck.WorkerCrashedError)
        assert error.pid == pid
        assert error.exitcode is None
        assert f"(pid {pid}) died" in str(error)
        other_finish.release()
        assert bystander.result(timeout=60) == 7  # the other worker's task was not affected
        assert pool.submit(add, 2, 3).result(timeout=60) == 5  # the pool carries on
        stats = pool.statistics()
    assert stats.tasks_crashed == 1
    assert stats.tasks_completed == 2
    assert stats.tasks_failed == 0


def test_timeout_restarts_the_worker_of_an_owned_cluster(tmp_path: Path) -> None:
    gate = Gate(tmp_path)
    with ck.ClusterPool(1) as pool:
        before = pool.submit(getpid).result(timeout=60)
        late = pool.schedule(wait_at, (gate.path,), timeout=0.2)
        error = late.exception(timeout=60)
        assert isinstance(error, ck.TaskTimeoutError)
        assert isinstance(error, TimeoutError)
        assert "worker was restarted" in str(error)
        after = pool.submit(getpid).result(timeout=60)  # on the restarted worker
    assert after != before
    stats = pool.statistics()
    assert stats.tasks_timed_out == 1
    assert stats.workers_replaced == 1
    assert stats.tasks_crashed == 0  # released before its worker went: not a crash


def test_timeout_counts_from_the_start_not_from_submission(tmp_path: Path) -> None:
    gate = Gate(tmp_path)
    with ck.ClusterPool(1) as pool:
        blocker = pool.submit(wait_at, gate.path, "blocker")
        timed = pool.schedule(add, (1, 2), timeout=0.2)
        # Queued behind the blocker for longer than its timeout: still not failed.
        done, _ = concurrent.futures.wait([timed], timeout=0.5)
        assert not done
        gate.release()
        assert blocker.result(timeout=60) == "blocker"
        assert timed.result(timeout=60) == 3
        assert pool.statistics().tasks_timed_out == 0


# -- a cluster the pool is given -------------------------------------------------------------------


def test_timeout_on_a_given_cluster_leaves_the_task_to_finish(
    given: ck.ClusterPool, tmp_path: Path
) -> None:
    gate = Gate(tmp_path)
    late = given.schedule(wait_at, (gate.path,), timeout=0.2)
    error = late.exception(timeout=60)
    assert isinstance(error, ck.TaskTimeoutError)
    assert "may still finish it" in str(error)
    gate.release()  # returns only once a reader is at the gate: the task was still running
    assert given.submit(add, 1).result(timeout=60) == 1
    stats = given.statistics()
    assert stats.tasks_timed_out == 1
    assert stats.workers_replaced == 0


def test_cancel_a_running_task_on_a_given_cluster(given: ck.ClusterPool, tmp_path: Path) -> None:
    started, finish = Gate(tmp_path, "started"), Gate(tmp_path, "finish")
    running = given.submit(pass_two, started.path, finish.path, "late")
    started.release()  # it is running
    assert running.cancel()
    assert running.cancelled()
    finish.release()  # its worker cannot stop it: it runs to the end, its result is dropped
    assert given.submit(add, 4).result(timeout=60) == 4
    assert given.statistics().tasks_cancelled == 1


def test_initializer_runs_on_every_worker_of_a_given_cluster(shared_cluster: str) -> None:
    with ck.ClusterPool(cluster=shared_cluster, initializer=add, initargs=(1, 2)) as pool:
        assert pool.max_workers == 2  # the shared cluster's threads
        assert pool.submit(add, 1).result(timeout=60) == 1


def test_an_initializer_that_raises_breaks_the_pool(shared_cluster: str) -> None:
    with ck.ClusterPool(1, cluster=shared_cluster, initializer=fail_to_start) as pool:
        with pytest.raises(ck.BrokenPoolError, match="initializer raised RuntimeError") as info:
            pool.submit(add, 1)
        assert isinstance(info.value.__cause__, RuntimeError)
        with pytest.raises(ck.BrokenPoolError):
            pool.map(add, [1])


def test_unpicklable_argument_fails_at_submit(given: ck.ClusterPool) -> None:
    import threading

    with pytest.raises(ck.SerializationError, match="argument 0"):
        given.submit(add, threading.Lock())
    assert given.submit(add, 1).result(timeout=60) == 1  # not broken


# -- naming the cluster ------------------------------------------------------------------------


def test_address_positionally_or_as_keyword(shared_cluster: str) -> None:
    with ck.ClusterPool(shared_cluster) as by_position:
        assert by_position.max_workers == 2
        assert by_position.submit(add, 1).result(timeout=60) == 1
    assert by_position.client.status == "closed"  # it opened that client: it closed it
    with ck.ClusterPool(3, cluster=shared_cluster) as by_keyword:
        assert by_keyword.max_workers == 3
    with pytest.raises(TypeError, match="give the cluster once"):
        ck.ClusterPool(shared_cluster, cluster=shared_cluster)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="cluster must be"):
        ck.ClusterPool(cluster=42)  # type: ignore[call-overload]


def test_a_given_client_is_left_open(shared_cluster: str) -> None:
    with distributed.Client(shared_cluster, set_as_default=False) as client:
        with ck.ClusterPool(client) as pool:
            assert pool.client is client
            assert pool.submit(add, 2).result(timeout=60) == 2
        assert client.status == "running"
        assert client.submit(add, 5).result(timeout=60) == 5


# -- a thread of the pool fails ------------------------------------------------------------------


def test_collector_failure_breaks_the_pool_loudly(
    shared_cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from concurrency_kit.pools import cluster as cluster_module

    injected = RuntimeError("injected collector failure")
    armed = threading.Event()

    def fail(self: object, batch: object) -> None:  # the collector calls it for each batch
        armed.wait(60)
        raise injected

    monkeypatch.setattr(cluster_module._Core, "_outcomes", fail)
    pool = ck.ClusterPool(1, cluster=shared_cluster)
    try:
        sent = pool.submit(add, 1, b=2)
        queued = pool.submit(add, 3)  # waits in the pool: one task at a time
        armed.set()
        for future in (sent, queued):
            with pytest.raises(ck.BrokenPoolError) as info:
                future.result(timeout=60)
            assert info.value.__cause__ is injected
        with pytest.raises(ck.BrokenPoolError):
            pool.submit(add, 4)
    finally:
        pool.shutdown(wait=True)
    assert pool.statistics().tasks_queued == 0

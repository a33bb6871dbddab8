"""The ``cluster`` extra is optional: importing concurrency_kit never imports ``distributed``,
and a ClusterPool without it says which extra to install. Run in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import concurrency_kit as ck


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_import_does_not_import_distributed() -> None:
    proc = run_python(
        """
        import sys
        import concurrency_kit
        from concurrency_kit import CLUSTER, ClusterPool
        assert CLUSTER.Pool is ClusterPool
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
        print(loaded)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_without_the_extra_the_error_names_it() -> None:
    proc = run_python(
        """
        import sys
        sys.modules["distributed"] = None  # as if the extra were not installed
        from concurrency_kit import ClusterPool
        try:
            ClusterPool("tcp://127.0.0.1:8786")
        except ImportError as exc:
            print(exc)
        else:
            raise SystemExit("no ImportError")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'concurrency_kit[cluster]'" in proc.stdout


def test_cluster_model_offers_only_a_pool() -> None:
    assert ck.CLUSTER.Pool is ck.ClusterPool
    assert ck.CLUSTER.name == "cluster"
    assert repr(ck.CLUSTER) == "CLUSTER"
    assert isinstance(ck.CLUSTER, ck.PoolModel)
    assert not isinstance(ck.CLUSTER, ck.Model)
    assert isinstance(ck.PROCESS, ck.PoolModel)
    assert isinstance(ck.THREAD, ck.PoolModel)
    for name in ("Lock", "SharedDict", "Channel", "Supervisor", "Barrier"):
        with pytest.raises(AttributeError, match=f"CLUSTER has no {name}: .*stay on one machine"):
            getattr(ck.CLUSTER, name)
    with pytest.raises(AttributeError, match="has no attribute 'Poll'"):
        ck.CLUSTER.Poll  # noqa: B018 - a typo gets the usual message


def test_max_tasks_per_worker_is_refused_before_any_cluster() -> None:
    with pytest.raises(ValueError, match="max_tasks_per_worker"):
        ck.ClusterPool(1, max_tasks_per_worker=5)

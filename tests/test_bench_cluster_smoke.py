"""The cluster benchmark runs to the end and prints its ratios (a smoke test: no speed asserted).

``benchmarks/bench_cluster.py --smoke`` goes through every benchmark and both contenders with
the smallest sizes, on a LocalCluster it starts and stops; the timeout only catches a
deadlock. Without ``distributed`` both contenders are skipped, not failed.
"""

from __future__ import annotations

import re

import pytest

from _bench_runs import BENCHMARKS_DIR, DEADLOCK_TIMEOUT, run_without, smoke_run

BENCH = BENCHMARKS_DIR / "bench_cluster.py"
pytestmark = pytest.mark.timeout(DEADLOCK_TIMEOUT + 60)  # let the run's own timeout fire first
BENCHMARKS = ("map", "submit", "map_auto", "roundtrip")
TARGET = re.compile(
    r"^\[(map|submit)\] ClusterPool per task vs distributed\.Client: [0-9.e+-]+x "
    r"\(latency ratio ours/theirs, lower is better; target <= 1\.1x\) (MET|MISSED)$",
    re.M,
)


def test_smoke_run_prints_every_table_and_target() -> None:
    pytest.importorskip("distributed")
    lines = smoke_run(BENCH, BENCHMARKS, {"ClusterPool": r"\d+", "distributed.Client": r"\d+"})
    assert len([line for line in lines if TARGET.search(line)]) == 2, lines


def test_without_distributed_contenders_are_skipped() -> None:
    proc = run_without("distributed", BENCH, "--smoke", "--only", "submit")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"ClusterPool: skipped: distributed not installed", proc.stdout), proc.stdout
    assert "n/a" in proc.stdout.split("== targets ==", 1)[1]

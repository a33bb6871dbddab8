"""The pools' async benchmark runs to the end and prints its ratios (a smoke test: no speed
asserted).

``benchmarks/bench_pools_async.py --smoke`` goes through both benchmarks and every contender
with the smallest sizes; the timeout only catches a deadlock (an awaited result that never
wakes its task would hang, not fail). Both targets must be reported with their bounds, MET or
MISSED: which one depends on the machine. trio is an optional contender: without it, its rows
are skipped, not failed.
"""

from __future__ import annotations

import re

import pytest

from _bench_runs import BENCHMARKS_DIR, DEADLOCK_TIMEOUT, run_without, smoke_run

BENCH = BENCHMARKS_DIR / "bench_pools_async.py"
pytestmark = pytest.mark.timeout(DEADLOCK_TIMEOUT + 60)  # let the run's own timeout fire first
TARGETS = (
    r"\[async_pool_roundtrip\] ProcessPool arun vs ProcessPoolExecutor run_in_executor: "
    r"[0-9.e+-]+x \(latency ratio ours/theirs, lower is better; target <= 1\.0x\) (MET|MISSED)",
    r"\[async_pool_map\] ProcessPool amap vs ProcessPoolExecutor gather\(run_in_executor\): "
    r"[0-9.e+-]+x \(throughput ratio ours/theirs, higher is better; target >= 1\.0x\) "
    r"(MET|MISSED)",
)


def test_smoke_run_prints_every_table_and_target() -> None:
    rows = {  # latency: 20 samples in each of 2 rounds; throughput: one per round
        "ProcessPool arun": "40",
        "ProcessPool run_in_executor": "40",
        "ProcessPoolExecutor run_in_executor": "40",
        "ProcessPool amap": "2",
        "ProcessPool gather(arun)": "2",
        "ProcessPoolExecutor gather(run_in_executor)": "2",
    }
    lines = smoke_run(BENCH, ("async_pool_roundtrip", "async_pool_map"), rows)
    for pattern in TARGETS:
        assert any(re.fullmatch(pattern, line) for line in lines), (pattern, lines)


def test_without_trio_its_contenders_are_skipped() -> None:
    proc = run_without("trio", BENCH, "--smoke", "--only", "async_pool_roundtrip")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"ProcessPool arun trio: skipped", proc.stdout), proc.stdout

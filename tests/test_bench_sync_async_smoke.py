"""The sync primitives' async benchmark runs to the end and prints its tables (a smoke test: no
speed asserted).

``benchmarks/bench_sync_async.py --smoke`` goes through both benchmarks and every contender
with the smallest sizes; the timeout only catches a deadlock (an awaited event that never wakes
its task would hang, not fail). trio is an optional contender: without it, its row is skipped,
not failed.
"""

from __future__ import annotations

import re

import pytest

from _bench_runs import BENCHMARKS_DIR, DEADLOCK_TIMEOUT, run, run_without

BENCH = BENCHMARKS_DIR / "bench_sync_async.py"
pytestmark = pytest.mark.timeout(DEADLOCK_TIMEOUT + 60)  # let the run's own timeout fire first


def test_smoke_run_prints_every_table() -> None:
    proc = run(str(BENCH), "--smoke")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "ERROR" not in out, out
    for name in ("async_uncontended", "async_event_pingpong"):
        assert f"== {name}: " in out, out
    rows = {  # uncontended: one sample per round; ping-pong: 20 samples in each of 2 rounds
        "ThreadLock": "2",
        "ProcessLock": "2",
        "ThreadSemaphore": "2",
        "ProcessSemaphore": "2",
        "asyncio.Lock": "2",
        "asyncio.Semaphore": "2",
        "ProcessEvent sync": "40",
        "ProcessEvent asyncio": "40",
        "ProcessEvent trio": "40",
    }
    for row, count in rows.items():
        assert re.search(rf"^{re.escape(row)} +{count} ", out, re.M), (row, out)


def test_without_trio_its_contender_is_skipped() -> None:
    proc = run_without("trio", BENCH, "--smoke", "--only", "async_event_pingpong")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"ProcessEvent trio: skipped", proc.stdout), proc.stdout

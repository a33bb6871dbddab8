"""``benchmarks/bench_channels_async.py`` runs to the end and prints its ratios (no speed asserted).

``--smoke`` goes through every benchmark and contender with the smallest sizes; the timeout only
catches a deadlock. A second run hides aioprocessing and trio to check that their contenders
are skipped, not failed.
"""

from __future__ import annotations

import re

import pytest

from _bench_runs import BENCHMARKS_DIR, DEADLOCK_TIMEOUT, run, run_without, smoke_run

BENCH = BENCHMARKS_DIR / "bench_channels_async.py"
pytestmark = pytest.mark.timeout(DEADLOCK_TIMEOUT + 60)  # let the run's own timeout fire first
BENCHMARKS = ("async_pingpong", "async_throughput", "async_waiter_memory")


def test_smoke_run_prints_every_table_and_target() -> None:
    pytest.importorskip("aioprocessing")
    pytest.importorskip("trio")
    targets = smoke_run(
        BENCH,
        BENCHMARKS,
        {
            "ProcessChannel sync": r"\d+",
            "ProcessChannel asyncio": r"\d+",
            "ProcessChannel trio": r"\d+",
            "ProcessChannel arecv": "2",
            "to_thread(mp.Queue.get)": "2",
            "aioprocessing coro_get": "2",
            "ThreadChannel": "2",
            "asyncio.Event": "2",
        },
    )
    assert [t.split(":", 1)[0] for t in targets] == [
        "[async_pingpong] ProcessChannel asyncio vs ProcessChannel sync",
        "[async_throughput] ProcessChannel arecv vs to_thread(mp.Queue.get)",
        "[async_throughput] ProcessChannel arecv vs aioprocessing coro_get",
        "[async_waiter_memory] ProcessChannel median",
        "[async_waiter_memory] ThreadChannel median",
    ], targets
    assert all(t.endswith(("MET", "MISSED")) for t in targets), targets


@pytest.mark.parametrize(
    ("module", "only", "contender"),
    [
        ("aioprocessing", "async_throughput", "aioprocessing coro_get"),
        ("trio", "async_pingpong", "ProcessChannel trio"),
    ],
)
def test_a_missing_peer_is_skipped_not_failed(module: str, only: str, contender: str) -> None:
    proc = run_without(module, BENCH, "--smoke", "--only", only)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(rf"{re.escape(contender)}\S*: skipped: \w+ not installed", proc.stdout), (
        proc.stdout
    )


def test_list_names_every_benchmark() -> None:
    proc = run(str(BENCH), "--list")
    assert proc.returncode == 0, proc.stderr
    assert re.findall(r"(?m)^(\w+): ", proc.stdout) == list(BENCHMARKS), proc.stdout

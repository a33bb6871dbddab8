"""The shared-state benchmarks run to the end and print their ratios (a smoke test: no speed
asserted).

``benchmarks/bench_state.py --smoke`` goes through every benchmark and every contender with the
smallest sizes; the timeout only catches a deadlock (a worker that never reaches its barrier
would hang, not fail).
"""

from __future__ import annotations

import re

import pytest

from _bench_runs import BENCHMARKS_DIR, DEADLOCK_TIMEOUT, run, smoke_run

BENCH = BENCHMARKS_DIR / "bench_state.py"
pytestmark = pytest.mark.timeout(DEADLOCK_TIMEOUT + 60)  # let the run's own timeout fire first
BENCHMARKS = (
    "process_counter_add",
    "process_counter_add_2procs",
    "thread_counter_add",
    "array_bulk_write_list",
    "array_bulk_write_buffer",
)
TARGET = re.compile(
    r"^\[(process_counter_add|process_counter_add_2procs)\] ProcessSharedCounter vs "
    r"multiprocessing\.Value: [0-9.e+-]+x \(throughput ratio ours/theirs, higher is better; "
    r"target >= 1\.0x\) (MET|MISSED)$",
    re.M,
)


def test_smoke_run_prints_every_table_and_target() -> None:
    rows = (
        "multiprocessing.Value",
        "ProcessSharedCounter",
        "int + threading.Lock",
        "ThreadSharedCounter",
        "multiprocessing.Array",
        "ProcessSharedArray",
        "ThreadSharedArray",
    )
    lines = smoke_run(BENCH, BENCHMARKS, dict.fromkeys(rows, "2"))
    assert len(lines) == 2, lines
    assert [TARGET.match(line) is not None for line in lines] == [True, True], lines


def test_list_names_benchmarks_and_contenders() -> None:
    proc = run(str(BENCH), "--list")
    assert proc.returncode == 0, proc.stderr
    for name in BENCHMARKS:
        assert f"{name}: " in proc.stdout
    assert "    loop only" in proc.stdout

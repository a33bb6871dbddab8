"""The shared-state benchmarks run to the end and print their ratios (a smoke test: no speed
asserted).

``benchmarks/bench_state.py --smoke`` goes through every benchmark and every contender with the
smallest sizes; the timeout only catches a deadlock (a worker that never reaches its barrier
would hang, not fail).
"""

from __future__ import annotations

import re

import pytest

from _bench_runs import BENCHMARKS_DIR, DEADLOCK_TIMEOUT, run

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
    proc = run(str(BENCH), "--smoke")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for name in BENCHMARKS:
        assert f"== {name}: " in out, out
    assert "ERROR" not in out, out
    for row in (
        "multiprocessing.Value",
        "ProcessSharedCounter",
        "int + threading.Lock",
        "ThreadSharedCounter",
        "multiprocessing.Array",
        "ProcessSharedArray",
        "ThreadSharedArray",
    ):
        assert re.search(rf"^{re.escape(row)} +2 ", out, re.M), out
    section = out.split("== targets ==", 1)[1]
    lines = [line for line in section.splitlines() if line.startswith("[")]
    assert len(lines) == 2, section
    assert [TARGET.match(line) is not None for line in lines] == [True, True], section


def test_list_names_benchmarks_and_contenders() -> None:
    proc = run(str(BENCH), "--list")
    assert proc.returncode == 0, proc.stderr
    for name in BENCHMARKS:
        assert f"{name}: " in proc.stdout
    assert "    loop only" in proc.stdout

"""The supervisor benchmarks run to the end and print their targets (a smoke test: no speed
asserted).

``benchmarks/bench_supervision.py --smoke`` goes through every benchmark and every contender
with the smallest sizes; the timeout only catches a deadlock (a replacement child that never
starts would hang, not fail). The crash-loop rounds also check that a stopped supervisor left
no process, thread or fd behind: a leak is a contender error, so a non-zero exit here.
"""

from __future__ import annotations

import re

import pytest

from _bench_runs import BENCHMARKS_DIR, DEADLOCK_TIMEOUT, run, smoke_run

BENCH = BENCHMARKS_DIR / "bench_supervision.py"
pytestmark = pytest.mark.timeout(DEADLOCK_TIMEOUT + 60)  # let the run's own timeout fire first
BENCHMARKS = ("process_restart", "thread_restart", "process_crash_loop", "thread_crash_loop")
ROWS = (
    "ProcessSupervisor",
    "ThreadSupervisor",
    "multiprocessing restart loop",
    "threading restart loop",
)
TARGET = re.compile(
    r"^\[(process|thread)_restart\] (Process|Thread)Supervisor crash -> replacement running: "
    r"[0-9.e+-]+ (ms|us) \(median; target <= (20 ms|2000 us)\) (MET|MISSED)$"
)


def test_smoke_run_prints_every_table_and_target() -> None:
    # Two rounds each; the restart benchmarks take two samples per round.
    lines = smoke_run(BENCH, BENCHMARKS, dict.fromkeys(ROWS, "[24]"))
    assert [line.split("]")[0] for line in lines] == ["[process_restart", "[thread_restart"]
    assert all(TARGET.match(line) for line in lines), lines


def test_list_names_benchmarks_and_contenders() -> None:
    proc = run(str(BENCH), "--list")
    assert proc.returncode == 0, proc.stderr
    for name in BENCHMARKS:
        assert f"{name}: " in proc.stdout
    for row in ROWS:
        assert f"    {row}" in proc.stdout

"""The shared-dict benchmarks run to the end and print their ratios (no speed asserted).

``benchmarks/bench_shared_dict.py --smoke`` goes through every benchmark and every contender
with the smallest sizes; the timeout only catches a deadlock (a peer process that never stops).
A second run hides shared-memory-dict, an optional peer, to check that its contender is
skipped, not failed.
"""

from __future__ import annotations

import re

import pytest

from _bench_runs import BENCHMARKS_DIR, DEADLOCK_TIMEOUT, run, run_without, smoke_run

BENCH = BENCHMARKS_DIR / "bench_shared_dict.py"
pytestmark = pytest.mark.timeout(DEADLOCK_TIMEOUT + 60)  # let the run's own timeout fire first
BENCHMARKS = (
    "get",
    "set",
    "get_1proc",
    "set_1proc",
    "get_while_set",
    "get_1000",
    "thread_get",
    "thread_set",
)
TARGET = re.compile(
    r"^\[(get|set)\] ProcessSharedDict vs (Manager\(\)\.dict\(\)|shared-memory-dict): "
    r"(?:[0-9.e+-]+x \(throughput ratio ours/theirs, higher is better; target >= "
    r"(?:20\.0|10\.0|1\.0)x\) (?:MET|MISSED)|n/a \(shared-memory-dict: skipped.*\))$"
)
THREAD_TARGET = re.compile(
    r"^\[thread_(get|set)\] ThreadSharedDict vs dict \+ threading\.Lock: [0-9.e+-]+x "
    r"\(throughput ratio ours/theirs, higher is better; target >= 0\.666667x\) (?:MET|MISSED)$"
)


def test_smoke_run_prints_every_table_and_target() -> None:
    lines = smoke_run(BENCH, BENCHMARKS, {"ProcessSharedDict": "2", "Manager().dict()": "2"})
    section = "\n".join(lines)
    assert len(lines) == 6, section
    assert all(TARGET.match(line) for line in lines[:4]), section
    assert [TARGET.match(line).group(1, 2) for line in lines[:4]] == [  # type: ignore[union-attr]
        ("get", "Manager().dict()"),
        ("get", "shared-memory-dict"),
        ("set", "Manager().dict()"),
        ("set", "shared-memory-dict"),
    ]
    assert [THREAD_TARGET.match(line).group(1) for line in lines[4:]] == ["get", "set"], section  # type: ignore[union-attr]


def test_missing_shared_memory_dict_is_skipped_not_failed() -> None:
    proc = run_without("shared_memory_dict", BENCH, "--smoke", "--only", "get")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "shared-memory-dict: skipped: shared_memory_dict not installed" in proc.stdout
    assert "ERROR" not in proc.stdout, proc.stdout


def test_list_names_benchmarks_and_contenders() -> None:
    proc = run(str(BENCH), "--list")
    assert proc.returncode == 0, proc.stderr
    for name in BENCHMARKS:
        assert f"{name}: " in proc.stdout
    assert "    ProcessSharedDict" in proc.stdout
    assert "    ThreadSharedDict" in proc.stdout

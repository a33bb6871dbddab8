"""The lock benchmarks run to the end and print their ratios (a smoke test: no speed asserted).

``benchmarks/bench_sync.py --smoke`` goes through every benchmark and every contender with the
smallest sizes; the timeout only catches a deadlock (a ping-pong that stops alternating would
hang, not fail). A contender whose class does not exist yet is skipped, never failed.
"""

from __future__ import annotations

import re

import pytest

from _bench_runs import BENCHMARKS_DIR, DEADLOCK_TIMEOUT, run, smoke_run

BENCH = BENCHMARKS_DIR / "bench_sync.py"
pytestmark = pytest.mark.timeout(DEADLOCK_TIMEOUT + 60)  # let the run's own timeout fire first
BENCHMARKS = (
    "thread_uncontended",
    "thread_uncontended_rlock",
    "thread_with",
    "process_uncontended",
    "process_uncontended_rlock",
    "thread_pingpong",
    "process_pingpong",
)
THREAD_RATIO = re.compile(
    r"^\[thread_uncontended\] ThreadLock vs threading\.Lock: [0-9.e+-]+x "
    r"\(latency ratio ours/theirs, lower is better; target <= 3\.0x\) (MET|MISSED)$",
    re.M,
)


def test_smoke_run_prints_every_table_and_target() -> None:
    rows = ("threading.Lock", "ThreadLock", "ThreadRLock", "multiprocessing.Lock")
    lines = smoke_run(BENCH, BENCHMARKS, dict.fromkeys(rows, "2"))
    section = "\n".join(lines)
    assert THREAD_RATIO.search(section), section
    assert len(lines) == 2, section
    process_line = lines[1]
    assert process_line.startswith("[process_uncontended] ProcessLock vs multiprocessing.Lock: ")
    # n/a while concurrency_kit.sync.process does not exist: skipped, not failed.
    assert process_line.endswith(("MET", "MISSED")) or ": n/a (ProcessLock: skipped" in (
        process_line
    ), section


def test_list_names_benchmarks_and_contenders() -> None:
    proc = run(str(BENCH), "--list")
    assert proc.returncode == 0, proc.stderr
    for name in BENCHMARKS:
        assert f"{name}: " in proc.stdout
    assert "    loop only" in proc.stdout

"""The lock benchmarks run to the end and print their ratios (a smoke test: no speed asserted).

``benchmarks/bench_sync.py --smoke`` goes through every benchmark and every contender with the
smallest sizes; the timeout only catches a deadlock (a ping-pong that stops alternating, or a
contention round whose worker never reports, would hang, not fail). Each target of issue 16
must be reported with its bound, MET or MISSED: which one depends on the machine.
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
    "process_contended",
    "thread_contended",
    "process_contended_work",
    "thread_contended_work",
    "process_contended_4",
    "thread_contended_4",
    "thread_semaphore",
    "process_semaphore",
    "thread_event_pingpong",
    "process_event_pingpong",
    "thread_condition_pingpong",
    "process_condition_pingpong",
    "thread_rwlock",
    "process_rwlock",
)
LATENCY = "latency ratio ours/theirs, lower is better"
THROUGHPUT = "throughput ratio ours/theirs, higher is better"
# (benchmark, ours, theirs, how the ratio reads, the target's bound), in the order printed.
# The 4-worker contention cells have no target.
TARGETS = (
    ("thread_uncontended", "ThreadLock", "threading.Lock", LATENCY, "<= 1.25"),
    ("process_uncontended", "ProcessLock", "multiprocessing.Lock", THROUGHPUT, ">= 1.0"),
    ("process_contended", "ProcessLock", "multiprocessing.Lock", THROUGHPUT, ">= 1.0"),
    ("thread_contended", "ProcessLock", "threading.Lock", THROUGHPUT, ">= 0.5"),
    ("process_contended_work", "ProcessLock", "multiprocessing.Lock", THROUGHPUT, ">= 1.0"),
    ("thread_contended_work", "ProcessLock", "threading.Lock", THROUGHPUT, ">= 0.5"),
)


def target_pattern(benchmark: str, ours: str, theirs: str, meaning: str, bound: str) -> str:
    """A measured target line: the ratio (machine-dependent), then the exact bound."""
    return (
        rf"\[{re.escape(benchmark)}\] {re.escape(ours)} vs {re.escape(theirs)}: "
        rf"[0-9.e+-]+x \({re.escape(meaning)}; target {re.escape(bound)}x\) (?:MET|MISSED)"
    )


def test_smoke_run_prints_every_table_and_target() -> None:
    rows = ("threading.Lock", "ThreadLock", "ThreadRLock", "multiprocessing.Lock", "ProcessLock")
    lines = smoke_run(BENCH, BENCHMARKS, dict.fromkeys(rows, "2"))
    section = "\n".join(lines)
    assert len(lines) == len(TARGETS), section
    for line, expected in zip(lines, TARGETS, strict=True):
        assert re.fullmatch(target_pattern(*expected), line), (expected, section)


def test_list_names_benchmarks_and_contenders() -> None:
    proc = run(str(BENCH), "--list")
    assert proc.returncode == 0, proc.stderr
    for name in BENCHMARKS:
        assert f"{name}: " in proc.stdout
    assert "    loop only" in proc.stdout

"""The interpreter-pool benchmarks run to the end and print their ratios (a smoke test: no
speed asserted).

``benchmarks/bench_interpreters.py --smoke`` goes through every benchmark of the sweep (1 and 2
workers, a 64 KiB payload, 50 ms and 5 ms CPU tasks, ``map``) and every contender with the
smallest sizes; the timeout only catches a deadlock (a worker interpreter that never answers
would hang, not fail). Each target of issue 20 must be reported, in order, with its bound, MET
or MISSED: which one depends on the machine. The benchmarks need ``concurrent.interpreters``
(Python 3.14+); before that the script only says so, which is checked too.
"""

from __future__ import annotations

import re
import sys

import pytest

from _bench_runs import BENCHMARKS_DIR, DEADLOCK_TIMEOUT, run, smoke_run

BENCH = BENCHMARKS_DIR / "bench_interpreters.py"
pytestmark = pytest.mark.timeout(DEADLOCK_TIMEOUT + 60)  # let the run's own timeout fire first
needs_314 = pytest.mark.skipif(
    sys.version_info < (3, 14),
    reason="the interpreter benchmarks need subinterpreters (concurrent.interpreters, 3.14+)",
)

OURS = "InterpreterPool"
STDLIB = "InterpreterPoolExecutor"
PROCESSES = "ProcessPool"
SERIAL = "serial (this thread)"
BENCHMARKS = (
    "interp_roundtrip_w1",
    "interp_roundtrip_w2",
    "interp_roundtrip_64kib_w2",
    "interp_cpu_50ms_w2",
    "interp_cpu_5ms_w2",
    "interp_map_w2",
)
THROUGHPUT = "throughput ratio ours/theirs, higher is better"
LATENCY = "latency ratio ours/theirs, lower is better"
# (benchmark, theirs, how the ratio reads, the bound), in the order printed; ours is always
# InterpreterPool. The 64 KiB round trip and the 5 ms tasks are for reference (no target).
TARGETS = (
    *(
        (f"interp_roundtrip_w{workers}", theirs, LATENCY, bound)
        for workers in (1, 2)
        for theirs, bound in ((PROCESSES, "0.5"), (STDLIB, "1.0"))
    ),
    ("interp_cpu_50ms_w2", PROCESSES, THROUGHPUT, "1.0"),
    ("interp_cpu_50ms_w2", STDLIB, THROUGHPUT, "1.0"),
    ("interp_map_w2", PROCESSES, THROUGHPUT, "1.0"),
)
# Every contender row and its sample count in a smoke run: two rounds of one sample, but a
# round-trip round takes 10 (the rows marked 2|20 are in a round-trip table and in others).
ROWS = {
    OURS: "(?:2|20)",
    STDLIB: "(?:2|20)",
    PROCESSES: "(?:2|20)",
    "ThreadPool": "20",
    SERIAL: "2",
}


def target_pattern(benchmark: str, theirs: str, meaning: str, bound: str) -> str:
    """A target line: the ratio (machine-dependent), then the exact bound."""
    op = ">=" if meaning == THROUGHPUT else "<="
    return (
        rf"\[{re.escape(benchmark)}\] {OURS} vs {re.escape(theirs)}: "
        rf"[0-9.e+-]+x \({re.escape(meaning)}; target {op} {re.escape(bound)}x\) (?:MET|MISSED)"
    )


@needs_314
def test_smoke_run_prints_every_table_and_target() -> None:
    lines = smoke_run(BENCH, BENCHMARKS, ROWS)
    section = "\n".join(lines)
    patterns = [target_pattern(*target) for target in TARGETS]
    assert len(lines) == len(patterns), section
    for line, pattern in zip(lines, patterns, strict=True):
        assert re.fullmatch(pattern, line), (pattern, section)


@needs_314
def test_list_names_the_sweep_and_its_contenders() -> None:
    proc = run(str(BENCH), "--list")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line]
    names = [line.split(": ", 1)[0] for line in lines if not line.startswith(" ")]
    assert names == list(BENCHMARKS), proc.stdout
    contenders = {line.strip() for line in lines if line.startswith("    ")}
    assert contenders == set(ROWS), proc.stdout


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="what the script says before 3.14")
def test_before_python_3_14_the_script_says_why_it_measures_nothing() -> None:
    proc = run(str(BENCH), "--smoke")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "needs Python 3.14 or newer" in proc.stdout, proc.stdout
    assert "nothing to measure" in proc.stdout, proc.stdout

"""The interpreter channel benchmark runs to the end and prints its ratios (a smoke test: no
speed asserted).

``benchmarks/bench_interpreter_channels.py --smoke`` goes through every benchmark (each payload,
capacity and number of producers) and every contender with the smallest sizes; the timeout
only catches a deadlock (a producer interpreter or process that stops would hang, not fail).
Each target of issue 20 for the channel must be reported, in order, with its bound, MET or
MISSED: which one depends on the machine. Before Python 3.14 the script says it has nothing to
measure and exits 0.
"""

from __future__ import annotations

import sys

import pytest

from _bench_runs import BENCHMARKS_DIR, DEADLOCK_TIMEOUT, run, smoke_run

BENCH = BENCHMARKS_DIR / "bench_interpreter_channels.py"
pytestmark = pytest.mark.timeout(DEADLOCK_TIMEOUT + 60)  # let the run's own timeout fire first
PAYLOADS = ("int", "bytes100", "bytes10k")
SMALL = ("int", "bytes100")
BENCHMARKS = tuple(
    f"interp_{kind}_cap{cap}_p{producers}"
    for kind in PAYLOADS
    for producers in (1, 2)
    for cap in (1, 64, 1024)
)
ROWS = {"InterpreterChannel": "2", "interpreters queue": "2", "ProcessChannel (processes)": "2"}


@pytest.mark.skipif(sys.version_info < (3, 14), reason="subinterpreters need Python 3.14+")
def test_smoke_run_reports_every_benchmark_and_target() -> None:
    lines = smoke_run(BENCH, BENCHMARKS, ROWS)
    expected = [name for name in BENCHMARKS if name.split("_")[1] in SMALL]
    assert len(lines) == len(expected), lines
    for line, name in zip(lines, expected, strict=True):
        assert line.startswith(f"[{name}] InterpreterChannel vs interpreters queue: "), line
        assert "target >= 1.0x" in line, line
        assert line.endswith((" MET", " MISSED")), line


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="the message of Pythons before 3.14")
def test_before_3_14_it_says_there_is_nothing_to_measure() -> None:
    proc = run(str(BENCH), "--smoke")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "needs Python 3.14 or newer" in proc.stdout

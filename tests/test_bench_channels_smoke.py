"""The channel benchmarks run to the end and print their ratios (a smoke test: no speed asserted).

``benchmarks/bench_channels.py --smoke`` goes through every benchmark and every contender with
the smallest sizes; the timeout only catches a deadlock (a producer or an echo peer that stops
would hang, not fail). A second run hides faster-fifo, an optional peer, to check that its
contenders are skipped, not failed.
"""

from __future__ import annotations

import re

import pytest

from _bench_runs import BENCHMARKS_DIR, DEADLOCK_TIMEOUT, run, run_without, smoke_run

BENCH = BENCHMARKS_DIR / "bench_channels.py"
pytestmark = pytest.mark.timeout(DEADLOCK_TIMEOUT + 60)  # let the run's own timeout fire first
BENCHMARKS = (
    "process_int",
    "process_bytes100",
    "process_batch_int",
    "process_batch_bytes100",
    "process_4mib",
    "process_pingpong",
    "process_wait_cpu",
    "thread_int",
    "thread_pingpong",
)
# Two rounds each; a ping-pong round takes 20 samples.
ROWS = {
    "ProcessChannel": "(2|40)",
    "ProcessChannel send_many": "2",
    "multiprocessing.Queue": "(2|40)",
    "multiprocessing.Queue list": "2",
    "memcpy (in-process)": "2",
    "os.pipe ping-pong (floor)": "40",
    "os.pipe (floor)": "2",
    "ThreadChannel": "(2|40)",
    "queue.Queue": "(2|40)",
    "queue.SimpleQueue": "(2|40)",
}
TARGET = re.compile(
    r"^\[(?P<bench>\w+)\] (?P<ours>ProcessChannel|ProcessChannel send_many|ThreadChannel) vs "
    r"(?P<theirs>multiprocessing\.Queue|faster_fifo\.Queue|os\.pipe ping-pong \(floor\)|"
    r"queue\.Queue): (?:[0-9.e+-]+x \((?:throughput|latency) ratio ours/theirs, "
    r"(?:higher|lower) is better; target (?:>=|<=) [0-9.]+x\) (?:MET|MISSED)|"
    r"n/a \(faster_fifo\.Queue: skipped: faster_fifo not installed\))$"
)
TARGETS = [
    ("process_int", "multiprocessing.Queue"),
    ("process_int", "faster_fifo.Queue"),
    ("process_bytes100", "multiprocessing.Queue"),
    ("process_bytes100", "faster_fifo.Queue"),
    ("process_batch_int", "multiprocessing.Queue"),
    ("process_batch_bytes100", "multiprocessing.Queue"),
    ("process_4mib", "multiprocessing.Queue"),
    ("process_4mib", "faster_fifo.Queue"),
    ("process_pingpong", "os.pipe ping-pong (floor)"),
    ("thread_int", "queue.Queue"),
    ("thread_pingpong", "queue.Queue"),
]


def test_smoke_run_prints_every_table_and_target() -> None:
    lines = smoke_run(BENCH, BENCHMARKS, {row: str(n) for row, n in ROWS.items()})
    matches = [TARGET.match(line) for line in lines]
    assert all(matches), lines
    assert [(m.group("bench"), m.group("theirs")) for m in matches] == TARGETS, lines  # type: ignore[union-attr]


def test_missing_faster_fifo_is_skipped_not_failed() -> None:
    proc = run_without("faster_fifo", BENCH, "--smoke", "--only", "process_int")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "faster_fifo.Queue: skipped: faster_fifo not installed" in proc.stdout
    assert "ERROR" not in proc.stdout, proc.stdout
    assert re.search(r"^ProcessChannel +2 ", proc.stdout, re.M), proc.stdout


def test_list_names_benchmarks_and_contenders() -> None:
    proc = run(str(BENCH), "--list")
    assert proc.returncode == 0, proc.stderr
    for name in BENCHMARKS:
        assert f"{name}: " in proc.stdout
    for row in ROWS:
        assert f"    {row}" in proc.stdout

"""The channel benchmarks run to the end and print their ratios (a smoke test: no speed asserted).

``benchmarks/bench_channels.py --smoke`` goes through every benchmark and every contender with
the smallest sizes; the timeout only catches a deadlock (a producer or an echo peer that stops
would hang, not fail). Each target of issue 17 must be reported, in order, with its bound, MET
or MISSED: which one depends on the machine; the resident-memory target reads our median in
MiB rather than a ratio. faster-fifo is an optional peer (benchmarks/requirements.txt): where it
is missing its contenders are skipped, not failed, and their targets read ``n/a``. The main run
expects whichever shape this interpreter calls for; a second run hides faster-fifo to check the
skipped shape wherever it is installed.
"""

from __future__ import annotations

import importlib.util
import re

import pytest

from _bench_runs import BENCHMARKS_DIR, DEADLOCK_TIMEOUT, run, run_without, smoke_run

BENCH = BENCHMARKS_DIR / "bench_channels.py"
pytestmark = pytest.mark.timeout(DEADLOCK_TIMEOUT + 60)  # let the run's own timeout fire first
FF_MISSING = importlib.util.find_spec("faster_fifo") is None
CAPS = ("cap1", "cap64", "cap256", "cap257", "cap1024", "cap65536", "unbounded")
MP = "multiprocessing.Queue"
FF = "faster_fifo.Queue"
THROUGHPUT = "throughput ratio ours/theirs, higher is better"
LATENCY = "latency ratio ours/theirs, lower is better"
# The process families of issue 17, one benchmark per capacity: the bound of ProcessChannel
# against multiprocessing.Queue, then against faster-fifo (both throughput ratios, >=).
FAMILIES = (
    ("process_int", CAPS, "2.0", "1.5"),
    ("process_bytes100", CAPS, "2.0", "1.5"),
    ("process_2to1", ("cap256", "unbounded"), "1.5", "1.2"),
    ("process_4to1", ("cap256", "unbounded"), "1.5", "1.2"),
    ("process_64kib", ("cap256", "unbounded"), "1.5", "1.0"),
    ("process_4mib", ("cap256", "unbounded"), "3.0", "1.2"),
)
BENCHMARKS = (
    *(f"{family}_{cap}" for family, caps, _, _ in FAMILIES for cap in caps),
    "process_batch_int",
    "process_batch_bytes100",
    "process_rendezvous",
    "process_pingpong",
    "process_wait_cpu",
    "thread_int_cap256",
    "thread_int_unbounded",
    "thread_pingpong",
    "process_resident",
)
# (benchmark, ours, theirs, how the ratio reads, the target's bound), in the order printed. The
# wait-CPU and thread ping-pong cells are for reference (no target); the resident-memory
# target, last, is RESIDENT below.
TARGETS = (
    *(
        (f"{family}_{cap}", "ProcessChannel", theirs, THROUGHPUT, bound)
        for family, caps, mp_bound, ff_bound in FAMILIES
        for cap in caps
        for theirs, bound in ((MP, mp_bound), (FF, ff_bound))
    ),
    *(
        (name, ours, "multiprocessing.Queue list", THROUGHPUT, "1.0")
        for name in ("process_batch_int", "process_batch_bytes100")
        for ours in ("ProcessChannel send_many", "ProcessChannel(None) send_many")
    ),
    ("process_rendezvous", "ProcessChannel", MP, THROUGHPUT, "1.0"),
    ("process_pingpong", "ProcessChannel", "os.pipe ping-pong (floor)", LATENCY, "1.0"),
    ("thread_int_cap256", "ThreadChannel", "queue.Queue", THROUGHPUT, "2.0"),
    ("thread_int_unbounded", "ThreadChannel", "queue.Queue", THROUGHPUT, "2.0"),
)
RESIDENT = (
    r"\[process_resident\] ProcessChannel store resident 1 s after emptying: "
    r"[0-9.e+-]+ MiB \(median; target <= 1 MiB\) (?:MET|MISSED)"
)
# Every contender row and its sample count in a smoke run: two rounds of one sample, but a
# ping-pong round takes 20 (the rows marked 2|40 are in a ping-pong table and in others).
ROWS = {
    "ProcessChannel": "(?:2|40)",
    MP: "(?:2|40)",
    FF: "(?:2|40)",
    "memcpy (in-process)": "2",
    "bytes(memoryview) (in-process)": "2",
    "ProcessChannel send_many": "2",
    "ProcessChannel(None) send_many": "2",
    "multiprocessing.Queue list": "2",
    "faster_fifo put_many": "2",
    "os.pipe ping-pong (floor)": "40",
    "os.pipe (floor)": "2",
    "ThreadChannel": "(?:2|40)",
    "queue.Queue": "(?:2|40)",
    "queue.SimpleQueue": "(?:2|40)",
    "holding the burst": "2",
    "as it empties": "2",
    "idle 1 s": "2",
}
FF_ROWS = (FF, "faster_fifo put_many")


def measured(benchmark: str, ours: str, theirs: str, meaning: str, bound: str) -> str:
    """A measured target line: the ratio (machine-dependent), then the exact bound."""
    op = ">=" if meaning == THROUGHPUT else "<="
    return (
        rf"\[{re.escape(benchmark)}\] {re.escape(ours)} vs {re.escape(theirs)}: "
        rf"[0-9.e+-]+x \({re.escape(meaning)}; target {op} {re.escape(bound)}x\) (?:MET|MISSED)"
    )


def skipped(benchmark: str, ours: str, theirs: str) -> str:
    """The target line against a faster-fifo contender skipped because it is not installed."""
    return re.escape(
        f"[{benchmark}] {ours} vs {theirs}: n/a ({theirs}: skipped: faster_fifo not installed)"
    )


def expected(benchmark: str, ours: str, theirs: str, meaning: str, bound: str) -> str:
    """The pattern of one ratio target line as this interpreter's packages call for."""
    if theirs == FF and FF_MISSING:
        return skipped(benchmark, ours, theirs)
    return measured(benchmark, ours, theirs, meaning, bound)


def target_lines(out: str) -> list[str]:
    """The lines of a run's ``== targets ==`` section that report a target."""
    return [line for line in out.split("== targets ==", 1)[1].splitlines() if line.startswith("[")]


def test_smoke_run_prints_every_table_and_target() -> None:
    rows = {row: n for row, n in ROWS.items() if not (FF_MISSING and row in FF_ROWS)}
    lines = smoke_run(BENCH, BENCHMARKS, rows)
    section = "\n".join(lines)
    patterns = [expected(*target) for target in TARGETS] + [RESIDENT]
    assert len(lines) == len(patterns), section
    for line, pattern in zip(lines, patterns, strict=True):
        assert re.fullmatch(pattern, line), (pattern, section)


def test_missing_faster_fifo_is_skipped_not_failed() -> None:
    proc = run_without("faster_fifo", BENCH, "--smoke", "--only", "process_int_cap256")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "ERROR" not in out, out
    assert f"  {FF}: skipped: faster_fifo not installed\n" in out, out
    for row in ("ProcessChannel", MP):
        assert re.search(rf"^{re.escape(row)} +2 ", out, re.M), (row, out)
    patterns = [
        measured("process_int_cap256", "ProcessChannel", MP, THROUGHPUT, "2.0"),
        skipped("process_int_cap256", "ProcessChannel", FF),
    ]
    lines = target_lines(out)
    assert len(lines) == len(patterns), out
    for line, pattern in zip(lines, patterns, strict=True):
        assert re.fullmatch(pattern, line), (pattern, out)


def test_list_names_benchmarks_and_contenders() -> None:
    proc = run(str(BENCH), "--list")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line]
    names = [line.split(": ", 1)[0] for line in lines if not line.startswith(" ")]
    assert names == list(BENCHMARKS), proc.stdout
    contenders = {line.strip() for line in lines if line.startswith("    ")}
    assert contenders == set(ROWS), proc.stdout

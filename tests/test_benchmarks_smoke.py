"""The pool benchmarks run to the end and print their ratios (a smoke test: no speed asserted).

``benchmarks/bench_pools.py --smoke`` goes through every benchmark and every contender with the
smallest sizes; the timeout only catches a deadlock. A second run hides the peer packages
(loky, pebble, mpire) to check that their contenders are skipped, not failed.
"""

from __future__ import annotations

import re

import pytest

from _bench_runs import BENCHMARKS_DIR, DEADLOCK_TIMEOUT, run

BENCH = BENCHMARKS_DIR / "bench_pools.py"
pytestmark = pytest.mark.timeout(DEADLOCK_TIMEOUT + 60)  # let the run's own timeout fire first
RATIO = re.compile(r"^\[map\] ProcessPool\.map vs multiprocessing\.Pool\.map: [0-9.e+-]+x ", re.M)

# Runs the benchmark script with the peers made unimportable (``sys.modules[name] = None`` makes
# both ``import name`` and ``importlib.util.find_spec(name)`` fail), as on a machine without them.
HIDE_PEERS = """
import runpy, sys
for name in ("loky", "pebble", "mpire"):
    sys.modules[name] = None
script = sys.argv[1]
sys.path.insert(0, str(__import__("pathlib").Path(script).parent))
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
"""


def test_smoke_run_prints_every_ratio() -> None:
    proc = run(str(BENCH), "--smoke")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert RATIO.search(out), out
    for name in ("map", "submit", "roundtrip", "thread_submit", "thread_map", "startup"):
        assert f"== {name}: " in out, out
    assert "[crash] ProcessPool crash reported on its future: " in out, out
    # Every target line ends with a verdict (or n/a when a contender is missing).
    section = out.split("== targets ==", 1)[1]
    lines = [line for line in section.splitlines() if line.startswith("[")]
    assert len(lines) == 11, section
    assert all(line.endswith(("MET", "MISSED")) or ": n/a (" in line for line in lines), section


def test_missing_peers_are_skipped_not_failed() -> None:
    proc = run("-c", HIDE_PEERS, str(BENCH), "--smoke", "--only", "map")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for contender in ("loky.map", "pebble.ProcessPool.map", "mpire.WorkerPool.map"):
        assert re.search(rf"{re.escape(contender)}\S*: skipped: \w+ not installed", out), out
    assert RATIO.search(out), out
    assert "== submit: " not in out


def test_list_names_benchmarks_and_contenders() -> None:
    proc = run(str(BENCH), "--list")
    assert proc.returncode == 0, proc.stderr
    assert "map: " in proc.stdout
    assert "    os.pipe ping-pong (floor)" in proc.stdout


def test_only_matching_nothing_is_an_error() -> None:
    proc = run(str(BENCH), "--only", "no-such-benchmark")
    assert proc.returncode == 1
    assert "no benchmark matches" in proc.stdout

"""Running a benchmark script from a test: the helpers every benchmark smoke test uses."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_DIR = ROOT / "benchmarks"
DEADLOCK_TIMEOUT = 180
"""Seconds before a run counts as hung; the tests' own pytest timeout is set above it."""


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``python *argv`` from the repository root; kill its whole process group if it hangs.

    The run gets a session of its own, so its worker processes, ping-pong children and
    forkserver share its process group and go with it.
    """
    proc = subprocess.Popen(
        [sys.executable, *argv],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=DEADLOCK_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"deadlock? no exit after {DEADLOCK_TIMEOUT} s\n{out}\n{err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


_WITHOUT = """
import runpy, sys
sys.modules[sys.argv[1]] = None
script = sys.argv[2]
sys.path.insert(0, str(__import__("pathlib").Path(script).parent))
sys.argv = sys.argv[2:]
runpy.run_path(script, run_name="__main__")
"""


def run_without(module: str, script: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run a benchmark script with ``module`` made unimportable, as where a peer is missing."""
    return run("-c", _WITHOUT, module, str(script), *argv)


def smoke_run(script: Path, benchmarks: Iterable[str], rows: Mapping[str, str]) -> list[str]:
    """Run ``script --smoke`` and check what every benchmark smoke test checks.

    It exits 0, prints a table for each of ``benchmarks`` and no ``ERROR``, and each row named
    in ``rows`` shows the sample count its pattern matches (``"2"``, ``r"\\d+"``, ...).

    Returns:
        The lines of its ``== targets ==`` section that report a target (they start with ``[``).
    """
    proc = run(str(script), "--smoke")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "ERROR" not in out, out
    for name in benchmarks:
        assert f"== {name}: " in out, out
    for row, count in rows.items():
        assert re.search(rf"^{re.escape(row)} +{count} ", out, re.M), (row, out)
    section = out.split("== targets ==", 1)[1]
    return [line for line in section.splitlines() if line.startswith("[")]

"""Running a benchmark script from a test: the one helper both benchmark smoke tests use."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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

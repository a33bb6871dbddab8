"""Every example in ``examples/`` runs to completion and prints something.

Files whose names start with ``_`` are helpers, not examples. Each example runs in its own
interpreter, in a scratch directory, with a deadline that only catches deadlocks: at the
deadline the example is sent SIGABRT, which (with ``PYTHONFAULTHANDLER``) prints the stack of
every thread, then it is killed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
EXAMPLES = sorted(p for p in EXAMPLES_DIR.glob("*.py") if not p.name.startswith("_"))

# Below pytest's faulthandler_timeout (90 s) and timeout (120 s), so that the example's own
# stack dump, not the test process's, explains a hang.
DEADLINE = 80.0

if EXAMPLES:
    CASES = [pytest.param(path, id=path.name) for path in EXAMPLES]
else:
    CASES = [
        pytest.param(
            None, id="no-examples", marks=pytest.mark.skip(reason=f"no examples in {EXAMPLES_DIR}")
        )
    ]


@pytest.mark.parametrize("example", CASES)
def test_example_runs(example: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    with subprocess.Popen(
        [sys.executable, str(example)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=DEADLINE)
            hung = False
        except subprocess.TimeoutExpired:
            hung = True
            proc.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
            try:
                stdout, stderr = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, stderr = proc.communicate()
    if hung:
        pytest.fail(
            f"{example.name} did not finish within {DEADLINE:g} s; its stacks are in stderr\n"
            f"--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
            pytrace=False,
        )
    assert proc.returncode == 0, f"{example.name} exited with {proc.returncode}\n{stderr}"
    assert stdout.strip(), f"{example.name} printed nothing"


def _listed_in(page: Path, pattern: str) -> list[str]:
    return re.findall(pattern, page.read_text(encoding="utf-8"))


def test_examples_are_numbered_in_reading_order() -> None:
    numbers = [int(path.name.split("_", 1)[0]) for path in EXAMPLES]
    assert numbers == list(range(1, len(EXAMPLES) + 1)), [path.name for path in EXAMPLES]


@pytest.mark.parametrize(
    ("page", "pattern"),
    [
        ("examples/README.md", r"(?m)^\d+\. `(\d\d_\w+\.py)`"),
        ("docs/examples.rst", r"literalinclude:: \.\./examples/(\d\d_\w+\.py)"),
    ],
)
def test_every_example_is_listed_in_order(page: str, pattern: str) -> None:
    listed = _listed_in(EXAMPLES_DIR.parent / page, pattern)
    assert listed == [path.name for path in EXAMPLES], f"{page} lists {listed}"

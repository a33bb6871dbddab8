"""A script read from standard input (``python - <<EOF``) has no main-module file for a
``forkserver`` or ``spawn`` worker to re-run: creating a ``ProcessPool`` there raises one clear
error naming the fixes, instead of breaking every worker (each printing multiprocessing's
``FileNotFoundError``). ``fork`` needs no file and works."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import sys

    from concurrency_kit import BrokenPoolError, ProcessPool

    try:
        with ProcessPool(2, start_method=sys.argv[1]) as pool:
            print("result", pool.submit(lambda: 6 * 7).result())
    except BrokenPoolError as exc:
        print("refused", exc)
    """
)


def _run_from_stdin(start_method: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-", start_method],
        input=SCRIPT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_stdin_script_refused_at_pool_creation(start_method: str) -> None:
    done = _run_from_stdin(start_method)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused "), done.stdout
    assert "standard input" in done.stdout
    assert "start_method='fork'" in done.stdout
    assert "Save the script to a file" in done.stdout
    # No worker was started: nothing of multiprocessing's own failure is printed.
    assert "FileNotFoundError" not in done.stderr
    assert done.stderr == ""


@pytest.mark.fork
def test_stdin_script_works_with_fork() -> None:
    done = _run_from_stdin("fork")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "result 42\n"

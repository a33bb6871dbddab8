"""The fork server runs the parent's main script once, so that ``forkserver`` workers start
with it loaded instead of each re-running it (CPython means to preload ``__main__`` there but
never does: ``_core/forkserver_main.py``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import os
    import sys

    # Top-level code: every process that runs this script appends a line.
    with open(sys.argv[1], "a") as ran:
        ran.write(f"{os.getpid()} {__name__} {sys.argv[2]}\\n")

    from concurrency_kit import ProcessPool


    def where():
        return os.getpid()


    if __name__ == "__main__":
        with ProcessPool(1, max_tasks_per_worker=1, start_method="forkserver") as pool:
            pids = {pool.submit(where).result() for _ in range(3)}
        print(len(pids))
    """
)

UNGUARDED = textwrap.dedent(
    """
    from concurrency_kit import BrokenPoolError, ProcessPool

    # No __name__ guard: every worker that re-runs this script would start a pool of its own.
    try:
        with ProcessPool(1, start_method="forkserver") as pool:
            print("result", pool.submit(abs, -3).result())
    except BrokenPoolError:
        print("broken")
    except RuntimeError as exc:  # in a worker re-running the script: multiprocessing refuses
        raise SystemExit(f"child refused: {exc}") from None
    """
)


def test_workers_do_not_rerun_the_main_script(tmp_path: Path) -> None:
    script = tmp_path / "program.py"
    script.write_text(SCRIPT)
    ran = tmp_path / "ran.txt"
    done = subprocess.run(
        [sys.executable, str(script), str(ran), "the-argument"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "3\n"  # three tasks, three fresh workers
    lines = ran.read_text().splitlines()
    # The parent, then the fork server (with the parent's arguments): not the three workers.
    assert [line.split(" ", 1)[1] for line in lines] == [
        "__main__ the-argument",
        "__mp_main__ the-argument",
    ]


def test_an_unguarded_script_still_fails_once_and_cleanly(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    # As without the preload: the workers cannot start (each re-runs the script, which
    # multiprocessing refuses), and the pool says it is broken; nothing runs away.
    assert done.stdout == "broken\n", done.stderr

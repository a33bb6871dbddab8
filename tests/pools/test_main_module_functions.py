"""Callables defined in ``__main__`` — lambdas, closures, plain functions — work with every
start method, because calls travel with cloudpickle (the standard library needs importable
functions, and under ``spawn``/``forkserver`` a function from an interactive ``__main__`` fails).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PROGRAM = textwrap.dedent(
    """
    import sys

    from concurrency_kit import ProcessPool


    class Scale:
        def __init__(self, factor):
            self.factor = factor

        def __call__(self, x):
            return x * self.factor


    def square(x):
        return x * x


    def main(start_method):
        offset = 100
        with ProcessPool(2, start_method=start_method) as pool:
            print(pool.submit(square, 7).result())
            print(pool.submit(lambda x: x + offset, 1).result())
            print(list(pool.map(Scale(3), range(4))))
            # an instance of a __main__ class comes back as an instance of the same class
            print(type(pool.submit(Scale, 2).result()) is Scale)


    if __name__ == "__main__":
        main(sys.argv[1])
    """
)


@pytest.mark.parametrize("start_method", ["forkserver", "spawn", "fork"])
@pytest.mark.parametrize("how", ["script", "-c"])
def test_main_module_callables(start_method: str, how: str, tmp_path: Path) -> None:
    # "-c": the main module has no file at all, so no worker can import it: the callables
    # must travel by value.
    if how == "script":
        script = tmp_path / "program.py"
        script.write_text(PROGRAM)
        command = [sys.executable, str(script), start_method]
    else:
        command = [sys.executable, "-c", PROGRAM, start_method]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:4] == ["49", "101", "[0, 3, 6, 9]", "True"]

"""A function pickled by value (defined in ``__main__``, or made by ``exec``) keeps its file
name and line numbers through the serializer, so a worker's traceback names the file, the
line and the source line (issue 21: cloudpickle 3.1 writes ``"<dynamic-code>"`` instead).
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
import types
from pathlib import Path

from concurrency_kit._core import serialize

SCRIPT = textwrap.dedent(
    """\
    from concurrency_kit import ProcessPool


    def helper(x):
        return 10 // x  # the failing line


    def work(x):
        return helper(x)


    if __name__ == "__main__":
        with ProcessPool(1) as pool:
            try:
                pool.submit(work, 0).result()
            except ZeroDivisionError as exc:
                print(exc.__cause__)
            else:
                raise SystemExit("no ZeroDivisionError")
    """
)


def test_a_main_function_s_traceback_names_the_script_line_and_source(tmp_path: Path) -> None:
    script = tmp_path / "crashing_script.py"
    script.write_text(SCRIPT)
    run = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    text = run.stdout
    assert "<dynamic-code>" not in text
    assert f'File "{script}", line 9, in work\n    return helper(x)\n' in text
    assert f'File "{script}", line 5, in helper\n    return 10 // x  # the failing line\n' in text
    assert text.rstrip().splitlines()[-1].startswith("ZeroDivisionError: ")  # wording varies


def make_function(filename: str) -> types.FunctionType:
    """A function (with a nested one) whose code says it comes from ``filename``."""
    source = "def outer(x):\n    inner = lambda y: y + 1\n    return inner(x)\n"
    namespace: dict[str, object] = {}
    exec(compile(source, filename, "exec"), namespace)  # not importable: pickled by value
    function = namespace["outer"]
    assert isinstance(function, types.FunctionType)
    return function


def test_code_objects_keep_file_name_and_lines_through_every_path() -> None:
    function = make_function("/somewhere/my_script.py")
    for data in (
        serialize.dumps(function),
        serialize.dumps_call(function, (1,), None),
        serialize.dumps_out_of_band(function, "for the test")[0],
    ):
        loaded = pickle.loads(data)
        if isinstance(loaded, tuple):
            loaded = loaded[0]
        code = loaded.__code__
        assert code == function.__code__
        assert code.co_filename == "/somewhere/my_script.py"
        assert code.co_firstlineno == 1
        (nested,) = [c for c in code.co_consts if isinstance(c, types.CodeType)]
        assert nested.co_filename == "/somewhere/my_script.py"
        assert loaded(1) == 2

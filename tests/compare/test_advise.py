"""advise(): the model it picks for CPU-bound and for waiting work, with its reasons.

The two workloads are far apart on purpose (pure-Python computation against sleeping), so that
the choice does not hang on a few percent of timing noise: on 2 cores, processes run the first
about twice as fast as threads, and threads run the second as fast as processes.
"""

from __future__ import annotations

import pytest

from _advise_targets import crunch, wait
from concurrency_kit import PROCESS, THREAD, Advice, advise
from concurrency_kit.__main__ import main


def test_cpu_bound_python_goes_to_processes() -> None:
    advice = advise(crunch, range(8), workers=2)
    assert isinstance(advice, Advice)
    assert advice.model is PROCESS
    assert advice.items == 8
    assert advice.workers == 2
    assert advice.serial_cpu_fraction > 0.5
    assert "use_cases" in advice.rows
    assert any("GIL" in reason for reason in advice.reasons)


def test_waiting_goes_to_threads() -> None:
    advice = advise(wait, range(8), workers=2)
    assert advice.model is THREAD
    assert advice.serial_cpu_fraction < 0.5
    assert advice.thread_speedup > 1.0
    assert any("cheaper" in reason for reason in advice.reasons)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least one input"):
        advise(wait, [])
    with pytest.raises(ValueError, match="workers"):
        advise(wait, [1], workers=0)


def test_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["advise", "_advise_targets:wait", "--range", "4", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("use threads\n")
    assert "  - " in out
    assert main(["advise", "_advise_targets:wait", "--inputs", "[1, 2]", "--workers", "2"]) == 0
    assert main(["advise", "_advise_targets:nope", "--range", "2"]) == 2
    assert main(["advise", "no_colon", "--range", "2"]) == 2
    assert main(["advise", "_advise_targets:wait", "--inputs", "not a literal"]) == 2
    assert "bad --inputs" in capsys.readouterr().err

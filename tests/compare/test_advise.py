"""advise(): the decision, tested on made-up timings; one real run, checked for shape only.

Which model wins a real run depends on the machine and on its load (a 2-core machine shared
with other jobs can run processes no faster than threads), so no test asserts the model a real
measurement picks: :func:`decide` is a pure function of :class:`Timings`, and every branch of it
is tested on figures made up for it.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from _advise_targets import crunch, wait
from concurrency_kit import PROCESS, THREAD, Advice, Model, advise
from concurrency_kit.__main__ import main
from concurrency_kit.compare import _advise
from concurrency_kit.compare._advise import PROCESS_MARGIN, Timings, decide

ROWS = ("use_cases", "definition", "creation_time", "communication", "overhead")


def timings(
    *,
    serial: float = 1.0,
    cpu: float = 1.0,
    threads: float = 1.0,
    processes: float = 1.0,
    startup: float = 0.05,
) -> Timings:
    return Timings(
        serial_seconds=serial,
        serial_cpu_seconds=cpu,
        thread_seconds=threads,
        process_seconds=processes,
        process_startup_seconds=startup,
    )


def test_cpu_bound_work_that_processes_run_much_faster_goes_to_processes() -> None:
    advice = decide(timings(serial=2.0, cpu=2.0, threads=2.1, processes=1.0), workers=2, items=8)
    assert advice.model is PROCESS
    assert (advice.workers, advice.items) == (2, 8)
    assert advice.serial_cpu_fraction == 1.0
    assert advice.thread_speedup == pytest.approx(2.0 / 2.1)
    assert advice.process_speedup == pytest.approx(2.0)
    assert advice.rows == ROWS
    assert "CPU-bound" in advice.reasons[0]
    assert any("GIL" in reason and "2.1x" in reason for reason in advice.reasons)
    assert not any("Neither pool" in reason for reason in advice.reasons)


def test_waiting_work_goes_to_threads() -> None:
    advice = decide(timings(serial=2.0, cpu=0.02, threads=1.0, processes=1.05), workers=2, items=8)
    assert advice.model is THREAD
    assert advice.serial_cpu_fraction == pytest.approx(0.01)
    assert "mostly waiting" in advice.reasons[0]
    assert any("as fast or faster" in reason for reason in advice.reasons)
    assert not any("GIL" in reason for reason in advice.reasons)


def test_the_margin_a_tie_and_a_near_win_go_to_threads() -> None:
    # Processes exactly at the margin: not "clearly" faster.
    at_margin = decide(timings(threads=1.0, processes=PROCESS_MARGIN), workers=2, items=2)
    assert at_margin.model is THREAD
    assert any("short of" in reason for reason in at_margin.reasons)
    just_below = decide(timings(threads=1.0, processes=PROCESS_MARGIN * 0.99), workers=2, items=2)
    assert just_below.model is PROCESS
    tie = decide(timings(threads=1.0, processes=1.0), workers=2, items=2)
    assert tie.model is THREAD
    assert any("as fast or faster" in reason for reason in tie.reasons)


def test_when_no_pool_beats_the_loop_the_advice_says_so() -> None:
    advice = decide(timings(serial=0.1, threads=0.2, processes=0.3), workers=2, items=2)
    assert advice.model is THREAD
    assert "Neither pool made it faster" in advice.reasons[-1]
    # Clearly faster than the loop (1.2x): nothing to say about it.
    faster = decide(timings(serial=0.12, threads=0.1, processes=0.3), workers=2, items=2)
    assert not any("Neither pool" in reason for reason in faster.reasons)


def test_the_cpu_fraction_is_capped_and_the_startup_reported() -> None:
    # CPU time can exceed wall time (a function that runs threads of its own).
    advice = decide(timings(serial=1.0, cpu=3.0, startup=0.25), workers=4, items=1)
    assert advice.serial_cpu_fraction == 1.0
    assert advice.process_startup_seconds == 0.25
    assert any("0.25 s, paid once" in reason for reason in advice.reasons)
    assert decide(timings(cpu=0.5), workers=1, items=1).reasons[0].count("CPU-bound") == 1
    assert "mostly waiting" in decide(timings(cpu=0.49), workers=1, items=1).reasons[0]


def test_durations_too_short_for_the_clock_do_not_divide_by_zero() -> None:
    advice = decide(timings(serial=0.0, cpu=0.0, threads=0.0, processes=0.0), workers=1, items=1)
    assert advice.model is THREAD
    assert advice.serial_cpu_fraction == 0.0
    assert advice.thread_speedup == advice.process_speedup == 1.0
    quick_pool = decide(timings(serial=1.0, threads=0.0, processes=0.5), workers=1, items=1)
    assert quick_pool.model is THREAD
    assert quick_pool.thread_speedup == math.inf
    quick_processes = decide(timings(serial=1.0, threads=0.5, processes=0.0), workers=1, items=1)
    assert quick_processes.model is PROCESS


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
@pytest.mark.parametrize("field", ["serial", "cpu", "threads", "processes", "startup"])
def test_impossible_figures_are_refused(field: str, bad: float) -> None:
    with pytest.raises(ValueError, match="must be a finite number >= 0"):
        decide(timings(**{field: bad}), workers=1, items=1)


def test_advise_concludes_from_what_it_measures(monkeypatch: pytest.MonkeyPatch) -> None:
    made_up = timings(serial=4.0, cpu=4.0, threads=4.0, processes=2.0)
    calls: list[tuple[Any, list[Any], int]] = []

    def fake_measure(fn: Any, items: list[Any], *, workers: int) -> Timings:
        calls.append((fn, items, workers))
        return made_up

    monkeypatch.setattr(_advise, "measure", fake_measure)
    advice = advise(crunch, iter(range(3)), workers=3)
    assert calls == [(crunch, [0, 1, 2], 3)]
    assert advice == decide(made_up, workers=3, items=3)


def test_one_real_run_has_the_right_shape() -> None:
    """A real measurement, checked for its shape only: which model wins depends on the load."""
    advice = advise(wait, range(4), workers=2)
    assert isinstance(advice, Advice)
    assert isinstance(advice.model, Model)
    assert advice.model in (PROCESS, THREAD)
    assert (advice.items, advice.workers) == (4, 2)
    assert advice.reasons
    assert all(isinstance(reason, str) and reason for reason in advice.reasons)
    assert advice.rows == ROWS
    assert 0.0 <= advice.serial_cpu_fraction <= 1.0
    for seconds in (
        advice.serial_seconds,
        advice.thread_seconds,
        advice.process_seconds,
        advice.process_startup_seconds,
    ):
        assert math.isfinite(seconds)
        assert seconds >= 0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least one input"):
        advise(wait, [])
    for workers in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="workers"):
            advise(wait, [1], workers=workers)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("made_up", "first_line"),
    [
        (timings(threads=1.0, processes=0.5), "use processes\n"),
        (timings(threads=1.0, processes=1.0), "use threads\n"),
    ],
)
def test_command_line(
    made_up: Timings,
    first_line: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[list[Any]] = []

    def fake_measure(fn: Any, items: list[Any], *, workers: int) -> Timings:
        assert fn is wait
        assert workers == 2
        seen.append(items)
        return made_up

    monkeypatch.setattr(_advise, "measure", fake_measure)
    assert main(["advise", "_advise_targets:wait", "--range", "4", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(first_line)
    assert out.count("  - ") == len(decide(made_up, workers=2, items=4).reasons)
    assert main(["advise", "_advise_targets:wait", "--inputs", "[1, 2]", "--workers", "2"]) == 0
    assert seen == [[0, 1, 2, 3], [1, 2]]
    assert main(["advise", "_advise_targets:nope", "--range", "2"]) == 2
    assert main(["advise", "no_colon", "--range", "2"]) == 2
    assert main(["advise", "_advise_targets:wait", "--inputs", "not a literal"]) == 2
    assert "bad --inputs" in capsys.readouterr().err

"""advise(): the decision, tested on made-up timings; one real run, checked for shape only.

Which model wins a real run depends on the machine and on its load (a 2-core machine shared
with other jobs can run processes no faster than threads), so no test asserts the model a real
measurement picks: :func:`decide` is a pure function of :class:`Timings`, and every branch of it
is tested on figures made up for it.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import pytest

from _advise_targets import crunch, wait
from concurrency_kit import INTERPRETER, PROCESS, THREAD, Advice, advise
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
    thread_cpu: float | None = None,
    cores: int = 2,
) -> Timings:
    return Timings(
        serial_seconds=serial,
        serial_cpu_seconds=cpu,
        thread_seconds=threads,
        process_seconds=processes,
        process_startup_seconds=startup,
        thread_cpu_seconds=thread_cpu,
        cores=cores,
    )


# The four cases of issue 19, with the figures a 2-core machine gives them.


def test_a_cpu_bound_pure_python_loop_goes_to_processes() -> None:
    # Threads take turns under the GIL (1 CPU busy), processes run on both cores.
    advice = decide(
        timings(serial=2.0, cpu=2.0, threads=2.1, processes=1.1, thread_cpu=2.1),
        workers=2,
        items=8,
    )
    assert advice.recommendation == "processes"
    assert advice.model is PROCESS
    assert advice.headline == "use processes"
    assert (advice.workers, advice.items, advice.cores) == (2, 8, 2)
    assert advice.serial_cpu_fraction == 1.0
    assert advice.thread_cpu_cores == pytest.approx(1.0)
    assert advice.thread_speedup == pytest.approx(2.0 / 2.1)
    assert advice.process_speedup == pytest.approx(2.0 / 1.1)
    assert advice.rows == ROWS
    assert advice.warnings == ()
    assert "CPU-bound" in advice.reasons[0]
    assert any("holds the GIL" in reason for reason in advice.reasons)
    assert any("(1.91x as fast as threads)" in reason for reason in advice.reasons)


def test_sleep_goes_to_threads() -> None:
    advice = decide(
        timings(serial=2.0, cpu=0.02, threads=1.0, processes=1.05, thread_cpu=0.03),
        workers=2,
        items=8,
    )
    assert advice.recommendation == "threads"
    assert advice.model is THREAD
    assert advice.serial_cpu_fraction == pytest.approx(0.01)
    assert "mostly waits" in advice.reasons[0]
    assert not any("GIL" in reason for reason in advice.reasons)
    assert any("Threads were as fast or faster" in reason for reason in advice.reasons)


def test_hashlib_over_large_buffers_releases_the_gil_and_goes_to_threads() -> None:
    # CPU-bound, yet the threads kept 1.9 CPUs busy at once: the GIL was released.
    advice = decide(
        timings(serial=2.0, cpu=2.0, threads=1.08, processes=1.15, thread_cpu=2.05),
        workers=2,
        items=8,
    )
    assert advice.recommendation == "threads"
    assert any("releases the GIL" in reason for reason in advice.reasons)
    assert not any("holds the GIL" in reason for reason in advice.reasons)
    assert not any("because of the GIL" in reason for reason in advice.reasons)


def test_on_a_busy_machine_one_busy_cpu_does_not_prove_the_gil_is_held() -> None:
    # Other load left one core: the threads of GIL-releasing work could not show 2 CPUs.
    advice = decide(
        attrs.evolve(
            timings(serial=2.0, cpu=2.0, threads=2.0, processes=1.2, thread_cpu=2.1),
            busy="other processes kept 1.0 of 2 cores busy",
        ),
        workers=2,
        items=8,
    )
    assert advice.recommendation == "processes"
    assert any("does not tell whether the function releases the GIL" in r for r in advice.reasons)
    assert not any("holds the GIL" in r for r in advice.reasons)


def test_short_calls_say_nothing_about_the_gil() -> None:
    advice = decide(
        timings(serial=0.008, cpu=0.008, threads=0.004, processes=0.02, thread_cpu=0.008),
        workers=2,
        items=8,
    )
    assert advice.recommendation == "threads"
    assert not any("GIL" in r for r in advice.reasons)


def test_hashlib_where_neither_pool_helps_runs_serially() -> None:
    # The report: both pools slower than the loop (0.44x and 0.57x).
    advice = decide(
        timings(serial=1.0, cpu=1.0, threads=2.27, processes=1.75, thread_cpu=2.2),
        workers=2,
        items=8,
    )
    assert advice.recommendation == "serial"
    assert advice.model is None
    assert advice.headline == "run it serially"
    assert any("so run it serially" in reason for reason in advice.reasons)
    assert not any("Processes beat" in reason for reason in advice.reasons)


def test_a_task_too_small_to_parallelise_is_batched() -> None:
    advice = decide(
        timings(serial=0.0008, cpu=0.0008, threads=0.02, processes=0.05, thread_cpu=0.02),
        workers=2,
        items=8,
    )
    assert advice.recommendation == "batch"
    assert advice.model is None
    assert advice.headline == "batch more work per task"
    assert any("chunksize" in reason for reason in advice.reasons)


def test_no_pool_slower_than_serial_is_ever_advised() -> None:
    for serial in (0.5, 1.0, 2.0):
        for threads in (0.4, 0.9, 1.0, 1.5, 3.0):
            for processes in (0.3, 0.9, 1.0, 1.5, 3.0):
                advice = decide(
                    timings(serial=serial, cpu=serial, threads=threads, processes=processes),
                    workers=2,
                    items=8,
                )
                if advice.model is PROCESS:
                    assert advice.process_speedup >= 1.2
                elif advice.model is THREAD:
                    assert advice.thread_speedup >= 1.2
                else:
                    assert max(advice.thread_speedup, advice.process_speedup) < 1.2 or (
                        advice.warnings
                    )


def test_speed_ups_the_cores_cannot_give_are_flagged_not_acted_on() -> None:
    # The report: CPU-bound, threads 3.1x and processes 4.2x on 2 CPUs.
    advice = decide(
        timings(serial=4.2, cpu=4.2, threads=4.2 / 3.1, processes=1.0, cores=2),
        workers=8,
        items=8,
    )
    assert advice.recommendation == "serial"
    assert len(advice.warnings) == 2
    assert all(w.startswith("Measurement error") for w in advice.warnings)
    assert "more than 2 cores can give" in advice.warnings[1]
    # Waiting work may overlap as many calls as there are workers.
    waiting = decide(
        timings(serial=4.0, cpu=0.04, threads=0.55, processes=0.6, cores=2), workers=8, items=8
    )
    assert waiting.recommendation == "threads"
    assert waiting.warnings == ()


def test_the_margin_a_tie_and_a_near_win_go_to_threads() -> None:
    base = {"serial": 1.5, "cpu": 1.5}
    at_margin = decide(timings(**base, threads=1.0, processes=PROCESS_MARGIN), workers=2, items=2)
    assert at_margin.model is THREAD
    assert any("short of" in reason for reason in at_margin.reasons)
    below = decide(
        timings(**base, threads=1.0, processes=PROCESS_MARGIN * 0.99), workers=2, items=2
    )
    assert below.model is PROCESS
    tie = decide(timings(**base, threads=1.0, processes=1.0), workers=2, items=2)
    assert tie.model is THREAD
    only_processes = decide(timings(**base, threads=1.9, processes=1.0), workers=2, items=2)
    assert only_processes.model is PROCESS
    assert any("Only processes beat the loop" in reason for reason in only_processes.reasons)


def test_the_cpu_fraction_is_capped_and_the_startup_reported() -> None:
    # CPU time can exceed wall time (a function that runs threads of its own).
    advice = decide(timings(serial=1.0, cpu=3.0, startup=0.25), workers=4, items=1)
    assert advice.serial_cpu_fraction == 1.0
    assert advice.process_startup_seconds == 0.25
    assert any("0.25 s, paid once" in reason for reason in advice.reasons)
    assert "CPU-bound" in decide(timings(cpu=0.3), workers=1, items=1).reasons[0]
    assert "mostly waits" in decide(timings(cpu=0.29), workers=1, items=1).reasons[0]


def test_a_busy_machine_is_a_warning_not_a_different_logic() -> None:
    figures = {"serial": 2.0, "cpu": 2.0, "threads": 2.1, "processes": 1.1, "thread_cpu": 2.1}
    quiet = decide(timings(**figures), workers=2, items=8)
    busy = decide(
        attrs.evolve(timings(**figures), busy="other processes kept 1.5 of 2 cores busy"),
        workers=2,
        items=8,
    )
    assert busy.recommendation == quiet.recommendation == "processes"
    assert busy.reasons[2] == quiet.reasons[2]  # the same figures; the GIL reading withheld
    assert "does not tell" in busy.reasons[1]
    assert busy.warnings == (
        "The machine was busy while measuring (other processes kept 1.5 of 2 cores busy): the "
        "figures, and so the advice, may differ on a quiet machine.",
    )
    assert decide(timings(), workers=1, items=1).thread_cpu_cores is None


def test_durations_too_short_for_the_clock_do_not_divide_by_zero() -> None:
    advice = decide(timings(serial=0.0, cpu=0.0, threads=0.0, processes=0.0), workers=1, items=1)
    assert advice.recommendation == "batch"
    assert advice.serial_cpu_fraction == 0.0
    assert advice.thread_speedup == advice.process_speedup == 1.0
    quick_pool = decide(timings(serial=1.0, threads=0.0, processes=0.5), workers=1, items=1)
    assert quick_pool.model is None  # an infinite speed-up is a measurement error
    assert quick_pool.warnings


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
@pytest.mark.parametrize(
    "field", ["serial", "cpu", "threads", "processes", "startup", "thread_cpu"]
)
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
    assert advice.recommendation in ("processes", "threads", "interpreters", "serial", "batch")
    assert advice.model in (PROCESS, THREAD, INTERPRETER, None)
    assert (advice.items, advice.workers) == (4, 2)
    assert advice.reasons
    assert all(isinstance(reason, str) and reason for reason in advice.reasons)
    # Python 3.14+ also tries interpreters, and then rests the advice on Crash Impact too.
    tried = advice.interpreter_seconds is not None
    assert advice.rows == ((*ROWS, "crash_impact") if tried else ROWS)
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
        (timings(serial=2.0, cpu=2.0, threads=1.9, processes=1.0), "use processes\n"),
        (timings(serial=2.0, cpu=0.1, threads=1.0, processes=1.0), "use threads\n"),
        (timings(serial=1.0, threads=1.0, processes=1.0), "run it serially\n"),
        (timings(serial=4.2, threads=4.2 / 3.1, processes=1.0), "run it serially\n"),
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
    advice = decide(made_up, workers=2, items=4)
    assert out.count("  - ") == len(advice.reasons)
    assert out.count("  ! ") == len(advice.warnings)
    assert main(["advise", "_advise_targets:wait", "--inputs", "[1, 2]", "--workers", "2"]) == 0
    assert seen == [[0, 1, 2, 3], [1, 2]]
    assert main(["advise", "_advise_targets:nope", "--range", "2"]) == 2
    assert main(["advise", "no_colon", "--range", "2"]) == 2
    assert main(["advise", "_advise_targets:wait", "--inputs", "not a literal"]) == 2
    assert "bad --inputs" in capsys.readouterr().err

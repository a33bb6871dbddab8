"""The table's third column, interpreters: where a figure is placed against the processes' and
the threads' (on made-up figures), how a row settles it, what advise() makes of interpreter
timings, and, on Python 3.14+, what the probes of the rows of kind observe for real.

As in the other compare tests, no test asserts a timing-dependent decision: the placements and
the advice are tested on figures made up for them; the real runs check facts of kind (counts of
interpreters, writes, hosts alive) and the shape of the rest.
"""

from __future__ import annotations

import sys

import pytest
from test_verdicts import QUIET, spread

from _advise_targets import needs_faulthandler, wait
from concurrency_kit import INTERPRETER, PROCESS, THREAD, Advice, advise
from concurrency_kit.compare import ASPECTS
from concurrency_kit.compare._advise import INTERPRETER_MARGIN, Timings, decide
from concurrency_kit.compare._measure import (
    Comparison,
    Figure,
    Measurement,
    Spread,
    place,
    settle,
)
from concurrency_kit.compare._report import Row, summary
from concurrency_kit.compare.probes import crash_impact, definition, memory_space
from concurrency_kit.compare.probes._shared import interpreters_missing

NEEDS_314 = pytest.mark.skipif(
    sys.version_info < (3, 14), reason="interpreters (concurrent.interpreters) need Python 3.14+"
)


# --- place(): where the interpreter figure stands -----------------------------------------------


def test_a_count_equal_to_the_processes_one_is_like_processes() -> None:
    # Memory Space: the parent sees none of the workers' writes to a global.
    args = (Spread.exact(0.0), Spread.exact(0.0), Spread.exact(8.0), "writes")
    assert place(*args, "process", timing=False)[0] == "holds"
    status, text = place(*args, "thread", timing=False)
    assert status == "does not hold"
    assert text.endswith("like processes, not like threads as claimed")


def test_a_count_equal_to_the_threads_one_is_like_threads() -> None:
    # Crash Impact: no host survives, as with threads.
    status, text = place(
        Spread.exact(0.0),
        Spread.exact(1.0),
        Spread.exact(0.0),
        "hosts alive",
        "thread",
        timing=False,
    )
    assert (status, text.endswith("; like threads")) == ("holds", True)


def test_a_count_halfway_is_between() -> None:
    status, _ = place(
        Spread.exact(4.0), Spread.exact(0.0), Spread.exact(8.0), "lines", "between", timing=False
    )
    assert status == "holds"


def test_timings_are_placed_on_a_log_scale() -> None:
    # 100 us is halfway between 10 us and 1 ms on a log scale, though nearer 10 us linearly.
    for like, expected in (("between", "holds"), ("process", "does not hold")):
        status, _ = place(spread(100.0), spread(1000.0), spread(10.0), "us", like, timing=True)
        assert status == expected, like
    # 8 ms against a process's 3 ms and a thread's 25 us: like processes.
    status, _ = place(spread(8000.0), spread(3000.0), spread(25.0), "us", "process", timing=True)
    assert status == "holds"
    # Within the margin of the threads' figure, or beyond it: like threads; twice it, on a
    # hundredfold line, already between.
    for value, expected in ((10.5, "holds"), (4.0, "holds"), (20.0, "does not hold")):
        status, _ = place(spread(value), spread(1000.0), spread(10.0), "us", "thread", timing=True)
        assert status == expected, value


def test_a_spread_across_two_places_is_inconclusive() -> None:
    wide = Spread(100.0, 10.5, 990.0, 10.0, 1000.0, 7)
    status, text = place(wide, spread(1000.0), spread(10.0), "us", "between", timing=True)
    assert status == "inconclusive"
    assert "spread reaches more than one place" in text


def test_processes_and_threads_too_close_to_place_anything() -> None:
    status, text = place(spread(46.0), spread(45.6), spread(44.6), "ns", "process", timing=True)
    assert status == "inconclusive"
    assert "too close to place interpreters" in text
    status, _ = place(
        Spread.exact(1.0), Spread.exact(2.0), Spread.exact(2.0), "x", "process", timing=False
    )
    assert status == "inconclusive"


def test_a_busy_machine_leaves_a_contradicted_timing_inconclusive() -> None:
    args = (spread(100.0), spread(1000.0), spread(10.0), "us", "process")
    status, text = place(*args, timing=True, busy="other processes kept 1.5 of 2 cores busy")
    assert status == "inconclusive"
    assert "the machine was busy" in text
    # A claim that holds holds on a busy machine too, and counts are not moved by load.
    assert place(*args[:-1], "between", timing=True, busy="busy")[0] == "holds"
    counts = (Spread.exact(0.0), Spread.exact(0.0), Spread.exact(8.0), "writes", "thread")
    assert place(*counts, timing=False, busy="busy")[0] == "does not hold"


# --- settle(): a row's interpreter verdict ---------------------------------------------------


def measurement(interpreter: Figure | None, **kw: object) -> Measurement:
    return Measurement(
        key="creation_time",
        process=Figure(3000.0, "us", "start to running"),
        thread=Figure(25.0, "us", "start to running"),
        better="lower",
        holds=True,
        finding="a thread starts faster",
        interpreter=interpreter,
        **kw,  # type: ignore[arg-type]
    )


def test_a_row_without_an_interpreter_figure_has_no_interpreter_verdict() -> None:
    settled = settle(
        measurement(None, interpreter_missing="interpreters need Python 3.14+"), QUIET, 2, "process"
    )
    assert (settled.interpreter_status, settled.interpreter_verdict) == (None, "")
    assert settled.status == "holds"  # the seed's claim is settled as before


def test_a_row_is_placed_by_its_first_comparison_when_the_interpreters_were_sampled() -> None:
    comparison = Comparison(
        "start to running", "us", spread(3000.0), spread(25.0), "lower", "thread"
    )
    settled = settle(
        measurement(
            Figure(8000.0, "us", "create to running"),
            comparisons=(comparison,),
            interpreter_spread=spread(8000.0),
        ),
        QUIET,
        2,
        "process",
    )
    assert settled.interpreter_status == "holds"
    assert settled.interpreter_verdict.startswith("holds: interpreters 8,000 us [IQR")
    assert settled.interpreter_verdict.endswith("; like processes")


def test_a_row_of_figures_only_is_placed_by_its_figures() -> None:
    settled = settle(measurement(Figure(8000.0, "us", "create")), QUIET, 2, "thread")
    assert settled.interpreter_status == "does not hold"
    assert settled.interpreter_verdict.startswith("does not hold here: ")
    unplaced = settle(measurement(Figure(8000.0, "us", "create")), QUIET, 2, None)
    assert unplaced.interpreter_status == "as stated"


def test_every_row_says_where_it_puts_interpreters() -> None:
    for aspect in ASPECTS:
        assert aspect.interpreter.text.strip()
        assert aspect.interpreter_like in ("process", "thread", "between")
    # The table's own reading: crash impact like threads, the rest like processes.
    like = {aspect.key: aspect.interpreter_like for aspect in ASPECTS}
    assert like["crash_impact"] == "thread"
    assert like["use_cases"] == like["memory_space"] == "process"


def test_the_summary_names_interpreters_only_where_they_stood_with_processes() -> None:
    use_cases = next(aspect for aspect in ASPECTS if aspect.key == "use_cases")

    def uses(interpreter: float | None, status: str | None) -> Row:
        found = Measurement(
            key="use_cases",
            process=Figure(1.9, "x", ""),
            thread=Figure(1.0, "x", ""),
            better="higher",
            holds=True,
            status="holds",
            interpreter=None if interpreter is None else Figure(interpreter, "x", ""),
            interpreter_status=status,  # type: ignore[arg-type]
        )
        return Row(use_cases, found)

    lines = summary([uses(1.8, "holds")])
    assert lines[0].startswith("CPU-bound pure Python: processes")
    assert lines[1].startswith("The same, where a crash need not be contained")
    assert "interpreters, 1.8x here" in lines[1]
    for unplaced in (uses(None, None), uses(1.0, "does not hold"), uses(1.9, "inconclusive")):
        assert not any("interpreters" in line for line in summary([unplaced]))


# --- advise(): interpreters as a third candidate ---------------------------------------------


def timings(*, interpreters: float | None, left_out: str = "", **kw: float) -> Timings:
    """A CPU-bound pure-Python loop on 2 cores (threads take turns, 1 CPU busy) by default."""
    figures = {"serial": 2.0, "cpu": 2.0, "threads": 2.1, "processes": 1.1, "thread_cpu": 2.1}
    figures.update(kw)
    return Timings(
        serial_seconds=figures["serial"],
        serial_cpu_seconds=figures["cpu"],
        thread_seconds=figures["threads"],
        process_seconds=figures["processes"],
        process_startup_seconds=0.05,
        thread_cpu_seconds=figures["thread_cpu"],
        cores=2,
        interpreter_seconds=interpreters,
        interpreter_startup_seconds=None if interpreters is None else 0.03,
        interpreters_left_out=left_out,
    )


def test_interpreters_clearly_faster_than_processes_are_advised() -> None:
    advice = decide(timings(interpreters=0.9), workers=2, items=8)
    assert (advice.recommendation, advice.model, advice.headline) == (
        "interpreters",
        INTERPRETER,
        "use interpreters",
    )
    assert advice.interpreter_speedup == pytest.approx(2.0 / 0.9)
    assert "crash_impact" in advice.rows
    assert any("interpreters 2.22x" in reason for reason in advice.reasons)
    assert any("while each interpreter has a GIL of its own" in r for r in advice.reasons)
    assert any("ends the whole program (Crash Impact)" in reason for reason in advice.reasons)
    assert advice.reasons[-1].startswith("Starting the interpreter pool took 0.03 s")


def test_a_tie_between_interpreters_and_processes_goes_to_processes() -> None:
    near = 1.1 * (INTERPRETER_MARGIN + 0.05)  # faster than processes, but not by the margin
    advice = decide(timings(interpreters=near), workers=2, items=8)
    assert (advice.recommendation, advice.model) == ("processes", PROCESS)
    assert any("short of the 1.1x it takes" in reason for reason in advice.reasons)


def test_only_interpreters_beating_the_loop_are_advised() -> None:
    advice = decide(timings(interpreters=1.0, processes=1.9), workers=2, items=8)
    assert advice.recommendation == "interpreters"
    assert any("Only interpreters beat the loop" in reason for reason in advice.reasons)


def test_waiting_still_goes_to_threads_with_interpreters_in_the_running() -> None:
    advice = decide(
        timings(
            interpreters=1.0, serial=2.0, cpu=0.02, threads=1.0, processes=1.05, thread_cpu=0.03
        ),
        workers=2,
        items=8,
    )
    assert (advice.recommendation, advice.model) == ("threads", THREAD)


def test_a_function_that_fails_in_a_subinterpreter_says_why_interpreters_were_left_out() -> None:
    why = (
        "fn failed in a subinterpreter: ImportError: module numpy does not support subinterpreters"
    )
    advice = decide(timings(interpreters=None, left_out=why), workers=2, items=8)
    assert advice.recommendation == "processes"
    assert advice.interpreter_speedup is None
    assert any(reason.startswith(f"Interpreters were left out: {why}") for reason in advice.reasons)


def test_before_python_314_the_advice_is_unchanged() -> None:
    missing = "interpreters need Python 3.14+ (this is 3.11.7)"
    with_reason = decide(timings(interpreters=None, left_out=missing), workers=2, items=8)
    without = decide(timings(interpreters=None), workers=2, items=8)
    assert with_reason.reasons == without.reasons
    assert "crash_impact" not in with_reason.rows


# --- for real, Python 3.14+ ------------------------------------------------------------------


def test_before_314_the_probes_say_why_interpreters_are_not_measured() -> None:
    if sys.version_info >= (3, 14):
        assert interpreters_missing() == ""
        return
    found = memory_space.probe("quick")
    assert found.interpreter is None
    assert found.interpreter_missing.startswith("interpreters need Python 3.14+")


@NEEDS_314
def test_the_rows_of_kind_place_interpreters_for_real() -> None:
    # Facts, not timings: two workers in two interpreters of our pid; no global write seen by
    # the parent; no host alive after a segfault in an interpreter.
    found = {probe.__name__: probe.probe("quick") for probe in (definition, memory_space)}
    defined = found[definition.__name__]
    assert defined.interpreter is not None
    assert defined.interpreter.value == definition.WORKERS
    assert defined.details["interpreter worker pids"] == defined.details["parent pid"]
    memory = found[memory_space.__name__]
    assert memory.interpreter is not None
    assert memory.interpreter.value == 0
    assert memory.details["ProcessSharedCounter, seen by parent, from interpreters"] == (
        f"{memory_space.TASKS} of {memory_space.TASKS}"
    )
    crash = crash_impact.probe("quick")
    assert crash.interpreter is not None
    assert crash.interpreter.value == 0
    assert crash.details["interpreter pool, a Python exception"] == "failed only its task"
    for m, like in ((defined, "process"), (memory, "process"), (crash, "thread")):
        assert settle(m, QUIET, 2, like).interpreter_status == "holds", m.key


@NEEDS_314
def test_advise_leaves_out_interpreters_when_the_function_cannot_load_there() -> None:
    advice = advise(needs_faulthandler, range(2), workers=2)
    assert advice.interpreter_seconds is None
    assert advice.interpreters_left_out.startswith("fn failed in a subinterpreter: ImportError")
    assert any("Interpreters were left out" in reason for reason in advice.reasons)


@NEEDS_314
def test_advise_tries_interpreters_on_314() -> None:
    advice = advise(wait, range(4), workers=2)
    assert isinstance(advice, Advice)
    assert advice.interpreter_seconds is not None
    assert advice.interpreter_seconds > 0
    assert advice.interpreters_left_out == ""
    assert advice.recommendation in ("processes", "threads", "interpreters", "serial", "batch")

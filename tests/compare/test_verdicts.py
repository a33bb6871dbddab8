"""How a verdict is reached, on made-up figures: spreads, interleaving, the decision of one
comparison on a quiet and on a busy machine, measurement errors, settling a row, and the
"so, for your machine" summary. No timing here: every figure is made up."""

from __future__ import annotations

import pytest

from concurrency_kit.compare import ASPECTS
from concurrency_kit.compare._measure import (
    BUSY_OTHER_CORES,
    Comparison,
    Figure,
    Load,
    Measurement,
    Spread,
    decide,
    interleave,
    machine_busy,
    settle,
)
from concurrency_kit.compare._report import Row, format_figure, summary

QUIET = Load(10.0, 0.05, 0.0, 0.1, 0.2)
BUSY = Load(10.0, 1.5, 0.0, 2.0, 2.5)


def spread(median: float, width: float = 0.02) -> Spread:
    """A spread whose quartiles are ``median`` -/+ ``width`` (relative)."""
    return Spread(median, median * (1 - width), median * (1 + width), median * 0.9, median * 1.1, 7)


def cpu(process: float, thread: float, **kw: object) -> Comparison:
    """The Use Cases CPU comparison: speed-ups, processes favoured, capped at 2 cores."""
    return Comparison(
        "CPU-bound speed-up",
        "x",
        spread(process),
        spread(thread),
        "higher",
        "process",
        ceiling=2 * 1.15,
        load_hurts="process",
        floor=1.1,
        **kw,  # type: ignore[arg-type]
    )


def handoff(process: float, thread: float, **kw: object) -> Comparison:
    """The Context Switching comparison: microseconds, threads favoured."""
    return Comparison(
        "hand-off",
        "us",
        spread(process),
        spread(thread),
        "lower",
        "thread",
        **kw,  # type: ignore[arg-type]
    )


def test_spread_of_samples() -> None:
    s = Spread.of([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s.median, s.least, s.most, s.n) == (3.0, 1.0, 5.0, 5)
    assert (s.low, s.high) == (2.0, 4.0)
    few = Spread.of([2.0, 1.0])
    assert (few.low, few.high) == (1.0, 2.0)  # under four samples: the whole range
    assert Spread.exact(3.0) == Spread(3.0, 3.0, 3.0, 3.0, 3.0, 1)
    assert Spread.of([1.0, 2.0, 3.0]).scaled(1e3).median == 2000.0
    with pytest.raises(ValueError, match="no samples"):
        Spread.of([])


def test_interleave_rotates_the_order_and_drops_the_warm_up() -> None:
    calls: list[str] = []

    def sampler(name: str) -> object:
        def sample() -> float:
            calls.append(name)
            return float(len(calls))

        return sample

    found = interleave({n: sampler(n) for n in "abc"}, rounds=3, warmup=1)  # type: ignore[misc]
    assert calls == list("abc" + "acb" + "cab" + "cba")
    assert {n: len(v) for n, v in found.items()} == {"a": 3, "b": 3, "c": 3}
    assert found["a"] == [4.0, 8.0, 12.0]  # the first round's samples are thrown away
    firsts = {calls[i] for i in range(0, 12, 3)}
    assert len(firsts) > 1  # not always the same sampler first


def test_quiet_machine_clear_gap_holds_or_does_not() -> None:
    status, text = decide(cpu(1.9, 1.0))
    assert status == "holds"
    assert "processes 1.9x [IQR" in text
    assert "processes ahead by 1.90x" in text
    status, text = decide(handoff(4.0, 28.0))  # processes hand off 7x faster
    assert status == "does not hold"
    assert "processes ahead by 7.00x" in text


def test_quiet_machine_overlap_or_small_gap_is_inconclusive() -> None:
    wide = Comparison("x", "us", spread(10.0, 0.3), spread(12.0, 0.3), "lower", "thread")
    assert decide(wide) == ("inconclusive", pytest.approx(decide(wide)[1]))
    assert "spreads overlap" in decide(wide)[1]
    close = handoff(10.0, 10.5)  # 1.05x, spreads apart
    status, text = decide(close)
    assert status == "inconclusive"
    assert "less than 1.1x" in text


def test_at_least_claims_hold_on_a_tie_and_fail_only_on_a_clear_loss() -> None:
    io = Comparison("I/O", "x", spread(1.95), spread(1.99), "higher", "thread", at_least=True)
    assert decide(io)[0] == "holds"
    assert decide(io, busy="busy")[0] == "holds"
    lost = Comparison("I/O", "x", spread(1.9), spread(1.2), "higher", "thread", at_least=True)
    assert decide(lost)[0] == "does not hold"


def test_a_speed_up_above_the_cores_is_a_measurement_error() -> None:
    status, text = decide(cpu(4.2, 3.1))
    assert status == "inconclusive"
    assert "measurement error: processes 4.2x is above the 2" in text
    assert decide(cpu(2.25, 1.0))[0] == "holds"  # within the tolerance


def test_busy_machine_the_side_load_slows_losing_proves_nothing() -> None:
    # CPU-bound under load: processes barely ahead, or behind: inconclusive, never "does not hold".
    assert decide(cpu(1.07, 1.17), busy="other processes kept 1.5 of 2 cores busy")[0] == (
        "inconclusive"
    )
    status, text = decide(cpu(0.6, 1.0), busy="other processes kept 1.5 of 2 cores busy")
    assert status == "inconclusive"
    assert "load slows processes more" in text
    # ... but processes winning despite the load is decided as on a quiet machine.
    assert decide(cpu(1.6, 1.0), busy="busy")[0] == "holds"
    # Context switching: threads ahead under load (processes could not spin) is not a result.
    switch = handoff(15.0, 9.0, load_hurts="process")
    assert decide(switch)[0] == "holds"
    assert decide(switch, busy="busy")[0] == "inconclusive"
    # Processes ahead despite the load: decided.
    assert decide(handoff(4.0, 28.0, load_hurts="process"), busy="busy")[0] == "does not hold"


def test_faster_than_threads_but_not_than_serial_does_not_make_processes_suit_cpu_work() -> None:
    status, text = decide(cpu(1.05, 0.8))  # quiet: processes 1.05x serial
    assert status == "does not hold"
    assert "processes ahead of threads, but below 1.1x" in text
    status, text = decide(cpu(0.87, 0.76), busy="other processes kept 1.5 of 2 cores busy")
    assert status == "inconclusive"
    assert "but below 1.1x (the machine was busy" in text


def test_busy_machine_other_timings_need_a_twofold_gap() -> None:
    creation = Comparison("start", "us", spread(5000.0), spread(70.0), "lower", "thread")
    assert decide(creation, busy="busy")[0] == "holds"
    close = handoff(15.0, 9.0)  # 1.7x, no side named
    assert decide(close)[0] == "holds"
    status, text = decide(close, busy="other processes kept 1.5 of 2 cores busy")
    assert status == "inconclusive"
    assert "a 2x gap is needed" in text
    memory = Comparison("memory", "MiB", Spread.exact(3.1), Spread.exact(2.9), "lower", "thread")
    assert decide(memory)[0] == "inconclusive"  # 1.07x: too close, even for sizes
    sizes = Comparison(
        "memory", "MiB", Spread.exact(3.1), Spread.exact(0.015), "lower", "thread", timing=False
    )
    assert decide(sizes, busy="busy")[0] == "holds"  # load cannot move a size


def test_a_clear_difference_claim_within_its_band_does_not_hold() -> None:
    def locks(process: float, thread: float, width: float = 0.02) -> Comparison:
        return Comparison(
            "uncontended",
            "ns",
            spread(process, width),
            spread(thread, width),
            "lower",
            "thread",
            band=1.5,
        )

    status, text = decide(locks(62.0, 64.0))  # the same cost
    assert status == "does not hold"
    assert "within 1.5x of each other" in text
    assert decide(locks(90.0, 64.0))[0] == "does not hold"  # at most 1.46x apart
    assert decide(locks(100.0, 64.0))[0] == "holds"  # 1.56x, ranges apart
    assert decide(locks(130.0, 64.0))[0] == "holds"  # 2x, ranges apart
    assert decide(locks(140.0, 64.0), busy="busy")[0] == "holds"
    assert decide(locks(90.0, 64.0, width=0.2))[0] == "inconclusive"  # could be 1.5x or not
    assert decide(locks(40.0, 64.0))[0] == "does not hold"  # processes clearly ahead


def test_a_band_claim_reads_the_round_by_round_advantage_when_it_has_one() -> None:
    # Both locks' samples swing between 62 and 95 ns with the machine: the two spreads alone
    # cannot tell, the paired ratios can.
    swinging = Spread(70.0, 62.0, 95.0, 60.0, 96.0, 9)

    def locks(advantage: Spread) -> Comparison:
        return Comparison(
            "uncontended",
            "ns",
            swinging,
            swinging,
            "lower",
            "thread",
            band=1.5,
            advantage=advantage,
        )

    status, text = decide(locks(Spread(1.0, 0.97, 1.04, 0.9, 1.1, 9)))
    assert status == "does not hold"
    assert "threads' advantage round by round 1x [IQR 0.97-1.04, n=9]" in text
    assert "at most 1.04x ahead" in text
    assert decide(locks(Spread(2.0, 1.8, 2.2, 1.7, 2.3, 9)))[0] == "holds"
    assert decide(locks(Spread(0.6, 0.55, 0.65, 0.5, 0.7, 9)))[0] == "does not hold"
    assert decide(locks(Spread(1.4, 1.2, 1.7, 1.1, 1.8, 9)))[0] == "inconclusive"


def test_machine_busy() -> None:
    assert machine_busy(None, 2) is None
    assert machine_busy(QUIET, 2) is None
    assert machine_busy(BUSY, 2) == "other processes kept 1.5 of 2 cores busy"
    edge = Load(1.0, BUSY_OTHER_CORES * 2 + 0.01, 0.0, None, None)
    assert machine_busy(edge, 2) is not None
    stolen = Load(1.0, 0.0, 0.2, None, None)
    assert machine_busy(stolen, 2) == "the hypervisor stole 20% of the CPU time"
    assert Load(1.0, None, None, None, None).describe() == "not observable here"


def measurement(comparisons: tuple[Comparison, ...], holds: bool | None = True) -> Measurement:
    return Measurement(
        key="context_switching",
        process=Figure(4.0, "us", "hand-off"),
        thread=Figure(28.0, "us", "hand-off"),
        better="lower",
        holds=holds,
        finding="threads 28 us, processes 4 us",
        comparisons=comparisons,
        explanation="a ProcessChannel receiver spins on its own core",
    )


def test_settle_fills_in_status_verdict_and_why() -> None:
    settled = settle(measurement((handoff(4.0, 28.0, load_hurts="process"),)), QUIET, cores=2)
    assert settled.status == "does not hold"
    assert settled.holds is False
    assert settled.verdict == (
        "does not hold here: threads 28 us, processes 4 us. "
        "Why: a ProcessChannel receiver spins on its own core"
    )
    assert "processes ahead by 7.00x" in settled.details["decided by"]
    assert settled.details["machine meanwhile"].startswith("other processes 0.1 cores")
    busy = settle(measurement((handoff(15.0, 9.0, load_hurts="process"),)), BUSY, cores=2)
    assert busy.status == "inconclusive"
    assert busy.holds is None
    assert busy.verdict.startswith("inconclusive: ")
    assert "Why:" not in busy.verdict
    assert "(busy: other processes kept 1.5 of 2 cores busy)" in busy.details["machine meanwhile"]


def test_settle_rows_of_kind_and_several_comparisons() -> None:
    assert settle(measurement((), holds=None), QUIET, cores=2).status == "as stated"
    assert settle(measurement((), holds=True), BUSY, cores=2).status == "holds"
    assert settle(measurement((), holds=False), None, cores=2).status == "does not hold"
    io_ok = Comparison("I/O", "x", spread(1.9), spread(2.0), "higher", "thread", at_least=True)
    io_lost = Comparison("I/O", "x", spread(1.9), spread(1.1), "higher", "thread", at_least=True)
    assert settle(measurement((cpu(1.9, 1.0), io_ok)), QUIET, cores=2).status == "holds"
    assert settle(measurement((cpu(1.9, 1.0), io_lost)), QUIET, cores=2).status == "does not hold"
    assert settle(measurement((cpu(4.0, 1.0), io_lost)), QUIET, cores=2).status == "inconclusive"


def test_format_figure_units_and_grammar() -> None:
    assert format_figure(Figure(1.0, "hosts alive", "")) == "1 host alive"
    assert format_figure(Figure(0.0, "hosts alive", "")) == "0 hosts alive"
    assert format_figure(Figure(2.0, "interpreters", "")) == "2 interpreters"
    assert format_figure(Figure(1.0, "interpreters", "")) == "1 interpreter"
    assert format_figure(Figure(1.93, "x", "")) == "1.93x"
    assert format_figure(Figure(6837.0, "us", "")) == "6,837 us"


def row(key: str, m: Measurement) -> Row:
    return Row(next(a for a in ASPECTS if a.key == key), m)


def uses(status: str, process: float, thread: float) -> Measurement:
    return Measurement(
        key="use_cases",
        process=Figure(process, "x", ""),
        thread=Figure(thread, "x", ""),
        better="higher",
        holds=None,
        status=status,  # type: ignore[arg-type]
        comparisons=(
            cpu(process, thread),
            Comparison("I/O", "x", spread(1.9), spread(2.0), "higher", "thread", at_least=True),
        ),
    )


def test_summary_says_when_to_use_which_model() -> None:
    overhead = Measurement(
        key="overhead",
        process=Figure(3.1, "MiB", ""),
        thread=Figure(0.01, "MiB", ""),
        better="lower",
        holds=True,
        details={
            "per-task overhead, process pool": "80.0 us",
            "per-task overhead, thread pool": "20.0 us",
        },
    )
    creation = Measurement(
        key="creation_time",
        process=Figure(5000.0, "us", ""),
        thread=Figure(50.0, "us", ""),
        better="lower",
        holds=True,
    )
    crash = Measurement(
        key="crash_impact",
        process=Figure(1.0, "hosts alive", ""),
        thread=Figure(0.0, "hosts alive", ""),
        better="higher",
        holds=True,
        status="holds",
    )
    rows = [
        row("creation_time", creation),
        row("overhead", overhead),
        row("crash_impact", crash),
        row("use_cases", uses("holds", 1.9, 1.0)),
    ]
    lines = summary(rows)
    assert len(lines) == 4
    assert lines[0].startswith("CPU-bound pure Python: processes, one per core (1.9x")
    assert lines[1] == (
        "Waiting on I/O: threads (2.0x with 2 workers here, processes 1.9x; a thread starts "
        "100x faster)."
    )
    assert "Tasks shorter than about 0.8 ms" in lines[2]
    assert lines[3].startswith("Code that may crash, hang or leak: processes")
    unsure = summary([row("use_cases", uses("inconclusive", 1.1, 1.2))])
    assert "could not tell" in unsure[0]
    assert "measure again when the machine is quiet" in unsure[0]
    assert "run it serially" in summary([row("use_cases", uses("does not hold", 1.0, 1.0))])[0]
    assert summary([]) == []

"""``compare``: running the probes of the rows, rendering what they found, the JSON schema, and
the command line — with stand-in probes, so that this file tests the report, not the machine."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import attrs
import jsonschema
import pytest

from concurrency_kit.__main__ import main
from concurrency_kit.compare import ASPECTS, _report
from concurrency_kit.compare._measure import Figure, Measurement, Mode, Probe
from concurrency_kit.compare.probes import probe_for

SCHEMA = json.loads(files("concurrency_kit.compare").joinpath("compare.schema.json").read_text())


NO_INTERPRETERS = "interpreters need Python 3.14+ (this is a stand-in)"


def stand_in(key: str) -> Probe:
    """A probe that finds the same for every row; the first row has no interpreter figure."""

    def probe(mode: Mode) -> Measurement:
        first = key == ASPECTS[0].key
        return Measurement(
            key=key,
            process=Figure(2000.0 if mode == "full" else 1000.0, "us", "start to running"),
            thread=Figure(50.0, "us", "start to running"),
            better="lower",
            holds=True,
            finding="| a pipe in the verdict is escaped in Markdown",
            details={"spawn": "60 ms"},
            interpreter=None if first else Figure(8000.0, "us", "create to running"),
            interpreter_missing=NO_INTERPRETERS if first else "",
        )

    return probe


def broken(mode: Mode) -> Measurement:
    raise RuntimeError("the probe fell over")


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> dict[str, Probe | None]:
    """Stand-in probes for every row; a test may replace or remove some."""
    table: dict[str, Probe | None] = {aspect.key: stand_in(aspect.key) for aspect in ASPECTS}
    monkeypatch.setattr(_report, "probe_for", lambda key: table[key])
    return table


def test_every_row_is_run_in_table_order(probes: dict[str, Probe | None]) -> None:
    seen: list[str] = []
    rows = _report.run(mode="quick", progress=seen.append)
    assert [row.aspect.key for row in rows] == [aspect.key for aspect in ASPECTS]
    assert all(row.measurement is not None and row.error is None for row in rows)
    assert rows[0].measurement is not None
    assert rows[0].measurement.process.value == 1000.0  # the mode reached the probe
    assert rows[0].measurement.seconds >= 0
    assert len(seen) == 2 * len(ASPECTS)  # "measuring ..." and "measured ... in" per row
    assert seen[1].endswith(": holds")  # the status is in the progress line
    assert rows[0].measurement.verdict == "holds: | a pipe in the verdict is escaped in Markdown"
    assert "machine meanwhile" in rows[0].measurement.details


def test_rows_can_be_picked_and_unknown_keys_are_refused(probes: dict[str, Probe | None]) -> None:
    rows = _report.run(["use_cases", "creation_time"], "quick")
    assert [row.aspect.key for row in rows] == ["creation_time", "use_cases"]  # table order
    with pytest.raises(ValueError, match="no such row: nope"):
        _report.run(["nope"], "quick")


def test_a_failing_or_missing_probe_leaves_the_other_rows(probes: dict[str, Probe | None]) -> None:
    probes["overhead"] = broken
    probes["crash_impact"] = None
    rows = {row.aspect.key: row for row in _report.run(mode="quick")}
    assert rows["overhead"].measurement is None
    assert rows["overhead"].error == "the probe failed: RuntimeError: the probe fell over"
    assert rows["crash_impact"].error == "no probe yet"
    assert rows["definition"].measurement is not None


def test_renderings(probes: dict[str, Probe | None]) -> None:
    probes["overhead"] = None
    rows = _report.run(mode="quick")
    text = _report.compare_text(rows)
    assert "Creation Time" in text
    assert "measured: 1,000 us (start to running)" in text
    assert "not measured: no probe yet" in text
    markdown = _report.compare_markdown(rows)
    lines = markdown.splitlines()
    assert lines[0] == "| Aspect | Processes | Threads | Interpreters | On this machine |"
    assert "interpreter claim: " in text
    assert "measured: 8,000 us (create to running)" in text
    assert f"measured: not measured: {NO_INTERPRETERS}" in text
    # 8 ms is nearer the processes' 1 ms than the threads' 50 us: the rows that claim
    # interpreters resemble processes hold, the one that says threads does not.
    for aspect in ASPECTS[1:]:
        row = next(r for r in rows if r.aspect.key == aspect.key)
        if row.measurement is None:  # overhead: no probe here
            continue
        expected = "holds" if aspect.interpreter_like == "process" else "does not hold"
        assert row.measurement.interpreter_status == expected, aspect.key
    assert "interpreters: holds: interpreters 8,000 us" in text
    assert "<br>Interpreters: holds: " in markdown
    advice = _report.summary(rows)
    assert advice  # the stand-ins say "holds" for Use Cases and Crash Impact
    assert lines[2 + len(ASPECTS) :] == [
        "",
        "**So, for your machine**",
        "",
        *(f"- {line}" for line in advice),
    ]
    assert "So, for your machine" in text
    assert "holds: \\| a pipe" in markdown
    document = json.loads(_report.compare_json(rows, "quick"))
    jsonschema.validate(document, SCHEMA)
    assert document["schema"] == _report.SCHEMA
    assert document["machine"]["usable_cores"] >= 1
    assert document["summary"] == _report.summary(rows)
    first = document["rows"][0]["measured"]
    assert (first["status"], first["comparisons"]) == ("holds", [])
    assert (first["interpreter"], first["interpreter_missing"]) == (None, NO_INTERPRETERS)
    assert (first["interpreter_status"], first["interpreter_verdict"]) == (None, "")
    second = document["rows"][1]
    assert second["claims"]["interpreter"] == ASPECTS[1].interpreter.text
    assert second["interpreter_like"] == ASPECTS[1].interpreter_like
    assert second["measured"]["interpreter"]["value"] == 8000.0
    overhead = next(row for row in document["rows"] if row["key"] == "overhead")
    assert (overhead["measured"], overhead["error"]) == (None, "no probe yet")


def test_before_python_314_the_report_shows_two_models_and_says_why_once(
    probes: dict[str, Probe | None],
) -> None:
    def no_interpreters(key: str) -> Probe:
        def probe(mode: Mode) -> Measurement:
            found = stand_in(key)(mode)
            return attrs.evolve(found, interpreter=None, interpreter_missing=NO_INTERPRETERS)

        return probe

    for aspect in ASPECTS:
        probes[aspect.key] = no_interpreters(aspect.key)
    rows = _report.run(mode="quick")
    note = f"Interpreters, the table's third column, were not measured: {NO_INTERPRETERS}."
    text = _report.compare_text(rows, width=200)
    assert text.count(note) == 1
    assert "interpreter claim" not in text
    assert "interpreters:" not in text
    assert "  process  claim: " in text  # labelled as before the third column
    markdown = _report.compare_markdown(rows)
    lines = markdown.splitlines()
    assert lines[0] == "| Aspect | Processes | Threads | On this machine |"
    assert all(line.count(" | ") == 3 for line in lines[2 : 2 + len(ASPECTS)])
    assert note in lines
    document = json.loads(_report.compare_json(rows, "quick"))
    jsonschema.validate(document, SCHEMA)  # the JSON keeps every field: null and why
    assert document["rows"][3]["measured"]["interpreter_missing"] == NO_INTERPRETERS


def test_the_schema_rejects_what_it_should(probes: dict[str, Probe | None]) -> None:
    document: dict[str, Any] = json.loads(_report.compare_json(_report.run(mode="quick"), "quick"))
    document["rows"][0]["measured"]["better"] = "sideways"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, SCHEMA)


def test_command_line(
    probes: dict[str, Probe | None], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "compare.json"
    assert main(["compare", "--quick", "--rows", "creation_time,overhead", "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert "Creation Time" in captured.out
    assert "Overhead" in captured.out
    assert captured.out.startswith("Machine: ")
    assert "During the run" in captured.out
    assert "measuring Creation Time ..." in captured.err
    jsonschema.validate(json.loads(out.read_text()), SCHEMA)
    assert main(["compare", "--markdown", "--rows", "overhead"]) == 0
    assert capsys.readouterr().out.startswith("| Aspect |")
    probes["overhead"] = broken
    assert main(["compare", "--quick", "--rows", "overhead"]) == 1  # a row not measured
    assert main(["compare", "--rows", "nope"]) == 2
    assert "no such row: nope" in capsys.readouterr().err


def test_probe_for_finds_only_real_modules() -> None:
    assert probe_for("no_such_row") is None

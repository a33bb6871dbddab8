"""``compare --plot``: one panel per row, drawn to a file; refused clearly when it cannot be.

Rows here are made by hand, so that the file tests the drawing, not the machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import attrs
import pytest

from concurrency_kit.__main__ import main
from concurrency_kit.compare import ASPECTS, _report
from concurrency_kit.compare._measure import Comparison, Figure, Measurement, Mode, Spread
from concurrency_kit.compare._plot import PlotUnavailable, compare_plot
from concurrency_kit.compare._report import Row

pytest.importorskip("matplotlib")

DEFINITION, CREATION, OVERHEAD = ASPECTS[0], ASPECTS[3], ASPECTS[6]


def measured(key: str, finding: str, status: str = "holds") -> Measurement:
    return Measurement(
        key=key,
        process=Figure(6837.0, "us", "start to running, forkserver"),
        thread=Figure(52.2, "us", "start to running"),
        better="lower",
        holds=True,
        finding=finding,
        status=status,  # type: ignore[arg-type]
        comparisons=(
            Comparison(
                "start",
                "us",
                Spread(6837.0, 6000.0, 7000.0, 5000.0, 9000.0, 7),
                Spread(52.2, 50.0, 60.0, 40.0, 700.0, 20),
                "lower",
                "thread",
            ),
        ),
    )


def fact() -> Measurement:
    return Measurement(
        key=DEFINITION.key,
        process=Figure(2.0, "interpreters", "of 2 workers, not ours"),
        thread=Figure(0.0, "interpreters", "of 2 workers, not ours"),
        better="higher",
        holds=None,
        finding="2 process workers ran in 2 interpreters of their own",
    )


def rows() -> list[Row]:
    return [
        Row(DEFINITION, fact()),
        Row(CREATION, measured(CREATION.key, "a thread starts 131x faster")),
        Row(OVERHEAD, None, "the probe failed: OSError: no /proc here"),
    ]


@pytest.fixture(scope="module", autouse=True)
def _fonts_loaded(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Draw once before the leak check's first snapshot.

    matplotlib keeps the font files it has loaded open for the life of the process (a cache),
    which the per-test leak check would otherwise charge to whichever test draws first.
    """
    compare_plot(rows(), tmp_path_factory.mktemp("warm") / "table.png")


def test_svg_shows_every_row_its_figures_and_verdict(tmp_path: Path) -> None:
    out = tmp_path / "table.svg"
    compare_plot(rows(), out)
    svg = out.read_text(encoding="utf-8")
    assert svg.lstrip().startswith("<?xml")
    # matplotlib writes text as <!-- comment --> labels next to the glyph paths.
    for text in (
        "Creation Time",
        "holds: a thread starts 131x faster",
        "6,837 us",
        "52.2 us",
        "Overhead",
        "not measured: the probe failed: OSError: no /proc here",
    ):
        assert text in svg, text
    assert "interpreters, higher is better" not in svg  # a fact of kind is not "better"


def test_interpreters_get_a_third_bar_and_their_verdict(tmp_path: Path) -> None:
    with_interpreters = attrs.evolve(
        measured(CREATION.key, "a thread starts 131x faster"),
        interpreter=Figure(7901.0, "us", "create to running its first line"),
        interpreter_spread=Spread(7901.0, 7810.0, 7980.0, 7700.0, 8300.0, 30),
        interpreter_status="holds",
    )
    out = tmp_path / "table.svg"
    compare_plot([Row(CREATION, with_interpreters)], out)
    svg = out.read_text(encoding="utf-8")
    for text in (
        "Processes, threads and interpreters, measured on this machine",
        "interpreters: placed, not ranked",
        "7,901 us",
        "holds (interpreters: holds): a thread starts 131x faster",
    ):
        assert text in svg, text
    compare_plot(rows(), out)  # no interpreter figure anywhere: the two-model chart
    svg = out.read_text(encoding="utf-8")
    assert "Processes and threads, measured on this machine" in svg
    assert "placed, not ranked" not in svg


@pytest.mark.parametrize(("suffix", "magic"), [(".png", b"\x89PNG"), (".pdf", b"%PDF")])
def test_raster_and_pdf(tmp_path: Path, suffix: str, magic: bytes) -> None:
    out = tmp_path / f"table{suffix}"
    compare_plot(rows(), out)
    assert out.read_bytes().startswith(magic)


def test_bad_requests_are_refused_before_drawing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.png, \.svg, \.pdf"):
        compare_plot(rows(), tmp_path / "table.txt")
    with pytest.raises(ValueError, match="no rows"):
        compare_plot([], tmp_path / "table.png")
    assert list(tmp_path.iterdir()) == []


def test_without_matplotlib_the_error_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(PlotUnavailable, match=r"concurrency_kit\[plot\]"):
        compare_plot(rows(), tmp_path / "table.png")


def test_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def probe(mode: Mode) -> Measurement:
        return measured(CREATION.key, f"measured in {mode} mode")

    monkeypatch.setattr(_report, "probe_for", lambda key: probe)
    out = tmp_path / "table.svg"
    assert main(["compare", "--quick", "--rows", CREATION.key, "--plot", str(out)]) == 0
    assert "measured in quick mode" in out.read_text(encoding="utf-8")

    capsys.readouterr()
    assert main(["compare", "--rows", CREATION.key, "--plot", str(tmp_path / "t.txt")]) == 2
    captured = capsys.readouterr()
    assert "use one of .png, .svg, .pdf" in captured.err
    assert "measuring" not in captured.err  # refused before any probe ran

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["compare", "--rows", CREATION.key, "--plot", str(tmp_path / "t.png")]) == 2
    captured = capsys.readouterr()
    assert "concurrency_kit[plot]" in captured.err
    assert 'pip install -e ".[plot]"' in captured.err  # works from a clone too
    assert "measuring" not in captured.err  # refused before any probe ran

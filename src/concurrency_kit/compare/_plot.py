"""``compare --plot``: one small chart per row, process against thread, with the verdict.

The rows' units differ (microseconds, msgs/s, MiB, a speed-up), so each row gets its own
panel with its own axis, one panel under the other so that the chart stays legible at the width
of a page: two bars, the figures written on them, whiskers for the interquartile range where
there were several samples, and the status and the figures that decided it under the title.
The colours, explained by a legend: the better bar of a decided row dark and the other light;
both grey when the run could not tell (inconclusive); both neutral when the row is a fact of
kind, where neither figure is "better". Where interpreters were measured (Python 3.14+), a
third bar in a colour of its own shows their figure: it is placed against the other two, never
ranked, and the title gives its verdict beside the row's. The chart needs matplotlib, which
the ``plot`` extra installs; nothing else in the package imports it.
"""

from __future__ import annotations

import os
import textwrap
from typing import TYPE_CHECKING

from concurrency_kit.compare._measure import Figure, Measurement, Spread
from concurrency_kit.compare._report import Row, format_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["PLOT_FORMATS", "PLOT_HINT", "PlotUnavailable", "compare_plot"]

PLOT_FORMATS = (".png", ".svg", ".pdf")
"""The file types ``--plot`` writes, chosen by the path's suffix."""

PLOT_HINT = (
    "--plot needs matplotlib, which is not installed: pip install matplotlib "
    '(or pip install "concurrency_kit[plot]"; in a clone of concurrency_kit, '
    'pip install -e ".[plot]")'
)
"""What to do when matplotlib is missing, for an installed package and for a clone."""

_BETTER, _WORSE, _UNDECIDED, _NEUTRAL = "#2f6f9f", "#a9c4d9", "#b0b0b0", "#c9b27c"
_INTERPRETER = "#9b7bb8"
_PANEL_SIZE = (8.0, 2.1)  # inches per panel: one column, legible at page width
_VERDICT_LINES = 3  # the whole verdict is in the text and JSON forms
_WRAP = 88


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed: ``--plot`` needs the ``plot`` extra."""


def compare_plot(rows: list[Row], path: str | os.PathLike[str]) -> None:
    """Draw ``rows`` (as returned by ``run``) to ``path``, a ``.png``, ``.svg`` or ``.pdf`` file.

    A row that was not measured gets a panel that says why, so the chart always shows the
    whole selection.

    Raises:
        ValueError: ``path`` has another suffix, or ``rows`` is empty.
        PlotUnavailable: matplotlib is not installed.
    """
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in PLOT_FORMATS:
        raise ValueError(
            f"cannot plot to {os.fspath(path)!r}: use one of {', '.join(PLOT_FORMATS)}"
        )
    if not rows:
        raise ValueError("no rows to plot")
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: never open a window, never need a display
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotUnavailable(PLOT_HINT) from exc
    from matplotlib.patches import Patch

    figure, axes_grid = plt.subplots(
        len(rows),
        1,
        figsize=(_PANEL_SIZE[0], _PANEL_SIZE[1] * len(rows) + 1.0),
        squeeze=False,
    )
    try:
        panels = [line[0] for line in axes_grid]
        for axes, row in zip(panels, rows, strict=True):
            if row.measurement is None:
                _draw_unmeasured(axes, row)
            else:
                _draw_measured(axes, row.aspect.title, row.measurement)
        height = _PANEL_SIZE[1] * len(rows) + 1.0
        interpreters = any(
            row.measurement is not None and row.measurement.interpreter is not None for row in rows
        )
        models = "Processes, threads and interpreters" if interpreters else "Processes and threads"
        figure.suptitle(f"{models}, measured on this machine", fontsize=14, y=1 - 0.1 / height)
        handles = [
            Patch(color=_BETTER, label="better here"),
            Patch(color=_WORSE, label="worse here"),
            Patch(color=_UNDECIDED, label="inconclusive: cannot tell"),
            Patch(color=_NEUTRAL, label="a fact, neither better"),
        ]
        if interpreters:
            handles.append(Patch(color=_INTERPRETER, label="interpreters: placed, not ranked"))
        figure.legend(
            handles=handles,
            loc="upper center",
            ncol=3 if interpreters else 4,
            fontsize=10,
            frameon=False,
            bbox_to_anchor=(0.5, 1 - 0.4 / height),
        )
        figure.tight_layout(rect=(0, 0, 1, 1 - 0.75 / height))
        figure.savefig(path, dpi=110)
    finally:
        plt.close(figure)


def _draw_measured(axes: Axes, title: str, measurement: Measurement) -> None:
    figures = [("process", measurement.process), ("thread", measurement.thread)]
    values = [figure.value for _, figure in figures]
    neutral = not measurement.comparisons
    if neutral:
        colours = [_NEUTRAL, _NEUTRAL]
    elif measurement.status == "inconclusive":
        colours = [_UNDECIDED, _UNDECIDED]
    else:
        winner = _better_index(values, measurement.better)
        colours = [
            _BETTER if winner is None or index == winner else _WORSE  # a tie: neither is worse
            for index in range(len(figures))
        ]
    if measurement.interpreter is not None:  # placed against the two, never better or worse
        figures.append(("interpreter", measurement.interpreter))
        values.append(measurement.interpreter.value)
        colours.append(_INTERPRETER)
    bars = axes.barh([label for label, _ in figures], values, color=colours)
    spreads = _spreads(measurement)
    if spreads is not None:
        lows = [max(0.0, v - s.low) for v, s in zip(values, spreads, strict=True)]
        highs = [max(0.0, s.high - v) for v, s in zip(values, spreads, strict=True)]
        axes.errorbar(
            values,
            list(range(len(values))),
            xerr=[lows, highs],
            fmt="none",
            ecolor="#333333",
            capsize=3,
            lw=1,
        )
    ends = [bar.get_width() for bar in bars]
    if spreads is not None:  # the label goes right of the whisker too
        ends = [max(end, s.high) for end, s in zip(ends, spreads, strict=True)]
    for bar, end, (_, figure) in zip(bars, ends, figures, strict=True):
        axes.annotate(
            _label(figure),
            xy=(end, bar.get_y() + bar.get_height() / 2),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=9,
        )
    axes.invert_yaxis()  # process on top, as in the table
    top = max(max(values), *(s.high for s in spreads or ()), 1e-12)
    axes.set_xlim(0, top * 2.6)  # room for the labels on the bars
    axes.set_xticks([])  # the figures are written on the bars
    unit = measurement.process.unit
    axes.set_xlabel(unit if neutral else f"{unit}, {measurement.better} is better", fontsize=9)
    axes.tick_params(labelsize=10)
    verdict = f"{measurement.status}: {measurement.finding}"
    if measurement.interpreter_status is not None:
        verdict = f"{measurement.status} (interpreters: {measurement.interpreter_status}): "
        verdict += measurement.finding
    _title(axes, title, verdict)


def _spreads(measurement: Measurement) -> tuple[Spread, ...] | None:
    """The first comparison's spreads (and the interpreters' one, when their bar is drawn),
    when they are the figures drawn and were sampled."""
    if not measurement.comparisons:
        return None
    c = measurement.comparisons[0]
    if c.unit != measurement.process.unit or max(c.process.n, c.thread.n) < 2:
        return None
    if measurement.interpreter is None:
        return c.process, c.thread
    if measurement.interpreter_spread is None:
        return None
    return c.process, c.thread, measurement.interpreter_spread


def _draw_unmeasured(axes: Axes, row: Row) -> None:
    axes.set_axis_off()
    axes.text(0.5, 0.4, f"not measured: {row.error}", ha="center", va="center", fontsize=10)
    _title(axes, row.aspect.title, "")


def _title(axes: Axes, title: str, verdict: str) -> None:
    lines = textwrap.wrap(verdict, _WRAP, max_lines=_VERDICT_LINES, placeholder=" ...")
    axes.set_title(title, fontsize=12, loc="left", fontweight="bold", pad=4 + 12 * len(lines))
    if lines:
        axes.text(0.0, 1.02, "\n".join(lines), transform=axes.transAxes, fontsize=9, va="bottom")


def _better_index(values: list[float], better: str) -> int | None:
    """Which bar wins, or ``None`` for a tie (within 5 %)."""
    low, high = sorted(values)
    if high <= low * 1.05:
        return None
    pick = min if better == "lower" else max
    return values.index(pick(values))


def _label(figure: Figure) -> str:
    return f"{format_figure(figure)}  {figure.what}"

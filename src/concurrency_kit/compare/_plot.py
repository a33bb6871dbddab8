"""``compare --plot``: one small chart per row, process against thread, with the verdict.

The rows' units differ (microseconds, MB/s, MiB, a speed-up), so each row gets its own panel
with its own axis: two bars, the better one in a stronger colour, the figures written on them
and the verdict under the title. The chart needs matplotlib, which the ``plot`` extra installs
(``pip install "concurrency_kit[plot]"``); nothing else in the package imports it.
"""

from __future__ import annotations

import math
import os
import textwrap
from typing import TYPE_CHECKING

from concurrency_kit.compare._measure import Figure, Measurement
from concurrency_kit.compare._report import Row, format_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["PLOT_FORMATS", "PlotUnavailable", "compare_plot"]

PLOT_FORMATS = (".png", ".svg", ".pdf")
"""The file types ``--plot`` writes, chosen by the path's suffix."""

_BETTER, _WORSE = "#2f6f9f", "#a9c4d9"
_COLUMNS = 2
_PANEL_SIZE = (6.8, 2.5)  # inches per panel: wide enough for a wrapped verdict
_VERDICT_LINES = 4  # the whole verdict is in the text and JSON forms


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
        raise PlotUnavailable(
            'plotting needs matplotlib: pip install "concurrency_kit[plot]"'
        ) from exc

    panel_rows = math.ceil(len(rows) / _COLUMNS)
    figure, axes_grid = plt.subplots(
        panel_rows,
        _COLUMNS,
        figsize=(_PANEL_SIZE[0] * _COLUMNS, _PANEL_SIZE[1] * panel_rows),
        squeeze=False,
    )
    try:
        panels = [axes for line in axes_grid for axes in line]
        for axes, row in zip(panels, rows, strict=False):  # spare panels are hidden below
            if row.measurement is None:
                _draw_unmeasured(axes, row)
            else:
                _draw_measured(axes, row.aspect.title, row.measurement)
        for axes in panels[len(rows) :]:
            axes.set_visible(False)
        figure.suptitle("Processes and threads, measured on this machine", fontsize=13)
        figure.tight_layout()
        figure.savefig(path)
    finally:
        plt.close(figure)


def _draw_measured(axes: Axes, title: str, measurement: Measurement) -> None:
    figures = [("process", measurement.process), ("thread", measurement.thread)]
    values = [figure.value for _, figure in figures]
    winner = _better_index(values, measurement.better)
    colours = [_BETTER if index == winner else _WORSE for index in range(len(figures))]
    bars = axes.barh([label for label, _ in figures], values, color=colours)
    for bar, (_, figure) in zip(bars, figures, strict=True):
        axes.annotate(
            _label(figure),
            xy=(bar.get_width(), bar.get_y() + bar.get_height() / 2),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
        )
    axes.invert_yaxis()  # process on top, as in the table
    axes.set_xlim(0, max(max(values), 1e-12) * 2.4)  # room for the labels on the bars
    axes.set_xticks([])  # the figures are written on the bars
    unit = measurement.process.unit
    axes.set_xlabel(f"{unit}, {measurement.better} is better", fontsize=8)
    axes.tick_params(labelsize=8)
    _title(axes, title, measurement.verdict)


def _draw_unmeasured(axes: Axes, row: Row) -> None:
    axes.set_axis_off()
    axes.text(0.5, 0.4, f"not measured: {row.error}", ha="center", va="center", fontsize=8)
    _title(axes, row.aspect.title, "")


def _title(axes: Axes, title: str, verdict: str) -> None:
    lines = textwrap.wrap(verdict, 95, max_lines=_VERDICT_LINES, placeholder=" ...")
    axes.set_title("\n".join([title, *lines]), fontsize=8, loc="left")


def _better_index(values: list[float], better: str) -> int | None:
    """Which bar wins, or ``None`` for a tie."""
    if values[0] == values[1]:
        return None
    pick = min if better == "lower" else max
    return values.index(pick(values))


def _label(figure: Figure) -> str:
    return f"{format_figure(figure)}  {figure.what}"

"""``compare``: run the probes of the table's rows and render the table with what they found.

The JSON form is described by ``compare.schema.json`` (next to this module, JSON Schema
draft 2020-12); its ``schema`` field names the version, ``concurrency_kit.compare/1``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import textwrap
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from concurrency_kit.compare._measure import Figure, Measurement, Mode, timed
from concurrency_kit.compare._table import ASPECTS, Aspect
from concurrency_kit.compare.probes import probe_for

__all__ = [
    "SCHEMA",
    "Row",
    "compare_json",
    "compare_markdown",
    "compare_text",
    "format_figure",
    "run",
]

SCHEMA = "concurrency_kit.compare/1"
"""The version of the JSON form (see ``compare.schema.json``)."""


@attrs.frozen
class Row:
    """A row of the table and what its probe found.

    Attributes:
        aspect: the row.
        measurement: the probe's finding; ``None`` if there is no probe yet or it failed.
        error: why there is no measurement (``None`` when there is one).
    """

    aspect: Aspect
    measurement: Measurement | None
    error: str | None = None


def run(
    keys: Iterable[str] | None = None,
    mode: Mode = "full",
    progress: Callable[[str], object] | None = None,
) -> list[Row]:
    """Run the probes of the rows ``keys`` (all rows when ``None``), in table order.

    A probe that fails does not stop the others: its row carries the error.

    Raises:
        ValueError: a key names no row.
    """
    known = {aspect.key: aspect for aspect in ASPECTS}
    wanted = list(known) if keys is None else list(keys)
    unknown = [key for key in wanted if key not in known]
    if unknown:
        raise ValueError(f"no such row: {', '.join(unknown)} (rows: {', '.join(known)})")
    rows = []
    for aspect in ASPECTS:
        if aspect.key not in wanted:
            continue
        probe = probe_for(aspect.key)
        if probe is None:
            rows.append(Row(aspect, None, "no probe yet"))
            continue
        if progress is not None:
            progress(f"measuring {aspect.title} ...")
        try:
            measurement = timed(probe, mode)
        except Exception as exc:  # one broken probe must not hide the other rows
            rows.append(Row(aspect, None, f"the probe failed: {type(exc).__name__}: {exc}"))
            continue
        if progress is not None:
            progress(f"measured {aspect.title} in {measurement.seconds:.1f} s")
        rows.append(Row(aspect, measurement))
    return rows


def format_figure(figure: Figure) -> str:
    """A figure as text: ``"12.3 us"``, ``"1,234 MB/s"``."""
    value = figure.value
    text = f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{text} {figure.unit}"


def compare_text(rows: list[Row], width: int = 100) -> str:
    """The table with measurements, for a terminal."""
    out = []
    for row in rows:
        aspect = row.aspect
        out.append(f"{aspect.title}")
        out.append("-" * len(aspect.title))
        m = row.measurement
        for model, claim in (("process", aspect.process), ("thread", aspect.thread)):
            line = f"  {model:8} claim: {claim.text}"
            out.extend(textwrap.wrap(line, width, subsequent_indent=" " * 18))
            if m is not None:
                figure = m.process if model == "process" else m.thread
                out.append(f"  {'':8} measured: {format_figure(figure)} ({figure.what})")
        if m is None:
            out.append(f"  not measured: {row.error}")
        else:
            out.extend(textwrap.wrap(f"  verdict: {m.verdict}", width, subsequent_indent="    "))
            for name, text in m.details.items():
                out.extend(textwrap.wrap(f"    {name}: {text}", width, subsequent_indent="      "))
        out.append("")
    return "\n".join(out)


def compare_markdown(rows: list[Row]) -> str:
    """The table with measurements, as a Markdown table."""
    lines = [
        "| Aspect | Processes | Threads | On this machine |",
        "| --- | --- | --- | --- |",
    ]
    for row in rows:
        m = row.measurement
        cells = [row.aspect.title]
        for model, claim in (("process", row.aspect.process), ("thread", row.aspect.thread)):
            text = claim.text
            if m is not None:
                figure = m.process if model == "process" else m.thread
                text += f" **{format_figure(figure)}** ({figure.what})"
            cells.append(text)
        cells.append(m.verdict if m is not None else f"not measured: {row.error}")
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _figure_json(figure: Figure) -> dict[str, Any]:
    return {"value": figure.value, "unit": figure.unit, "what": figure.what}


def compare_json(rows: list[Row], mode: Mode) -> str:
    """The table with measurements, in the JSON form of ``compare.schema.json``."""
    out_rows = []
    for row in rows:
        aspect, m = row.aspect, row.measurement
        out_rows.append(
            {
                "key": aspect.key,
                "title": aspect.title,
                "claims": {"process": aspect.process.text, "thread": aspect.thread.text},
                "classes": {
                    "process": list(aspect.process.classes),
                    "thread": list(aspect.thread.classes),
                },
                "measured": None
                if m is None
                else {
                    "process": _figure_json(m.process),
                    "thread": _figure_json(m.thread),
                    "better": m.better,
                    "holds": m.holds,
                    "verdict": m.verdict,
                    "details": dict(m.details),
                    "seconds": m.seconds,
                },
                "error": row.error,
            }
        )
    document = {
        "schema": SCHEMA,
        "mode": mode,
        "machine": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "gil": getattr(sys, "_is_gil_enabled", lambda: True)(),
        },
        "rows": out_rows,
    }
    return json.dumps(document, indent=2) + "\n"

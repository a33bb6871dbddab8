"""``compare``: run the probes of the table's rows and render the table with what they found.

The JSON form is described by ``compare.schema.json`` (next to this module, JSON Schema
draft 2020-12); its ``schema`` field names the version, ``concurrency_kit.compare/2`` (version 2
added the interpreter column).
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

from concurrency_kit.compare._measure import (
    BUSY_MARGIN,
    MARGIN,
    Figure,
    Load,
    LoadMeter,
    Measurement,
    Mode,
    Spread,
    machine_busy,
    timed,
    usable_cores,
)
from concurrency_kit.compare._table import ASPECTS, Aspect
from concurrency_kit.compare.probes import probe_for

__all__ = [
    "SCHEMA",
    "Row",
    "compare_json",
    "compare_markdown",
    "compare_text",
    "format_figure",
    "machine",
    "run",
    "summary",
]

SCHEMA = "concurrency_kit.compare/2"
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
    meter: LoadMeter | None = None,
) -> list[Row]:
    """Run the probes of the rows ``keys`` (all rows when ``None``), in table order.

    A probe that fails does not stop the others: its row carries the error. ``meter``, if
    given, is started here, before the first probe (the caller stops it to read the load of
    the whole run).

    Raises:
        ValueError: a key names no row.
    """
    known = {aspect.key: aspect for aspect in ASPECTS}
    wanted = list(known) if keys is None else list(keys)
    unknown = [key for key in wanted if key not in known]
    if unknown:
        raise ValueError(f"no such row: {', '.join(unknown)} (rows: {', '.join(known)})")
    rows = []
    if meter is not None:
        meter.start()
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
            measurement = timed(probe, mode, aspect.interpreter_like)
        except Exception as exc:  # one broken probe must not hide the other rows
            rows.append(Row(aspect, None, f"the probe failed: {type(exc).__name__}: {exc}"))
            continue
        if progress is not None:
            progress(
                f"measured {aspect.title} in {measurement.seconds:.1f} s: {measurement.status}"
            )
        rows.append(Row(aspect, measurement))
    return rows


_SINGULAR = {
    "hosts alive": "host alive",
    "interpreters": "interpreter",
    "lines": "line",
    "writes": "write",
}


def format_figure(figure: Figure) -> str:
    """A figure as text: ``"12.3 us"``, ``"1,234 MiB/s"``, ``"1 host alive"``."""
    value = figure.value
    text = f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    unit = _SINGULAR.get(figure.unit, figure.unit) if value == 1 else figure.unit
    return f"{text}x" if unit == "x" else f"{text} {unit}"


def machine(load: Load | None = None) -> dict[str, Any]:
    """What the machine is, and how busy it was over the whole run (``load``)."""
    try:
        affinity: int | None = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        affinity = None
    cores = usable_cores()
    found: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "gil": getattr(sys, "_is_gil_enabled", lambda: True)(),
        "affinity": affinity,
        "usable_cores": cores,
    }
    if load is not None:
        found["load"] = {
            "seconds": load.seconds,
            "other_cores": load.other_cores,
            "steal": load.steal,
            "load_before": load.load_before,
            "load_after": load.load_after,
        }
        found["busy"] = machine_busy(load, cores)
    return found


def machine_text(load: Load | None) -> str:
    """The machine in a paragraph: cores, load, and what it means for the verdicts."""
    m = machine(load)
    lines = [
        f"Machine: {m['implementation']} {m['python']} ({'GIL' if m['gil'] else 'free-threaded'}), "
        f"{m['cpus']} CPUs, {m['usable_cores']} usable by this process; {m['platform']}"
    ]
    if load is not None:
        lines.append(f"During the run ({load.seconds:.0f} s): {load.describe()}.")
        if m["busy"]:
            lines.append(
                f"The machine was busy ({m['busy']}): where load slows one model more, that "
                f"model losing proves nothing; other timings needed a {BUSY_MARGIN:g}x gap; rows "
                "that fell short say inconclusive."
            )
        else:
            lines.append(
                f"Quiet enough: a timing verdict needed a {MARGIN:g}x gap with the "
                "interquartile ranges apart."
            )
    return "\n".join(
        line for text in lines for line in textwrap.wrap(text, 100, subsequent_indent="  ")
    )


def _detail_number(measurement: Measurement, name: str) -> float | None:
    """The leading number of a detail ("58.0 us" -> 58.0), or ``None``."""
    text = measurement.details.get(name, "")
    try:
        return float(text.split()[0].replace(",", ""))
    except (IndexError, ValueError):
        return None


def summary(rows: list[Row]) -> list[str]:
    """ "So, for your machine": when to use which model, from the rows measured (<= 5 lines;
    the fifth only where interpreters were measured)."""
    found = {row.aspect.key: row.measurement for row in rows if row.measurement is not None}
    lines = []
    uses = found.get("use_cases")
    if uses is not None:
        p, t = uses.process.value, uses.thread.value
        if uses.status == "holds":
            lines.append(
                f"CPU-bound pure Python: processes, one per core ({p:.1f}x with 2 workers here; "
                f"threads {t:.1f}x)."
            )
        elif uses.status == "does not hold":
            lines.append(
                f"CPU-bound pure Python: processes gained only {p:.1f}x here (threads {t:.1f}x): "
                "with no free core, run it serially or give each task more work."
            )
        else:
            lines.append(
                f"CPU-bound pure Python: processes should win, but this run could not tell "
                f"({p:.1f}x against threads {t:.1f}x; see Use Cases); measure again when the "
                "machine is quiet."
            )
        if uses.interpreter is not None and uses.interpreter_status == "holds":
            lines.append(
                f"The same, where a crash need not be contained and every import loads in a "
                f"subinterpreter (not numpy): interpreters, {uses.interpreter.value:.1f}x here, in "
                "one process."
            )
        if len(uses.comparisons) > 1:
            io = uses.comparisons[1]
            creation = found.get("creation_time")
            cheaper = (
                f"; a thread starts {creation.process.value / creation.thread.value:,.0f}x faster"
                if creation is not None and creation.thread.value > 0
                else ""
            )
            lines.append(
                f"Waiting on I/O: threads ({io.thread.median:.1f}x with 2 workers here, processes "
                f"{io.process.median:.1f}x{cheaper})."
            )
    overhead = found.get("overhead")
    if overhead is not None:
        per_process = _detail_number(overhead, "per-task overhead, process pool")
        per_thread = _detail_number(overhead, "per-task overhead, thread pool")
        if per_process is not None and per_thread is not None:
            lines.append(
                f"Tasks shorter than about {10 * max(per_process, per_thread) / 1e3:.1g} ms: a "
                f"task costs {per_process:.0f} us on a process pool and {per_thread:.0f} us on a "
                "thread pool, so batch them (map's chunksize) or run them serially."
            )
    crash = found.get("crash_impact")
    if crash is not None and crash.status == "holds":
        lines.append(
            "Code that may crash, hang or leak: processes (here a segfault killed the whole "
            "thread host, and only one task of the process pool)."
        )
    return lines[:5]


MODELS = ("process", "thread", "interpreter")
"""The table's columns, in order."""


def _measured(m: Measurement, model: str) -> str:
    """A model's figure with what it is, or why the interpreter has none."""
    figure = {"process": m.process, "thread": m.thread, "interpreter": m.interpreter}[model]
    if figure is None:
        return f"not measured: {m.interpreter_missing or 'no figure for this row'}"
    return f"{format_figure(figure)} ({figure.what})"


def _models_measured(rows: list[Row]) -> tuple[tuple[str, ...], str]:
    """The columns to print, and why the interpreters' is left out ("" when it is printed).

    Before Python 3.14 no row has an interpreter figure: the report then shows the two models
    it measured, as it did before the third column, and says once why.
    """
    measured = [row.measurement for row in rows if row.measurement is not None]
    if not measured or any(m.interpreter is not None for m in measured):
        return MODELS, ""
    why = next((m.interpreter_missing for m in measured if m.interpreter_missing), "")
    return MODELS[:2], why or "no probe measured them"


def compare_text(rows: list[Row], width: int = 100, load: Load | None = None) -> str:
    """The table with measurements, for a terminal: the machine, the rows, then a summary.

    Each row gives the three claims with their figures, the verdict on the seed's claim
    (processes against threads), and where the interpreters stand against their claim; where
    no interpreter was measured (before Python 3.14), the two models and one line saying why.
    """
    models, left_out = _models_measured(rows)
    out = [machine_text(load), ""]
    if left_out:
        note = f"Interpreters, the table's third column, were not measured: {left_out}."
        out += [*textwrap.wrap(note, width, subsequent_indent="  "), ""]
    for row in rows:
        aspect = row.aspect
        out.append(f"{aspect.title}")
        out.append("-" * len(aspect.title))
        m = row.measurement
        label = max(8, *map(len, models))
        for model in models:
            claim = getattr(aspect, model)
            line = f"  {model:{label}} claim: {claim.text}"
            out.extend(textwrap.wrap(line, width, subsequent_indent=" " * (label + 10)))
            if m is not None:
                out.extend(
                    textwrap.wrap(
                        f"  {'':{label}} measured: {_measured(m, model)}",
                        width,
                        subsequent_indent=" " * (label + 13),
                    )
                )
        if m is None:
            out.append(f"  not measured: {row.error}")
        else:
            out.extend(textwrap.wrap(f"  verdict: {m.verdict}", width, subsequent_indent="    "))
            if m.interpreter_verdict:
                out.extend(
                    textwrap.wrap(
                        f"  interpreters: {m.interpreter_verdict}", width, subsequent_indent="    "
                    )
                )
            for name, text in m.details.items():
                out.extend(textwrap.wrap(f"    {name}: {text}", width, subsequent_indent="      "))
        out.append("")
    lines = summary(rows)
    if lines:
        out.append("So, for your machine")
        out.append("--------------------")
        for line in lines:
            out.extend(textwrap.wrap(f"- {line}", width, subsequent_indent="  "))
        out.append("")
    return "\n".join(out)


def compare_markdown(rows: list[Row]) -> str:
    """The table with measurements, as a Markdown table (the interpreters' column only where
    they were measured)."""
    models, left_out = _models_measured(rows)
    headings = ["Aspect", "Processes", "Threads", "Interpreters"][: len(models) + 1]
    lines = [
        "| " + " | ".join([*headings, "On this machine"]) + " |",
        "| " + " | ".join(["---"] * (len(headings) + 1)) + " |",
    ]
    for row in rows:
        m = row.measurement
        cells = [row.aspect.title]
        for model in models:
            text = getattr(row.aspect, model).text
            if m is not None:
                figure = getattr(m, model)
                text += (
                    f" **{format_figure(figure)}** ({figure.what})"
                    if figure is not None
                    else f" (not measured: {m.interpreter_missing or 'no figure for this row'})"
                )
            cells.append(text)
        if m is None:
            cells.append(f"not measured: {row.error}")
        elif m.interpreter_verdict:
            cells.append(f"{m.verdict}<br>Interpreters: {m.interpreter_verdict}")
        else:
            cells.append(m.verdict)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    if left_out:
        lines += ["", f"Interpreters, the table's third column, were not measured: {left_out}."]
    advice = summary(rows)
    if advice:
        lines += ["", "**So, for your machine**", "", *(f"- {line}" for line in advice)]
    return "\n".join(lines) + "\n"


def _figure_json(figure: Figure) -> dict[str, Any]:
    return {"value": figure.value, "unit": figure.unit, "what": figure.what}


def _spread_json(spread: Spread) -> dict[str, Any]:
    return attrs.asdict(spread)


def compare_json(rows: list[Row], mode: Mode, load: Load | None = None) -> str:
    """The table with measurements, in the JSON form of ``compare.schema.json``."""
    out_rows = []
    for row in rows:
        aspect, m = row.aspect, row.measurement
        out_rows.append(
            {
                "key": aspect.key,
                "title": aspect.title,
                "claims": {model: getattr(aspect, model).text for model in MODELS},
                "classes": {model: list(getattr(aspect, model).classes) for model in MODELS},
                "interpreter_like": aspect.interpreter_like,
                "measured": None
                if m is None
                else {
                    "process": _figure_json(m.process),
                    "thread": _figure_json(m.thread),
                    "interpreter": None if m.interpreter is None else _figure_json(m.interpreter),
                    "interpreter_spread": None
                    if m.interpreter_spread is None
                    else _spread_json(m.interpreter_spread),
                    "interpreter_missing": m.interpreter_missing,
                    "interpreter_status": m.interpreter_status,
                    "interpreter_verdict": m.interpreter_verdict,
                    "better": m.better,
                    "holds": m.holds,
                    "status": m.status,
                    "finding": m.finding,
                    "verdict": m.verdict,
                    "comparisons": [
                        {
                            "name": c.name,
                            "unit": c.unit,
                            "process": _spread_json(c.process),
                            "thread": _spread_json(c.thread),
                            "better": c.better,
                            "favoured": c.favoured,
                            "timing": c.timing,
                            "ceiling": c.ceiling,
                            "at_least": c.at_least,
                            "load_hurts": c.load_hurts,
                            "floor": c.floor,
                            "band": c.band,
                            "advantage": None if c.advantage is None else _spread_json(c.advantage),
                        }
                        for c in m.comparisons
                    ],
                    "details": dict(m.details),
                    "seconds": m.seconds,
                },
                "error": row.error,
            }
        )
    document = {
        "schema": SCHEMA,
        "mode": mode,
        "machine": machine(load),
        "rows": out_rows,
        "summary": summary(rows),
    }
    return json.dumps(document, indent=2) + "\n"

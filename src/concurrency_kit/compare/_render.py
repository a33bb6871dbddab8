"""Renderers of the table for the terminal: plain text, Markdown and JSON."""

from __future__ import annotations

import json
import shutil
import textwrap

import attrs

from concurrency_kit.compare._table import ASPECTS, Aspect, Claim

NOT_IMPLEMENTED = "not yet implemented"


def _classes(claim: Claim) -> str:
    return ", ".join(claim.classes) if claim.implemented else NOT_IMPLEMENTED


_LIKE = {"process": "processes", "thread": "threads", "between": "between the two"}


def _claims(aspect: Aspect) -> tuple[tuple[str, Claim], ...]:
    """The row's claims, one per column: process, thread, interpreter."""
    return (
        ("process", aspect.process),
        ("thread", aspect.thread),
        ("interpreter", aspect.interpreter),
    )


def render_text(aspects: tuple[Aspect, ...] = ASPECTS, width: int | None = None) -> str:
    """The table as wrapped plain text, one block per row."""
    if width is None:
        width = min(100, shutil.get_terminal_size((100, 24)).columns)
    label_width = 13
    wrap_width = max(40, width - label_width - 2)
    lines = [f"Processes, threads and interpreters: {len(aspects)} aspects", ""]
    for aspect in aspects:
        lines.append(f"{aspect.title}  [concurrency_kit.{aspect.package}]")
        for model, claim in _claims(aspect):
            wrapped = textwrap.wrap(claim.text, wrap_width) or [""]
            lines.append(f"  {model:<{label_width}}{wrapped[0]}")
            lines.extend(f"  {'':<{label_width}}{rest}" for rest in wrapped[1:])
            lines.append(f"  {'':<{label_width}}classes: {_classes(claim)}")
        lines.append(
            f"  {'':<{label_width}}interpreters resemble: {_LIKE[aspect.interpreter_like]}"
        )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render_markdown(aspects: tuple[Aspect, ...] = ASPECTS) -> str:
    """The table as a Markdown table."""
    lines = [
        "| Aspect | Process | Process classes | Thread | Thread classes | Interpreter "
        "| Interpreter classes |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in aspects:
        lines.append(
            f"| **{a.title}** | {a.process.text} | {_classes(a.process)} | "
            f"{a.thread.text} | {_classes(a.thread)} | {a.interpreter.text} "
            f"| {_classes(a.interpreter)} |"
        )
    return "\n".join(lines) + "\n"


def render_json(aspects: tuple[Aspect, ...] = ASPECTS) -> str:
    """The table as JSON: a list of rows with their claims and classes."""
    rows = []
    for a in aspects:
        row = attrs.asdict(a)
        for model in ("process", "thread", "interpreter"):
            row[model]["implemented"] = getattr(a, model).implemented
        rows.append(row)
    return json.dumps(rows, indent=2) + "\n"

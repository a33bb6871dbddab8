"""``python -m concurrency_kit``: the table in three formats, and usage errors."""

from __future__ import annotations

import json
import subprocess
import sys

from concurrency_kit.compare import ASPECTS

TIMEOUT = 60  # a deadlock catch, not a speed requirement
NOT_IMPLEMENTED = "not yet implemented"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "concurrency_kit", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def _blocks(text: str) -> dict[str, str]:
    """Split the text table into the block of each row, keyed by title."""
    lines = text.splitlines()
    starts = []
    for aspect in ASPECTS:
        heading = f"{aspect.title}  [concurrency_kit.{aspect.package}]"
        assert heading in lines, f"no heading {heading!r}"
        starts.append(lines.index(heading))
    assert starts == sorted(starts), "rows are out of order"
    ends = [*starts[1:], len(lines)]
    return {
        aspect.title: "\n".join(lines[start:end])
        for aspect, start, end in zip(ASPECTS, starts, ends, strict=True)
    }


def test_table_text() -> None:
    result = run_cli("table")
    assert result.returncode == 0, result.stderr
    blocks = _blocks(result.stdout)
    assert len(blocks) == 10
    for aspect in ASPECTS:
        block = blocks[aspect.title]
        expected = [
            f"classes: {', '.join(claim.classes) if claim.implemented else NOT_IMPLEMENTED}"
            for claim in (aspect.process, aspect.thread, aspect.interpreter)
        ]
        found = [line.strip() for line in block.splitlines() if line.strip().startswith("classes:")]
        assert found == expected, aspect.title


def test_table_text_says_not_yet_implemented() -> None:
    result = run_cli("table")
    missing = sum(not c.implemented for a in ASPECTS for c in (a.process, a.thread, a.interpreter))
    assert result.stdout.count(NOT_IMPLEMENTED) == missing


def test_table_json() -> None:
    result = run_cli("table", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 10
    assert [row["title"] for row in rows] == [aspect.title for aspect in ASPECTS]
    for row, aspect in zip(rows, ASPECTS, strict=True):
        assert row["key"] == aspect.key
        assert row["interpreter_like"] == aspect.interpreter_like
        for model in ("process", "thread", "interpreter"):
            claim = getattr(aspect, model)
            assert row[model]["text"] == claim.text
            assert row[model]["classes"] == list(claim.classes)
            assert row[model]["implemented"] is claim.implemented


def test_table_markdown() -> None:
    result = run_cli("table", "--format", "markdown")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("| Aspect |")
    assert set(lines[1]) <= set("|-: ")
    rows = lines[2:]
    assert len(rows) == 10
    for line, aspect in zip(rows, ASPECTS, strict=True):
        assert line.startswith(f"| **{aspect.title}** |")
        assert line.endswith("|")


def test_no_command_is_a_usage_error() -> None:
    result = run_cli()
    assert result.returncode == 2
    assert "table" in result.stdout + result.stderr


def test_unknown_format_is_a_usage_error() -> None:
    result = run_cli("table", "--format", "html")
    assert result.returncode == 2
    assert "--format" in result.stderr

"""The ``ck-table`` directive makes the docs build fail when the table names a missing class.

Each test builds a throwaway Sphinx project in ``tmp_path``, in a subprocess (as CI runs
Sphinx): the ``ck_table`` extension from ``docs/_ext``, ``nitpicky``, warnings as errors, the
plain ``basic`` theme. The project declares a target for every class the real table names, and
documents one real class with autodoc. The two builds differ only in the table they render:

* the real :data:`concurrency_kit.compare.ASPECTS` — the build succeeds and every class is a
  link, exceptions with the ``exc`` role;
* the real rows plus one whose claim names ``concurrency_kit.DoesNotExist`` (injected through
  the directive's ``:aspects:`` option) — the build fails, and the warning names the class.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import concurrency_kit
from concurrency_kit.compare import ASPECTS

# Sphinx is in the docs extra, not the test one: a run with only the test extra skips this file.
pytest.importorskip("sphinx")

ROOT = Path(__file__).resolve().parents[2]
EXT_DIR = ROOT / "docs" / "_ext"
DEADLOCK_TIMEOUT = 100  # a build takes seconds; this only catches a hang

CONF = """
import sys
sys.path.insert(0, {ext_dir!r})
sys.path.insert(0, {project!r})
extensions = ["sphinx.ext.autodoc", "ck_table"]
nitpicky = True
html_theme = "basic"
"""

FAKE_TABLE = """
from concurrency_kit.compare import ASPECTS as REAL, Aspect, Claim

ASPECTS = (
    *REAL,
    Aspect(
        key="made_up",
        title="Made Up",
        package="pools",
        process=Claim("Names a real exception and a class that does not exist.",
                      ("ConcurrencyKitError", "DoesNotExist")),
        thread=Claim("Names nothing yet."),
        interpreter=Claim("Names nothing yet either."),
        interpreter_like="process",
    ),
)
"""


def table_names() -> list[str]:
    """Every class name the real table uses, in order of first appearance."""
    names: dict[str, None] = {}
    for aspect in ASPECTS:
        for claim in (aspect.process, aspect.thread, aspect.interpreter):
            names.update(dict.fromkeys(claim.classes))
    return list(names)


def index_rst(table_options: str) -> str:
    """A page that documents the table's classes, then renders the table."""
    targets = []
    for name in table_names():
        obj = getattr(concurrency_kit, name)
        kind = "exception" if issubclass(obj, BaseException) else "class"
        targets.append(f".. py:{kind}:: concurrency_kit.{name}\n")
    return (
        "Table\n=====\n\n"
        ".. autoexception:: concurrency_kit.ConcurrencyKitError\n\n"
        + "\n".join(targets)
        + "\n.. ck-table::\n"
        + textwrap.indent(table_options, "   ")
    )


def build(project: Path, table_options: str = "") -> subprocess.CompletedProcess[str]:
    """Write the project and build it with ``-W -n``; return the finished process."""
    project.mkdir()
    (project / "conf.py").write_text(CONF.format(ext_dir=str(EXT_DIR), project=str(project)))
    (project / "fake_table.py").write_text(FAKE_TABLE)
    (project / "index.rst").write_text(index_rst(table_options))
    argv = [sys.executable, "-m", "sphinx", "-W", "-n", "--keep-going", "-q", "-E", "-b", "html"]
    argv += ["-d", str(project / "_doctrees"), str(project), str(project / "_html")]
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=DEADLOCK_TIMEOUT,
        check=False,
    )


def test_the_real_table_builds_and_links_every_class(tmp_path: Path) -> None:
    result = build(tmp_path / "real")

    assert result.returncode == 0, result.stderr
    html = (tmp_path / "real" / "_html" / "index.html").read_text()
    start = html.index('<table class="ck-table')
    table = html[start : html.index("</table>", start)]
    for name in table_names():
        role = "exc" if issubclass(getattr(concurrency_kit, name), BaseException) else "class"
        link = re.compile(
            rf'<a class="reference internal" href="#concurrency_kit\.{name}"[^>]*>'
            rf'<code class="xref py py-{role}\b'
        )
        assert link.search(table), f"no {role} link to {name} in the table"
    pending = any(not c.implemented for a in ASPECTS for c in (a.process, a.thread, a.interpreter))
    assert ("not yet implemented" in table) == pending


def test_a_class_that_does_not_exist_fails_the_build(tmp_path: Path) -> None:
    result = build(tmp_path / "fake", ":aspects: fake_table.ASPECTS\n")

    assert result.returncode != 0, "the build passed with concurrency_kit.DoesNotExist in the table"
    missing = [line for line in result.stderr.splitlines() if "reference target not found" in line]
    # Exactly the made-up class is reported; the real exception in the same cell resolved.
    assert len(missing) == 1, result.stderr
    assert "py:class reference target not found: concurrency_kit.DoesNotExist" in missing[0]


def sample_document(keys: list[str]) -> dict[str, object]:
    """A ``compare --json`` document with one measured row per key, and one unmeasured."""

    def measured(key: str) -> dict[str, object]:
        return {
            "process": {"value": 6837.0, "unit": "us", "what": "start to running"},
            "thread": {"value": 52.2, "unit": "us", "what": "start to running"},
            "interpreter": {"value": 8151.0, "unit": "us", "what": "create to running"},
            "interpreter_missing": "",
            "interpreter_status": "holds",
            "interpreter_verdict": f"holds: interpreters of {key} like processes",
            "better": "lower",
            "holds": True,
            "verdict": f"holds: verdict of {key}",
            "details": {},
            "seconds": 0.1,
        }

    rows = [
        {"key": key, "measured": measured(key) if i else None, "error": None if i else "no /proc"}
        for i, key in enumerate(keys)
    ]
    machine = {"python": "3.11.7", "implementation": "CPython", "platform": "Linux-test"}
    return {
        "schema": "concurrency_kit.compare/2",
        "mode": "full",
        "machine": {**machine, "cpus": 2, "gil": True},
        "rows": rows,
    }


def test_a_sample_run_adds_a_measured_column(tmp_path: Path) -> None:
    project = tmp_path / "sample"
    keys = [aspect.key for aspect in ASPECTS]
    (tmp_path / "sample.json").write_text(json.dumps(sample_document(keys)))
    result = build(project, ":sample: ../sample.json\n")

    assert result.returncode == 0, result.stderr
    html = (project / "_html" / "index.html").read_text()
    assert "a full run of compare on Linux-test, 2 CPUs, CPython 3.11.7 (GIL on)" in html
    assert "not measured: no /proc" in html  # the first row
    for key in keys[1:]:
        assert f"holds: verdict of {key}" in html
    assert "<strong>6,837 us</strong>" in html
    assert "<strong>52.2 us</strong>" in html
    assert "<strong>8,151 us</strong>" in html
    for key in keys[1:]:
        assert f"Interpreters: holds: interpreters of {key} like processes" in html


def test_a_stale_sample_fails_the_build(tmp_path: Path) -> None:
    project = tmp_path / "stale"
    keys = [aspect.key for aspect in ASPECTS][:-1]  # a row short: taken before the table grew
    (tmp_path / "sample.json").write_text(json.dumps(sample_document(keys)))
    result = build(project, ":sample: ../sample.json\n")

    assert result.returncode != 0
    assert "run compare --json again" in result.stderr

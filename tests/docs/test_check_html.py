"""``docs/_ext/check_html.py`` finds every docutils system message box in built HTML.

A box that a theme or an extension adds to the document tree is drawn on the page while
``sphinx -W`` still succeeds; CI runs the checker after the html build to catch it. The tests
feed it crafted pages (both docutils HTML writers' forms, and lookalikes that are not boxes),
and one real Sphinx build of a tiny project whose extension adds such a box after Sphinx's own
filtering, as a theme would.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "_ext" / "check_html.py"
DEADLOCK_TIMEOUT = 100  # a build takes seconds; this only catches a hang

HTML5_BOX = """
<section class="system-messages">
<h2>Docutils System Messages</h2>
<aside class="system-message" id="system-message-1">
<p class="system-message-title">System Message: ERROR/3 (<span class="docutils literal">sync.rst\
</span>, line 4)</p>
<p>Adding a table of contents is unnecessary.<br>Remove it.</p>
</aside>
</section>
"""

HTML4_BOX = """
<div class="admonition system-message" id="system-message-2">
<p class="system-message-title admonition-title">System Message: WARNING/2 (page.rst, line 9)</p>
<p>Title underline too short.</p>
</div>
"""


def load_script() -> ModuleType:
    """Import the script from its path without touching ``sys.path`` or ``sys.modules``."""
    spec = importlib.util.spec_from_file_location("ck_docs_check_html", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def checker() -> ModuleType:
    return load_script()


def page(body: str) -> str:
    return f"<!DOCTYPE html>\n<html><head><title>t</title></head><body>{body}</body></html>\n"


def test_both_writers_boxes_are_found_with_their_text(checker: ModuleType) -> None:
    found = checker.messages_in_page(page("<p>before</p>" + HTML5_BOX + "<p>x</p>" + HTML4_BOX))

    assert found == [
        "System Message: ERROR/3 (sync.rst, line 4) "
        "Adding a table of contents is unnecessary. Remove it.",
        "System Message: WARNING/2 (page.rst, line 9) Title underline too short.",
    ]


def test_lookalikes_are_not_boxes(checker: ModuleType) -> None:
    html = page(
        '<section class="system-messages"><h2>Nothing here</h2></section>'
        '<p class="system-message-title">a title alone</p>'
        "<p>The words system-message in prose.</p>"
        '<div class="highlight"><pre>&lt;aside class="system-message"&gt;</pre></div>'
    )

    assert checker.messages_in_page(html) == []


def test_a_box_left_open_at_the_end_still_counts(checker: ModuleType) -> None:
    assert checker.messages_in_page('<div class="system-message"><p>cut short') == ["cut short"]


def test_main_reports_each_page_and_fails(
    checker: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "clean.html").write_text(page("<p>fine</p>"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "bad.html").write_text(page(HTML5_BOX))

    assert checker.main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{Path('sub/bad.html')}: System Message: ERROR/3 (sync.rst, line 4)" in err
    assert "1 docutils system message(s)" in err
    assert "clean.html" not in err


def test_main_passes_a_clean_build_and_refuses_an_empty_one(
    checker: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert checker.main([str(tmp_path)]) == 2  # nothing built: nothing was checked
    (tmp_path / "index.html").write_text(page("<p>fine</p>"))

    assert checker.main([str(tmp_path)]) == 0
    assert "1 HTML pages" in capsys.readouterr().out


# A theme-like extension: after Sphinx has filtered the doctree's system messages (so nothing is
# logged and -W has nothing to fail on), it adds a box to each page holding "BOX-HERE".
BOX_EXTENSION = """
from docutils import nodes


def add_box(app, doctree, docname):
    if "BOX-HERE" not in doctree.astext():
        return
    message = nodes.system_message(
        "", nodes.paragraph("", "A box added after the build's checks."),
        type="ERROR", level=3, source=docname + ".rst", line=3,
    )
    doctree.append(message)


def setup(app):
    app.connect("doctree-resolved", add_box)
    return {"parallel_read_safe": True}
"""


def build(project: Path, pages: dict[str, str]) -> Path:
    """Build ``pages`` with ``-W -n`` and the box extension; return the HTML directory."""
    project.mkdir()
    (project / "boxes.py").write_text(BOX_EXTENSION)
    conf = f"import sys\nsys.path.insert(0, {str(project)!r})\nextensions = ['boxes']\n"
    (project / "conf.py").write_text(conf + "html_theme = 'basic'\n")
    for name, text in pages.items():
        (project / f"{name}.rst").write_text(textwrap.dedent(text))
    out = project / "_html"
    argv = [sys.executable, "-m", "sphinx", "-W", "-n", "--keep-going", "-q", "-E", "-b", "html"]
    argv += ["-d", str(project / "_doctrees"), str(project), str(out)]
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=DEADLOCK_TIMEOUT, check=False
    )
    assert result.returncode == 0, result.stderr  # -W is satisfied: only the checker can tell
    return out


def test_a_real_build_box_is_found_and_a_clean_build_passes(
    checker: ModuleType, tmp_path: Path
) -> None:
    pytest.importorskip("sphinx")
    index = """
        Index
        =====

        .. toctree::

           other
    """
    other = """
        Other
        =====

        BOX-HERE
    """
    boxed = build(tmp_path / "boxed", {"index": index, "other": other})
    clean = build(tmp_path / "clean", {"index": index, "other": "Other\n=====\n\nFine.\n"})

    pages, found = checker.find_system_messages(boxed)
    assert pages >= 2
    assert [(m.page, m.text) for m in found] == [
        (
            Path("other.html"),
            "System Message: ERROR/3 (other.rst, line 3) A box added after the build's checks.",
        )
    ]
    assert checker.find_system_messages(clean)[1] == []

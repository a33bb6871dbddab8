"""Fail when the built HTML shows a docutils system message (a red or yellow error box).

``sphinx -W`` fails on what Sphinx logs as a warning, but a message that a theme or an
extension puts into the document tree itself, as a ``system_message`` node, is rendered as a
box on the page and the build still "succeeds" (furo did this for ``.. contents::``). Every
such box is an element with the class ``system-message`` (``<aside>`` from docutils' HTML5
writer, ``<div>`` from the older one), so this script reads every ``*.html`` file under a built
directory and lists each one: page, title (``System Message: ERROR/3 (file, line N)``) and the
message text.

CI runs it after the html build (``.ci/run``, the docs step)::

    python docs/_ext/check_html.py docs/_build/html

Exit status: 0 when no page shows a system message, 1 when one does (each listed on standard
error), 2 when the directory holds no HTML page at all (nothing was checked).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import NamedTuple

__all__ = ["SystemMessage", "find_system_messages", "main", "messages_in_page"]

CLASS = "system-message"
"""The class docutils gives every rendered system message."""

# Elements without an end tag: they never open a level of nesting.
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
# Elements that start a new line of text: a space keeps their words apart in the summary.
_BREAKS = frozenset(
    {"br", "p", "div", "li", "pre", "dt", "dd", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6"}
)


class SystemMessage(NamedTuple):
    """One system message shown on a built page."""

    page: Path
    text: str
    """The box's text, whitespace collapsed: its title, then the message."""

    def __str__(self) -> str:
        return f"{self.page}: {self.text}"


class _Finder(HTMLParser):
    """Collect the text of every element whose class list holds :data:`CLASS`."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._depth = 0  # open elements inside the current box, the box included; 0: outside
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._depth and tag in _BREAKS:
            self._text.append(" ")
        if tag in _VOID:
            return
        if self._depth:
            self._depth += 1
            return
        classes = next((value or "" for name, value in attrs if name == "class"), "").split()
        if CLASS in classes:
            self._depth = 1
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if not self._depth or tag in _VOID:
            return
        self._depth -= 1
        if not self._depth:
            self._close()

    def handle_data(self, data: str) -> None:
        if self._depth:
            self._text.append(data)

    def close(self) -> None:
        super().close()
        if self._depth:  # a box left open at the end of the page still counts
            self._depth = 0
            self._close()

    def _close(self) -> None:
        self.found.append(" ".join("".join(self._text).split()))


def messages_in_page(html: str) -> list[str]:
    """The text of each system message box in one page's HTML, in page order."""
    finder = _Finder()
    finder.feed(html)
    finder.close()
    return finder.found


def find_system_messages(root: Path) -> tuple[int, list[SystemMessage]]:
    """Check every ``*.html`` file under ``root``: (pages read, messages found)."""
    pages = sorted(root.rglob("*.html"))
    found = [
        SystemMessage(page.relative_to(root), text)
        for page in pages
        for text in messages_in_page(page.read_text(encoding="utf-8"))
    ]
    return len(pages), found


def main(argv: Sequence[str] | None = None) -> int:
    """Check the built directory named on the command line; see the module docstring."""
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 1:
        print("usage: python docs/_ext/check_html.py BUILT_HTML_DIRECTORY", file=sys.stderr)
        return 2
    root = Path(args[0])
    pages, found = find_system_messages(root)
    if not pages:
        print(f"{root}: no HTML page to check", file=sys.stderr)
        return 2
    for message in found:
        print(message, file=sys.stderr)
    if found:
        print(
            f"{len(found)} docutils system message(s) shown in the built HTML ({root}): "
            "the build succeeded, but these pages show an error box",
            file=sys.stderr,
        )
        return 1
    print(f"{pages} HTML pages under {root}: no docutils system message")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``ck-table`` directive: the processes-versus-threads table, rendered from the package.

Usage in reStructuredText::

    .. ck-table::

    .. ck-table::
       :aspects: some.module.ASPECTS

The directive renders :data:`concurrency_kit.compare.ASPECTS` (or the tuple of
:class:`~concurrency_kit.compare.Aspect` named by ``:aspects:``) as a three-column table,
Aspect | Process | Thread. Each cell holds the claim's text and, below it, one cross-reference
per class that embodies the claim — ``:exc:`` for exceptions, ``:class:`` for the rest — or
"not yet implemented" when no class does yet.

The cross-references are ordinary Python-domain references, so with ``nitpicky = True`` a
class named by the table but missing from the API reference fails a ``-W`` build: the table
cannot drift from the code. The page is rebuilt when the module holding the table changes.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.typing import ExtensionMetadata

import concurrency_kit
from concurrency_kit.compare import Aspect, Claim

__all__ = ["DEFAULT_ASPECTS", "NOT_IMPLEMENTED", "CkTableDirective", "setup"]

DEFAULT_ASPECTS = "concurrency_kit.compare.ASPECTS"
"""Where the table comes from when the directive has no ``:aspects:`` option."""

NOT_IMPLEMENTED = "not yet implemented"
COLUMN_WIDTHS = (20, 40, 40)


def load_object(dotted: str) -> object:
    """Import ``package.module.NAME`` and return ``NAME``.

    Raises:
        ImportError: the module cannot be imported.
        AttributeError: the module has no such name.
    """
    module_name, _, attr = dotted.rpartition(".")
    if not module_name:
        raise ImportError(f"{dotted!r} is not a dotted path such as 'package.module.NAME'")
    return getattr(importlib.import_module(module_name), attr)


def role_for(name: str) -> str:
    """``exc`` when ``concurrency_kit.<name>`` is an exception class, else ``class``.

    A name that does not exist gets ``class``: the reference is still emitted, so that the
    nitpicky build reports it as missing.
    """
    obj = getattr(concurrency_kit, name, None)
    if isinstance(obj, type) and issubclass(obj, BaseException):
        return "exc"
    return "class"


class CkTableDirective(SphinxDirective):
    """Render the table of aspects as a docutils table with checked cross-references."""

    has_content = False
    required_arguments = 0
    optional_arguments = 0
    option_spec: ClassVar[dict[str, Any]] = {
        "aspects": directives.unchanged_required,
        "class": directives.class_option,
    }

    def run(self) -> list[nodes.Node]:
        dotted = self.options.get("aspects", DEFAULT_ASPECTS)
        aspects = self._load(dotted)
        table = nodes.table(classes=["ck-table", *self.options.get("class", [])])
        self.set_source_info(table)
        tgroup = nodes.tgroup(cols=len(COLUMN_WIDTHS))
        table += tgroup
        for width in COLUMN_WIDTHS:
            tgroup += nodes.colspec(colwidth=width)
        thead = nodes.thead()
        tgroup += thead
        thead += self._row([self._paragraphs(text) for text in ("Aspect", "Process", "Thread")])
        tbody = nodes.tbody()
        tgroup += tbody
        messages: list[nodes.Node] = []
        for aspect in aspects:
            cells = [self._aspect_cell(aspect)]
            for claim in (aspect.process, aspect.thread):
                cell, cell_messages = self._claim_cell(claim)
                cells.append(cell)
                messages.extend(cell_messages)
            row = self._row(cells)
            row["ids"].append(f"aspect-{aspect.key.replace('_', '-')}")
            tbody += row
        return [table, *messages]

    def _load(self, dotted: str) -> tuple[Aspect, ...]:
        try:
            value = load_object(dotted)
        except (ImportError, AttributeError) as exc:
            raise self.error(f"ck-table: cannot load the aspects {dotted!r}: {exc}") from exc
        if not isinstance(value, (tuple, list)) or not all(isinstance(a, Aspect) for a in value):
            raise self.error(
                f"ck-table: {dotted!r} must be a sequence of concurrency_kit.compare.Aspect, "
                f"got {type(value).__name__}"
            )
        sources = {_module_file(dotted)}
        if value:
            sources.add(inspect.getsourcefile(type(value[0])))
        for source in sources:
            if source:
                self.env.note_dependency(source)
        return tuple(value)

    @staticmethod
    def _row(cells: list[list[nodes.Node]]) -> nodes.row:
        row = nodes.row()
        for content in cells:
            entry = nodes.entry()
            entry.extend(content)
            row += entry
        return row

    @staticmethod
    def _paragraphs(*texts: str) -> list[nodes.Node]:
        return [nodes.paragraph(text=text) for text in texts]

    @staticmethod
    def _aspect_cell(aspect: Aspect) -> list[nodes.Node]:
        title = nodes.paragraph()
        title += nodes.strong(text=aspect.title)
        package = nodes.paragraph(classes=["ck-table-package"])
        package += nodes.literal(text=aspect.package)
        return [title, package]

    def _claim_cell(self, claim: Claim) -> tuple[list[nodes.Node], list[nodes.Node]]:
        # The claim text is plain text, never parsed as markup; only the references are.
        content: list[nodes.Node] = [nodes.paragraph(text=claim.text)]
        messages: list[nodes.Node] = []
        if not claim.classes:
            missing = nodes.paragraph(classes=["ck-table-missing"])
            missing += nodes.emphasis(text=NOT_IMPLEMENTED)
            content.append(missing)
            return content, messages
        refs = nodes.line_block(classes=["ck-table-classes"])
        for name in claim.classes:
            source = f":{role_for(name)}:`~concurrency_kit.{name}`"
            parsed, problems = self.state.inline_text(source, self.lineno)
            line = nodes.line()
            line.extend(parsed)
            refs += line
            messages.extend(problems)
        content.append(refs)
        return content, messages


def _module_file(dotted: str) -> str | None:
    module_name = dotted.rpartition(".")[0]
    try:
        module = importlib.import_module(module_name)
    except ImportError:  # pragma: no cover - _load has already imported it
        return None
    return getattr(module, "__file__", None)


def setup(app: Sphinx) -> ExtensionMetadata:
    """Register the ``ck-table`` directive."""
    app.add_directive("ck-table", CkTableDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}

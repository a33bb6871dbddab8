"""The ``ck-table`` directive: the processes-versus-threads table, rendered from the package.

Usage in reStructuredText::

    .. ck-table::

    .. ck-table::
       :aspects: some.module.ASPECTS

    .. ck-table::
       :sample: compare-sample.json

The directive renders :data:`concurrency_kit.compare.ASPECTS` (or the tuple of
:class:`~concurrency_kit.compare.Aspect` named by ``:aspects:``) as a four-column table,
Aspect | Process | Thread | Interpreter. Each cell holds the claim's text and, below it, one
cross-reference per class that embodies the claim — ``:exc:`` for exceptions, ``:class:`` for
the rest — or "not yet implemented" when no class does yet; the interpreter cell also says
which model the claim puts interpreters nearer to.

With ``:sample:`` (a file written by ``python -m concurrency_kit compare --json``, relative to
the document), a fifth column shows what that run measured for each row — the figures, the
verdict, and where interpreters stood — and a line above the table states the machine it ran
on. The sample must cover
exactly the table's rows, in its order: a stale sample fails the build.

The cross-references are ordinary Python-domain references, so with ``nitpicky = True`` a
class named by the table but missing from the API reference fails a ``-W`` build: the table
cannot drift from the code. The page is rebuilt when the module holding the table changes.
"""

from __future__ import annotations

import importlib
import inspect
import json
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.typing import ExtensionMetadata

import concurrency_kit
from concurrency_kit.compare import Aspect, Claim
from concurrency_kit.compare._measure import Figure
from concurrency_kit.compare._report import format_figure

__all__ = ["DEFAULT_ASPECTS", "NOT_IMPLEMENTED", "CkTableDirective", "setup"]

DEFAULT_ASPECTS = "concurrency_kit.compare.ASPECTS"
"""Where the table comes from when the directive has no ``:aspects:`` option."""

NOT_IMPLEMENTED = "not yet implemented"
COLUMN_WIDTHS = (16, 30, 30, 30)
SAMPLE_COLUMN_WIDTH = 40
SAMPLE_SCHEMA = "concurrency_kit.compare/2"
LIKE = {"process": "processes", "thread": "threads", "between": "between the two"}


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
        "sample": directives.path,
        "class": directives.class_option,
    }

    def run(self) -> list[nodes.Node]:
        dotted = self.options.get("aspects", DEFAULT_ASPECTS)
        aspects = self._load(dotted)
        sample = self._load_sample(aspects) if "sample" in self.options else None
        widths = COLUMN_WIDTHS if sample is None else (*COLUMN_WIDTHS, SAMPLE_COLUMN_WIDTH)
        headings = ["Aspect", "Process", "Thread", "Interpreter"]
        headings += [] if sample is None else ["Measured"]
        table = nodes.table(classes=["ck-table", *self.options.get("class", [])])
        self.set_source_info(table)
        tgroup = nodes.tgroup(cols=len(widths))
        table += tgroup
        for width in widths:
            tgroup += nodes.colspec(colwidth=width)
        thead = nodes.thead()
        tgroup += thead
        thead += self._row([self._paragraphs(text) for text in headings])
        tbody = nodes.tbody()
        tgroup += tbody
        messages: list[nodes.Node] = []
        for index, aspect in enumerate(aspects):
            cells = [self._aspect_cell(aspect)]
            for claim in (aspect.process, aspect.thread, aspect.interpreter):
                cell, cell_messages = self._claim_cell(claim)
                cells.append(cell)
                messages.extend(cell_messages)
            like = nodes.paragraph(classes=["ck-table-like"])
            like += nodes.emphasis(text=f"Nearer: {LIKE[aspect.interpreter_like]}")
            cells[-1].append(like)
            if sample is not None:
                cells.append(_measured_cell(sample["rows"][index]))
            row = self._row(cells)
            row["ids"].append(f"aspect-{aspect.key.replace('_', '-')}")
            tbody += row
        if sample is None:
            return [table, *messages]
        return [_machine_line(sample), table, *messages]

    def _load_sample(self, aspects: tuple[Aspect, ...]) -> dict[str, Any]:
        """Read the ``:sample:`` file and check that it matches the table row for row."""
        relative, path = self.env.relfn2path(self.options["sample"], self.env.docname)
        self.env.note_dependency(relative)
        try:
            with open(path, encoding="utf-8") as file:
                sample: dict[str, Any] = json.load(file)
        except (OSError, ValueError) as exc:
            raise self.error(f"ck-table: cannot read the sample {relative!r}: {exc}") from exc
        if sample.get("schema") != SAMPLE_SCHEMA:
            raise self.error(
                f"ck-table: {relative!r} is not a compare --json file ({SAMPLE_SCHEMA})"
            )
        keys = [row.get("key") for row in sample.get("rows", [])]
        if keys != [aspect.key for aspect in aspects]:
            raise self.error(
                f"ck-table: the sample {relative!r} has the rows {keys}, the table has "
                f"{[aspect.key for aspect in aspects]}: run compare --json again"
            )
        return sample

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


def _measured_cell(row: dict[str, Any]) -> list[nodes.Node]:
    """Both figures and the verdict of one row of a sample run, or why it was not measured."""
    measured = row["measured"]
    if measured is None:
        note = nodes.paragraph(classes=["ck-table-missing"])
        note += nodes.emphasis(text=f"not measured: {row['error']}")
        return [note]
    figures = nodes.line_block(classes=["ck-table-measured"])
    for model in ("process", "thread", "interpreter"):
        figure = measured.get(model)
        line = nodes.line()
        line += nodes.Text(f"{model}: ")
        if figure is None:
            line += nodes.emphasis(text=measured.get("interpreter_missing") or "not measured")
        else:
            line += nodes.strong(text=format_figure(Figure(figure["value"], figure["unit"], "")))
            line += nodes.Text(f" ({figure['what']})")
        figures += line
    content: list[nodes.Node] = [figures, nodes.paragraph(text=measured["verdict"])]
    if measured.get("interpreter_verdict"):
        content.append(nodes.paragraph(text=f"Interpreters: {measured['interpreter_verdict']}"))
    return content


def _machine_line(sample: dict[str, Any]) -> nodes.paragraph:
    machine = sample["machine"]
    gil = "GIL on" if machine["gil"] else "free-threaded"
    line = nodes.paragraph(classes=["ck-table-machine"])
    line += nodes.emphasis(
        text=(
            f"Measured column: a {sample['mode']} run of compare on {machine['platform']}, "
            f"{machine['cpus']} CPUs, {machine['implementation']} {machine['python']} ({gil})."
        )
    )
    return line


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

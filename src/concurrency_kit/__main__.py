"""``python -m concurrency_kit``: the command line.

Commands:
    table     print the processes-versus-threads table with the classes of each row.
    compare   measure every row of the table on this machine and print the verdicts.
    advise    run a function of yours serially and under each pool; advise processes,
              threads, interpreters (Python 3.14+), running it serially, or batching more
              work per task.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import sys
from collections.abc import Sequence

from concurrency_kit import __version__
from concurrency_kit.compare import render_json, render_markdown, render_text
from concurrency_kit.compare._advise import advise
from concurrency_kit.compare._measure import LoadMeter, Mode
from concurrency_kit.compare._plot import PLOT_FORMATS, PLOT_HINT, PlotUnavailable, compare_plot
from concurrency_kit.compare._report import compare_json, compare_markdown, compare_text, run

_RENDERERS = {"text": render_text, "markdown": render_markdown, "json": render_json}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m concurrency_kit",
        description="Processes and threads, side by side.",
    )
    parser.add_argument("--version", action="version", version=f"concurrency_kit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    table = commands.add_parser(
        "table", help="print the processes-versus-threads table and the classes of each row"
    )
    table.add_argument(
        "--format", choices=sorted(_RENDERERS), default="text", help="output format (default: text)"
    )
    compare = commands.add_parser(
        "compare",
        help="measure every row of the table on this machine, with a verdict on each claim",
    )
    compare.add_argument(
        "--quick", action="store_true", help="fewer samples: the whole table in about 40 s"
    )
    compare.add_argument(
        "--rows", metavar="KEYS", help="comma-separated row keys to measure (default: all)"
    )
    compare.add_argument("--markdown", action="store_true", help="print a Markdown table")
    compare.add_argument(
        "--json", metavar="PATH", help="also write the results as JSON (compare.schema.json)"
    )
    compare.add_argument(
        "--plot",
        metavar="PATH",
        help="also draw process against thread per row to a .png, .svg or .pdf file "
        "(needs the plot extra: matplotlib)",
    )
    advise = commands.add_parser(
        "advise", help="run a function of yours under each pool, and serially; advise a model"
    )
    advise.add_argument("function", metavar="MODULE:FUNCTION", help="e.g. mypackage.work:crunch")
    inputs = advise.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--range", type=int, metavar="N", help="inputs 0, 1, ..., N-1")
    inputs.add_argument(
        "--inputs", metavar="LITERAL", help='a Python literal list of inputs, e.g. "[1, 2, 3]"'
    )
    advise.add_argument("--workers", type=int, help="workers per pool (default: CPUs)")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "table":
        sys.stdout.write(_RENDERERS[args.format]())
        return 0
    if args.command == "advise":
        return _advise(args)
    return _compare(args)


def _advise(args: argparse.Namespace) -> int:
    """Import the function, read the inputs, print the advice and its reasons."""
    module_name, _, function_name = args.function.partition(":")
    if not module_name or not function_name:
        sys.stderr.write("python -m concurrency_kit advise: give MODULE:FUNCTION\n")
        return 2
    sys.path.insert(0, "")  # as `python -m` does: modules of the current directory
    try:
        fn = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        sys.stderr.write(f"python -m concurrency_kit advise: cannot load {args.function}: {exc}\n")
        return 2
    if args.range is not None:
        items: list[object] = list(range(args.range))
    else:
        try:
            items = list(ast.literal_eval(args.inputs))
        except (ValueError, SyntaxError, TypeError) as exc:
            sys.stderr.write(f"python -m concurrency_kit advise: bad --inputs: {exc}\n")
            return 2
    try:
        advice = advise(fn, items, workers=args.workers)
    except ValueError as exc:
        sys.stderr.write(f"python -m concurrency_kit advise: {exc}\n")
        return 2
    sys.stdout.write(advice.headline + "\n")
    for reason in advice.reasons:
        sys.stdout.write(f"  - {reason}\n")
    for warning in advice.warnings:
        sys.stdout.write(f"  ! {warning}\n")
    return 0


def _compare(args: argparse.Namespace) -> int:
    """Run the probes (progress on stderr), print the table, write the JSON if asked."""
    mode: Mode = "quick" if args.quick else "full"
    keys = [key.strip() for key in args.rows.split(",") if key.strip()] if args.rows else None

    def progress(text: str) -> None:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    if args.plot and not args.plot.lower().endswith(PLOT_FORMATS):
        sys.stderr.write(
            f"python -m concurrency_kit compare: --plot {args.plot}: "
            f"use one of {', '.join(PLOT_FORMATS)}\n"
        )
        return 2
    if args.plot and not _have_matplotlib():  # say so now, not after a minute of measuring
        sys.stderr.write(f"python -m concurrency_kit compare: {PLOT_HINT}\n")
        return 2
    meter = LoadMeter()
    try:
        rows = run(keys, mode, progress, meter)
    except ValueError as exc:
        sys.stderr.write(f"python -m concurrency_kit compare: {exc}\n")
        return 2
    load = meter.stop()
    sys.stdout.write(compare_markdown(rows) if args.markdown else compare_text(rows, load=load))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            out.write(compare_json(rows, mode, load))
    if args.plot:
        try:
            compare_plot(rows, args.plot)
        except PlotUnavailable as exc:
            sys.stderr.write(f"python -m concurrency_kit compare: {exc}\n")
            return 2
    return 1 if any(row.measurement is None for row in rows) else 0


def _have_matplotlib() -> bool:
    try:
        return importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):  # a None entry in sys.modules, or a broken package
        return False


if __name__ == "__main__":
    sys.exit(main())

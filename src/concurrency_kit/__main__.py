"""``python -m concurrency_kit``: the command line.

Commands:
    table   print the processes-versus-threads table with the classes of each row.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from concurrency_kit import __version__
from concurrency_kit.compare import render_json, render_markdown, render_text

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
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    sys.stdout.write(_RENDERERS[args.format]())
    return 0


if __name__ == "__main__":
    sys.exit(main())

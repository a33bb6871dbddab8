"""Private machinery every row of the table stands on (see ``docs/design.rst``).

Rows (``pools/``, ``channels/``, ``state/``, ``sync/``, ``supervision/``, ``compare/``)
import shared machinery from here, never from another row's private modules.

The compiled core is loaded here, first: where it cannot load, importing concurrency_kit
fails with one :exc:`ImportError` that names the platform (``platforms.py``), not with the
loader's message from whichever module happened to import it first.
"""

from __future__ import annotations

from concurrency_kit._core import platforms

try:
    from concurrency_kit._core import _native  # noqa: F401 - loaded here for its error only
except ImportError as error:
    raise ImportError(platforms.import_failure(error)) from error

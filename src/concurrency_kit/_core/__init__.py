"""Private machinery every row of the table stands on (see ``docs/design.rst``).

Rows (``pools/``, ``channels/``, ``state/``, ``sync/``, ``supervision/``, ``compare/``)
import shared machinery from here, never from another row's private modules.
"""

"""One probe per row of the table: ``probes/<key>.py`` defines ``probe(mode) -> Measurement``.

Probes are imported only when run (they start pools, processes and channels), by
:func:`probe_for`.
"""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec

from concurrency_kit.compare._measure import Probe

__all__ = ["probe_for"]


def probe_for(key: str) -> Probe | None:
    """The probe of the row ``key``, or ``None`` if that row has none yet."""
    name = f"{__name__}.{key}"
    if find_spec(name) is None:
        return None
    probe: Probe = import_module(name).probe
    return probe

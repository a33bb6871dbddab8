"""``max_memory_per_worker``: the limit's checks and a worker's resident memory.

The parent reads each worker's resident set size from ``/proc/<pid>/statm`` (its second field,
in pages): one small read, no help from the worker, and it works while the worker is busy in a
task that will never look up. Linux only, as the process pool's other machinery.
"""

from __future__ import annotations

import math
import os
import re

__all__ = ["check_memory_limit", "describe_bytes", "resident_bytes"]

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?)\s*([a-zA-Z]*)\s*")


def physical_memory() -> int | None:
    """This machine's memory in bytes, or ``None`` where it cannot be known."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory_limit(value: object) -> int | None:
    """Validate ``max_memory_per_worker`` and return it in bytes (``None``: no limit).

    Takes a number of bytes (an int, or a float with a whole value) or a string with a unit:
    ``"512 MiB"``, ``"1.5GB"`` (``B``, ``kB``, ``MB``, ``GB``, ``TB`` are powers of 1000;
    ``KiB``, ``MiB``, ``GiB``, ``TiB`` powers of 1024; case does not matter).

    Raises:
        TypeError: not an int, float, str or ``None`` (a bool is refused).
        ValueError: not positive, NaN, not a whole number of bytes, an unknown unit, more
            than this machine's memory, or no ``/proc`` to read a worker's memory from.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(
            "max_memory_per_worker must be a number of bytes, a string such as '512 MiB', "
            f"or None, not {type(value).__name__}"
        )
    if isinstance(value, str):
        match = _SIZE.fullmatch(value)
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in _UNITS:
            raise ValueError(
                f"max_memory_per_worker: cannot read {value!r} as a size: give a number of "
                "bytes with an optional unit (B, kB, MB, GB, KiB, MiB, GiB, ...)"
            )
        number = float(match.group(1)) * _UNITS[unit]
    else:
        number = float(value)
    if math.isnan(number) or number <= 0:
        raise ValueError(f"max_memory_per_worker must be positive, got {value!r}")
    if math.isfinite(number) and number != int(number):
        raise ValueError(f"max_memory_per_worker must be a whole number of bytes, got {value!r}")
    total = physical_memory()
    if not math.isfinite(number) or (total is not None and number > total):
        raise ValueError(
            f"max_memory_per_worker={value!r} is more than this machine's memory"
            + (f" ({describe_bytes(total)})" if total is not None else "")
        )
    if resident_bytes(os.getpid()) is None:
        raise ValueError(
            "max_memory_per_worker needs /proc/<pid>/statm to read a worker's memory "
            "(Linux); it is not available here"
        )
    return int(number)


def resident_bytes(pid: int) -> int | None:
    """The resident memory of process ``pid`` in bytes; ``None`` if it cannot be read (the
    process has gone, or there is no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            fields = statm.read().split()
        return int(fields[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return None


def describe_bytes(count: int) -> str:
    """``123.4 MiB``, for messages."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"

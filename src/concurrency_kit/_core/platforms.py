"""Where concurrency_kit runs, said once: by ``setup.py`` before it builds, and at import.

The compiled core (``_native.c``) stands on glibc's robust process-shared pthread mutexes and
on Linux futexes, and its mutex layout and 64-bit atomics are checked on x86_64 and aarch64
only. Every model's classes are exported by one package that imports that core, so on any other
platform nothing of concurrency_kit runs today, the thread model included. Rather than a C
compiler's ``#error`` (read by setuptools as "no C compiler") or a loader's message about a
missing symbol, the user gets one error that names the platform found and the one supported.

``setup.py`` loads this file by its path (the package cannot be imported before it is built),
so it imports nothing but the standard library.
"""

from __future__ import annotations

import os
import platform
import sys

__all__ = [
    "INTERPRETERS_VERSION",
    "MACHINES",
    "SUPPORTED",
    "describe",
    "import_failure",
    "require_interpreters",
    "unsupported",
]

SUPPORTED = "Linux with glibc on x86_64 or aarch64, a 64-bit CPython"
"""The platforms concurrency_kit builds and runs on (and is tested on: x86_64)."""

MACHINES = frozenset({"x86_64", "aarch64"})
"""Machine names (``uname -m``, :func:`platform.machine`) of the supported architectures."""

_SYSTEMS = {"darwin": "macOS", "win32": "Windows", "cygwin": "Cygwin", "linux": "Linux"}
_POINTER_BITS = 64 if sys.maxsize > 2**32 else 32


def _libc() -> str:
    """``"glibc 2.36"`` on glibc, ``""`` where the C library does not say it is glibc (musl)."""
    try:
        found = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):  # no confstr, or no such name here
        found = None
    if found:
        return found
    name, version = platform.libc_ver()
    return f"{name} {version}".strip()


def describe() -> str:
    """The running platform in words: ``macOS on arm64``, ``Linux (musl) on x86_64``."""
    system = _SYSTEMS.get(sys.platform, sys.platform)
    machine = platform.machine() or "an unknown machine"
    if sys.platform.startswith("linux"):
        libc = _libc()
        system = f"Linux with {libc.split()[0]}" if libc else "Linux without glibc (musl?)"
    bits = "" if _POINTER_BITS == 64 else f", a {_POINTER_BITS}-bit Python"
    return f"{system} on {machine}{bits}"


def unsupported() -> str | None:
    """Why this platform cannot run concurrency_kit, in one message; ``None`` where it can."""
    supported = (
        sys.platform.startswith("linux")
        and _libc().startswith("glibc")
        and platform.machine() in MACHINES
        and _POINTER_BITS == 64
    )
    if supported:
        return None
    return (
        f"concurrency_kit needs {SUPPORTED}; this is {describe()}. Its process locks, "
        "channels and shared state stand on glibc's robust process-shared mutexes and Linux "
        "futexes, which this platform does not offer, and no part of it (the thread model "
        "included) runs without them today. On this platform the standard library's "
        "concurrent.futures, threading and multiprocessing are the alternatives."
    )


def import_failure(error: ImportError) -> str:
    """The message for a compiled core that does not load: the platform's, else a rebuild's."""
    reason = unsupported()
    if reason is not None:
        return reason
    return (
        "concurrency_kit's compiled core (concurrency_kit._core._native) did not load "
        f"({error}): it is built when the package is installed; reinstall it with pip "
        "(pip install ., or pip install -e . from a clone) with a C compiler and the Python "
        "headers present."
    )


INTERPRETERS_VERSION = (3, 14)
"""The first Python with ``concurrent.interpreters`` (PEP 734): the INTERPRETER model needs it."""


def require_interpreters(what: str) -> None:
    """Raise :class:`ImportError` naming Python 3.14 when this Python has no subinterpreters.

    For the interpreter model's classes (``what`` names the one asked for); the wording matches
    ``InterpreterPool``'s.
    """
    if sys.version_info >= INTERPRETERS_VERSION:
        return
    version = ".".join(map(str, sys.version_info[:3]))
    raise ImportError(
        f"{what} (the INTERPRETER model) needs Python 3.14 or newer, for its subinterpreters "
        f"(concurrent.interpreters, PEP 734); this is Python {version}: "
        "use PROCESS or THREAD here"
    )

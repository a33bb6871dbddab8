"""Build the one C extension of concurrency_kit; everything else is in pyproject.toml.

``concurrency_kit._core._native`` is the compiled fast path of the shared-memory core (robust
mutexes, futexes, atomics). It needs a C compiler and the Python headers at install time; a
machine without them gets one error here, naming what is missing, instead of a failed import
later; so does a platform it cannot run on (it needs Linux with glibc on x86_64 or aarch64:
``src/concurrency_kit/_core/platforms.py`` says it, here and at import).
"""

from __future__ import annotations

import importlib.util
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

NATIVE = "src/concurrency_kit/_core/_native.c"
PLATFORMS = Path(__file__).resolve().parent / "src/concurrency_kit/_core/platforms.py"


def unsupported_platform() -> str | None:
    """The one message of ``_core/platforms.py`` for a platform the extension cannot serve.

    The module is loaded from its path: the package cannot be imported before it is built.
    """
    spec = importlib.util.spec_from_file_location("concurrency_kit_platforms", PLATFORMS)
    if spec is None or spec.loader is None:  # pragma: no cover - the file is in the sdist
        raise SystemExit(f"concurrency_kit's source is incomplete: {PLATFORMS} is missing")
    platforms = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(platforms)
    reason: str | None = platforms.unsupported()
    return reason


class BuildNative(build_ext):
    """``build_ext`` that says plainly what is missing when the extension cannot be built."""

    def run(self) -> None:
        reason = unsupported_platform()
        if reason is not None:  # before the compiler's #error, which reads as a missing compiler
            raise SystemExit(reason)
        headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
        if not headers.exists():
            raise SystemExit(
                f"concurrency_kit builds a small C extension and needs the Python headers: "
                f"{headers} is missing (Debian/Ubuntu: apt-get install python3-dev, or "
                f"python{sys.version_info.major}.{sys.version_info.minor}-dev)"
            )
        try:
            super().run()
        except Exception as exc:
            raise SystemExit(
                "concurrency_kit could not build its C extension "
                f"({NATIVE}): {exc}. It needs a C compiler (Debian/Ubuntu: apt-get install gcc)."
            ) from exc


setup(
    ext_modules=[
        Extension(
            "concurrency_kit._core._native",
            sources=[NATIVE],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall"],
        )
    ],
    cmdclass={"build_ext": BuildNative},
)

"""Build the one C extension of concurrency_kit; everything else is in pyproject.toml.

``concurrency_kit._core._native`` is the compiled fast path of the shared-memory core (robust
mutexes, futexes, atomics). It needs a C compiler and the Python headers at install time; a
machine without them gets one error here, naming what is missing, instead of a failed import
later.
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

NATIVE = "src/concurrency_kit/_core/_native.c"


class BuildNative(build_ext):
    """``build_ext`` that says plainly what is missing when the extension cannot be built."""

    def run(self) -> None:
        if not sys.platform.startswith("linux"):
            raise SystemExit(
                "concurrency_kit needs Linux (robust process-shared mutexes, futexes); "
                f"this is {sys.platform}"
            )
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

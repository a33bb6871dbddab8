"""An unsupported platform gets one error naming it: from ``setup.py`` and at import.

concurrency_kit runs on Linux with glibc on x86_64 or aarch64 (``_core/platforms.py``). There
is no macOS, Windows or musl machine here: each is simulated by patching what the module reads
(``sys.platform``, :func:`platform.machine`, the C library's name): in this process for the
message and for ``setup.py``'s refusal to build, and in a child process for the import of a
package whose compiled core does not load.
"""

from __future__ import annotations

import os
import platform
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from concurrency_kit._core import platforms

ROOT = Path(__file__).resolve().parents[1]
DEADLOCK_TIMEOUT = 60  # a child runs for about a second; this only catches a hang


def simulate(monkeypatch: pytest.MonkeyPatch, system: str, machine: str, libc: str | None) -> None:
    """Make ``platforms`` see ``system`` on ``machine`` with C library ``libc`` (None: musl)."""
    monkeypatch.setattr(sys, "platform", system)
    monkeypatch.setattr(platform, "machine", lambda: machine)

    def confstr(name: str) -> str | None:
        if libc is None:
            raise ValueError("unrecognized configuration name")  # as on musl
        return libc

    monkeypatch.setattr(os, "confstr", confstr)
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))


def test_this_machine_is_supported() -> None:
    # The suite runs only where the package was built; the CI machines are x86_64 glibc.
    assert platforms.unsupported() is None
    assert platforms.describe().startswith("Linux with glibc on ")


@pytest.mark.parametrize(
    ("system", "machine", "libc", "named"),
    [
        ("darwin", "arm64", None, "this is macOS on arm64."),
        ("darwin", "x86_64", None, "this is macOS on x86_64."),
        ("win32", "AMD64", None, "this is Windows on AMD64."),
        ("linux", "x86_64", None, "this is Linux without glibc (musl?) on x86_64."),
        ("linux", "armv7l", "glibc 2.36", "this is Linux with glibc on armv7l."),
        ("freebsd14", "amd64", None, "this is freebsd14 on amd64."),
    ],
)
def test_an_unsupported_platform_is_named_in_one_message(
    monkeypatch: pytest.MonkeyPatch, system: str, machine: str, libc: str | None, named: str
) -> None:
    simulate(monkeypatch, system, machine, libc)

    message = platforms.unsupported()

    assert message is not None
    assert message.startswith(
        "concurrency_kit needs Linux with glibc on x86_64 or aarch64, a 64-bit CPython; " + named
    )
    assert "the thread model included" in message  # nothing runs: it says so


def test_aarch64_with_glibc_is_supported(monkeypatch: pytest.MonkeyPatch) -> None:
    simulate(monkeypatch, "linux", "aarch64", "glibc 2.39")

    assert platforms.unsupported() is None


def test_a_32_bit_python_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    simulate(monkeypatch, "linux", "x86_64", "glibc 2.36")
    monkeypatch.setattr(platforms, "_POINTER_BITS", 32)

    message = platforms.unsupported()

    assert message is not None
    assert "this is Linux with glibc on x86_64, a 32-bit Python." in message


def test_libc_ver_is_the_fallback_where_confstr_says_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    simulate(monkeypatch, "linux", "x86_64", None)
    monkeypatch.setattr(platform, "libc_ver", lambda: ("glibc", "2.17"))

    assert platforms.unsupported() is None


def load_setup_py(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``setup.py``'s globals, run with ``setuptools.setup`` stubbed out (nothing is built).

    A venv of Python 3.12+ has no setuptools (pip builds in an isolated environment): there
    the tests of ``setup.py`` are skipped; the 3.11 runs have it.
    """
    setuptools = pytest.importorskip("setuptools")
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: None)
    return runpy.run_path(str(ROOT / "setup.py"), run_name="setup_py_under_test")


@pytest.mark.parametrize(
    ("system", "machine", "named"),
    [
        ("darwin", "arm64", "this is macOS on arm64"),
        # musl: the C file's #error used to be reported as a missing C compiler.
        ("linux", "x86_64", "this is Linux without glibc (musl?) on x86_64"),
    ],
)
def test_setup_py_refuses_to_build_with_the_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, system: str, machine: str, named: str
) -> None:
    setup_py = load_setup_py(monkeypatch)
    command = setup_py["BuildNative"](pytest.importorskip("setuptools").Distribution())
    command.build_lib = str(tmp_path / "lib")
    command.build_temp = str(tmp_path / "tmp")
    simulate(monkeypatch, system, machine, None)

    with pytest.raises(SystemExit) as refused:
        command.run()

    message = str(refused.value)
    assert message.startswith("concurrency_kit needs Linux with glibc on x86_64 or aarch64")
    assert named in message
    assert "C compiler" not in message
    assert not (tmp_path / "lib").exists()  # refused before compiling anything


def test_setup_py_builds_on_this_machine_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_setup_py(monkeypatch)["unsupported_platform"]() is None


# The compiled core fails to load as it would where it cannot exist (a copied install, a wheel
# of another platform): the import error names the platform, or says how to rebuild.
BLOCK_NATIVE = """
import importlib.abc

class NoNative(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "concurrency_kit._core._native":
            raise ImportError("Error relocating _native.so: __sched_cpucount: symbol not found")
        return None

sys.meta_path.insert(0, NoNative())
try:
    import concurrency_kit
except ImportError as error:
    print(type(error).__name__, error, sep=": ")
    print("cause:", error.__cause__)
else:
    print("imported")
"""


# The child patches the platform as simulate() does, then imports concurrency_kit.
MUSL = """
import os, platform, sys

def no_confstr(name):
    raise ValueError("unrecognized configuration name")

platform.machine = lambda: "x86_64"
os.confstr = no_confstr
platform.libc_ver = lambda: ("", "")
"""


def run_child(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=DEADLOCK_TIMEOUT,
        check=False,
    )


def test_importing_on_an_unsupported_platform_names_it() -> None:
    result = run_child(MUSL + BLOCK_NATIVE)

    assert result.returncode == 0, result.stderr
    first, cause = result.stdout.splitlines()
    assert first.startswith("ImportError: concurrency_kit needs Linux with glibc on x86_64")
    assert "this is Linux without glibc (musl?) on x86_64" in first
    assert cause == "cause: Error relocating _native.so: __sched_cpucount: symbol not found"


def test_a_missing_build_on_a_supported_platform_says_how_to_rebuild() -> None:
    result = run_child("import sys\n" + BLOCK_NATIVE)

    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith(
        "ImportError: concurrency_kit's compiled core (concurrency_kit._core._native) did not load"
    )
    assert "reinstall it with pip" in first

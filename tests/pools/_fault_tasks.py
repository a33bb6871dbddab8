"""Tasks for the pool fault tests, importable by reference in every worker process.

Only the standard library is imported here, so a fresh worker (``forkserver`` or ``spawn``)
that unpickles one of these functions imports this small module and nothing heavy.

Workers talk back to the test through named FIFOs (see ``Fifo`` in the test modules): a task
*reports* a line (its pid, usually) to say "I have started, and this is who I am", and waits at a
*gate* until the test writes a byte to it. Both work the same with every start method, because
a FIFO is reached by its path, not by an inherited descriptor.
"""

from __future__ import annotations

import ctypes
import faulthandler
import os
import signal
import socket
import threading
import time


def getpid() -> int:
    return os.getpid()


def square(x: int) -> int:
    return x * x


def square_with_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def report(path: str, line: str) -> None:
    """Write one line to the FIFO at ``path`` (the test holds its read end open)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def wait_gate(path: str) -> None:
    """Block until the test writes a byte to the FIFO at ``path``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.read(fd, 1)
    finally:
        os.close(fd)


def hold(report_path: str, gate_path: str, value: object = None) -> object:
    """Report this worker's pid, wait at the gate, return ``value``."""
    report(report_path, str(os.getpid()))
    wait_gate(gate_path)
    return value


def block_forever(report_path: str) -> None:
    """Report this worker's pid and never return (the pool must kill this worker)."""
    report(report_path, str(os.getpid()))
    while True:
        time.sleep(3600)


def sleep_then(seconds: float, value: object) -> object:
    time.sleep(seconds)
    return value


def crash(kind: str, report_path: str, gate_path: str | None = None) -> None:
    """Report this worker's pid, optionally wait at a gate, then die the ``kind`` way."""
    report(report_path, str(os.getpid()))
    if gate_path is not None:
        wait_gate(gate_path)
    if kind == "exit3":
        os._exit(3)
    elif kind == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "sigsegv-ctypes":
        faulthandler.disable()  # inherited from pytest through fork: keep the output quiet
        ctypes.string_at(0)  # a read from address 0: a real segmentation fault in C
    elif kind == "sigsegv-kill":
        faulthandler.disable()
        os.kill(os.getpid(), signal.SIGSEGV)
    else:
        raise ValueError(f"unknown crash kind {kind!r}")
    while True:  # a signal sent to oneself may be delivered a moment later
        time.sleep(3600)


def crash_on(x: int, bad: int) -> int:
    """``x * x``, except that the worker dies with exit code 3 when ``x == bad``."""
    if x == bad:
        os._exit(3)
    return x * x


def crash_on_logged(x: int, bad: int, log_path: str) -> int:
    """Like :func:`crash_on`; each run that survives appends ``x`` to the file ``log_path``."""
    if x == bad:
        os._exit(3)
    with open(log_path, "a") as log:
        log.write(f"{x}\n")
    return x * x


def touch(path: str) -> str:
    """Leave a marker file: proof that this task ran."""
    with open(path, "w") as f:
        f.write("ran")
    return path


def identity(*args: object, **kwargs: object) -> object:
    return args, kwargs


def return_lock() -> object:
    return threading.Lock()


def return_socket() -> object:
    return socket.socket()


class UnpicklableError(Exception):
    """An exception that cannot be pickled: it holds a lock."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


class BadInitError(Exception):
    """Pickles fine but cannot be unpickled: its ``__init__`` wants two arguments."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"code {code}: {detail}")
        self.code = code


class CustomError(Exception):
    pass


def raise_unpicklable() -> None:
    raise UnpicklableError("holds a lock")


def raise_bad_init() -> None:
    raise BadInitError(7, "cannot be rebuilt")


def distinctive_inner_function(value: int) -> None:
    raise CustomError(f"bad value {value}")


def call_inner(value: int) -> None:
    distinctive_inner_function(value)


def failing_initializer(message: str) -> None:
    raise RuntimeError(message)


def exiting_initializer() -> None:
    os._exit(1)

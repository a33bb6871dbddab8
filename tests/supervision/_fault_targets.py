"""Child targets for the supervisor fault tests, importable by reference in every child process.

Only the standard library and :func:`concurrency_kit.current_child` are used, so a process
child that unpickles one of these functions imports this small module and nothing heavy.

Children talk to the test through named FIFOs (``Fifo`` in the test module), reached by path
with every start method: a child *reports* a line (``"<pid>"`` usually: "I run, and this is
who I am"), and waits at a *gate* until the test writes a byte to it. A child waiting at a
gate also wakes up when its supervisor asks it to stop (:func:`wait_gate_or_stop`), so that
stopping a test's supervisor is quick and cooperative, not a kill after a timeout.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import threading

from concurrency_kit import current_child


def report(path: str, line: str) -> None:
    """Write one line to the FIFO at ``path`` (the test holds its read end open)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def wait_gate_or_stop(gate_path: str) -> bool:
    """Block until the test writes a byte to the FIFO at ``gate_path`` or the child must stop.

    Returns:
        ``True`` for the gate, ``False`` for a stop request.
    """
    stop_r, stop_w = os.pipe()
    # Runs in the SIGTERM handler of a process child: one write, nothing else.
    current_child().on_stop(lambda: os.write(stop_w, b"!"))
    gate = os.open(gate_path, os.O_RDONLY | os.O_NONBLOCK)  # the test holds a writer open
    try:
        while True:
            ready, _, _ = select.select([gate, stop_r], [], [])
            if stop_r in ready:
                return False
            try:
                return bool(os.read(gate, 1))  # b"": the test closed the gate, give up
            except BlockingIOError:  # another child took the byte first
                pass
    finally:
        os.close(gate)
        # stop_w stays open: the callback may still run (it is called at most once).
        os.close(stop_r)


def die(kind: str) -> None:
    """End the calling process (or thread) the ``kind`` way."""
    if kind == "segfault":
        ctypes.string_at(0)  # read address 0: a real SIGSEGV
    elif kind == "exit3":
        os._exit(3)
    elif kind == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "exception":
        raise ValueError("the child failed")
    raise AssertionError(f"{kind!r} did not end the child")


def crash_at_gate(kind: str, report_path: str, gate_path: str) -> None:
    """Report this child's pid, wait at the gate, then die the ``kind`` way.

    A stop request while waiting ends the child normally, so a restarted copy waits at the
    gate again until the test stops the supervisor.
    """
    report(report_path, str(os.getpid()))
    if wait_gate_or_stop(gate_path):
        die(kind)


def run_until_stopped(report_path: str) -> None:
    """Report this child's pid, then run until asked to stop (the cooperative child)."""
    report(report_path, str(os.getpid()))
    current_child().wait_stop()


def stop_aware(report_path: str) -> None:
    """Report this child's pid, wait until asked to stop, report ``"stopping"`` and return."""
    report(report_path, str(os.getpid()))
    current_child().wait_stop()
    report(report_path, "stopping")


def ignore_sigterm(report_path: str) -> None:
    """Ignore SIGTERM (and so every stop request), report this child's pid, block for ever."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    report(report_path, str(os.getpid()))
    threading.Event().wait()


def count_run(count_path: str) -> int:
    """Append one byte to ``count_path`` and return how many runs it has recorded, this one
    included (``O_APPEND`` writes of one byte are atomic: children cannot lose a count).
    """
    fd = os.open(count_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, b".")
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


MIXED = ("exit3", "segfault", "sigkill", "exception")
"""The kinds of death ``crash_until(..., kind="mixed")`` takes in turn."""


def crash_until(count_path: str, crashes: int, report_path: str, kind: str = "exit3") -> None:
    """Die the ``kind`` way on each of the first ``crashes`` runs; then report and run on.

    ``kind="mixed"``: run ``n`` dies the ``MIXED[(n - 1) % 4]`` way. The run after the last
    crash reports ``"up <pid>"`` and waits to be asked to stop.
    """
    run = count_run(count_path)
    if run <= crashes:
        die(MIXED[(run - 1) % len(MIXED)] if kind == "mixed" else kind)
    report(report_path, f"up {os.getpid()}")
    current_child().wait_stop()


def crash_once_then_return(count_path: str, kind: str, report_path: str) -> None:
    """Die the ``kind`` way on the first run; on the next run report ``"back"`` and return."""
    if count_run(count_path) == 1:
        die(kind)
    report(report_path, "back")


def report_sigterm(report_path: str) -> None:
    """Report this child's pid, then run on, reporting ``"term <pid>"`` for each SIGTERM.

    A child that ignores every stop request: only SIGKILL ends it.
    """
    pid = os.getpid()
    # Any thread of the process may catch the signal (the lifeline thread too), and a
    # signal.pause() loop can miss one that comes just before it sleeps: the wakeup fd gets
    # one byte per signal caught, whoever caught it, and the main thread reads them.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    report(report_path, str(pid))
    while True:
        for signum in os.read(wake_r, 512):
            if signum == signal.SIGTERM:
                report(report_path, f"term {pid}")


def report_stop_request(report_path: str) -> None:
    """A thread child: report a number of its own, then ``"term <number>"`` when asked to stop,
    and run on regardless (only the end of the process ends it).
    """
    number = threading.get_native_id()
    current_child().on_stop(lambda: report(report_path, f"term {number}"))
    report(report_path, str(number))
    threading.Event().wait()

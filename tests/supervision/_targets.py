"""Child targets for the supervisor contract tests, run as thread children and process children.

Module-level functions, so that a process child (``forkserver``: the target is pickled by
reference) imports this small module and finds them. Only the standard library and
``concurrency_kit`` are used.

A child talks to the test through a *channel directory* ``chan`` (a path, so it reaches the
child under every start method and in every thread alike):

* ``chan/log`` is a named FIFO the test holds open for reading and writing. A child appends one
  line per thing it does (:func:`record`): ``start <id> <pid>`` once it runs and listens,
  ``stop <id>`` when it stops because it was asked to. Each line is one ``write`` shorter than
  ``PIPE_BUF``, so lines from concurrent children never interleave, and a child's lines keep
  the order in which it wrote them.
* ``chan/<id>.gate`` is a named FIFO at which a running child waits for one *command* byte
  (:func:`await_command`). The test sends commands (:func:`poke`); the child's stop request
  (``current_child().on_stop``: the supervisor stopping it, or a process child's SIGTERM)
  sends ``s`` to the same FIFO, so a child waiting for a command also wakes up at once when it
  is asked to stop: stopping is quick and cooperative, never a kill after a timeout.

Commands (see :func:`act`): ``s`` stop (record ``stop <id>`` and return), ``r`` return,
``h`` raise :exc:`~concurrency_kit.Shutdown`, ``e`` raise :exc:`ValueError`; process children
only (in a thread child they would end the test process): ``0`` ``os._exit(0)``, ``3``
``os._exit(3)``, ``k`` SIGKILL itself.
"""

from __future__ import annotations

import math
import os
import signal
import threading

from concurrency_kit import PROCESS, THREAD, ChildSpec, Shutdown, current_child

LOG = "log"
"""The name of the log FIFO inside a channel directory."""


def record(chan: str, *words: object) -> None:
    """Append one line (``words`` joined by spaces) to the channel's log FIFO."""
    line = " ".join(str(word) for word in words) + "\n"
    fd = os.open(os.path.join(chan, LOG), os.O_WRONLY)  # the test holds a reader: never blocks
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def gate_path(chan: str, child_id: str) -> str:
    """The command FIFO of the child ``child_id``."""
    return os.path.join(chan, f"{child_id}.gate")


def poke(path: str, command: bytes) -> bool:
    """Send ``command`` to the FIFO at ``path`` if a child waits there.

    Returns:
        Whether it was sent (``False``: nobody holds the FIFO open, or it does not exist).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO when nobody holds it
    except OSError:
        return False
    try:
        os.write(fd, command)
    finally:
        os.close(fd)
    return True


def await_command(chan: str, child_id: str) -> str:
    """Record ``start <id> <pid>``, then wait for one command (``"s"``: asked to stop).

    The gate is opened (read *and* write: no blocking, no end-of-file) and the stop callback
    registered *before* the start line is written, so once the test has read that line, a
    command or a stop request cannot be missed.
    """
    path = gate_path(chan, child_id)
    try:
        os.mkfifo(path)
    except FileExistsError:  # made by an earlier run of this child
        pass
    fd = os.open(path, os.O_RDWR)
    try:
        # May run in a process child's SIGTERM handler: it only opens, writes and closes.
        current_child().on_stop(lambda: poke(path, b"s"))
        record(chan, "start", child_id, os.getpid())
        return os.read(fd, 1).decode()
    finally:
        os.close(fd)


def act(command: str) -> None:
    """End the child the way ``command`` says (see the module docstring)."""
    if command == "r":
        return
    if command == "h":
        raise Shutdown
    if command == "e":
        raise ValueError("crash on command")
    if command == "0":
        os._exit(0)
    if command == "3":
        os._exit(3)
    if command == "k":
        os.kill(os.getpid(), signal.SIGKILL)
        while True:  # pragma: no cover - the signal ends the process
            signal.pause()
    raise AssertionError(f"unknown command {command!r}")


def child(chan: str, child_id: str) -> None:
    """The usual child: record its start, wait for a command or a stop request, obey."""
    command = await_command(chan, child_id)
    if command == "s":
        record(chan, "stop", child_id)
        return
    act(command)


def child_checking_context(chan: str, child_id: str) -> None:
    """Like :func:`child`, reporting what :func:`current_child` says before and after.

    Records ``context <id> <should_stop()> <wait_stop(0)>`` first, and the same line again once
    asked to stop, before ``stop <id>``.
    """
    context = current_child()
    record(chan, "context", context.id, context.should_stop(), context.wait_stop(0))
    command = await_command(chan, child_id)
    assert command == "s", command
    assert context.wait_stop() is True  # returns at once: the stop was requested
    record(chan, "context", context.id, context.should_stop(), context.wait_stop(0))
    record(chan, "stop", child_id)


def ignore_stop(chan: str, child_id: str, release: threading.Event | None = None) -> None:
    """A child that does not stop when asked.

    A thread child waits for ``release`` (set by the test once it has seen the child
    abandoned, so the thread ends before the leak check). A process child ignores SIGTERM and
    waits to be killed.
    """
    if release is None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        record(chan, "start", child_id, os.getpid())
        while True:
            signal.pause()
    record(chan, "start", child_id, os.getpid())
    release.wait()


def subtree(model_name: str, chan: str, intensity: int) -> None:
    """A supervisor subtree: a supervisor of one :func:`child` ``"leaf"``, run until stopped.

    For the process model the nested supervisor lives in this child process, and the leaf is
    a grandchild of the test process.
    """
    model = PROCESS if model_name == "process" else THREAD
    # An infinite period: every restart counts, however slowly the test runs (with the
    # default 5 s, two crashes far enough apart on a loaded machine would not add up).
    supervisor = model.Supervisor(
        [ChildSpec("leaf", child, (chan, "leaf"))],
        intensity=intensity,
        period=math.inf,
        name="sub",
    )
    supervisor.run()


RUNS: dict[str, list[threading.Thread]] = {}
"""Thread children only: the threads each child id ran in, oldest first (see :func:`child_run`)."""


def count_run(chan: str, child_id: str) -> int:
    """Count one more run of ``child_id`` in ``chan/<id>.runs``; return the count, this run in.

    ``O_APPEND`` writes of one byte are atomic, so no run is lost, in threads or processes.
    """
    fd = os.open(os.path.join(chan, f"{child_id}.runs"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, b".")
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def crash_on_first_run(chan: str, child_id: str, hard: bool) -> None:
    """Crash at once on the first run (``hard``: ``os._exit(3)``, else raise); then :func:`child`.

    ``hard`` is for process children (it would end a thread child's whole process).
    """
    if count_run(chan, child_id) == 1:
        if hard:
            os._exit(3)
        raise ValueError("the first run crashes")
    child(chan, child_id)


def child_run(chan: str, child_id: str) -> None:
    """:func:`child`, keeping the thread it runs in (a thread child) in :data:`RUNS`."""
    RUNS.setdefault(child_id, []).append(threading.current_thread())
    child(chan, child_id)


def stubborn(chan: str, child_id: str) -> None:
    """A process child that ignores SIGTERM, says so each time it gets one, and runs on.

    Records ``start <id> <pid>`` once SIGTERM is handled, ``term <id>`` per SIGTERM; only
    SIGKILL ends it.
    """
    signal.signal(signal.SIGTERM, lambda signum, frame: record(chan, "term", child_id))
    record(chan, "start", child_id, os.getpid())
    while True:
        signal.pause()

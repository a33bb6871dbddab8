"""ThreadSupervisor: the thread column of the crash-impact row.

A thread child is a daemon thread running its target; when the target returns or raises, the
thread puts its handle on the runner's exit queue, which the supervisor's loop waits on::

    spawn(spec) ── starts the thread, waits until it runs the target ──> handle
    child thread:  running.set(); target(*args, **kwargs) ── returns / raises ──>
                   done (under the runner's condition), exits.put(handle)
    loop thread:   exits.get() ──> _on_exit(handle)   (``_restart.py``)

The interpreter runner (``interpreter.py``) is this runner with another ``_call``: its child's
thread runs the target inside a fresh interpreter, and the same :func:`run_target` classifies
the exit there.

A child thread blocks SIGINT (Ctrl-C is the supervising program's, as a process child ignores
it), so that the signal reaches the main thread blocked in ``stop()`` or ``wait()``.

A child is *gone* once its thread has finished (``join``: the thread's ``done``, then the
thread itself); every wait is bounded (``_core.deadline``) and ends early on ``interrupt()``.

An exception in a child is contained: the supervisor sees an abnormal exit and restarts by
its strategy. What a thread supervisor cannot contain is a *hard* crash (a segfault in C code,
``os._exit``): it takes the whole process down, supervisor included — the crash-impact row of
the table. And a thread cannot be killed: stopping a child asks it to stop through
:func:`~concurrency_kit.current_child` and waits its ``shutdown`` time; a thread still running
then is *abandoned* (reported, left to finish on its own), so ``BRUTAL_KILL`` is refused.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from concurrency_kit._core.deadline import deadline_after, remaining, wait_slice
from concurrency_kit.supervision._restart import SupervisorCore, leave_ctrl_c_to_the_main_thread
from concurrency_kit.supervision._spec import (
    BRUTAL_KILL,
    ChildContext,
    ChildSpec,
    Shutdown,
    set_thread_context,
)

__all__ = ["ThreadSupervisor"]

_WAKE = None  # what wake() puts on the exit queue


def run_target(
    target: Callable[..., object], args: tuple[Any, ...], kwargs: Mapping[str, Any] | None
) -> tuple[bool, str | None, str | None]:
    """Call a child's target; return how it ended, as data: ``(normal, exception, traceback)``.

    The one classification of a thread-like child's end (a thread child's, and an
    interpreter child's inside its interpreter): returning, raising :exc:`Shutdown` or
    ``sys.exit()`` / ``sys.exit(0)`` is normal, as for a process child; another
    :exc:`SystemExit` is an abnormal ``"SystemExit"``; any other exception is contained and
    reported by its type name and traceback text.
    """
    try:
        target(*args, **(kwargs or {}))
    except Shutdown:
        return True, None, None
    except SystemExit as exc:  # as a process child: sys.exit() or sys.exit(0) is normal
        normal = exc.code is None or exc.code == 0
        return normal, None if normal else "SystemExit", None
    except BaseException as exc:  # contained: the supervisor decides what follows
        return False, type(exc).__name__, traceback.format_exc()
    return True, None, None


class _ThreadExit:
    __slots__ = ("exception", "exitcode", "normal", "signal", "traceback")

    def __init__(self, normal: bool, exception: str | None = None, tb: str | None = None) -> None:
        self.normal = normal
        self.exitcode: int | None = None
        self.signal: int | None = None
        self.exception = exception
        self.traceback = tb


class _ThreadHandle:
    __slots__ = (
        "context",
        "done",
        "exit",
        "pid",
        "reaped",
        "running",
        "spec",
        "started_at",
        "thread",
    )

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.pid: int | None = None
        self.reaped = False
        self.started_at = time.monotonic()
        self.context = ChildContext(spec.id)
        self.exit = _ThreadExit(normal=False, exception="Running")
        self.thread: threading.Thread | None = None
        self.running = threading.Event()  # set just before the target is called
        self.done = False  # set (under the runner's condition) once the target has ended


class _ThreadRunner:
    """Runs thread children for a supervisor (the ``Runner`` of ``_restart.py``)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._exits: queue.SimpleQueue[_ThreadHandle | None] = queue.SimpleQueue()
        self._condition = threading.Condition()  # notified when a child ends or on interrupt
        self._interrupted = False

    def spawn(self, spec: ChildSpec) -> _ThreadHandle:
        handle = self._new_handle(spec)
        thread = threading.Thread(
            target=self._run, args=(handle,), name=f"{self._name}:{spec.id}", daemon=True
        )
        handle.thread = thread
        thread.start()
        while not handle.running.wait(wait_slice(None)):  # soon: the thread is started
            pass
        return handle

    def _new_handle(self, spec: ChildSpec) -> _ThreadHandle:
        """A handle for a new run of ``spec`` (the interpreter runner's holds more)."""
        return _ThreadHandle(spec)

    def _run(self, handle: _ThreadHandle) -> None:
        """The body of a child's thread: run the child, then report that it is gone."""
        leave_ctrl_c_to_the_main_thread()  # Ctrl-C is the supervising program's
        try:
            handle.exit = self._call(handle)
        finally:
            handle.running.set()  # a child that failed before its target: spawn() returns
            with self._condition:
                handle.done = True
                self._condition.notify_all()
            self._exits.put(handle)

    def _call(self, handle: _ThreadHandle) -> _ThreadExit:
        """Run the child in this thread; set ``handle.running`` once it has its target.

        A thread child runs its target right here (the interpreter runner overrides this to
        run it inside an interpreter of its own).
        """
        spec = handle.spec
        set_thread_context(handle.context)
        try:
            handle.running.set()
            return _ThreadExit(*run_target(spec.target, spec.args, spec.kwargs))
        finally:
            set_thread_context(None)

    def request_stop(self, handle: Any) -> None:
        handle.context.request_stop()

    def kill(self, handle: Any) -> bool:
        return False  # a thread cannot be killed

    def join(self, handle: Any, timeout: float | None, *, interruptible: bool = True) -> bool:
        deadline = deadline_after(timeout)
        with self._condition:
            while not handle.done and not (interruptible and self._interrupted):
                left = remaining(deadline)
                if left == 0:
                    return False
                self._condition.wait(wait_slice(left))
            if not handle.done:
                return False
        while handle.thread.is_alive():  # the target has ended: the thread ends at once
            handle.thread.join(wait_slice(None))
        return True

    def exit_of(self, handle: Any) -> _ThreadExit:
        self.join(handle, None, interruptible=False)
        exit_: _ThreadExit = handle.exit
        return exit_

    def wait_exits(self, timeout: float | None) -> list[Any]:
        try:
            first = self._exits.get(timeout=wait_slice(timeout))
        except queue.Empty:
            return []
        exited = [] if first is _WAKE else [first]
        while True:
            try:
                item = self._exits.get_nowait()
            except queue.Empty:
                return exited
            if item is not _WAKE:
                exited.append(item)

    def wake(self) -> None:
        self._exits.put(_WAKE)

    def prepare(self, count: int) -> None:
        pass  # a thread starts in microseconds: nothing to ready

    def interrupt(self) -> None:
        with self._condition:
            self._interrupted = True
            self._condition.notify_all()

    def close(self) -> None:
        pass


class ThreadSupervisor(SupervisorCore):
    """An OTP supervisor of threads: restarts children that crash, by a strategy.

    Children are threads running their specs' targets. An exception that ends a target is a
    crash the supervisor contains and answers (restart one, all or the rest, within the
    restart intensity); a hard crash (a segfault, ``os._exit``) ends the whole process, as
    the table says of threads. Children stop cooperatively (see
    :func:`~concurrency_kit.current_child`); one that does not stop within its ``shutdown``
    time is abandoned and reported. The same API as :class:`ProcessSupervisor`.

    Example::

        def worker():
            while not current_child().should_stop():
                do_some_work()

        with ThreadSupervisor([ChildSpec("worker", worker)]) as supervisor:
            ...
    """

    _model = "thread"

    def _check_spec(self, spec: ChildSpec) -> None:
        if spec.shutdown is BRUTAL_KILL:
            raise ValueError(
                f"child {spec.id!r}: a thread cannot be killed, so BRUTAL_KILL is for process "
                "children only; give a shutdown time in seconds"
            )

    def _make_runner(self) -> _ThreadRunner:
        return _ThreadRunner(self.name)

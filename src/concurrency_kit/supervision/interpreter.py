"""InterpreterSupervisor: the interpreter column of the crash-impact row (Python 3.14+, PEP 734).

An interpreter child is a thread of the supervising interpreter (as a thread child is) that
takes a fresh subinterpreter (made ahead of need, see :class:`_InterpreterRunner`), runs the
child's target inside it, and closes it when the target ends. The target and its arguments
cross pickled (cloudpickle, as for ``InterpreterPool``); the exit comes back as data. Two calls
into the new interpreter, so that ``spawn`` returns once the child has its target, as for the
other models::

    spawn(spec) ── pickles the call; starts the child's thread, waits for ``running`` ──> handle
    child's thread (this interpreter)         the child's interpreter (fresh, its own GIL)
      takes the spare interpreter             (made ahead by a thread: create(), our sys.path,
        (and has the next one made)            this module imported; nothing of a child's ran)
      call(_enter, id, call, stop pipe) ────>  ChildContext(id) for current_child(), any thread
                                               stop watcher thread: reads the stop pipe
                                               unpickles the call (a failure: an exit at once)
      running.set()  (spawn returns)
      call(_run) ───────────────────────────>  run_target(target, args, kwargs)  (thread.py)
                                       <────── (normal, exception name, traceback text)
                                               ends the watcher
      close(); done, exits.put(handle)        (gone: every module the child touched with it)
    request_stop(handle) ── b"s" on the stop pipe ──> watcher: context.request_stop(), ends

Everything else (``join``, ``wait_exits``, ``wake``, ``interrupt``) is the thread runner's:
the child is gone when its thread has closed the interpreter and finished.

Why a pipe for stop requests: a byte written before the child's interpreter is even up waits
in the pipe, so no request is lost between ``spawn`` and the watcher's first read; reading it
releases the child interpreter's GIL; and it needs no shared memory to clean up. The watcher
ends after the first request: an interpreter whose child ignores the request is abandoned with
no thread of ours left in it, because a (non-daemon) thread of a subinterpreter blocked for
ever would hold the program's exit. The pipe's descriptors are closed by the child's thread
once the interpreter is closed, under the runner's condition, which ``request_stop`` also
holds: a request never writes to a closed (or reused) descriptor.

Why the called functions read this module's globals: ``Interpreter.call`` may send a function
that reads no global as its bare code (seen on 3.14: such a function that assigned a global
set it in the other interpreter's ``__main__``); one that reads globals goes by reference
(module and name), so it runs *in this module* over there, where ``_entered`` keeps the child
between the two calls.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import traceback
from collections.abc import Iterable
from typing import Any

from concurrency_kit._core import serialize
from concurrency_kit._core.deadline import wait_slice
from concurrency_kit._core.platforms import require_interpreters
from concurrency_kit.errors import SerializationError
from concurrency_kit.supervision._restart import SupervisorCore
from concurrency_kit.supervision._spec import (
    BRUTAL_KILL,
    AutoShutdown,
    Backoff,
    ChildContext,
    ChildSpec,
    Strategy,
    set_process_context,
)
from concurrency_kit.supervision.thread import _ThreadExit, _ThreadHandle, _ThreadRunner, run_target

__all__ = ["InterpreterSupervisor"]

_STOP = b"s"  # on the stop pipe: the supervisor asks the child to stop
_END = b"e"  # on the stop pipe: the target has ended, the watcher ends too

_Exit = tuple[bool, "str | None", "str | None"]  # (normal, exception name, traceback text)

# -- inside the child's interpreter --------------------------------------------------------------

_entered: list[Any] = []
"""In a child's interpreter, between :func:`_enter` and :func:`_run`: ``[call, watcher]``."""


class _StopWatcher:
    """A thread of the child's interpreter that turns a byte on the stop pipe into a stop request.

    :meth:`ChildContext.request_stop` runs here, so ``should_stop()``, ``wait_stop()`` and the
    ``on_stop`` callbacks work in the child as in a thread child (a callback runs in this thread:
    it must be quick). The thread ends after the first request, or when the target has ended
    (:meth:`end`).
    """

    __slots__ = ("read_fd", "thread", "write_fd")

    def __init__(self, context: ChildContext, read_fd: int, write_fd: int) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.thread = threading.Thread(
            target=self._watch, args=(context,), name=f"concurrency_kit-stop:{context.id}"
        )
        self.thread.start()

    def _watch(self, context: ChildContext) -> None:
        while True:
            byte = os.read(self.read_fd, 1)
            if byte == _STOP:
                context.request_stop()
                return
            if byte in (_END, b""):
                return

    def end(self) -> None:
        """End the watcher (the interpreter closes only once its threads have ended)."""
        try:
            os.write(self.write_fd, _END)
        except BlockingIOError:  # pragma: no cover - full of requests: the watcher has ended
            pass
        self.thread.join()


def _enter(
    child_id: str, payload: bytes, stop_fds: tuple[int, int], path: list[str]
) -> _Exit | None:
    """Become the child (called in its fresh interpreter): its context, its watcher, its call.

    ``path`` is the supervising interpreter's ``sys.path`` now (the interpreter may have been
    made ahead of need, with the path of then). Returns ``None`` once the child holds its
    target, or its exit if the call cannot be unpickled here (a module that does not import in
    a subinterpreter, for one).
    """
    sys.path[:] = path
    context = ChildContext(child_id)
    set_process_context(context)  # current_child() from any thread of this interpreter
    watcher = _StopWatcher(context, *stop_fds)
    try:
        call = serialize.loads(payload)
    except BaseException as exc:
        watcher.end()
        return False, type(exc).__name__, traceback.format_exc()
    _entered[:] = [call, watcher]
    return None


def _run() -> _Exit:
    """Run the child's target (called in its interpreter, after :func:`_enter`)."""
    (target, args, kwargs), watcher = _entered
    _entered.clear()
    try:
        return run_target(target, args, kwargs)
    finally:
        del target, args, kwargs
        watcher.end()


# -- in the supervising interpreter ----------------------------------------------------------


def _interpreters() -> Any:
    """The ``concurrent.interpreters`` module (Python 3.14+), imported by name so that this
    module imports on every Python."""
    require_interpreters("InterpreterSupervisor")
    return importlib.import_module("concurrent.interpreters")


class _InterpreterHandle(_ThreadHandle):
    __slots__ = ("payload", "stop_r", "stop_w")

    def __init__(self, spec: ChildSpec, payload: bytes) -> None:
        super().__init__(spec)
        self.payload = payload
        self.stop_r, self.stop_w = os.pipe()
        os.set_blocking(self.stop_w, False)  # request_stop() never blocks


class _InterpreterRunner(_ThreadRunner):
    """Runs interpreter children (the ``Runner`` of ``_restart.py``; see the module docstring).

    It keeps a *spare*: an interpreter made ahead of need, with this library imported, which the
    next child to start takes (a thread makes the next spare meanwhile). A spare has run none
    of a child's code, so a child that takes it starts as fresh as in a new one, and a restart
    does not wait for an interpreter to be made and this library to be imported there (about
    0.1 s). ``prepare(n)`` makes ``n`` spares side by side, for ``n`` children about to start.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._interpreters = _interpreters()
        self._spares: list[Any] = []
        self._makers: list[threading.Thread] = []  # threads making spares (under _condition)
        self._closed = False

    def _new_handle(self, spec: ChildSpec) -> _InterpreterHandle:
        return _InterpreterHandle(spec, _dumps_call(spec))

    # -- spare interpreters ---------------------------------------------------------------------

    def _make_interpreter(self) -> Any:
        """A new interpreter with this library imported (closed again if that fails)."""
        interp = self._interpreters.create()
        try:
            interp.exec(
                f"import sys\nsys.path[:] = {list(sys.path)!r}\n"
                f"import {__name__}\n"  # what _enter and _run need, ahead of the child
            )
        except BaseException:
            interp.close()
            raise
        return interp

    def _make_spare(self) -> None:
        """The body of a spare-making thread."""
        try:
            interp = self._make_interpreter()
        except BaseException:  # spawn() makes one itself, and reports what fails
            interp = None
        with self._condition:
            if interp is not None and not self._closed:
                self._spares.append(interp)
                interp = None
                self._condition.notify_all()  # a spawn may be waiting for it
        try:
            if interp is not None:  # made after close(): not needed
                interp.close()
        finally:
            with self._condition:  # close() returns once every spare is closed
                self._makers.remove(threading.current_thread())
                self._condition.notify_all()

    def _make_spares_locked(self, count: int) -> None:
        """Have ``count`` spares made or being made (``_condition`` held)."""
        while not self._closed and len(self._spares) + len(self._makers) < count:
            thread = threading.Thread(
                target=self._make_spare, name=f"{self._name}:spare", daemon=True
            )
            self._makers.append(thread)
            thread.start()

    def _take_interpreter(self) -> Any:
        """A spare (waiting for one being made), else a new interpreter; the next spare starts."""
        with self._condition:
            while not self._spares and self._makers:
                self._condition.wait(wait_slice(None))
            interp = self._spares.pop() if self._spares else None
            self._make_spares_locked(1)
        return interp if interp is not None else self._make_interpreter()

    def prepare(self, count: int) -> None:
        with self._condition:
            self._make_spares_locked(count)

    def close(self) -> None:
        with self._condition:
            self._closed = True
            while self._makers:  # each ends within an interpreter's making
                self._condition.wait(wait_slice(None))
            spares, self._spares = self._spares, []
        for interp in spares:
            interp.close()

    # -- a child's run ----------------------------------------------------------------------------

    def _call(self, handle: _ThreadHandle) -> _ThreadExit:
        assert isinstance(handle, _InterpreterHandle)
        interp = None
        try:
            interp = self._take_interpreter()
            payload, handle.payload = handle.payload, b""
            stop_fds = (handle.stop_r, handle.stop_w)
            ended = interp.call(_enter, handle.spec.id, payload, stop_fds, list(sys.path))
            del payload
            handle.running.set()  # spawn() returns: the child has its target
            if ended is None:
                ended = interp.call(_run)
            normal, exception, tb = ended
            return _ThreadExit(normal, exception, tb)
        except BaseException as exc:  # the runtime failed the child (no interpreter, ...)
            return _ThreadExit(False, type(exc).__name__, traceback.format_exc())
        finally:
            try:
                if interp is not None:
                    interp.close()
            finally:
                with self._condition:  # request_stop() writes under it: never to a closed fd
                    os.close(handle.stop_r)
                    os.close(handle.stop_w)
                    handle.stop_r = handle.stop_w = -1

    def request_stop(self, handle: Any) -> None:
        with self._condition:
            if handle.stop_w < 0:
                return  # its interpreter is closed: it has ended already
            try:
                os.write(handle.stop_w, _STOP)
            except BlockingIOError:  # pragma: no cover - full of requests: it was asked
                pass


def _dumps_call(spec: ChildSpec) -> bytes:
    """The child's call, pickled for its interpreter, or a :exc:`SerializationError` naming
    the child and what could not be pickled."""
    try:
        return serialize.dumps_call(spec.target, spec.args, spec.kwargs)
    except SerializationError as exc:
        message = str(exc).replace("a worker process", "a child interpreter")
        raise SerializationError(f"child {spec.id!r}: {message}") from exc.__cause__


class InterpreterSupervisor(SupervisorCore):
    """An OTP supervisor of subinterpreters (Python 3.14+): restarts children that crash.

    Each child runs its spec's target in an interpreter of its own (``concurrent.interpreters``,
    PEP 734) inside this process, with its own GIL and its own modules; the target and its
    arguments are pickled with cloudpickle, as for :class:`InterpreterPool`. An exception that
    ends a target is a crash the supervisor contains and answers (restart one, all or the
    rest, within the restart intensity), as for :class:`ThreadSupervisor`, with what a thread
    cannot give: a restarted child runs in a *fresh* interpreter, so the module globals, caches
    and half-done state a crashed run left behind are gone with it, as with a process child.
    Shared state goes through the process classes (``INTERPRETER.Event``, ``SharedDict``,
    ``Channel``, ...), passed to the child as arguments.

    What an interpreter cannot do, a process could:

    * a hard crash (a segfault in C code, ``os._exit``) in a child ends the whole process,
      the supervisor and every other child included: nothing isolates one interpreter from
      another;
    * an interpreter cannot be killed: stopping a child asks it to stop through
      :func:`~concurrency_kit.current_child` (from any thread of its interpreter) and waits
      its ``shutdown`` time; a child still running then is *abandoned* (reported as an exit
      with ``exception="AbandonedThread"`` and counted in ``statistics().abandoned``; its
      interpreter is closed once its target returns, and it does not hold the program's
      exit). So ``BRUTAL_KILL`` is refused;
    * an extension module that does not support subinterpreters (numpy, for one) cannot be
      imported in a child: its run ends at once with an :class:`ImportError`;
    * a child cannot run a supervisor itself: a subinterpreter refuses the daemon threads a
      supervisor starts. An interpreter supervisor can be the subtree of a thread or process
      child instead;
    * each run of a child needs a new interpreter, with this library imported there (about
      0.1 s). The supervisor keeps one made ahead of need, so a restart takes a few
      milliseconds plus the imports of the child's own modules; a child that crashes again
      before the next spare is ready waits for it. The spare costs the memory of one idle
      interpreter per supervisor.

    The same API as :class:`ThreadSupervisor` and :class:`ProcessSupervisor`; ``forward_logs``
    changes nothing (a child's ``logging`` is its interpreter's own).

    Example::

        def worker(jobs):
            while not current_child().should_stop():
                handle(jobs.get())

        with InterpreterSupervisor([ChildSpec("worker", worker, (jobs,))]) as supervisor:
            ...

    Raises:
        ImportError: this Python is older than 3.14 (no ``concurrent.interpreters``).
        ValueError: a child with ``shutdown=BRUTAL_KILL`` (an interpreter cannot be killed),
            duplicate ids, or the other bad values :class:`ThreadSupervisor` refuses.
        SerializationError: a child's target or arguments cannot be pickled.
    """

    _model = "interpreter"

    def __init__(
        self,
        children: Iterable[ChildSpec] = (),
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: int = 3,
        period: float = 5.0,
        backoff: Backoff | None = None,
        auto_shutdown: AutoShutdown = AutoShutdown.NEVER,
        name: str | None = None,
        forward_logs: bool = True,
    ) -> None:
        require_interpreters("InterpreterSupervisor")  # first: the clear error before 3.14
        super().__init__(
            children,
            strategy=strategy,
            intensity=intensity,
            period=period,
            backoff=backoff,
            auto_shutdown=auto_shutdown,
            name=name,
            forward_logs=forward_logs,
        )

    def _check_spec(self, spec: ChildSpec) -> None:
        if spec.shutdown is BRUTAL_KILL:
            raise ValueError(
                f"child {spec.id!r}: an interpreter cannot be killed, so BRUTAL_KILL is for "
                "process children only; give a shutdown time in seconds"
            )
        _dumps_call(spec)  # now, not at its first (re)start

    def _make_runner(self) -> _InterpreterRunner:
        return _InterpreterRunner(self.name)

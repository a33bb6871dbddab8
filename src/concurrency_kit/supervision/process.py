"""ProcessSupervisor: the process column of the crash-impact row.

A process child is a :class:`multiprocessing.Process` (``forkserver`` by default) running
:func:`_standby_main`: started ahead of need, it waits for the child it is to be, then runs
its target and reports how it ended::

    parent                                       child process (started as the standby)
    spawn(spec) ── assignment pipe: (id, call) ──> lifeline thread: exit when the parent dies
      then starts the next standby                 SIGTERM -> current_child() asked to stop
      keeps: the process's sentinel,               target(*args, **kwargs)
             the read end of a result pipe
    loop: wait(sentinels + wake pipe)              raises -> result pipe: (type, traceback),
      a sentinel is ready -> the child exited              exit code 1
      exit code, signal, result pipe -> exit       returns / raises Shutdown -> exit code 0

Exits are seen through sentinels (:func:`multiprocessing.connection.wait`), never by polling.
Stopping a child sends SIGTERM, waits its ``shutdown`` time, then SIGKILL (``BRUTAL_KILL``:
SIGKILL at once). A child whose supervising process dies, however it dies, exits at once
(``_lifeline.py``), so no child outlives its supervisor.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback
from multiprocessing.connection import Connection, wait
from typing import Any

from concurrency_kit import _serialize
from concurrency_kit._lifeline import watch_parent
from concurrency_kit._util import mp_context
from concurrency_kit.pools.process import default_start_method
from concurrency_kit.supervision._core import SupervisorCore
from concurrency_kit.supervision._spec import (
    ChildContext,
    ChildSpec,
    Shutdown,
    set_process_context,
)

__all__ = ["ProcessSupervisor"]

EXIT_PARENT_DIED = 70
"""The exit code of a child whose supervising process died."""


def _standby_main(alive: Connection, assignments: Connection, result: Connection) -> None:
    """The body of a process child (runs in the child): wait for a child to be, then be it.

    A child process is started *before* it is needed, as a standby that has already paid for
    the start method and the imports; the supervisor sends it its child's id and target when
    a child starts, so a crashed child is replaced in about a millisecond.
    """
    watch_parent(alive.fileno(), EXIT_PARENT_DIED)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervising process's
    try:
        assignment = assignments.recv()
    except (EOFError, OSError):  # the supervisor stopped without needing it
        return
    finally:
        assignments.close()
    if assignment is None:
        return
    child_id, payload = assignment
    context = ChildContext(child_id)
    set_process_context(context)

    signal.signal(signal.SIGTERM, lambda signum, frame: context.request_stop())
    try:
        target, args, kwargs = _serialize.loads(payload)
        target(*args, **(kwargs or {}))
    except Shutdown:
        pass
    except SystemExit:
        raise  # its code is the exit code, as multiprocessing does
    except BaseException as exc:
        try:
            result.send((type(exc).__name__, traceback.format_exc()))
        finally:
            os._exit(1)


class _ProcessExit:
    __slots__ = ("exception", "exitcode", "normal", "signal", "traceback")

    def __init__(self, exitcode: int | None, exception: str | None, tb: str | None) -> None:
        self.exitcode = exitcode
        self.signal = -exitcode if exitcode is not None and exitcode < 0 else None
        self.normal = exitcode == 0
        self.exception = exception
        self.traceback = tb


class _ProcessHandle:
    __slots__ = ("exit", "pid", "process", "reaped", "result", "spec", "started_at")

    def __init__(self, spec: ChildSpec, process: Any, result: Connection) -> None:
        self.spec = spec
        self.process = process
        self.pid: int | None = process.pid
        self.result = result
        self.reaped = False
        self.started_at = time.monotonic()
        self.exit: _ProcessExit | None = None


class _ProcessRunner:
    """Runs process children for a supervisor (the ``Runner`` of ``_core.py``)."""

    def __init__(self, name: str, context: Any) -> None:
        self._name = name
        self._context = context
        self._alive_r, self._alive_w = context.Pipe(duplex=False)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._lock = threading.Lock()
        self._live: list[_ProcessHandle] = []
        self._standby: tuple[Any, Connection, Connection] | None = None
        self._closed = False

    def _start_standby(self) -> tuple[Any, Connection, Connection]:
        """Start a process that waits to become a child (see :func:`_standby_main`)."""
        result_r, result_w = self._context.Pipe(duplex=False)
        assign_r, assign_w = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_standby_main,
            args=(self._alive_r, assign_r, result_w),
            name=f"{self._name}:standby",
        )
        try:
            process.start()
        except BaseException:
            result_r.close()
            assign_w.close()
            raise
        finally:
            result_w.close()
            assign_r.close()
        return process, assign_w, result_r

    def spawn(self, spec: ChildSpec) -> _ProcessHandle:
        payload = _serialize.dumps_call(spec.target, spec.args, spec.kwargs)
        standby, self._standby = self._standby, None
        if standby is None:
            standby = self._start_standby()
        process, assign_w, result_r = standby
        try:
            assign_w.send((spec.id, payload))
        except OSError:  # the standby died before it was needed: start one now
            self._discard(standby)
            process, assign_w, result_r = self._start_standby()
            assign_w.send((spec.id, payload))
        finally:
            assign_w.close()
        process.name = f"{self._name}:{spec.id}"
        handle = _ProcessHandle(spec, process, result_r)
        with self._lock:
            self._live.append(handle)
        self.wake()  # the loop must wait on the new sentinel too
        self._standby = self._start_standby()  # the next child, already started
        return handle

    @staticmethod
    def _discard(standby: tuple[Any, Connection, Connection]) -> None:
        process, assign_w, result_r = standby
        assign_w.close()  # end-of-file: a standby still waiting exits by itself
        process.join()
        process.close()
        result_r.close()

    def request_stop(self, handle: Any) -> None:
        if handle.process.exitcode is None:
            handle.process.terminate()

    def kill(self, handle: Any) -> bool:
        if handle.process.exitcode is None:
            handle.process.kill()
        return True

    def join(self, handle: Any, timeout: float | None) -> bool:
        handle.process.join(timeout)
        return handle.process.exitcode is not None

    def exit_of(self, handle: Any) -> _ProcessExit:
        if handle.exit is None:
            handle.process.join()
            exception = tb = None
            try:
                if handle.result.poll():
                    exception, tb = handle.result.recv()
            except (EOFError, OSError):
                pass
            handle.exit = _ProcessExit(handle.process.exitcode, exception, tb)
            handle.result.close()
            handle.process.close()
            with self._lock:
                if handle in self._live:
                    self._live.remove(handle)
        exit_: _ProcessExit = handle.exit
        return exit_

    def wait_exits(self, timeout: float | None) -> list[Any]:
        with self._lock:
            live = list(self._live)
        sentinels = {h.process.sentinel: h for h in live}
        ready = wait([*sentinels, self._wake_r], timeout)
        if self._wake_r in ready:
            try:
                os.read(self._wake_r, 4096)
            except BlockingIOError:
                pass
        return [sentinels[r] for r in ready if r in sentinels]

    def wake(self) -> None:
        if self._closed:  # the loop has ended: nothing to wake
            return
        try:
            os.write(self._wake_w, b"!")
        except BlockingIOError:  # the pipe is full: the loop has wake-ups waiting already
            pass
        except OSError:  # closed by the loop's end in another thread meanwhile
            pass

    def close(self) -> None:
        self._closed = True
        if self._standby is not None:
            self._discard(self._standby)
            self._standby = None
        for handle in list(self._live):
            self.exit_of(handle)  # reap whatever is left (all stopped by now)
        self._alive_w.close()
        self._alive_r.close()
        os.close(self._wake_r)
        os.close(self._wake_w)


class ProcessSupervisor(SupervisorCore):
    """An OTP supervisor of processes: restarts children that crash, by a strategy.

    Each child is a process running its spec's target (pickled with cloudpickle, so lambdas
    and closures work): a crash of any kind — an exception, a non-zero exit, a segfault,
    SIGKILL — ends that child only, and the supervisor answers it (restart one, all or the
    rest, within the restart intensity). Children are stopped with SIGTERM (which
    :func:`~concurrency_kit.current_child` reports as a stop request), then SIGKILL after
    their ``shutdown`` time; they exit by themselves if the supervising process dies. The
    same API as :class:`ThreadSupervisor`.

    Example::

        with ProcessSupervisor([ChildSpec("worker", serve_forever)]) as supervisor:
            supervisor.wait()
    """

    _model = "process"

    def _make_runner(self) -> _ProcessRunner:
        return _ProcessRunner(self.name, mp_context(default_start_method()))

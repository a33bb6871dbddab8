"""ProcessSupervisor: the process column of the crash-impact row.

A process child is a :class:`multiprocessing.Process` (``forkserver`` by default) running
:func:`_standby_main`: started ahead of need, it waits for the child it is to be, then runs
its target and reports how it ended::

    parent                                       child process (started as the standby)
    spawn(spec) ── assignment pipe: (id, call) ──> lifeline thread: exit when the parent dies
      waits for RUNNING on the result pipe  <───── SIGTERM -> current_child() asked to stop
      keeps: a pidfd of the process,               result pipe: RUNNING
             the read end of the result pipe       target(*args, **kwargs)
      then starts the next standby                 raises -> result pipe: (type, traceback),
    loop: wait(pidfds + wake pipe)                         exit code 1
      a pidfd is ready -> the child is gone        returns / raises Shutdown -> exit code 0
      exit code, signal, result pipe -> exit
    log forwarder thread <── log channel ──────── logging records (``_core/worker_logs.py``)

Exits are seen through pidfds (:func:`os.pidfd_open`; the process sentinel where there is
none), never by polling. A pidfd names one process for good, so signals go to that process
and no other (:func:`signal.pidfd_send_signal`), and it reports the process gone only when it
is: a child is never reported exited while it runs, whatever the fork server's own report
says. ``spawn`` returns once the child has said ``RUNNING`` (it has its assignment and its
SIGTERM handler): a child reported started is not a standby still waiting for its pipe.
Stopping a child sends SIGTERM, waits its ``shutdown`` time, then SIGKILL (``BRUTAL_KILL``:
SIGKILL at once). A child whose supervising process dies, however it dies, exits at once
(``_core/lifeline.py``), so no child outlives its supervisor.

Thread safety: the loop thread waits on *duplicates* of the pidfds, taken under the runner's
lock, so a child reaped and closed by another thread (``terminate_child``) cannot have its
descriptor number reused under the loop's feet; ``wake()`` and ``close()`` share that lock,
so a wake-up never writes to a closed (or reused) descriptor.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import signal
import threading
import time
import traceback
from multiprocessing.connection import Connection, wait
from typing import Any

from concurrency_kit._core import serialize, worker_logs
from concurrency_kit._core.deadline import deadline_after, remaining, wait_slice
from concurrency_kit._core.lifeline import watch_parent
from concurrency_kit._core.startmethod import default_start_method, mp_context
from concurrency_kit.channels import ProcessChannel
from concurrency_kit.supervision._restart import SupervisorCore
from concurrency_kit.supervision._spec import (
    ChildContext,
    ChildSpec,
    Shutdown,
    set_process_context,
)

__all__ = ["ProcessSupervisor"]

EXIT_PARENT_DIED = 70
"""The exit code of a child whose supervising process died."""

RUNNING = "running"
"""What a standby sends on its result pipe once it has become its child."""


def _standby_main(
    alive: Connection,
    assignments: Connection,
    result: Connection,
    log_sink: worker_logs.LogChannel | None = None,
) -> None:
    """The body of a process child (runs in the child): wait for a child to be, then be it.

    A child process is started *before* it is needed, as a standby that has already paid for
    the start method and the imports; the supervisor sends it its name, its child's id and
    target, and the level for its logs, when a child starts, so a crashed child is replaced in
    about a millisecond. From then on the process is named after its child (see
    :func:`_become`), and its ``logging`` records go to the supervisor's
    :class:`~concurrency_kit._core.worker_logs.LogForwarder` (``log_sink``; ``None`` when the
    supervisor does not forward logs).
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
    name, child_id, payload, log_level = assignment
    _become(name, child_id)
    if log_sink is not None:
        worker_logs.install(log_sink, level=log_level)
    context = ChildContext(child_id)
    set_process_context(context)

    signal.signal(signal.SIGTERM, lambda signum, frame: context.request_stop())
    try:
        result.send(RUNNING)  # spawn() returns now: from here on, this process is the child
        target, args, kwargs = serialize.loads(payload)
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


_COMM_LENGTH = 15  # the kernel keeps this many bytes of a task's name (TASK_COMM_LEN - 1)


def _become(name: str, child_id: str) -> None:
    """Name this process after the child it has become (in the child).

    ``multiprocessing.current_process().name`` (what ``logging`` records as
    ``processName``) becomes ``name``, ``"<supervisor>:<child id>"``, as the parent's
    ``Process`` object has it; and the kernel's name of the process (``/proc/self/comm``,
    what ``ps -o comm``, ``top`` and ``pgrep`` show) becomes the child id, cut to 15 bytes.
    The command line (``ps -f``) stays the start method's: changing it needs a C extension
    such as ``setproctitle``.
    """
    multiprocessing.current_process().name = name
    comm = child_id.encode("utf-8", "replace")[:_COMM_LENGTH]
    try:
        with open("/proc/self/comm", "wb") as file:
            file.write(comm)
    except OSError:  # not Linux, or no /proc: the name above is the one that matters
        pass


def _pidfd(pid: int | None) -> int | None:
    """A pidfd of ``pid`` (Linux 5.3+), or ``None`` where there is none."""
    if pid is None or not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:  # ENOSYS (an older kernel), or gone already (then the sentinel says so)
        return None


class _ProcessExit:
    __slots__ = ("exception", "exitcode", "normal", "signal", "traceback")

    def __init__(self, exitcode: int | None, exception: str | None, tb: str | None) -> None:
        self.exitcode = exitcode
        self.signal = -exitcode if exitcode is not None and exitcode < 0 else None
        self.normal = exitcode == 0
        self.exception = exception
        self.traceback = tb


class _ProcessHandle:
    __slots__ = (
        "exit",
        "pid",
        "pidfd",
        "process",
        "reaped",
        "result",
        "spec",
        "started_at",
    )

    def __init__(
        self, spec: ChildSpec, process: Any, result: Connection, pidfd: int | None
    ) -> None:
        self.spec = spec
        self.process = process
        self.pid: int | None = process.pid
        self.pidfd = pidfd
        self.result = result
        self.reaped = False
        self.started_at = time.monotonic()
        self.exit: _ProcessExit | None = None

    def waitable(self) -> int:
        """What becomes readable when the process is gone: its pidfd, else its sentinel."""
        fd: int = self.process.sentinel if self.pidfd is None else self.pidfd
        return fd

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` to this process (and no other, where there are pidfds)."""
        if self.pidfd is not None:
            try:
                signal.pidfd_send_signal(self.pidfd, signum)
            except ProcessLookupError:  # gone already
                pass
        elif self.process.exitcode is None:
            os.kill(self.process.pid, signum)

    def gone(self) -> bool:
        """Whether the process has exited (without waiting)."""
        if self.pidfd is None:
            return self.process.exitcode is not None
        return bool(wait([self.pidfd], 0))


_Standby = tuple[Any, Connection, Connection, "int | None"]
_STANDBY = ChildSpec("standby", int)  # the spec of a standby's handle, when one is discarded


class _ProcessRunner:
    """Runs process children for a supervisor (the ``Runner`` of ``_restart.py``)."""

    def __init__(self, name: str, context: Any, forward_logs: bool) -> None:
        self._name = name
        self._context = context
        self._alive_r, self._alive_w = context.Pipe(duplex=False)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        # Written once by interrupt() and never read: readable for good, it ends every join.
        self._interrupt_r, self._interrupt_w = os.pipe()
        self._lock = threading.Lock()
        self._live: list[_ProcessHandle] = []
        self._standbys: collections.deque[_Standby] = collections.deque()
        self._closed = False
        # The children's logging records, handed to this process's loggers (worker_logs.py).
        self._logs: worker_logs.LogForwarder | None = None
        if forward_logs:
            self._logs = worker_logs.LogForwarder(
                ProcessChannel(None, name=f"{name}:logs"), name=f"{name}-logs"
            )
            self._logs.start()

    def _start_standby(self) -> _Standby:
        """Start a process that waits to become a child (see :func:`_standby_main`)."""
        result_r, result_w = self._context.Pipe(duplex=False)
        assign_r, assign_w = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_standby_main,
            args=(
                self._alive_r,
                assign_r,
                result_w,
                None if self._logs is None else self._logs.sink,
            ),
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
        # The standby cannot exit before it is sent something (or the parent dies), so the
        # pid is still its own here.
        return process, assign_w, result_r, _pidfd(process.pid)

    def _assign(self, standby: _Standby, spec: ChildSpec, payload: bytes) -> bool:
        """Hand ``spec`` to ``standby``; return whether it took it (said ``RUNNING``)."""
        process, assign_w, result_r, pidfd = standby
        try:
            level = None if self._logs is None else self._logs.level
            assign_w.send((f"{self._name}:{spec.id}", spec.id, payload, level))
        except OSError:  # the standby died before it was needed
            return False
        finally:
            assign_w.close()
        gone = process.sentinel if pidfd is None else pidfd
        while True:  # the standby may still be booting: bounded slices, until it answers
            ready = wait([result_r, gone, self._interrupt_r], wait_slice(None))
            if result_r in ready:
                try:
                    return bool(result_r.recv() == RUNNING)
                except (EOFError, OSError):  # it died before it could say so
                    return False
            if gone in ready:  # the process is gone and said nothing
                return False
            if ready:  # interrupt(): the supervisor is being killed, wait no longer
                raise RuntimeError(f"child {spec.id!r} not started: the supervisor is stopping")

    def spawn(self, spec: ChildSpec) -> _ProcessHandle:
        payload = serialize.dumps_call(spec.target, spec.args, spec.kwargs)
        standby: _Standby | None = (
            self._standbys.popleft() if self._standbys else self._start_standby()
        )
        try:
            assert standby is not None
            if not self._assign(standby, spec, payload):
                stale, standby = standby, None
                self._discard(stale)  # it died before it was needed: start one now
                standby = self._start_standby()
                if not self._assign(standby, spec, payload):
                    raise RuntimeError(f"a new process for child {spec.id!r} died at its start")
        except BaseException:
            if standby is not None:
                self._discard(standby)
            raise
        process, _, result_r, pidfd = standby
        process.name = f"{self._name}:{spec.id}"
        handle = _ProcessHandle(spec, process, result_r, pidfd)
        with self._lock:
            self._live.append(handle)
        self.wake()  # the loop must wait on the new child too
        if not self._standbys:
            self._standbys.append(self._start_standby())  # the next child, already started
        return handle

    def prepare(self, count: int) -> None:
        """Have ``count`` standbys starting, for ``count`` children about to start in a row.

        They boot side by side, so starting children one after the other (each ``spawn``
        waits until its child has its target) costs one boot, not ``count`` of them.
        """
        try:
            while len(self._standbys) < count:
                self._standbys.append(self._start_standby())
        except Exception:  # only a head start: spawn() starts its own, and reports a failure
            pass

    def _discard(self, standby: _Standby) -> None:
        """End a standby that is not a child (it may still be booting, or hang there)."""
        process, assign_w, result_r, pidfd = standby
        assign_w.close()
        handle = _ProcessHandle(_STANDBY, process, result_r, pidfd)  # a child-to-be
        handle.send_signal(signal.SIGKILL)  # it runs nothing of a child's: no need to ask
        self.join(handle, None, interruptible=False)
        self._reap(handle)

    def request_stop(self, handle: Any) -> None:
        handle.send_signal(signal.SIGTERM)

    def kill(self, handle: Any) -> bool:
        handle.send_signal(signal.SIGKILL)
        return True

    def join(self, handle: Any, timeout: float | None, *, interruptible: bool = True) -> bool:
        deadline = deadline_after(timeout)
        watched = [handle.waitable(), self._interrupt_r] if interruptible else [handle.waitable()]
        while True:
            ready = wait(watched, wait_slice(remaining(deadline)))
            if handle.waitable() in ready:
                return True
            if ready or remaining(deadline) == 0:  # interrupted, or out of time
                return bool(handle.gone())

    def _reap(self, handle: _ProcessHandle) -> _ProcessExit:
        """The exit of a process that is gone; closes what the handle holds."""
        process = handle.process
        while process.exitcode is None:  # the fork server's report follows the exit
            process.join(wait_slice(None))
        exception = tb = None
        try:
            while handle.result.poll():
                message = handle.result.recv()
                if message != RUNNING:
                    exception, tb = message
        except (EOFError, OSError):
            pass
        exit_ = _ProcessExit(process.exitcode, exception, tb)
        with self._lock:  # wait_exits duplicates what it waits on under this lock
            if handle in self._live:
                self._live.remove(handle)
            if handle.pidfd is not None:
                os.close(handle.pidfd)
                handle.pidfd = None
        handle.result.close()
        process.close()
        return exit_

    def exit_of(self, handle: Any) -> _ProcessExit:
        if handle.exit is None:
            self.join(handle, None, interruptible=False)
            handle.exit = self._reap(handle)
        exit_: _ProcessExit = handle.exit
        return exit_

    def wait_exits(self, timeout: float | None) -> list[Any]:
        with self._lock:
            # Our own duplicates: another thread may close a handle's descriptor meanwhile.
            watched = {os.dup(h.waitable()): h for h in self._live}
        try:
            ready = wait([*watched, self._wake_r], wait_slice(timeout))
        finally:
            for fd in watched:
                os.close(fd)
        if self._wake_r in ready:
            try:
                os.read(self._wake_r, 4096)
            except BlockingIOError:
                pass
        return [watched[r] for r in ready if r in watched]

    def wake(self) -> None:
        with self._lock:
            if self._closed:  # the loop has ended: nothing to wake
                return
            try:
                os.write(self._wake_w, b"!")
            except BlockingIOError:  # the pipe is full: the loop has wake-ups waiting already
                pass

    def interrupt(self) -> None:
        with self._lock:
            if not self._closed:
                os.write(self._interrupt_w, b"!")

    def close(self) -> None:
        while self._standbys:
            self._discard(self._standbys.popleft())
        with self._lock:
            live = list(self._live)
        for handle in live:  # all stopped by now, unless the loop failed: then kill them
            if not handle.gone():
                self.kill(handle)
            self.exit_of(handle)
        with self._lock:
            self._closed = True
            for fd in (self._wake_r, self._wake_w, self._interrupt_r, self._interrupt_w):
                os.close(fd)
        self._alive_w.close()
        self._alive_r.close()
        if self._logs is not None:
            self._logs.stop()  # every child is gone: this hands on all they logged


class ProcessSupervisor(SupervisorCore):
    """An OTP supervisor of processes: restarts children that crash, by a strategy.

    Each child is a process running its spec's target (pickled with cloudpickle, so lambdas
    and closures work): a crash of any kind — an exception, a non-zero exit, a segfault,
    SIGKILL — ends that child only, and the supervisor answers it (restart one, all or the
    rest, within the restart intensity). Children are stopped with SIGTERM (which
    :func:`~concurrency_kit.current_child` reports as a stop request), then SIGKILL after
    their ``shutdown`` time; they exit by themselves if the supervising process dies. What
    a child logs with ``logging`` is handled by the supervising process's loggers and
    handlers, unless ``forward_logs=False``. The same API as :class:`ThreadSupervisor`.

    Example::

        with ProcessSupervisor([ChildSpec("worker", serve_forever)]) as supervisor:
            supervisor.wait()
    """

    _model = "process"

    def _make_runner(self) -> _ProcessRunner:
        return _ProcessRunner(self.name, mp_context(default_start_method()), self.forward_logs)

"""The main loop of a process-pool worker (runs in the child process).

The worker reads frames from its task pipe and answers on its event pipe (see ``_frames``)::

    parent ── TASK / TASK_TIMED / CANCEL / STOP ──> worker
    parent <── READY / START / OK / ERROR / SKIPPED / INIT_FAILED ── worker

Tasks run in the order they arrive and are answered in that order, which is how the parent
knows which task a dying worker was running. Before running a task the worker takes in every
frame already waiting, so a CANCEL sent for a task still queued here is seen in time and the
task is skipped. A task with a timeout (TASK_TIMED) is announced with START just before it
runs, which starts its clock in the parent. Pending answers are flushed in one write before
each task runs and before the worker waits for more work, so a task that kills the worker can
never take finished answers down with it. When a task runs long and another worker is idle,
the parent sends CANCELs for the tasks queued behind it and a SIGUSR1; the handler answers
SKIPPED for them at once, and the parent hands them to the idle worker.

A daemon thread blocks on the pool's *alive* pipe, whose write end only the parent holds: when
the parent dies, however it dies, the read returns end-of-file and the worker exits at once
(``_core/lifeline.py``).
SIGINT is ignored: Ctrl-C is the parent's to handle (it shuts the pool down), so the terminal
is not flooded with one KeyboardInterrupt traceback per worker.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

from concurrency_kit._core import serialize, worker_logs
from concurrency_kit._core.deadline import MAX_WAIT_SLICE
from concurrency_kit._core.lifeline import watch_parent
from concurrency_kit.errors import SerializationError
from concurrency_kit.pools import _frames, _worker_state
from concurrency_kit.pools._map import dumps_result

EXIT_PARENT_DIED = 70
IDLE_SPIN = 200e-6
"""How long an idle worker polls its task pipe (yielding between looks) before it sleeps."""
WAIT_SLICE_MS = int(MAX_WAIT_SLICE * 1000)
"""The longest single ``poll`` of an idle worker (it loops): no wait is handed over unbounded."""


def worker_main(
    task_conn: Connection,
    event_conn: Connection,
    alive_conn: Connection,
    close_fds: tuple[int, ...],
    initializer: bytes | None,
    max_tasks: int | None,
    log_sink: worker_logs.LogChannel | None = None,
    log_level: int | None = None,
) -> None:
    """Run tasks until STOP, the end of the task pipe, or ``max_tasks`` tasks.

    With a ``log_sink`` (the pool's :class:`~concurrency_kit._core.worker_logs.LogForwarder`),
    every :mod:`logging` record of this process, the initializer's included, goes to the
    parent's loggers under this worker's process name.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for fd in close_fds:  # ends inherited through fork that belong to the parent
        try:
            os.close(fd)
        except OSError:
            pass
    watch_parent(alive_conn.fileno(), EXIT_PARENT_DIED)
    if log_sink is not None:
        _forward_every_logger(worker_logs.install(log_sink, level=log_level))
    _Worker(task_conn.fileno(), event_conn.fileno(), max_tasks).run(initializer)


def _forward_every_logger(handler: logging.Handler) -> None:
    """Make every record of this process reach the parent once, through ``handler``.

    ``install`` puts ``handler`` on the root logger. Loggers that have handlers of their own
    here (copies of the parent's under ``fork``, or set up by a module at import) would
    handle a record in the worker as well, and the parent would handle it again: their
    handlers are removed. A logger that does not propagate to the root gets ``handler``
    instead, so its records are forwarded too; the parent then hands each record to the
    logger named in it, whose own handlers and ``propagate`` apply there.
    """
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if not isinstance(logger, logging.Logger) or not logger.handlers:
            continue
        for old in list(logger.handlers):
            logger.removeHandler(old)
        if not logger.propagate:
            logger.addHandler(handler)


class _Worker:
    def __init__(self, task_fd: int, event_fd: int, max_tasks: int | None) -> None:
        self.task_fd = task_fd
        self.event_fd = event_fd
        self.tasks_left = max_tasks
        self.reader = _frames.FrameReader()
        self.inbox: list[tuple[int, int, bytes | bytearray]] = []
        self.position = 0  # inbox[position:] are the tasks not started yet
        self.cancelled: set[int] = set()
        self.skipped: set[int] = set()  # answered SKIPPED already, from the signal handler
        self.outbox = _frames.Outbox()
        os.set_blocking(task_fd, False)  # waits happen in poll(), reads never block
        self.poller = select.poll()
        self.poller.register(task_fd, select.POLLIN)
        self.in_io = False  # reading or writing a pipe: the signal handler must wait
        self.take_back_requested = False

    # -- I/O ---------------------------------------------------------------------------------

    def send(self, kind: int, task_id: int, payload: bytes = b"") -> None:
        self.outbox.add(kind, task_id, payload)

    def flush(self) -> None:
        if self.outbox:
            self.in_io = True
            try:
                self.outbox.write_all(self.event_fd)
            finally:
                self.in_io = False

    def _take(self, kind: int, task_id: int, payload: bytes | bytearray) -> None:
        if kind == _frames.CANCEL:
            self.cancelled.add(task_id)
        else:
            self.inbox.append((kind, task_id, payload))

    def receive(self, block: bool) -> bool:
        """Take in waiting frames (waiting for some if ``block``); False at end of file."""
        if block:
            self.flush()
        self.in_io = True
        try:
            if block:
                # A task that follows soon after the last answer is caught awake: the parent
                # then does not pay for waking a sleeping process.
                give_up = time.monotonic() + IDLE_SPIN
                while not self.poller.poll(0) and time.monotonic() < give_up:
                    os.sched_yield()
                while not self.poller.poll(WAIT_SLICE_MS):
                    pass
            return self.reader.read(self.task_fd, self._take, block=False)
        finally:
            self.in_io = False

    # -- taking back queued tasks while one runs ----------------------------------------------

    def on_take_back_signal(self, signum: int, frame: object) -> None:
        """SIGUSR1: the parent sent CANCELs for tasks queued here; answer them now.

        The task running now may run for a long time; the parent wants the ones queued behind
        it for an idle worker. Python runs this handler between bytecodes of the running task
        (or when a blocking call is interrupted), so it only touches the pipes when the main
        loop is not in the middle of using them; otherwise the main loop does it next.
        """
        if self.in_io:
            self.take_back_requested = True
        else:
            self.take_back()

    def take_back(self) -> None:
        self.take_back_requested = False
        self.receive(block=False)
        queued = {task_id for _, task_id, _ in self.inbox[self.position :]}
        answers = bytearray()
        for task_id in self.cancelled & queued:
            self.cancelled.discard(task_id)
            self.skipped.add(task_id)
            answers += _frames.frame(_frames.SKIPPED, task_id)
        if answers:
            self.in_io = True
            try:  # written past the outbox: the running task's answer may be half in it
                _frames.write_all(self.event_fd, answers)
            finally:
                self.in_io = False

    # -- main loop ---------------------------------------------------------------------------

    def run(self, initializer: bytes | None) -> None:
        state = None
        if initializer is not None:
            try:
                fn, args = serialize.loads(initializer)
                state = fn(*args)
            except BaseException as exc:
                self.send(_frames.INIT_FAILED, 0, _pack_exception(exc))
                self.flush()
                return
            del fn, args
        _worker_state.enter_process(state)
        del state
        signal.signal(signal.SIGUSR1, self.on_take_back_signal)
        self.send(_frames.READY, 0)
        while True:
            if self.take_back_requested:
                self.take_back()
            if self.position == len(self.inbox):
                self.inbox.clear()
                self.position = 0
                if not self.receive(block=True) and not self.inbox:
                    break
                continue
            kind, task_id, payload = self.inbox[self.position]
            self.inbox[self.position] = (0, 0, b"")  # drop the payload as soon as it is used
            self.position += 1
            if kind == _frames.STOP:
                break
            self.receive(block=False)  # see a CANCEL that arrived behind this task
            if task_id in self.skipped:
                self.skipped.discard(task_id)
            elif task_id in self.cancelled:
                self.cancelled.discard(task_id)
                self.send(_frames.SKIPPED, task_id)
            else:
                if kind == _frames.TASK_TIMED:
                    self.send(_frames.START, task_id)
                # Every answer so far must be out before the next task runs: if that task
                # kills the process, the parent must not take a finished task for the victim
                # (and run it twice).
                self.flush()
                self.run_task(task_id, payload)
            if self.tasks_left is not None:
                self.tasks_left -= 1
                if self.tasks_left == 0:
                    break
        self.flush()

    def run_task(self, task_id: int, payload: bytes | bytearray) -> None:
        try:
            fn, args, kwargs = serialize.loads(payload)
        except BaseException as exc:
            error = SerializationError(
                f"the worker could not unpickle the task: {type(exc).__name__}: {exc}"
            )
            self.send(_frames.ERROR, task_id, _pack_exception(error))
            return
        del payload
        try:
            result = fn(*args, **(kwargs or {}))
        except BaseException as exc:
            self.send(_frames.ERROR, task_id, _pack_exception(exc))
            return
        finally:
            del fn, args, kwargs
        self.send(*_pack_result(task_id, result))


def _pack_result(task_id: int, result: Any) -> tuple[int, int, bytes]:
    try:
        return _frames.OK, task_id, dumps_result(result)
    except SerializationError as error:
        return _frames.ERROR, task_id, _pack_exception(error)


def _pack_exception(exc: BaseException) -> bytes:
    return serialize.dumps_fast(serialize.ExceptionWithTraceback(exc))

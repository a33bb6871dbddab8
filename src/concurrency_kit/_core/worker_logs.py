"""Worker logs: :mod:`logging` records from worker processes, handled by the parent's handlers.

The stdlib's QueueHandler / QueueListener pattern, over a channel of our own::

    worker process                                   parent process
    logging.getLogger(...).info(...)                 LogForwarder
      root logger: one handler, installed by           listener thread:
      install(sink):                                     record = channel.recv()
        message resolved (msg % args),                   logger = getLogger(record.name)
        exc_info rendered into exc_text,                 logger.isEnabledFor(level)?
        worker name set,                                   -> logger.handle(record)
        channel.send(record) ───────── channel ────────>     (the parent's handlers)
                                                       stop(): close the channel, drain it,
                                                               join the thread

The channel is made by the caller and handed to :class:`LogForwarder` (a
:class:`~concurrency_kit.ProcessChannel` with no capacity bound, ``ProcessChannel(None)``):
``_core`` cannot import the channels row, and this keeps the module usable by every row. Many
workers send on one channel at once, and records larger than a pipe packet travel through its
shared-memory store, which a plain pipe could not do without a lock (writes to a pipe larger
than ``PIPE_BUF`` interleave).

A record must pickle to cross: the worker's handler resolves ``record.msg % record.args`` into
the message, renders ``exc_info`` into ``exc_text`` (the parent's formatters print it from
there) and clears ``args`` and ``exc_info``; an attribute that still cannot be pickled (from
``extra=``) is replaced by its ``repr``. A record that cannot be sent at all (the forwarder has
stopped) is written to the worker's ``stderr``, as :data:`logging.lastResort` does, and the
worker goes on.

Levels: the worker's root logger is set to :func:`parent_level` (the lowest level any of the
parent's loggers is set to, when the worker starts), so a record no parent logger would take
is not even sent; the parent then filters each record through the level of the logger named
in it (``logging.getLogger(record.name)``), and its handlers' levels and filters apply as for
any record logged in the parent.
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import signal
import sys
import threading
import traceback
from typing import Any, Protocol

from concurrency_kit.errors import ChannelClosed

__all__ = ["ForwardingHandler", "LogChannel", "LogForwarder", "install", "parent_level"]

WORKER_ATTRIBUTE = "worker"
"""The attribute every forwarded record carries: the name of the worker that logged it."""


class LogChannel(Protocol):
    """What the forwarder needs of its channel (:class:`~concurrency_kit.ProcessChannel`)."""

    def send(self, item: Any, timeout: float | None = None) -> None: ...

    def recv(self, timeout: float | None = None) -> Any: ...

    def close(self) -> None: ...


def parent_level() -> int:
    """The lowest level set on the root logger or on any logger of this process.

    A worker's root logger is set to it, so that a record which no logger of the parent would
    take is dropped in the worker, before it is pickled and sent.
    """
    levels = [logging.getLogger().getEffectiveLevel()]
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            levels.append(logger.level)
    return min(levels)


class LogForwarder:
    """Parent side: hands the records workers send on ``channel`` to this process's loggers.

    Args:
        channel: the channel the workers send on, owned by the forwarder from now on (it is
            closed by :meth:`stop`); pass an unbounded
            :class:`~concurrency_kit.ProcessChannel`, ``ProcessChannel(None)``, so that
            logging never waits on the parent.
        name: the listener thread's name.

    Give each worker ``forwarder.sink`` and ``forwarder.level`` and have it call
    :func:`install` before it runs anything. Each record goes to
    ``logging.getLogger(record.name).handle(record)`` if that logger is enabled for the
    record's level; so the parent's handlers, levels and filters apply as for its own records.
    """

    __slots__ = ("_channel", "_lock", "_name", "_thread")

    def __init__(self, channel: LogChannel, *, name: str = "LogForwarder") -> None:
        self._channel: LogChannel | None = channel
        self._name = name
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def sink(self) -> LogChannel:
        """The channel to pass to each worker (for :func:`install`).

        Raises:
            RuntimeError: the forwarder has stopped.
        """
        channel = self._channel
        if channel is None:
            raise RuntimeError("the LogForwarder has stopped")
        return channel

    @property
    def level(self) -> int:
        """The level for a worker's root logger now (see :func:`parent_level`)."""
        return parent_level()

    @property
    def running(self) -> bool:
        """Whether the listener thread runs (from :meth:`start` to :meth:`stop`)."""
        return self._thread is not None

    def start(self) -> None:
        """Start the listener thread (idempotent).

        Raises:
            RuntimeError: the forwarder has stopped (it cannot be started again).
        """
        with self._lock:
            channel = self.sink
            if self._thread is None:
                thread = threading.Thread(
                    target=_listen, args=(channel,), name=self._name, daemon=True
                )
                thread.start()
                self._thread = thread

    def stop(self) -> None:
        """Close the channel, handle every record sent before, and end the thread (idempotent).

        Records workers send from now on are written to their ``stderr`` instead. The
        forwarder's handle of the channel is released here (its pipe and shared memory go
        when the workers' handles do).
        """
        with self._lock:
            channel, thread = self._channel, self._thread
            self._channel = self._thread = None
        if channel is None:
            return
        channel.close()
        if thread is not None:
            thread.join()  # it returns once the channel is drained (ChannelClosed)
        else:
            _drain(channel)

    def __enter__(self) -> LogForwarder:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self._channel is None else "running" if self._thread else "idle"
        return f"<LogForwarder {self._name!r} {state}>"


def _listen(channel: LogChannel) -> None:
    """The listener thread: handle records until the channel is closed and drained."""
    if hasattr(signal, "pthread_sigmask"):
        # Ctrl-C is for the main thread: caught here, it would wait to be noticed until the
        # main thread next runs Python code (issue #15, the supervisors' threads do the same).
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    while True:
        try:
            record = channel.recv()
        except ChannelClosed:
            return
        except Exception:  # an item that cannot be unpickled: say so, and go on
            _report("a worker's log record could not be received")
            continue
        _handle(record)


def _drain(channel: LogChannel) -> None:
    """Handle what a closed channel still holds (a forwarder stopped without a thread)."""
    while True:
        try:
            _handle(channel.recv(0))
        except ChannelClosed:
            return
        except Exception:  # pragma: no cover - as in _listen
            _report("a worker's log record could not be received")


def _handle(record: object) -> None:
    """Give a forwarded ``record`` to the logger it names, if enabled for its level."""
    if not isinstance(record, logging.LogRecord):
        return
    logger = logging.getLogger(record.name)
    if not logger.isEnabledFor(record.levelno):
        return
    try:
        logger.handle(record)
    except Exception:  # a handler's own error must not end the listener
        _report(f"a handler of logger {record.name!r} failed on a worker's record")


def _report(what: str) -> None:
    try:
        sys.stderr.write(f"concurrency_kit: {what}:\n{traceback.format_exc()}")
    except Exception:  # pragma: no cover - no stderr at all
        pass


class ForwardingHandler(logging.Handler):
    """Worker side: sends each record, made picklable, on ``sink`` to a :class:`LogForwarder`.

    Args:
        sink: the forwarder's channel (:attr:`LogForwarder.sink`).
        worker: the name each record carries, as ``record.worker`` and ``record.processName``;
            ``None`` for :func:`multiprocessing.current_process`'s name when the record is
            logged (so a process renamed later logs under its new name). A record that
            already has a ``worker`` (forwarded to this process from one of its own workers,
            a supervisor's grandchild say) keeps it.
    """

    def __init__(self, sink: LogChannel, worker: str | None = None) -> None:
        super().__init__()
        self.sink = sink
        self.worker = worker

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        """A copy of ``record`` that pickles: message resolved, exception rendered to text."""
        attributes = dict(record.__dict__)
        try:
            message = record.getMessage()
        except Exception as exc:  # a bad format string or argument: keep what there is
            message = f"{record.msg!r} % {_safe_repr(record.args)} ({type(exc).__name__}: {exc})"
        exc_text = record.exc_text
        if record.exc_info and not exc_text:
            exc_text = _FORMATTER.formatException(record.exc_info)
        worker = attributes.get(WORKER_ATTRIBUTE)
        if not isinstance(worker, str):  # a record forwarded from further down keeps its name
            worker = self.worker if self.worker is not None else _process_name()
        attributes.update(
            msg=message,
            message=message,
            args=None,
            exc_info=None,
            exc_text=exc_text,
            processName=worker,
        )
        attributes[WORKER_ATTRIBUTE] = worker
        # A plain LogRecord (a custom record factory's class need not exist in the parent),
        # made without LogRecord.__init__, which would look up the caller, time and process
        # again only to be overwritten: it was the larger part of a forwarded record's cost.
        prepared: logging.LogRecord = logging.LogRecord.__new__(logging.LogRecord)
        prepared.__dict__.update(attributes)
        return prepared

    def emit(self, record: logging.LogRecord) -> None:
        try:
            prepared = self.prepare(record)
            try:
                self.sink.send(prepared)
            except ChannelClosed:
                raise
            except Exception:  # an attribute (from extra=) does not pickle: nothing was sent
                _make_picklable(prepared)
                self.sink.send(prepared)
        except RecursionError:  # as logging.Handler does
            raise
        except ChannelClosed:
            self._fallback(record)
        except Exception:
            self.handleError(record)

    def _fallback(self, record: logging.LogRecord) -> None:
        """The forwarder has stopped: write the record to this process's stderr."""
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


_FORMATTER = logging.Formatter()


def _process_name() -> str:
    return multiprocessing.current_process().name


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__qualname__} object>"


def _make_picklable(record: logging.LogRecord) -> None:
    """Replace each attribute of ``record`` that cannot be pickled by its ``repr``."""
    for key, value in list(record.__dict__.items()):
        try:
            pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        except Exception:
            record.__dict__[key] = _safe_repr(value)


def install(
    sink: LogChannel, *, level: int | None = None, worker: str | None = None
) -> ForwardingHandler:
    """Worker side: forward every record of this process to the parent's :class:`LogForwarder`.

    Each record is forwarded once, and handled only in the parent, by the logger named in it:

    * the root logger's handlers are replaced by one :class:`ForwardingHandler`;
    * the handlers of every other logger that has some (copies of the parent's under the
      ``fork`` start method, or set up by a module when it was imported) are removed: the
      parent's logger of the same name handles the record, and the record would otherwise be
      handled twice, here and there;
    * a logger that does not propagate to the root gets the forwarding handler instead, so its
      records are forwarded too (the parent's logger applies its own ``propagate``).

    Handlers added after this call (by the worker's own code) stay, and work as usual.

    Args:
        sink: the forwarder's channel (:attr:`LogForwarder.sink`).
        level: the root logger's level (:attr:`LogForwarder.level`, taken in the parent);
            ``None`` leaves it as it is.
        worker: the name records carry (see :class:`ForwardingHandler`).

    Returns:
        The handler installed.
    """
    root = logging.getLogger()
    handler = ForwardingHandler(sink, worker)
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if not isinstance(logger, logging.Logger) or not logger.handlers:
            continue
        for old in list(logger.handlers):
            logger.removeHandler(old)
        if not logger.propagate:
            logger.addHandler(handler)
    if level is not None:
        root.setLevel(level)
    return handler

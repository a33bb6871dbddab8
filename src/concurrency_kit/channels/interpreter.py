"""InterpreterChannel: the interpreter model's channel (Python 3.14+, PEP 734).

It is :class:`~concurrency_kit.ProcessChannel`, unchanged: the same packet-mode pipe and
shared-memory store (see ``process.py``), which interpreters of one process share as readily as
processes do. An interpreter is isolated from the others like a process (its own modules, its
own objects), so a handle crosses by pickling, as between processes: pickled in one
interpreter, unpickled in another, each unpickled handle maps the same segments and opens the
same pipe. Nothing here is per interpreter except the handle's Python objects::

    interpreter A                                 interpreter B (same process, own GIL)
    ch = InterpreterChannel()  ── pickle ──>      ch = pickle.loads(...)  (maps, opens)
    ch.send(x) ── pipe packet / store entry ──>   ch.recv()

Why not the runtime's own queues (``concurrent.interpreters.create_queue``): measured on
3.14 (``benchmarks/bench_interpreter_channels.py``), this channel moves small items several
times faster than a queue of the same size, and it keeps every guarantee of the channel API
(close for every end, exact capacity, rendezvous, timeouts, select, the async face), which the
queue does not offer.

What differs from processes, and where it is handled:

- Daemon threads are refused inside a ``concurrent.interpreters`` interpreter; the one helper
  thread a handle may start (the bell that wakes awaiting tasks, ``_core/monitor.py``) is an
  ordinary thread there.
- A channel made in an interpreter belongs to it as it would to a process: when that
  interpreter is closed, its handle is collected, its names are removed, and handles already
  unpickled elsewhere keep working (new ones can no longer be unpickled).
- Per-thread bookkeeping (in-flight marks, sleepers) is keyed by OS thread: a thread that runs
  ``Interpreter.exec`` is the same thread in both interpreters, and it does one thing at a time.
"""

from __future__ import annotations

from typing import TypeVar

from concurrency_kit._core.platforms import require_interpreters
from concurrency_kit.channels._base import DEFAULT_CAPACITY
from concurrency_kit.channels.process import DEFAULT_SHARED_MEMORY_SIZE, ProcessChannel

__all__ = ["InterpreterChannel"]

T = TypeVar("T")


class InterpreterChannel(ProcessChannel[T]):
    """A channel between the interpreters of one process (Python 3.14+): same API as
    :class:`~concurrency_kit.ProcessChannel` and :class:`~concurrency_kit.ThreadChannel`.

    Args:
        capacity: the most items held at once (a ``send`` waits while it is full); ``0`` for
            a rendezvous (a ``send`` waits until a receiver has taken its item); ``None``
            for unbounded (bounded only by ``shared_memory_size``).
        name: a label for ``repr`` and logs.
        shared_memory_size: bytes of the shared-memory store that carries large items and
            whatever the pipe cannot hold; the largest item that can be sent.

    Pass it to :class:`~concurrency_kit.InterpreterPool` tasks (their arguments are pickled),
    or pickle it into any ``concurrent.interpreters`` interpreter
    (``interp.prepare_main(blob=pickle.dumps(channel))``, then ``pickle.loads(blob)`` there).
    Items are pickled as between processes, so what crosses is a copy, and classes defined in
    ``__main__`` of one interpreter are not known in another. It is a
    :class:`~concurrency_kit.ProcessChannel` (a subclass), so it also works between processes.

    A pickled handle unpickles as an ``InterpreterChannel``.

    Raises:
        ImportError: before Python 3.14.
    """

    def __init__(
        self,
        capacity: int | None = DEFAULT_CAPACITY,
        *,
        name: str | None = None,
        shared_memory_size: int = DEFAULT_SHARED_MEMORY_SIZE,
    ) -> None:
        require_interpreters("InterpreterChannel")
        super().__init__(capacity, name=name, shared_memory_size=shared_memory_size)

"""The main loop of an interpreter-pool worker (runs inside the worker's own interpreter).

The pool's thread for the worker enters the interpreter once, with :func:`worker_main`, and
stays there until the loop returns: entering an interpreter costs about 40 µs (a new thread
state, the cross-interpreter call), which is more than a whole round trip should, so it is not
paid per task (``InterpreterPoolExecutor`` pays it per task). The loop talks to the pool over
two cross-interpreter queues and two pipes::

    pool ── task queue: pickled call, or None to stop ──> worker  (one queue per worker)
         ── wake pipe: one byte after each put ────────>
    pool <── result queue: (index, kind, pickle, seconds) ── worker  (one queue per pool)
         <── result pipe: one byte after each put ─────

The queues carry bytes and tuples of ints and bytes, which cross without pickling. The pipes
only wake a sleeper: ``concurrent.interpreters`` queues have no blocking ``get`` (theirs polls
every 10 ms), and a blocking ``os.read`` releases this interpreter's GIL. An idle worker looks
at its queue for :data:`IDLE_SPIN` before it sleeps, so a short round trip wakes no one. A look
that ends in sleep anyway backs off: the next 1, 2, 4, ... waits (at most
:data:`IDLE_SPIN_BACKOFF_MAX`) sleep at once, and a look that finds a task resets the count. On a
loaded machine the worker's thread may share a CPU with the thread that must deliver its answer
(the collector), and a spinning thread is not preempted for it: each round trip then waited
out the whole spin (measured: 200 µs more).

A wake-up byte is written only when someone sleeps. Two shared bytes say so (memoryviews of
the pool's bytearrays: they cross without a copy): the worker's ``asleep`` (set by the worker
before its last look and its ``os.read``) and the pool's ``helpers`` (how many callers drain
the result queue right now, see ``_Core.help``; while one does, the collector need not wake).
Each side puts, then fences, then reads the other's byte; the sleeper sets its byte, fences,
then looks once more (the Dekker shape, ``_core/atomics.fence``): a put is always seen by a
look, or its writer sees the byte and writes the wake-up.

The pool hands a worker one task at a time, so the task a worker answers is always the one the
pool gave it last.
"""

from __future__ import annotations

import importlib
import os
import re
import select
import threading
import time
from typing import Any

from concurrency_kit._core import serialize, worker_logs
from concurrency_kit._core.atomics import fence
from concurrency_kit.errors import SerializationError
from concurrency_kit.pools import _worker_state
from concurrency_kit.pools._map import dumps_result

READY, OK, ERROR, INIT_FAILED, LOG = range(5)
"""Kinds of the messages a worker puts on the result queue."""

IDLE_SPIN = 200e-6
"""How long an idle worker looks at its task queue before it sleeps on its wake pipe."""
INTERRUPT_POLL = 0.01
"""How often a guard looks whether a call it must interrupt has left its blocking C call."""
INTERRUPT_GRACE = 1.0
"""How long a guard waits for the call to run Python code before it raises the interrupt in a
sleeping call anyway (a loop that mostly sleeps, ``time.sleep`` in a loop, is rarely caught
running); it lands when the call's C function returns."""
IDLE_SPIN_BACKOFF_MAX = 16
"""The most waits in a row a worker sleeps at once after spinning in vain (see the module
docstring: a spin that keeps failing is holding a CPU the pool's other threads need)."""

SUBINTERPRETER_HINT = (
    "An extension module that does not support subinterpreters (numpy, for one) cannot be "
    "imported in an InterpreterPool worker: run such tasks on PROCESS or THREAD"
)


def worker_main(
    index: int,
    task_queue: Any,
    wake_fd: int,
    result_queue: Any,
    result_fd: int,
    initializer: bytes | None,
    asleep: memoryview,
    helpers: memoryview,
    interrupt_fds: tuple[int, int],
    logs: tuple[str, int] | None = None,
) -> int:
    """Run tasks until a ``None`` arrives on ``task_queue`` (called in the worker interpreter).

    ``task_queue`` and ``result_queue`` are :class:`concurrent.interpreters.Queue` objects;
    ``interrupt_fds`` is the pipe the pool interrupts the running task by (see :class:`_Guard`);
    ``logs``, the worker's name and the root logger's level when this interpreter's
    :mod:`logging` records go to the pool's process (see :class:`_LogSink`).
    Returns :data:`INIT_FAILED` when the initializer failed (and said so on the result queue),
    :data:`OK` when told to stop.
    """
    guard = _Guard(*interrupt_fds)
    try:
        return _serve(
            index,
            task_queue,
            wake_fd,
            result_queue,
            result_fd,
            initializer,
            asleep,
            helpers,
            guard,
            logs,
        )
    finally:
        guard.stop()


def _serve(
    index: int,
    task_queue: Any,
    wake_fd: int,
    result_queue: Any,
    result_fd: int,
    initializer: bytes | None,
    asleep: memoryview,
    helpers: memoryview,
    guard: _Guard,
    logs: tuple[str, int] | None,
) -> int:
    """The body of :func:`worker_main`: the initializer, then the task loop."""
    # By name: these exist on Python 3.14+ only, and this module imports everywhere.
    _interpqueues = importlib.import_module("_interpqueues")  # C queues: no Python frame a look
    empty = importlib.import_module("concurrent.interpreters").QueueEmpty

    def answer(kind: int, payload: bytes, elapsed: float = 0.0) -> None:
        result_queue.put_nowait((index, kind, payload, elapsed))
        fence()
        if helpers[0]:
            return  # a caller is draining the queue: it will see this answer
        try:
            os.write(result_fd, b"\0")
        except BlockingIOError:  # the pipe is full of wake-ups: the pool is awake already
            pass

    if logs is not None:  # before the initializer: its records are forwarded too
        worker_logs.install(_LogSink(answer), level=logs[1], worker=logs[0])

    state = None
    if initializer is not None:
        try:
            fn, args = serialize.loads(initializer)
        except BaseException as exc:
            answer(INIT_FAILED, _pack_exception(_explain_import(exc, "the initializer")))
            return INIT_FAILED
        try:
            state = fn(*args)
        except BaseException as exc:
            answer(INIT_FAILED, _pack_exception(exc))
            return INIT_FAILED
        del fn, args
    _worker_state.enter_process(state)
    del state
    answer(READY, b"")

    queue_id = task_queue.id
    get = _interpqueues.get
    clock = time.perf_counter
    skip = backoff = 0  # waits left without a spin; the next skip after a spin in vain
    while True:
        # Take the next task: look for IDLE_SPIN, then sleep on the wake pipe. A wake-up byte
        # may be left over from a task taken while looking: the loop just looks again.
        if skip:
            skip -= 1
            spin = 0.0
        else:
            spin = IDLE_SPIN
        spin_until = 0.0
        slept = False
        while True:
            try:
                payload = get(queue_id)[0]
                break
            except empty:
                pass
            now = clock()
            if spin_until == 0.0:
                spin_until = now + spin
            elif now >= spin_until:
                asleep[0] = 1
                fence()
                try:  # the last look, after saying so (see the module docstring)
                    payload = get(queue_id)[0]
                    asleep[0] = 0
                    break
                except empty:
                    pass
                os.read(wake_fd, 4096)
                asleep[0] = 0
                slept = True
        if spin:
            if slept:  # spun in vain: skip the next 1, 2, 4, ... waits' spins
                backoff = min(max(1, 2 * backoff), IDLE_SPIN_BACKOFF_MAX)
                skip = backoff
            else:
                backoff = 0
        if payload is None:
            return OK
        start = clock()
        try:
            kind, data = _run(payload, guard)
            del payload
            answer(kind, data, clock() - start)
            del data
        except Interrupted:  # pragma: no cover - see _Guard.leave: never outside the call
            pass


def _run(payload: bytes, guard: _Guard) -> tuple[int, bytes]:
    try:
        fn, args, kwargs = serialize.loads(payload)
    except BaseException as exc:
        return ERROR, _pack_exception(_explain_import(exc, "the task"))
    del payload
    try:
        guard.enter()
        try:
            result = fn(*args, **(kwargs or {}))
        finally:
            guard.leave()
    except ImportError as exc:
        return ERROR, _pack_exception(_explain_import(exc, "the task") if _refused(exc) else exc)
    except BaseException as exc:
        return ERROR, _pack_exception(exc)
    finally:
        del fn, args, kwargs
    try:
        return OK, dumps_result(result)
    except SerializationError as error:
        reworded = SerializationError(str(error).replace("worker process", "worker interpreter"))
        return ERROR, _pack_exception(reworded)


_REFUSED = re.compile(r"module (\S+) does not support loading in subinterpreters")


def _refused(exc: ImportError) -> re.Match[str] | None:
    """Whether ``exc`` (or an error it was raised from) is CPython refusing an extension
    module in a subinterpreter; the match names the module."""
    seen: BaseException | None = exc
    for _ in range(8):  # numpy chains its own long message to CPython's
        if seen is None:
            return None
        match = _REFUSED.search(str(seen))
        if match:
            return match
        seen = seen.__cause__ or seen.__context__
    return None


def _explain_import(exc: BaseException, what: str) -> BaseException:
    """The error for ``what`` failing here on an import: CPython refusing an extension
    module in a subinterpreter is said in one line (an :class:`ImportError` still); another
    failure to unpickle is a :class:`~concurrency_kit.SerializationError`."""
    if isinstance(exc, ImportError):
        refused = _refused(exc)
        reason = (
            f"module {refused.group(1)} does not support loading in subinterpreters"
            if refused
            else f"{type(exc).__name__}: {exc}"
        )
        error: BaseException = ImportError(
            f"{what} cannot run in a worker interpreter: {reason}. {SUBINTERPRETER_HINT}",
            name=exc.name,
            path=exc.path,
        )
    else:
        error = SerializationError(
            f"the worker interpreter could not unpickle {what}: {type(exc).__name__}: {exc}"
        )
    error.__cause__ = exc
    return error


class _LogSink:
    """Where this interpreter's :mod:`logging` records go: on the result queue, as ``LOG``
    messages, which the pool hands to its process's loggers (``_Core.poll``).

    The sink of a :class:`~concurrency_kit._core.worker_logs.ForwardingHandler`, which makes
    each record picklable first (message resolved, exception rendered to text). The result
    queue already carries every answer to the pool's process and wakes it: no channel and no
    listener thread are needed, as a process pool needs them.
    """

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def send(self, item: Any, timeout: float | None = None) -> None:
        self.answer(LOG, serialize.dumps_fast(item))

    def recv(self, timeout: float | None = None) -> Any:  # pragma: no cover - send only
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - the queue is the pool's
        pass


class Interrupted(BaseException):
    """Raised inside a task the pool gave up on (its timeout passed): it unwinds the task, its
    ``finally`` blocks and ``with`` exits run, and the worker interpreter can then be closed.

    A :class:`BaseException`, so that ``except Exception`` in the task does not swallow it.
    Nothing sees it outside the worker: the task's future has failed already.
    """


class _Guard:
    """Interrupts the running task when the pool asks (its timeout passed).

    Only a thread of an interpreter can raise an exception in another of its threads
    (``PyThreadState_SetAsyncExc`` looks for the thread in the caller's interpreter), and no
    thread of another interpreter can enter this one while it runs its task loop
    (``Interpreter.exec``/``call`` refuse a running interpreter, and ``close`` cannot destroy
    it); a pending call (``Py_AddPendingCall``) and a signal reach only the main interpreter's
    main thread (checked on 3.14 and 3.15). So the guard is a thread of this interpreter: it
    sleeps on the interrupt pipe and, when the pool writes a byte 1 there, raises
    :class:`Interrupted` in the worker's thread if it is inside a task; a byte 0 ends the
    guard's thread (the worker sends it when it stops, the pool when the program exits: a
    subinterpreter may not have daemon threads, and its other threads hold its end).

    The exception lands at the task's next bytecode. Raised while the task is blocked in C
    code (``time.sleep``, a blocking read, a long wait), it would land the moment that call
    returns, before the task has used what it waited for (an ``open`` of a FIFO returns and
    the file is closed unread, failing the writer with a broken pipe). So the guard waits
    while the worker's thread sleeps in the kernel (its state in ``/proc``, looked at every
    :data:`INTERRUPT_POLL`), and raises it once the thread runs: in a Python loop at once,
    after a blocking call when the task next runs Python code for a moment, and in a call
    still asleep after :data:`INTERRUPT_GRACE` anyway.

    ``enter``/``leave`` bracket the call under a lock, and ``leave`` clears an interrupt that
    was raised but has not landed yet: none reaches the task loop's own code. An interrupt
    that comes before the call began (the worker had not taken its task yet) is kept, and
    ``enter`` raises it.
    """

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.lock = threading.Lock()
        self.running = False
        self.interrupted = False  # the pool gave up on this worker's task: raise at enter()
        self.ident = threading.get_ident()
        self.stat = f"/proc/self/task/{threading.get_native_id()}/stat"
        self.set_async_exc: Any = None  # with its argument types; set by the guard's thread
        self.thread = threading.Thread(target=self._watch, name="concurrency_kit-interrupts")
        self.thread.start()

    def enter(self) -> None:
        with self.lock:
            if self.interrupted:  # before the call began (a timeout shorter than the way here)
                raise Interrupted
            self.running = True

    def leave(self) -> None:
        with self.lock:
            self.running = False
            if self.set_async_exc is not None:
                set_async_exc, ulong, _ = self.set_async_exc
                set_async_exc(ulong(self.ident), None)  # NULL: clear one not landed yet

    def stop(self) -> None:
        """End the guard's thread (the interpreter closes only without other threads)."""
        os.write(self.write_fd, b"\0")
        self.thread.join()

    def _watch(self) -> None:
        try:  # here, off the worker's way: importing ctypes takes milliseconds
            import ctypes

            found = (ctypes.pythonapi.PyThreadState_SetAsyncExc, ctypes.c_ulong, ctypes.py_object)
        except Exception:  # pragma: no cover - a CPython without ctypes: nothing interrupts
            found = None
        with self.lock:
            self.set_async_exc = found
        pending = False  # asked to interrupt, not done yet
        asked = 0.0
        while True:
            if pending and not select.select([self.read_fd], [], [], INTERRUPT_POLL)[0]:
                pending = self._interrupt(time.monotonic() - asked)
                continue
            for byte in os.read(self.read_fd, 64):
                if byte == 0:
                    return
                with self.lock:
                    self.interrupted = True
                asked = time.monotonic()
                pending = self._interrupt(0.0)

    def _interrupt(self, waited: float) -> bool:
        """Raise :class:`Interrupted` in the call if it runs Python code now, or if it has
        slept through :data:`INTERRUPT_GRACE` already; True to look again later."""
        if waited < INTERRUPT_GRACE and self._sleeping():
            with self.lock:
                return self.running
        with self.lock:
            if self.running and self.set_async_exc is not None:
                set_async_exc, ulong, py_object = self.set_async_exc
                set_async_exc(ulong(self.ident), py_object(Interrupted))
        return False

    def _sleeping(self) -> bool:
        """Whether the worker's thread sleeps in the kernel (False where /proc cannot say)."""
        try:
            with open(self.stat, "rb") as stat:
                state = stat.read().rpartition(b")")[2].split()[0]
        except (OSError, IndexError):
            return False
        return state != b"R"


def _pack_exception(exc: BaseException) -> bytes:
    return serialize.dumps_fast(serialize.ExceptionWithTraceback(exc))

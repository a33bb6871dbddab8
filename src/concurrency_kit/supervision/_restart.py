"""The supervisor, written once for both models: OTP's restart algorithm over a child runner.

A supervisor owns an ordered list of children and one *loop* thread. A model provides the
runner (``thread.py``, ``process.py``): it starts a child, asks it to stop, kills it (processes
only), and reports exits. The loop thread waits for exits and for requests, and does all the
work that follows from them; the public methods take the supervisor's lock and act at once::

    caller threads                          loop thread
    start()  ── start children in order     wait_exits()  <── runner: a child exited
    start_child / terminate_child / ...           │            (thread: it returned or raised;
    stop() ── request ──> wake() ──────────>      │             process: its sentinel)
         <── wait for _stopped ──────────────  _on_exit(child): event, then by restart type and
                                                 strategy: restart it / its siblings / nobody;
                                                 count restarts against intensity; maybe give up
                                               _shutdown(): stop children (see below)

OTP semantics, exactly (``supervisor`` in the Erlang/OTP documentation):

* children start in list order and are asked to stop in reverse order; ``ONE_FOR_ALL`` and
  ``REST_FOR_ONE`` stop the affected siblings that way, then start them in order;
* ``PERMANENT`` children are always restarted, ``TRANSIENT`` ones only after an abnormal exit,
  ``TEMPORARY`` ones never (and they are removed when they exit, or when a sibling's restart
  stops them);
* every restart is counted on a monotonic clock; more than ``intensity`` of them within
  ``period`` seconds makes the supervisor stop every child in reverse order and give up;
* ``auto_shutdown`` stops the supervisor when significant children exit by themselves.

One deliberate difference from OTP: children being stopped together (the supervisor's
shutdown, a restart of siblings, giving up) are all asked to stop at once, in reverse order,
and then waited for in that order, each until its own ``shutdown`` time after the request; a
stop takes the longest ``shutdown``, not their sum (issue #15: three stubborn children made
Ctrl-C take 15 s). A :exc:`KeyboardInterrupt` while :meth:`SupervisorCore.stop` waits (the
second Ctrl-C) kills what is left at once.

Stopping a child on purpose marks its handle *reaped* first, so that the loop, which may see
the same exit a moment later, does not treat it as a crash. A child's exit is recorded only
once the runner has seen it *gone* (a process: its pidfd, not just the fork server's report;
a thread: finished), and a child's start only once it has taken its target (the runner's
``spawn`` waits for the child to say so): the events never run ahead of the children.

Every wait is bounded (``_core.deadline``): timeouts follow the library's one rule, and long
waits are made of :func:`~concurrency_kit._core.deadline.wait_slice` slices.

Two locks. ``_lock`` serializes the work (starting, stopping, restarting children) and may be
held for a child's whole ``shutdown`` time. ``_notify_lock`` guards only what observers read
(the event history, the subscribers, the async listeners, the stopped flag's listeners) and
is held for microseconds, so that an event loop (``wait_async``, ``aevents``: ``_async.py``)
never waits for a stop or a restart to finish. Order: ``_lock``, then ``_notify_lock``::

    _record(event)  (supervisor threads, _lock held)
        └─ _notify_lock: history.append, subscribers(event), listeners.event(event)
    _set_stopped()  (the loop's end, a failed start, stop() before start())
        └─ _notify_lock: _stopped.set(), listeners.stopped()
    an awaiting task: _add_listener / _remove_listener under _notify_lock only
"""

from __future__ import annotations

import collections
import signal
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from typing_extensions import Self

from concurrency_kit._core.deadline import check_timeout, deadline_after, remaining, wait_slice
from concurrency_kit.errors import SupervisorGaveUp
from concurrency_kit.supervision._async import SupervisorEventStream, wait_stopped
from concurrency_kit.supervision._spec import (
    BRUTAL_KILL,
    AutoShutdown,
    Backoff,
    ChildCounts,
    ChildInfo,
    ChildSpec,
    Restart,
    Strategy,
    SupervisorEvent,
    SupervisorStatistics,
    current_child,
)

__all__ = ["ChildExit", "Handle", "Runner", "SupervisorCore", "leave_ctrl_c_to_the_main_thread"]

_HISTORY = 1000  # events kept for events() and SupervisorGaveUp.history
_MAIN_THREAD_SLICE = 0.1
"""The longest single wait of the main thread in stop() and wait(), in seconds.

CPython can miss a signal that arrives after a lock wait released the GIL and before it
sleeps: the handler is tripped, but the waiting thread is not woken, and Ctrl-C would be seen
only when the wait ends. The main thread (the one that runs signal handlers) therefore waits
in short slices, and a missed Ctrl-C is raised within this long (issue #15: a second Ctrl-C
went unheard in about one run in ten).
"""


class ChildExit(Protocol):
    """How a child ended (what a runner learns from an exited handle)."""

    normal: bool
    exitcode: int | None
    signal: int | None
    exception: str | None
    traceback: str | None


class Handle(Protocol):
    """One run of a child, as its runner started it."""

    spec: ChildSpec
    pid: int | None
    reaped: bool
    started_at: float


class Runner(Protocol):
    """What a model provides to run children (see the module docstring).

    ``spawn`` returns once the child has taken its target. ``join`` returns whether the child
    is gone (a process: exited; a thread: finished), waiting up to ``timeout`` seconds
    (``None``: no limit), or less once :meth:`interrupt` was called, unless
    ``interruptible=False``. ``exit_of`` is for a child that is gone. ``wait_exits`` returns
    the children that are gone, after at most one wait slice. ``prepare(n)`` readies ``n``
    children's starts ahead (a process runner boots ``n`` processes side by side).
    """

    def spawn(self, spec: ChildSpec) -> Handle: ...
    def request_stop(self, handle: Handle) -> None: ...
    def kill(self, handle: Handle) -> bool: ...
    def join(
        self, handle: Handle, timeout: float | None, *, interruptible: bool = True
    ) -> bool: ...
    def exit_of(self, handle: Handle) -> ChildExit: ...
    def wait_exits(self, timeout: float | None) -> list[Handle]: ...
    def wake(self) -> None: ...
    def interrupt(self) -> None: ...
    def prepare(self, count: int) -> None: ...
    def close(self) -> None: ...


class Listener(Protocol):
    """An async observer (``_async.py``): called under ``_notify_lock``; quick, never blocks.

    ``abandoned``: set (without a lock) by a stream garbage-collected while another thread
    held ``_notify_lock``; the next event forgets it.
    """

    abandoned: bool

    def event(self, event: SupervisorEvent) -> None: ...
    def stopped(self) -> None: ...


class _Child:
    """A child's spec and its current run."""

    __slots__ = ("attempts", "handle", "spec")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.handle: Handle | None = None
        self.attempts = 0  # restarts in a row, for the backoff


_live: weakref.WeakSet[SupervisorCore] = weakref.WeakSet()


def leave_ctrl_c_to_the_main_thread() -> None:
    """Block SIGINT in the calling thread (one the library starts: a loop, a thread child).

    A signal sent to the process goes to any thread that does not block it. Caught by a
    thread other than the main one, Ctrl-C would wait to be noticed until the main thread
    next runs Python code, which a main thread blocked in ``stop()`` or ``wait()`` does not
    do for up to a whole wait slice: the second Ctrl-C of issue #15 went unheard that way.
    Threads started by the calling thread inherit the mask.
    """
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def _stop_live_supervisors() -> None:
    for supervisor in list(_live):
        supervisor.stop()


threading._register_atexit(_stop_live_supervisors)  # type: ignore[attr-defined]


class SupervisorCore:
    """The supervisor algorithm; the model classes add their runner (see the module docstring)."""

    _runner: Runner
    _model: str
    _clock: Callable[[], float] = staticmethod(time.monotonic)
    """The clock of restart intensity and backoff (tests give an instance a fake one)."""

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
        """Create a supervisor of ``children`` (started by :meth:`start`).

        Args:
            children: the children, in start order.
            strategy: :data:`ONE_FOR_ONE`, :data:`ONE_FOR_ALL` or :data:`REST_FOR_ONE`.
            intensity: the most restarts allowed within ``period`` seconds; one more and the
                supervisor stops its children and gives up. 0: no restarts at all.
            period: the window of ``intensity``, in seconds.
            backoff: a delay before each restart of a child that keeps crashing, or ``None``.
            auto_shutdown: :data:`NEVER`, :data:`ANY_SIGNIFICANT` or :data:`ALL_SIGNIFICANT`.
            name: a name for logs and reprs.
            forward_logs: process children: send the ``logging`` records of each child to
                this process's loggers, named after the child (``record.processName`` and
                ``record.worker``: ``"<name>:<child id>"``); ``False`` leaves a child's
                logging as its start method made it. Thread children log in this process
                already: the argument changes nothing for them.

        Raises:
            ValueError: duplicate child ids, a significant child with ``auto_shutdown=NEVER``,
                a bad intensity or period, or (thread supervisor) a child with
                ``shutdown=BRUTAL_KILL``: a thread cannot be killed.
            TypeError: a child that is not a :class:`ChildSpec`, or a bad policy value.
        """
        if not isinstance(strategy, Strategy):
            raise TypeError(f"strategy must be a Strategy, got {strategy!r}")
        if not isinstance(auto_shutdown, AutoShutdown):
            raise TypeError(f"auto_shutdown must be an AutoShutdown, got {auto_shutdown!r}")
        if isinstance(intensity, bool) or not isinstance(intensity, int) or intensity < 0:
            raise ValueError(f"intensity must be an int >= 0, got {intensity!r}")
        window = check_timeout(period, name="period")  # the one rule: None and inf: ever
        if window == 0:
            raise ValueError(f"period must be > 0 seconds, got {period!r}")
        if backoff is not None and not isinstance(backoff, Backoff):
            raise TypeError(f"backoff must be a Backoff or None, got {backoff!r}")
        self.strategy = strategy
        self.intensity = intensity
        self.period = float("inf") if window is None else window
        self.backoff = backoff
        self.auto_shutdown = auto_shutdown
        self.forward_logs = bool(forward_logs)
        self.name = name or f"{type(self).__name__}-{id(self):x}"
        self._lock = threading.RLock()
        self._children: list[_Child] = []
        for spec in children:
            self._check_new(spec)
            self._children.append(_Child(spec))
        self._restart_times: collections.deque[float] = collections.deque()
        self._events: collections.deque[SupervisorEvent] = collections.deque(maxlen=_HISTORY)
        self._subscribers: list[Callable[[SupervisorEvent], object]] = []
        self._notify_lock = threading.RLock()  # see the module docstring: "Two locks"
        self._listeners: list[Listener] = []
        self._restarts = self._crashes = self._abandoned = 0
        self._gave_up = False
        self._started = False
        self._shutdown_requested = False
        self._stopping = threading.Event()  # set with _shutdown_requested: ends a backoff wait
        self._killing = False  # a KeyboardInterrupt in stop(): kill what is left at once
        self._stopped = threading.Event()
        self._loop: threading.Thread | None = None

    # -- checks ---------------------------------------------------------------------------------

    def _check_spec(self, spec: ChildSpec) -> None:
        """What a model refuses in a spec (the thread model: BRUTAL_KILL)."""

    def _check_new(self, spec: ChildSpec) -> None:
        if not isinstance(spec, ChildSpec):
            raise TypeError(f"a child must be given as a ChildSpec, got {spec!r}")
        self._check_spec(spec)
        if any(child.spec.id == spec.id for child in self._children):
            raise ValueError(f"a child with id {spec.id!r} already exists")
        if spec.significant and self.auto_shutdown is AutoShutdown.NEVER:
            raise ValueError(
                f"child {spec.id!r} is significant, but auto_shutdown is NEVER: significant "
                "children need ANY_SIGNIFICANT or ALL_SIGNIFICANT"
            )

    # -- events ---------------------------------------------------------------------------------

    def _record(self, kind: str, child_id: str | None, **fields: Any) -> None:
        event = SupervisorEvent(kind, child_id, time.monotonic(), **fields)
        with self._notify_lock:
            self._events.append(event)
            for callback in list(self._subscribers):
                try:
                    callback(event)
                except Exception:  # a broken subscriber must not break supervision
                    pass
            for listener in list(self._listeners):
                if listener.abandoned:
                    self._listeners.remove(listener)
                    continue
                try:
                    listener.event(event)
                except Exception:  # pragma: no cover - ours, and they do not raise
                    pass

    def _set_stopped(self) -> None:
        """Mark the supervisor stopped, and tell the async listeners (no event follows)."""
        with self._notify_lock:
            self._stopped.set()
            for listener in list(self._listeners):
                try:
                    listener.stopped()
                except Exception:  # pragma: no cover - ours, and they do not raise
                    pass
            self._listeners.clear()  # nothing follows: none of them needs the supervisor now

    def _add_listener(self, listener: Listener, *, replay: bool) -> bool:
        """Replay the history to ``listener`` if asked, then register it for what follows.

        Returns ``False`` (and registers nothing: nothing to forget) if the supervisor has
        stopped already; ``listener.stopped()`` has then been called.
        """
        with self._notify_lock:
            if replay:
                for event in list(self._events):
                    listener.event(event)
            if self._stopped.is_set():
                listener.stopped()
                return False
            self._listeners.append(listener)
            return True

    def _remove_listener(self, listener: Listener, *, blocking: bool = True) -> None:
        """Forget ``listener`` (idempotent).

        ``blocking=False`` (a stream's ``__del__``, which the garbage collector may run in
        any thread, inside any lock): if another thread holds the lock, mark the listener
        abandoned for the next event to forget, rather than wait, maybe for ever.
        """
        if not self._notify_lock.acquire(blocking=blocking):
            listener.abandoned = True
            return
        try:
            self._listeners.remove(listener)
        except ValueError:
            pass
        finally:
            self._notify_lock.release()

    def events(self) -> list[SupervisorEvent]:
        """Return the events so far, oldest first (the last 1,000)."""
        # The work lock too, as every method: a caller that saw an event in a subscriber
        # sees here every event of the same step (a restart of siblings included).
        with self._lock, self._notify_lock:
            return list(self._events)

    def subscribe(
        self, callback: Callable[[SupervisorEvent], object], *, replay: bool = True
    ) -> None:
        """Call ``callback(event)`` for every event of the supervisor, from its start on.

        The events recorded so far (those :meth:`events` returns: the last 1,000) are first
        replayed to ``callback``, oldest first, in the calling thread; then it is called for
        each new event, in order, with none missed and none repeated. So a subscriber added
        inside the ``with`` block (the children have started by then) still sees their
        ``"start"`` events.

        It runs in the supervisor's threads (and, for the replay, the caller's), with the
        supervisor's lock held: it must be quick and must not call the supervisor's blocking
        methods. Its exceptions are ignored.

        Args:
            callback: called with each :class:`SupervisorEvent`.
            replay: ``False`` to skip the events recorded so far (only the ones to come).
        """
        # Every event is recorded under both locks: none falls between the replay and the rest.
        with self._lock, self._notify_lock:
            if replay:
                for event in list(self._events):
                    try:
                        callback(event)
                    except Exception:  # as for a new event: ignored
                        pass
            self._subscribers.append(callback)

    def aevents(
        self, *, replay: bool = True, max_buffered: int = _HISTORY
    ) -> SupervisorEventStream:
        """Iterate, with ``async for``, over the supervisor's events as they happen.

        The async form of :meth:`subscribe`: the events recorded so far are replayed first
        (unless ``replay=False``), then each new one, in order, none repeated. The iteration
        ends once the supervisor has stopped (its last event, ``"stop"`` or ``"give_up"``, is
        the last one seen); for a supervisor that has stopped already it replays the history
        and ends. The event loop is never blocked, and no thread waits for the task::

            async for event in supervisor.aevents():
                if event.kind == "exit" and not event.normal:
                    log.warning("%s crashed: %s", event.child_id, event.exception)

        Events wait for the consumer in a buffer of ``max_buffered`` events. A consumer that
        falls further behind does not slow the supervisor down (its restarts never wait for
        a reader): the *oldest* unread events are dropped to make room, and the next step of
        the iteration raises :exc:`~concurrency_kit.SupervisorEventsLost` with their number,
        at the very place of the gap; iterating again goes on with the oldest event kept. So
        nothing is lost silently, and the last events (the stop) always arrive.

        Leaving the loop early (``break``, an exception, a cancelled task) unsubscribes as
        soon as the iterator is garbage (at once on CPython); ``aclose()``, or
        ``async with supervisor.aevents() as events:``, unsubscribes at a known point. A
        cancelled step of the iteration has taken nothing: the event is still there for the
        next one.

        Args:
            replay: ``False`` to see only the events to come.
            max_buffered: the most events kept for the consumer (at least 1). The default
                holds the whole history :meth:`events` keeps.

        Returns:
            An async iterator of :class:`SupervisorEvent` (also an async context manager).

        Raises:
            ValueError: ``max_buffered`` is below 1.
            TypeError: ``max_buffered`` is not an int.
        """
        return SupervisorEventStream._open(self, replay=replay, max_buffered=max_buffered)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the supervisor and its children, in order; return once all are started.

        Raises:
            RuntimeError: it was started before.
            Exception: a child could not be started (the ones started are stopped again).
        """
        with self._lock:
            if self._started:
                raise RuntimeError(f"{self.name} was already started")
            self._started = True
            self._runner = self._make_runner()
            _live.add(self)
            try:
                self._runner.prepare(len(self._children))
                for child in list(self._children):
                    self._start_child(child)
            except BaseException:
                self._stop_children(list(self._children))
                self._runner.close()
                self._set_stopped()
                _live.discard(self)
                raise
            self._loop = threading.Thread(
                target=self._run_loop, name=f"{self.name}-loop", daemon=True
            )
            self._loop.start()

    def _make_runner(self) -> Runner:
        raise NotImplementedError

    def stop(self, timeout: float | None = None) -> None:
        """Stop every child, in reverse order, and the supervisor (idempotent).

        Each child is given its spec's ``shutdown`` time to stop. Returns once the supervisor
        has stopped; a supervisor that gave up is stopped already (see :meth:`wait`).

        Children are asked to stop all at once (in reverse order), so the stop takes about the
        longest ``shutdown``, not their sum. A :exc:`KeyboardInterrupt` while this waits (a
        second Ctrl-C, when the first one ended :meth:`wait` inside a ``with`` block) kills the
        children left at once (threads: abandons them), then propagates.

        Args:
            timeout: the most seconds to wait (``None`` or ``math.inf``: as long as the
                children take).

        Raises:
            TimeoutError: the supervisor did not stop within ``timeout`` seconds.
            TypeError: ``timeout`` is not a number or ``None``.
            ValueError: ``timeout`` is negative or NaN.
        """
        deadline = deadline_after(check_timeout(timeout))
        try:
            with self._lock:
                if not self._started:
                    self._started = True
                    self._set_stopped()
                    return
                if self._stopped.is_set():
                    return
                self._shutdown_requested = True
                self._stopping.set()
                if self._loop is not None:
                    self._runner.wake()
            if self._loop is threading.current_thread():
                return  # called by a subscriber: the loop stops once the callback returns
            if not self._wait_stopped(deadline):
                raise TimeoutError(f"{self.name} did not stop within {timeout} seconds")
        except KeyboardInterrupt:
            self._kill_now()
            raise

    def _kill_now(self) -> None:
        """Kill (threads: abandon) every child still running, at once, and wait for the end.

        Called without the lock, which the loop holds while it stops the children.
        """
        self._killing = True
        self._shutdown_requested = True
        self._stopping.set()
        runner = getattr(self, "_runner", None)
        if runner is None or self._loop is None:
            return
        runner.interrupt()  # the loop's waits for children to stop return now
        runner.wake()
        if self._loop is not threading.current_thread():
            self._wait_stopped(None)

    def _wait_stopped(self, deadline: float | None) -> bool:
        """Wait until the supervisor has stopped or ``deadline``; return whether it stopped."""
        main = threading.current_thread() is threading.main_thread()
        while not self._stopped.is_set():
            left = remaining(deadline)
            if left == 0:
                return False
            step = wait_slice(left)
            self._stopped.wait(min(step, _MAIN_THREAD_SLICE) if main else step)
        return True

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the supervisor stops (asked to, by ``auto_shutdown``, or giving up).

        Args:
            timeout: the most seconds to wait (``None`` or ``math.inf``: no limit).

        Raises:
            SupervisorGaveUp: it gave up, with its history.
            TimeoutError: it is still running after ``timeout`` seconds.
            TypeError: ``timeout`` is not a number or ``None``.
            ValueError: ``timeout`` is negative or NaN.
        """
        self._outcome(self._wait_stopped(deadline_after(check_timeout(timeout))), timeout)

    async def wait_async(self, timeout: float | None = None) -> None:
        """Await until the supervisor stops: :meth:`wait` for asyncio and trio programs.

        The same meaning, timeout rule and errors as :meth:`wait`; the event loop runs other
        tasks meanwhile. No thread waits for the task: the supervisor's own thread wakes it
        when it stops (one small callback per waiting task, no matter how many there are).
        A cancelled (or timed-out) ``wait_async`` leaves nothing registered behind.

        Args:
            timeout: the most seconds to wait (``None`` or ``math.inf``: no limit; ``0``: do
                not wait, only check).

        Raises:
            SupervisorGaveUp: it gave up, with its history.
            TimeoutError: it is still running after ``timeout`` seconds.
            TypeError: ``timeout`` is not a number or ``None``.
            ValueError: ``timeout`` is negative or NaN.
        """
        seconds = check_timeout(timeout)
        if seconds != 0 and not self._stopped.is_set():
            await wait_stopped(self, deadline_after(seconds))
        self._outcome(self._stopped.is_set(), timeout)

    def _outcome(self, stopped: bool, timeout: float | None) -> None:
        """What :meth:`wait` and :meth:`wait_async` end with, once stopped or timed out."""
        if not stopped:
            raise TimeoutError(f"{self.name} is still running after {timeout} seconds")
        if self._gave_up:
            raise SupervisorGaveUp(
                f"{self.name} gave up: more than {self.intensity} restarts within "
                f"{self.period} seconds",
                tuple(self._events),
            )

    def run(self) -> None:
        """Start, and block until the supervisor stops: the target of a supervisor subtree.

        Run as a child's target (``ChildSpec("sub", build_and_run)``, where ``build_and_run``
        makes a supervisor and calls this), the supervisor stops when its child is asked to
        stop, and giving up is an abnormal exit of that child.

        Raises:
            SupervisorGaveUp: it gave up.
        """
        try:
            context = current_child()
        except RuntimeError:
            context = None
        self.start()
        if context is not None:
            context.on_stop(self._request_shutdown)
        try:
            self.wait()
        finally:
            self.stop()

    def _request_shutdown(self) -> None:
        """Ask the loop to stop everything (from a signal handler or another thread)."""
        self._shutdown_requested = True
        self._stopping.set()
        runner = getattr(self, "_runner", None)
        if runner is not None and not self._stopped.is_set():
            runner.wake()  # a no-op once the runner is closed (the runner checks, locked)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the loop -------------------------------------------------------------------------------

    def _run_loop(self) -> None:
        leave_ctrl_c_to_the_main_thread()
        runner = self._runner
        try:
            while True:
                exited = runner.wait_exits(None)
                with self._lock:
                    for handle in exited:
                        self._on_exit(handle)
                    if self._shutdown_requested and not self._gave_up:
                        self._stop_children(list(self._children))
                        self._record("stop", None)
                    if self._shutdown_requested or self._gave_up:
                        break
        finally:
            with self._lock:  # stop() checks _stopped under the lock: no wake() after close()
                runner.close()
                _live.discard(self)
                self._set_stopped()

    def _on_exit(self, handle: Handle) -> None:
        if handle.reaped:
            return
        handle.reaped = True
        child = next((c for c in self._children if c.handle is handle), None)
        info = self._runner.exit_of(handle)
        self._record_exit(handle.spec.id, info)
        if child is None:
            return
        child.handle = None
        if self._shutdown_requested:
            return
        spec = child.spec
        if spec.restart is Restart.PERMANENT or (
            spec.restart is Restart.TRANSIENT and not info.normal
        ):
            self._restart(child, handle)
            return
        if spec.restart is Restart.TEMPORARY:
            self._children.remove(child)
        if spec.significant and self._auto_shutdown_due():
            self._shutdown_requested = True

    def _record_exit(self, child_id: str, info: ChildExit) -> None:
        if not info.normal:
            self._crashes += 1
            if info.exception == "AbandonedThread":
                self._abandoned += 1
        self._record(
            "exit",
            child_id,
            normal=info.normal,
            exitcode=info.exitcode,
            signal=info.signal,
            exception=info.exception,
            traceback=info.traceback,
        )

    def _auto_shutdown_due(self) -> bool:
        if self.auto_shutdown is AutoShutdown.ANY_SIGNIFICANT:
            return True
        if self.auto_shutdown is AutoShutdown.ALL_SIGNIFICANT:
            return not any(c.spec.significant and c.handle is not None for c in self._children)
        return False

    # -- restarts -------------------------------------------------------------------------------

    def _count_restart(self) -> bool:
        """Count one restart; return ``False`` if that exceeds the intensity."""
        now = self._clock()
        times = self._restart_times
        times.append(now)
        while times and times[0] <= now - self.period:
            times.popleft()
        return len(times) <= self.intensity

    def _restart(self, child: _Child, handle: Handle) -> None:
        if self.backoff is not None:
            if self._clock() - handle.started_at >= self.backoff.healthy:
                child.attempts = 0
            child.attempts += 1
            delay = self.backoff.delay(child.attempts)
            self._lock.release()  # let the API work while the restart waits
            try:
                until = deadline_after(check_timeout(delay, name="backoff delay"))
                while not self._stopping.is_set() and remaining(until) != 0:
                    self._stopping.wait(wait_slice(remaining(until)))  # a stop ends it at once
            finally:
                self._lock.acquire()
            if self._shutdown_requested or child not in self._children or child.handle is not None:
                return
        index = self._children.index(child)
        if self.strategy is Strategy.ONE_FOR_ONE:
            affected = [child]
        elif self.strategy is Strategy.ONE_FOR_ALL:
            affected = list(self._children)
        else:
            affected = self._children[index:]
        while True:
            if not self._count_restart():
                self._give_up()
                return
            self._stop_children([c for c in affected if c is not child])
            for sibling in affected:
                if sibling is not child and sibling.spec.restart is Restart.TEMPORARY:
                    self._children.remove(sibling)  # a temporary child is never restarted
            try:
                starting = [c for c in affected if c in self._children and c.handle is None]
                self._runner.prepare(len(starting))
                for sibling in starting:
                    self._start_child(sibling, restart=True)
                return
            except Exception as exc:  # a child that cannot start counts as one more crash
                if self._shutdown_requested:
                    return  # stopping (or killing): the loop stops every child next
                self._crashes += 1
                self._record(
                    "exit",
                    sibling.spec.id,
                    normal=False,
                    exception=type(exc).__name__,
                    traceback=str(exc),
                )

    def _give_up(self) -> None:
        self._stop_children(list(self._children))
        self._gave_up = True
        self._record("give_up", None)

    # -- starting and stopping children -----------------------------------------------------------

    def _start_child(self, child: _Child, *, restart: bool = False) -> None:
        handle = self._runner.spawn(child.spec)  # returns once the child has its target
        handle.started_at = self._clock()
        child.handle = handle
        if restart:
            self._restarts += 1
            self._record("restart", child.spec.id)
        self._record("start", child.spec.id)

    def _stop_children(self, children: list[_Child]) -> None:
        """Stop the running ones of ``children``: ask all at once, in reverse order, then wait.

        Each child gets its own ``shutdown`` time from the moment it was asked, so the whole
        stop takes about the longest of them; one still running then is killed (a thread:
        abandoned). The exits are recorded in reverse order, each once the child is gone.
        """
        runner = self._runner
        stopping: list[tuple[Handle, float | None]] = []
        for child in reversed(children):
            handle = child.handle
            if handle is None:
                continue
            handle.reaped = True  # a deliberate stop, not a crash
            child.handle = None
            shutdown = handle.spec.shutdown
            if shutdown is BRUTAL_KILL:
                runner.kill(handle)
                stopping.append((handle, 0.0))
            else:
                runner.request_stop(handle)
                stopping.append((handle, deadline_after(check_timeout(shutdown))))
        for handle, deadline in stopping:
            self._finish_stop(handle, deadline)

    def _finish_stop(self, handle: Handle, deadline: float | None) -> None:
        """Wait for a child asked to stop until ``deadline``, kill it then, record its exit."""
        runner = self._runner
        gone = False if self._killing else runner.join(handle, remaining(deadline))
        if not gone and runner.kill(handle):
            gone = runner.join(handle, None, interruptible=False)  # SIGKILL: it goes
        if gone:
            info = runner.exit_of(handle)
            self._record(
                "exit",
                handle.spec.id,
                normal=True,
                exitcode=info.exitcode,
                signal=info.signal,
                exception=info.exception,
                traceback=info.traceback,
            )
        else:  # a thread that would not stop: abandoned, still running
            self._abandoned += 1
            self._crashes += 1
            self._record("exit", handle.spec.id, normal=False, exception="AbandonedThread")

    def _stop_one(self, child: _Child) -> None:
        self._stop_children([child])

    # -- dynamic children -----------------------------------------------------------------------

    def _find(self, child_id: str) -> _Child:
        for child in self._children:
            if child.spec.id == child_id:
                return child
        raise KeyError(f"{self.name} has no child {child_id!r}")

    def _check_running(self) -> None:
        if not self._started or self._stopped.is_set() or self._shutdown_requested:
            raise RuntimeError(f"{self.name} is not running")

    def start_child(self, spec: ChildSpec) -> None:
        """Add a child at the end and start it.

        Raises:
            ValueError: a child with this id exists, or the spec is refused by the model.
            RuntimeError: the supervisor is not running.
        """
        with self._lock:
            self._check_running()
            self._check_new(spec)
            child = _Child(spec)
            self._children.append(child)
            try:
                self._start_child(child)
            except BaseException:
                self._children.remove(child)
                raise

    def terminate_child(self, child_id: str) -> None:
        """Stop a child (its spec stays, unless it is ``TEMPORARY``).

        Raises:
            KeyError: no such child.
        """
        with self._lock:
            child = self._find(child_id)
            if child.handle is not None:
                self._stop_one(child)
            if child.spec.restart is Restart.TEMPORARY:
                self._children.remove(child)

    def restart_child(self, child_id: str) -> None:
        """Start again a child that was terminated.

        Raises:
            KeyError: no such child.
            RuntimeError: it is running, or the supervisor is not running.
        """
        with self._lock:
            self._check_running()
            child = self._find(child_id)
            if child.handle is not None:
                raise RuntimeError(f"child {child_id!r} is running")
            self._start_child(child)

    def delete_child(self, child_id: str) -> None:
        """Forget a terminated child's spec.

        Raises:
            KeyError: no such child.
            RuntimeError: it is running (terminate it first).
        """
        with self._lock:
            child = self._find(child_id)
            if child.handle is not None:
                raise RuntimeError(f"child {child_id!r} is running: terminate it first")
            self._children.remove(child)

    def which_children(self) -> list[ChildInfo]:
        """Return every child, in start order."""
        with self._lock:
            return [
                ChildInfo(
                    id=c.spec.id,
                    running=c.handle is not None,
                    pid=None if c.handle is None else c.handle.pid,
                    restart=c.spec.restart,
                    significant=c.spec.significant,
                )
                for c in self._children
            ]

    def count_children(self) -> ChildCounts:
        """Return how many children the supervisor knows, and how many run."""
        with self._lock:
            active = sum(1 for c in self._children if c.handle is not None)
            return ChildCounts(specs=len(self._children), active=active)

    def statistics(self) -> SupervisorStatistics:
        """Return a snapshot of the supervisor's counters."""
        with self._lock:
            return SupervisorStatistics(
                children=len(self._children),
                running=sum(1 for c in self._children if c.handle is not None),
                restarts=self._restarts,
                crashes=self._crashes,
                abandoned=self._abandoned,
                gave_up=self._gave_up,
            )

    def __repr__(self) -> str:
        cls = type(self)
        if self._gave_up:
            state = "gave up"
        elif self._stopped.is_set():
            state = "stopped"
        elif self._started:
            state = "running"
        else:
            state = "not started"
        return f"<{cls.__module__}.{cls.__qualname__} {self.name!r} {state}>"

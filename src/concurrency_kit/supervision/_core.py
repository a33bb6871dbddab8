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
                                               _shutdown(): stop children in reverse order

OTP semantics, exactly (``supervisor`` in the Erlang/OTP documentation):

* children start in list order and stop in reverse order; ``ONE_FOR_ALL`` and
  ``REST_FOR_ONE`` stop the affected siblings in reverse order, then start them in order;
* ``PERMANENT`` children are always restarted, ``TRANSIENT`` ones only after an abnormal exit,
  ``TEMPORARY`` ones never (and they are removed when they exit, or when a sibling's restart
  stops them);
* every restart is counted on a monotonic clock; more than ``intensity`` of them within
  ``period`` seconds makes the supervisor stop every child in reverse order and give up;
* ``auto_shutdown`` stops the supervisor when significant children exit by themselves.

Stopping a child on purpose marks its handle *reaped* first, so that the loop, which may see
the same exit a moment later, does not treat it as a crash.
"""

from __future__ import annotations

import collections
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from typing_extensions import Self

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
    SupervisorGaveUp,
    SupervisorStatistics,
    current_child,
)

__all__ = ["ChildExit", "Handle", "Runner", "SupervisorCore"]

_HISTORY = 1000  # events kept for events() and SupervisorGaveUp.history


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
    """What a model provides to run children (see the module docstring)."""

    def spawn(self, spec: ChildSpec) -> Handle: ...
    def request_stop(self, handle: Handle) -> None: ...
    def kill(self, handle: Handle) -> bool: ...
    def join(self, handle: Handle, timeout: float | None) -> bool: ...
    def exit_of(self, handle: Handle) -> ChildExit: ...
    def wait_exits(self, timeout: float | None) -> list[Handle]: ...
    def wake(self) -> None: ...
    def close(self) -> None: ...


class _Child:
    """A child's spec and its current run."""

    __slots__ = ("attempts", "handle", "spec")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.handle: Handle | None = None
        self.attempts = 0  # restarts in a row, for the backoff


_live: weakref.WeakSet[SupervisorCore] = weakref.WeakSet()


def _stop_live_supervisors() -> None:
    for supervisor in list(_live):
        supervisor.stop()


threading._register_atexit(_stop_live_supervisors)  # type: ignore[attr-defined]


class SupervisorCore:
    """The supervisor algorithm; the model classes add their runner (see the module docstring)."""

    _runner: Runner
    _model: str

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
        if not period > 0:
            raise ValueError(f"period must be > 0 seconds, got {period!r}")
        if backoff is not None and not isinstance(backoff, Backoff):
            raise TypeError(f"backoff must be a Backoff or None, got {backoff!r}")
        self.strategy = strategy
        self.intensity = intensity
        self.period = float(period)
        self.backoff = backoff
        self.auto_shutdown = auto_shutdown
        self.name = name or f"{type(self).__name__}-{id(self):x}"
        self._lock = threading.RLock()
        self._children: list[_Child] = []
        for spec in children:
            self._check_new(spec)
            self._children.append(_Child(spec))
        self._restart_times: collections.deque[float] = collections.deque()
        self._events: collections.deque[SupervisorEvent] = collections.deque(maxlen=_HISTORY)
        self._subscribers: list[Callable[[SupervisorEvent], object]] = []
        self._restarts = self._crashes = self._abandoned = 0
        self._gave_up = False
        self._started = False
        self._shutdown_requested = False
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
        self._events.append(event)
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:  # a broken subscriber must not break supervision
                pass

    def events(self) -> list[SupervisorEvent]:
        """Return the events so far, oldest first (the last 1,000)."""
        with self._lock:
            return list(self._events)

    def subscribe(self, callback: Callable[[SupervisorEvent], object]) -> None:
        """Call ``callback(event)`` for every event from now on.

        It runs in the supervisor's threads, with the supervisor's lock held: it must be quick
        and must not call the supervisor's blocking methods. Its exceptions are ignored.
        """
        with self._lock:
            self._subscribers.append(callback)

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
                for child in list(self._children):
                    self._start_child(child)
            except BaseException:
                self._stop_children(list(self._children))
                self._runner.close()
                self._stopped.set()
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

        Args:
            timeout: the most seconds to wait (``None``: as long as the children take).

        Raises:
            TimeoutError: the supervisor did not stop within ``timeout`` seconds.
        """
        with self._lock:
            if not self._started:
                self._started = True
                self._stopped.set()
                return
            if self._stopped.is_set():
                return
            self._shutdown_requested = True
            if self._loop is not None:
                self._runner.wake()
        if self._loop is threading.current_thread():
            return  # called by a subscriber: the loop stops once the callback returns
        if not self._stopped.wait(timeout):
            raise TimeoutError(f"{self.name} did not stop within {timeout} seconds")

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the supervisor stops (asked to, by ``auto_shutdown``, or giving up).

        Raises:
            SupervisorGaveUp: it gave up, with its history.
            TimeoutError: it is still running after ``timeout`` seconds.
        """
        if not self._stopped.wait(timeout):
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
        runner = getattr(self, "_runner", None)
        if runner is not None and not self._stopped.is_set():
            runner.wake()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the loop -------------------------------------------------------------------------------

    def _run_loop(self) -> None:
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
                self._stopped.set()

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
        now = time.monotonic()
        times = self._restart_times
        times.append(now)
        while times and times[0] <= now - self.period:
            times.popleft()
        return len(times) <= self.intensity

    def _restart(self, child: _Child, handle: Handle) -> None:
        if self.backoff is not None:
            if time.monotonic() - handle.started_at >= self.backoff.healthy:
                child.attempts = 0
            child.attempts += 1
            delay = self.backoff.delay(child.attempts)
            self._lock.release()  # let the API work while the restart waits
            try:
                time.sleep(delay)
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
                for sibling in affected:
                    if sibling in self._children and sibling.handle is None:
                        self._start_child(sibling, restart=True)
                return
            except Exception as exc:  # a child that cannot start counts as one more crash
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
        child.handle = self._runner.spawn(child.spec)
        if restart:
            self._restarts += 1
            self._record("restart", child.spec.id)
        self._record("start", child.spec.id)

    def _stop_children(self, children: list[_Child]) -> None:
        """Stop the running ones of ``children``, in reverse order."""
        for child in reversed(children):
            if child.handle is not None:
                self._stop_one(child)

    def _stop_one(self, child: _Child) -> None:
        handle = child.handle
        assert handle is not None
        handle.reaped = True  # a deliberate stop, not a crash
        child.handle = None
        runner = self._runner
        shutdown = handle.spec.shutdown
        stopped = False
        if shutdown is not BRUTAL_KILL:
            runner.request_stop(handle)
            stopped = runner.join(handle, float(shutdown))  # type: ignore[arg-type]
        if not stopped and runner.kill(handle):
            stopped = runner.join(handle, None)
        if stopped:
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

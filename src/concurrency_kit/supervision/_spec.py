"""The values of supervision, shared by both models: specs, policies, events, statistics.

Everything here is data (``attrs.frozen`` values and enums) plus :func:`current_child`, the
one way a target learns that it runs supervised and is asked to stop, in a thread child and in
a process child alike.
"""

from __future__ import annotations

import enum
import random
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from concurrency_kit._core.deadline import check_timeout, deadline_after, remaining, wait_slice

__all__ = [
    "ALL_SIGNIFICANT",
    "ANY_SIGNIFICANT",
    "BRUTAL_KILL",
    "NEVER",
    "ONE_FOR_ALL",
    "ONE_FOR_ONE",
    "PERMANENT",
    "REST_FOR_ONE",
    "TEMPORARY",
    "TRANSIENT",
    "AutoShutdown",
    "Backoff",
    "ChildContext",
    "ChildCounts",
    "ChildInfo",
    "ChildSpec",
    "Restart",
    "Shutdown",
    "Strategy",
    "SupervisorEvent",
    "SupervisorStatistics",
    "current_child",
]


class Restart(enum.Enum):
    """When a child that exited is restarted (OTP's ``restart`` of a child spec)."""

    PERMANENT = "permanent"
    """Always."""
    TRANSIENT = "transient"
    """Only after an abnormal exit."""
    TEMPORARY = "temporary"
    """Never: the child is removed when it exits."""


class Strategy(enum.Enum):
    """Which children are restarted when one of them exits and must be restarted."""

    ONE_FOR_ONE = "one_for_one"
    """That child alone."""
    ONE_FOR_ALL = "one_for_all"
    """All of them: the others are stopped (in reverse order), then all start in order."""
    REST_FOR_ONE = "rest_for_one"
    """That child and those started after it: stopped in reverse order, restarted in order."""


class AutoShutdown(enum.Enum):
    """Whether the supervisor stops itself when *significant* children exit by themselves."""

    NEVER = "never"
    """Never (significant children are not allowed)."""
    ANY_SIGNIFICANT = "any_significant"
    """When any significant child exits (and is not restarted)."""
    ALL_SIGNIFICANT = "all_significant"
    """When every significant child has exited (and none is restarted)."""


PERMANENT: Final = Restart.PERMANENT
TRANSIENT: Final = Restart.TRANSIENT
TEMPORARY: Final = Restart.TEMPORARY
ONE_FOR_ONE: Final = Strategy.ONE_FOR_ONE
ONE_FOR_ALL: Final = Strategy.ONE_FOR_ALL
REST_FOR_ONE: Final = Strategy.REST_FOR_ONE
NEVER: Final = AutoShutdown.NEVER
ANY_SIGNIFICANT: Final = AutoShutdown.ANY_SIGNIFICANT
ALL_SIGNIFICANT: Final = AutoShutdown.ALL_SIGNIFICANT


class _BrutalKill:
    """The type of :data:`BRUTAL_KILL`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "BRUTAL_KILL"

    def __reduce__(self) -> str:
        return "BRUTAL_KILL"


BRUTAL_KILL: Final = _BrutalKill()
"""A child ``shutdown`` that kills the child at once (SIGKILL; processes only)."""


class Shutdown(Exception):
    """Raised by a child's target to exit *normally* (not a crash), as OTP's ``shutdown``."""


def _check_id(instance: ChildSpec, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise TypeError(f"a child id must be a non-empty str, got {value!r}")


def _check_target(instance: ChildSpec, attribute: attrs.Attribute[Any], value: object) -> None:
    if not callable(value):
        raise TypeError(f"a child target must be callable, got {value!r}")


def _check_shutdown(instance: ChildSpec, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not BRUTAL_KILL:
        check_timeout(value, name="shutdown")  # the library's one timeout rule


@attrs.frozen
class ChildSpec:
    """How to run one child, and what to do when it exits (OTP's child spec).

    Attributes:
        id: the child's name, unique within its supervisor.
        target: what the child runs: ``target(*args, **kwargs)``; a process child's target
            and arguments are pickled with cloudpickle.
        args: positional arguments of ``target``.
        kwargs: keyword arguments of ``target``.
        restart: :data:`PERMANENT`, :data:`TRANSIENT` or :data:`TEMPORARY`.
        shutdown: seconds the child is given to stop when asked (``current_child()``'s
            stop request; SIGTERM for a process) before it is killed (a process) or abandoned
            (a thread): a number ``>= 0``, or ``None`` or ``math.inf`` to wait as long as it
            takes (OTP's ``infinity``, for a child that runs a supervisor); or
            :data:`BRUTAL_KILL` (processes only) to kill it at once. A negative or NaN value
            is a :class:`ValueError`, anything else a :class:`TypeError`.
        significant: whether its own exit counts for the supervisor's ``auto_shutdown``
            (``TRANSIENT`` and ``TEMPORARY`` children only, as in OTP).
    """

    id: str = attrs.field(validator=_check_id)
    target: Callable[..., object] = attrs.field(validator=_check_target)
    args: tuple[Any, ...] = attrs.field(default=(), converter=tuple)
    kwargs: Mapping[str, Any] | None = None
    restart: Restart = attrs.field(
        default=Restart.PERMANENT, validator=attrs.validators.instance_of(Restart)
    )
    shutdown: float | _BrutalKill | None = attrs.field(default=5.0, validator=_check_shutdown)
    significant: bool = False

    def __attrs_post_init__(self) -> None:
        if self.significant and self.restart is Restart.PERMANENT:
            raise ValueError(
                f"child {self.id!r}: a significant child must be TRANSIENT or TEMPORARY "
                "(a PERMANENT child is always restarted, so its exit never counts)"
            )


@attrs.frozen
class Backoff:
    """An exponential delay before each restart of a child that keeps crashing.

    The ``n``-th restart in a row of a child waits ``min * 2 ** (n - 1)`` seconds, randomly
    spread by ``jitter`` (a fraction), then capped at ``max``. The count starts again once the
    child has run for ``healthy`` seconds.

    Attributes:
        min: the first delay, seconds.
        max: the largest delay, seconds.
        jitter: the relative spread of each delay (0.1: plus or minus 10 %).
        healthy: seconds a child must run for its next crash to count as the first.
    """

    min: float = 0.01
    max: float = 1.0
    jitter: float = 0.1
    healthy: float = 5.0

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.min <= self.max:
            raise ValueError(f"Backoff needs 0 <= min <= max, got min={self.min}, max={self.max}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"Backoff jitter must be within [0, 1], got {self.jitter}")

    def delay(self, attempt: int) -> float:
        """The delay before the ``attempt``-th restart in a row (1 for the first)."""
        base = self.min * 2.0 ** (max(1, attempt) - 1)
        spread = base * self.jitter
        return min(self.max, max(0.0, base + random.uniform(-spread, spread)))


@attrs.frozen
class SupervisorEvent:
    """One thing that happened to a supervisor or one of its children.

    Attributes:
        kind: ``"start"``, ``"exit"``, ``"restart"``, ``"give_up"`` or ``"stop"``.
        child_id: the child concerned, or ``None`` for the supervisor itself.
        time: when, on :func:`time.monotonic`'s clock.
        normal: for an exit, whether it was normal (returned, raised :exc:`Shutdown`, exit code
            0, or stopped on request); ``None`` otherwise.
        exitcode: a process child's exit code (negative: a signal), else ``None``.
        signal: the number of the signal that killed a process child, else ``None``.
        exception: the type name of the exception that ended the child, else ``None``
            (``"AbandonedThread"``: a thread child did not stop in time and was abandoned).
        traceback: the traceback text of that exception, else ``None``.
    """

    kind: str
    child_id: str | None
    time: float
    normal: bool | None = None
    exitcode: int | None = None
    signal: int | None = None
    exception: str | None = None
    traceback: str | None = None


@attrs.frozen
class ChildInfo:
    """One child, as :meth:`ProcessSupervisor.which_children` reports it.

    Attributes:
        id: its id.
        running: whether it runs now.
        pid: a running process child's process id, else ``None``.
        restart: its restart type.
        significant: whether it is significant.
    """

    id: str
    running: bool
    pid: int | None
    restart: Restart
    significant: bool


@attrs.frozen
class ChildCounts:
    """The children of a supervisor, counted.

    Attributes:
        specs: children the supervisor knows (running or not).
        active: children running now.
    """

    specs: int
    active: int


@attrs.frozen
class SupervisorStatistics:
    """A snapshot of a supervisor.

    Attributes:
        children: children it knows.
        running: children running now.
        restarts: restarts made (each child restarted counts once).
        crashes: abnormal exits of children.
        abandoned: thread children that did not stop in time (thread model only).
        gave_up: whether it gave up (restart intensity exceeded).
    """

    children: int
    running: int
    restarts: int
    crashes: int
    abandoned: int
    gave_up: bool


class ChildContext:
    """What a running child can ask its supervisor: its id, and whether it should stop.

    Returned by :func:`current_child`. A stop request is the supervisor stopping the child
    (its own shutdown, a restart of siblings, :meth:`ProcessSupervisor.terminate_child`); in a
    process child a SIGTERM is one too.
    """

    __slots__ = ("_callbacks", "_lock", "_stop", "id")

    def __init__(self, child_id: str) -> None:
        self.id = child_id
        self._stop = threading.Event()
        # Re-entrant: request_stop may run in a signal handler that interrupted on_stop.
        self._lock = threading.RLock()
        self._callbacks: list[Callable[[], object]] = []

    def should_stop(self) -> bool:
        """Return whether the child has been asked to stop."""
        return self._stop.is_set()

    def wait_stop(self, timeout: float | None = None) -> bool:
        """Wait until the child is asked to stop, for up to ``timeout`` seconds.

        Args:
            timeout: seconds (``None`` or ``math.inf``: no limit; ``0``: do not wait).

        Returns:
            Whether it was asked to stop.

        Raises:
            TypeError: ``timeout`` is not a number or ``None``.
            ValueError: ``timeout`` is negative or NaN.
        """
        deadline = deadline_after(check_timeout(timeout))
        while not self._stop.is_set():
            left = remaining(deadline)
            if left == 0:
                return False
            self._stop.wait(wait_slice(left))
        return True

    def on_stop(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` when the child is asked to stop (now, if it was already).

        It may run in a signal handler (a process child's SIGTERM): it must be quick.
        """
        with self._lock:
            if not self._stop.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def request_stop(self) -> None:
        """Ask the child to stop (what the supervisor does)."""
        self._stop.set()
        with self._lock:
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def __repr__(self) -> str:
        state = "stopping" if self.should_stop() else "running"
        return f"<ChildContext {self.id!r} {state}>"


_local = threading.local()
_process_context: list[ChildContext] = []  # the process child's context, set at its start


def set_thread_context(context: ChildContext | None) -> None:
    """Make ``context`` what :func:`current_child` returns in this thread."""
    _local.context = context


def set_process_context(context: ChildContext) -> None:
    """Make ``context`` what :func:`current_child` returns in every thread of this process."""
    _process_context[:] = [context]


def current_child() -> ChildContext:
    """Return the context of the supervised child the caller runs in.

    In a thread child: the context of that thread's child (threads the child starts are not
    children). In a process child: the child's context, from any thread of the process.

    Raises:
        RuntimeError: the caller does not run in a supervised child.
    """
    context: ChildContext | None = getattr(_local, "context", None)
    if context is None and _process_context:
        context = _process_context[0]
    if context is None:
        raise RuntimeError("current_child() is only available inside a supervised child")
    return context

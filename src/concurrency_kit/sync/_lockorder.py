"""The lock-order checker: finds lock-order inversions before they deadlock (threads only).

Like the Linux kernel's lockdep, it remembers in which order locks have been taken and refuses
an acquire that takes two locks in the opposite order of an earlier one (directly, or through
a chain of locks), *before* it blocks: the inversion is reported the first time both orders
have been seen, even if the run that would deadlock never happens. It is off by default, and a
lock created while it is off is a plain lock for its whole life, so the checker costs nothing
unless it is used.

What is checked: a *blocking* acquire (with or without a timeout) made while the thread holds
other checked locks. ``acquire(blocking=False)`` cannot deadlock: it is not checked, but a lock
taken that way counts as held. Re-entering a held re-entrant lock cannot block and is not
checked; a blocking acquire of a held non-re-entrant lock (a certain self-deadlock) raises.

Data structures::

    order graph (one per process, guarded by _graph_lock, a _thread lock)
      _nodes  key -> _Node(name, created_at, weakref to the lock)   one node per checked lock
      _succ   key -> {key2: _Edge}   edge A -> B: B was acquired while A was held; the _Edge
                                     keeps the first observation (both call sites, the thread)
      _pred   key -> {key2, ...}     the reverse edges, to drop a dead lock's edges quickly
      _dead   SimpleQueue of keys    locks that were garbage-collected; drained (under the
                                     lock) by the next graph operation
    per thread (threading.local, touched only by its own thread)
      held    [(key, call site), ...]  the checked locks the thread holds, in acquire order
      busy    bool                     the thread is inside the checker (see below)

Why this shape:

- **Keys, not locks.** A node is keyed by an int from a counter that never goes back, so a
  node left behind by a dead lock cannot be mistaken for a new lock at the same address, and
  the graph holds no strong reference to a lock. A weakref callback queues a dead lock's key;
  its node and edges are dropped at the next graph operation.
- **A DAG by construction.** An edge is added only after checking that it closes no cycle, so
  the graph never has one. Hence the fast path: if every held lock already has an edge to the
  lock being acquired, nothing can be new, and there is nothing to search. Otherwise one
  breadth-first search from the lock being acquired looks for any held lock; the path it finds
  is the earlier order the error message prints, one call site per edge.
- **No GIL reliance.** The graph is read and written only under ``_graph_lock``. The held
  stacks need no lock: each is a ``threading.local`` only its own thread touches. The on/off
  switch is one module global, written under the graph lock and read without it: an acquire
  racing with :func:`enable_lock_order_checking` sees either state, and both are consistent.
  Dead keys go through a :class:`queue.SimpleQueue`, whose ``put`` is documented as safe in
  weakref callbacks and ``__del__``.
- **Re-entrancy.** The garbage collector can run finalizers (``__del__``) in any thread at
  any allocation, including inside the checker while it holds ``_graph_lock``; a finalizer
  that takes a checked lock would then wait for ``_graph_lock`` for ever. While a thread is
  inside the checker (``busy``), its nested lock operations and creations skip the checker:
  such a lock acquire is not checked, and such a lock is never checked.
- **Fork.** ``_graph_lock`` is held across ``os.fork()`` and replaced in the child, so a child
  forked while another thread updated the graph gets a consistent graph and a free lock.

Integration with :mod:`concurrency_kit.sync.thread`: :func:`checked_class` derives from a lock
class a subclass whose ``acquire``/``release``/``with`` (and, for a re-entrant lock, the
``_release_save``/``_acquire_restore`` hooks :class:`threading.Condition` uses) run the
checks around the base methods. ``ThreadLock.__new__`` returns an instance of it when
checking is enabled at creation time.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import weakref
from _queue import SimpleQueue
from _thread import allocate_lock
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast

from concurrency_kit.errors import LockOrderError
from concurrency_kit.sync._base import check_acquire_args

if TYPE_CHECKING:
    from concurrency_kit.sync.thread import ThreadLock, ThreadRLock, _ThreadLockBase

    _LockBase = ThreadLock
    _RLockBase = ThreadRLock
else:
    _LockBase = _RLockBase = object

__all__ = [
    "checked_class",
    "disable_lock_order_checking",
    "enable_lock_order_checking",
    "lock_order_checking_enabled",
]

_L = TypeVar("_L", bound="_ThreadLockBase")


# -- call sites ---------------------------------------------------------------------------------

_PACKAGE_PREFIX = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_THIS_FILE = __file__
_THREADING_FILE = threading.__file__


def _call_site() -> str:
    """``"path:lineno in function"`` of the user's frame that called into the lock.

    Frames of concurrency_kit itself and of :mod:`threading` (a :class:`threading.Condition`
    taking its lock) are skipped. When every frame is one of those (a thread the library
    started), the innermost frame outside this module is used.
    """
    frame: FrameType | None = sys._getframe(1)
    fallback: FrameType | None = None
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_PACKAGE_PREFIX) and filename != _THREADING_FILE:
            return _format_site(frame)
        if fallback is None and filename != _THIS_FILE:
            fallback = frame
        frame = frame.f_back
    return "<unknown>" if fallback is None else _format_site(fallback)


def _format_site(frame: FrameType) -> str:
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"


# -- the order graph ----------------------------------------------------------------------------


class _Node(NamedTuple):
    name: str  # "ThreadLock#3"
    created_at: str  # call site of the lock's creation
    ref: weakref.ref[object]  # keeps the weakref (and so its callback) alive


class _Edge(NamedTuple):
    held_site: str  # where the thread had acquired the lock it held
    site: str  # where it then acquired the other lock
    thread: str  # the thread's name


_graph_lock = allocate_lock()
_enabled = False
_next_key = 1
_nodes: dict[int, _Node] = {}
_succ: dict[int, dict[int, _Edge]] = {}
_pred: dict[int, set[int]] = {}
_dead: SimpleQueue[int] = SimpleQueue()


class _ThreadState(threading.local):
    """The calling thread's held checked locks; see the module docstring."""

    def __init__(self) -> None:
        self.held: list[tuple[int, str]] = []
        self.busy = False


_state = _ThreadState()


def _drain_dead() -> None:
    """Forget the locks that were garbage-collected. Call with ``_graph_lock`` held."""
    while not _dead.empty():  # only the graph lock's holder takes items: not empty, one is there
        key = _dead.get_nowait()
        _nodes.pop(key, None)
        for after in _succ.pop(key, {}):
            _pred.get(after, set()).discard(key)
        for before in _pred.pop(key, set()):
            _succ.get(before, {}).pop(key, None)


def _on_collected(key: int) -> Callable[[weakref.ref[object]], None]:
    def collected(_ref: weakref.ref[object]) -> None:
        _dead.put(key)  # reentrant: may run inside the checker, in any thread

    return collected


def _register(lock: object) -> int:
    """Add a node for a new checked lock and return its key (0: the lock is not tracked)."""
    created_at = _call_site()
    state = _state
    if state.busy:  # created by a finalizer run inside the checker: cannot take the lock
        return 0
    global _next_key
    state.busy = True
    try:
        with _graph_lock:
            _drain_dead()
            key = _next_key
            _next_key += 1
            name = f"{type(lock).__qualname__}#{key}"
            _nodes[key] = _Node(name, created_at, weakref.ref(lock, _on_collected(key)))
    finally:
        state.busy = False
    return key


def _check_and_record(key: int, site: str, held: list[tuple[int, str]]) -> None:
    """Raise :exc:`LockOrderError` if acquiring ``key`` while holding ``held`` inverts an
    earlier order; otherwise record the new edges held -> key. Call with ``busy`` set."""
    thread = threading.current_thread().name
    with _graph_lock:
        _drain_dead()
        if not _enabled:
            return
        new = [
            (held_key, held_site)
            for held_key, held_site in held
            if held_key == key or (held_key in _nodes and key not in _succ.get(held_key, {}))
        ]
        if not new:
            return
        path = _find_path(key, {held_key for held_key, _ in new})
        if path is not None:
            held_site = next(s for k, s in new if k == path[-1])
            raise LockOrderError(_message(key, site, path, held_site))
        for held_key, held_site in new:
            _succ.setdefault(held_key, {})[key] = _Edge(held_site, site, thread)
            _pred.setdefault(key, set()).add(held_key)


def _find_path(start: int, targets: set[int]) -> list[int] | None:
    """The shortest path ``start -> ... -> t`` to any ``t`` in ``targets``, or ``None``."""
    if start in targets:
        return [start]
    parent = {start: start}
    frontier = [start]
    while frontier:
        following: list[int] = []
        for node in frontier:
            for after in _succ.get(node, {}):
                if after in parent:
                    continue
                parent[after] = node
                if after in targets:
                    path = [after]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    path.reverse()
                    return path
                following.append(after)
        frontier = following
    return None


def _message(key: int, site: str, path: list[int], held_site: str) -> str:
    """The error message for acquiring ``key`` at ``site`` while holding ``path[-1]``
    (acquired at ``held_site``), when the graph already has ``path`` from ``key`` to it."""

    def name(k: int) -> str:
        return _nodes[k].name

    held = path[-1]
    if held == key:
        return "\n".join(
            [
                f"self-deadlock: {name(key)} acquired by the thread that holds it; "
                f"{_type_name(name(key))} is not re-entrant, so this acquire could only wait "
                "(for ever, or until its timeout)",
                f"  now:     {name(key)} acquired at {site}",
                f"           while holding it, acquired at {held_site}",
                f"  lock:    {name(key)} created at {_nodes[key].created_at}",
            ]
        )
    order = " -> ".join(name(k) for k in path)
    lines = [
        f"lock order inversion: acquiring {name(key)} while holding {name(held)} reverses the "
        f"order seen before ({order}); threads taking the locks in both orders can deadlock",
        f"  now:     {name(key)} acquired at {site}",
        f"           while holding {name(held)}, acquired at {held_site}",
    ]
    for before, after in itertools.pairwise(path):
        edge = _succ[before][after]
        lines.append(f"  earlier: {name(after)} acquired at {edge.site} (thread {edge.thread!r})")
        lines.append(f"           while holding {name(before)}, acquired at {edge.held_site}")
    lines.append("  locks:")
    lines.extend(f"    {name(k)} created at {_nodes[k].created_at}" for k in path)
    return "\n".join(lines)


def _type_name(node_name: str) -> str:
    """``"ThreadLock"`` from ``"ThreadLock#3"``."""
    return node_name.partition("#")[0]


def _before_blocking_acquire(key: int, site: str) -> None:
    """Check the order for a blocking acquire of the lock ``key`` by this thread."""
    state = _state
    if not state.held:  # nothing held: no order to check or to record
        return
    state.busy = True
    try:
        _check_and_record(key, site, list(state.held))
    finally:
        state.busy = False


def _forget_held(key: int) -> None:
    """Drop the lock ``key`` from this thread's held locks (released in any order)."""
    held = _state.held
    for i in range(len(held) - 1, -1, -1):
        if held[i][0] == key:
            del held[i]
            return


def _reinit_after_fork() -> None:
    global _graph_lock
    _graph_lock = allocate_lock()


def _before_fork() -> None:
    _graph_lock.acquire()


def _after_fork_in_parent() -> None:
    _graph_lock.release()


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_reinit_after_fork
)


# -- the switch ---------------------------------------------------------------------------------


def enable_lock_order_checking() -> None:
    """Check the acquisition order of the thread locks created from now on.

    While checking is enabled, every :class:`~concurrency_kit.ThreadLock` and
    :class:`~concurrency_kit.ThreadRLock` *created* is a checked lock: each blocking acquire
    made while the thread holds other checked locks records the order (held lock first), and
    an acquire that takes two locks in the opposite order of an earlier one, directly or
    through a chain of locks, raises :exc:`~concurrency_kit.LockOrderError` before it blocks.
    So does a blocking acquire of a :class:`~concurrency_kit.ThreadLock` by its holder.
    ``acquire(blocking=False)`` is never checked: it cannot deadlock. Calling it while checking
    is enabled does nothing.
    """
    global _enabled
    with _graph_lock:
        _enabled = True


def disable_lock_order_checking() -> None:
    """Stop checking lock order and forget every order recorded so far.

    Locks created from now on are plain locks. Locks created while checking was enabled stay
    checked locks, but do not check or record anything until checking is enabled again, which
    starts from an empty record. Calling it while checking is disabled does nothing.
    """
    global _enabled
    with _graph_lock:
        _enabled = False
        _drain_dead()
        _succ.clear()
        _pred.clear()


def lock_order_checking_enabled() -> bool:
    """Whether lock-order checking is enabled now."""
    return _enabled


def _graph_size() -> tuple[int, int]:
    """``(checked locks alive, recorded orders)``, after forgetting collected locks (tests)."""
    with _graph_lock:
        _drain_dead()
        return len(_nodes), sum(len(after) for after in _succ.values())


# -- checked lock classes -----------------------------------------------------------------------


class _CheckedLock(_LockBase):
    """The checks of a non-re-entrant lock, mixed in before the lock class."""

    # The slot is added by checked_class (two slotted bases of a class cannot both add slots).
    if TYPE_CHECKING:
        __slots__ = ("_lockorder_key",)
    else:
        __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # a subclass may take arguments
        super().__init__(*args, **kwargs)
        self._lockorder_key = _register(self)

    def acquire(self, blocking: bool = True, timeout: float | None = -1) -> bool:
        """Acquire the lock, as the lock class does, after checking the lock order."""
        key = self._lockorder_key
        if not (_enabled and key) or _state.busy:
            return super().acquire(blocking, timeout)
        site = _call_site()
        if blocking:
            if timeout != -1:
                check_acquire_args(blocking, timeout)  # a bad argument wins over the order
            _before_blocking_acquire(key, site)
        if super().acquire(blocking, timeout):
            _state.held.append((key, site))
            return True
        return False

    __enter__ = acquire

    def release(self) -> None:
        """Release the lock, as the lock class does."""
        super().release()
        if self._lockorder_key:
            _forget_held(self._lockorder_key)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Release the lock at the end of a ``with`` block."""
        self.release()


class _CheckedRLock(_RLockBase):
    """The checks of a re-entrant lock, mixed in before the lock class."""

    if TYPE_CHECKING:
        __slots__ = ("_lockorder_key",)
    else:
        __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # a subclass may take arguments
        super().__init__(*args, **kwargs)
        self._lockorder_key = _register(self)

    def acquire(self, blocking: bool = True, timeout: float | None = -1) -> bool:
        """Acquire the lock, as the lock class does, after checking the lock order.

        Acquiring it again while holding it cannot block, so it is not checked.
        """
        key = self._lockorder_key
        if not (_enabled and key) or self._is_owned() or _state.busy:
            return super().acquire(blocking, timeout)
        site = _call_site()
        if blocking:
            if timeout != -1:
                check_acquire_args(blocking, timeout)
            _before_blocking_acquire(key, site)
        if super().acquire(blocking, timeout):
            _state.held.append((key, site))
            return True
        return False

    __enter__ = acquire

    def release(self) -> None:
        """Release the lock once, as the lock class does."""
        super().release()
        # The mutex knows its holder: once it is not this thread, this thread let go of it.
        if self._lockorder_key and not self._is_owned():
            _forget_held(self._lockorder_key)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Release the lock once at the end of a ``with`` block."""
        self.release()

    def _release_save(self) -> int:
        count = super()._release_save()
        if self._lockorder_key:
            _forget_held(self._lockorder_key)
        return count

    def _acquire_restore(self, count: int) -> None:
        key = self._lockorder_key
        if not (_enabled and key) or _state.busy:
            super()._acquire_restore(count)
            return
        site = _call_site()
        _before_blocking_acquire(key, site)
        super()._acquire_restore(count)
        _state.held.append((key, site))


_classes: dict[type, type] = {}


def checked_class(cls: type[_L]) -> type[_L]:
    """The checked subclass of the lock class ``cls`` (made once, then cached).

    The subclass has the same name, qualified name, module and docstring as ``cls``, so its
    instances look like plain locks (``repr``, error messages); only
    ``isinstance(lock, cls)`` holds, not ``type(lock) is cls``. A checked class is its own
    checked class.

    Args:
        cls: :class:`~concurrency_kit.ThreadLock`, :class:`~concurrency_kit.ThreadRLock` or a
            subclass.

    Returns:
        The subclass whose instances check the lock order.

    Raises:
        TypeError: ``cls`` is not a thread lock class.
    """
    from concurrency_kit.sync.thread import ThreadLock, ThreadRLock

    if issubclass(cls, (_CheckedLock, _CheckedRLock)):
        return cls
    checked = _classes.get(cls)
    if checked is not None:
        return cast("type[_L]", checked)
    if issubclass(cls, ThreadRLock):
        mixin: type = _CheckedRLock
    elif issubclass(cls, ThreadLock):
        mixin = _CheckedLock
    else:
        raise TypeError(f"not a thread lock class: {cls!r}")
    namespace = {
        "__slots__": ("_lockorder_key",),
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
    }
    made = type(cls.__name__, (mixin, cls), namespace)
    if _state.busy:  # called by a finalizer inside the checker: cannot take the lock
        return cast("type[_L]", made)
    _state.busy = True
    try:
        with _graph_lock:
            checked = _classes.setdefault(cls, made)
    finally:
        _state.busy = False
    return cast("type[_L]", checked)

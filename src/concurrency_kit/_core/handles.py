"""The handle bases every row's classes share: what a handle is, however the model.

A process handle (``ProcessHandle``) is this process's view of a primitive or container that
lives in a shared-memory segment: created here or unpickled from another process, closed
explicitly or by its finalizer, and picklable, which is how it reaches another process. A
thread handle (``ThreadHandle``) holds nothing but memory: ``close`` does nothing (so code
written against a model closes whatever it made) and pickling is refused with a pointer to
the process counterpart. A closed handle's views are replaced by a :class:`Closed` stand-in, so
any later use raises :exc:`ValueError` naming it.
"""

from __future__ import annotations

import ctypes
import weakref
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from typing_extensions import Self

from concurrency_kit._core import shm
from concurrency_kit._core.monitor import ProcessMonitor

__all__ = ["Closed", "Closing", "ProcessHandle", "ThreadHandle", "drop_segment"]


class Closing:
    """``with resource:`` gives the resource and closes it at the end of the block.

    For resources whose ``with`` means "use, then close" (containers); a lock's ``with``
    means acquire/release instead and does not use this.
    """

    __slots__ = ()

    if TYPE_CHECKING:  # provided by the resource class

        def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Closed:
    """Stands in for the views of a closed handle (its monitor, state, buffers): any use
    raises :exc:`ValueError` naming what was closed."""

    __slots__ = ("_what",)

    def __init__(self, what: str) -> None:
        object.__setattr__(self, "_what", what)

    def __getattr__(self, name: str) -> NoReturn:
        raise ValueError(f"{self._what} is closed")

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise ValueError(f"{self._what} is closed")

    def __getitem__(self, index: object) -> NoReturn:
        raise ValueError(f"{self._what} is closed")

    def __setitem__(self, index: object, value: object) -> NoReturn:
        raise ValueError(f"{self._what} is closed")


def drop_segment(segment: shm.Segment, creator: bool) -> None:
    """Let go of this process's mapping of ``segment``; the creator's handle also removes it."""
    segment.close()
    if creator:
        segment.unlink()  # in the creating process only: a forked copy is no creator


def _attach(cls: type[ProcessHandle], name: str, extra: Any) -> Any:
    """Unpickle a process primitive handle: map the segment ``name`` in this process."""
    handle = cls.__new__(cls)
    handle._setup(ProcessMonitor.attach(name, cls._KIND, cls._STATE), creator=False)
    handle._restore(extra)
    return handle


class ProcessHandle:
    """A handle's lifecycle, written once: create or attach the segment, close, pickle, repr.

    The concrete classes name their segment's ``_KIND`` and ``_STATE`` structure. (The
    handle fields live in an instance dict: slots cannot come from two bases.)
    """

    _KIND: ClassVar[int]
    _STATE: ClassVar[type[ctypes.Structure]]
    _m: Any
    _s: Any
    _finalizer: weakref.finalize[Any, Any]
    _name: str

    def _create(self) -> Any:
        """Create the segment; return the state for the caller to fill in."""
        monitor = ProcessMonitor.create(self._KIND, self._STATE)
        self._setup(monitor, creator=True)
        return monitor.state

    def _setup(self, monitor: ProcessMonitor, *, creator: bool) -> None:
        self._m = monitor
        self._s = self._state_of(monitor)
        self._name = monitor.segment.name
        self._finalizer = weakref.finalize(self, drop_segment, monitor.segment, creator)

    def _state_of(self, monitor: ProcessMonitor) -> Any:
        return monitor.state

    def _extra(self) -> Any:
        """What a pickled handle carries besides the segment name."""
        return None

    def _restore(self, extra: Any) -> None:
        """Set up what :meth:`_extra` carried, in the unpickling process."""

    def close(self) -> None:
        """Release this process's mapping of the primitive (idempotent).

        Closing the handle that created it also removes the shared-memory segment: processes
        that have it keep using it, but no more handles can be unpickled. A handle that is
        garbage collected is closed by a finalizer, and the segment is removed when the
        creating process exits, however it exits. Using a closed handle raises
        :exc:`ValueError`.
        """
        what = f"{type(self).__qualname__} {self._name}"
        self._m = self._s = Closed(what)
        self._finalizer()

    def _describe(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        cls = type(self)
        state = "closed" if isinstance(self._m, Closed) else self._describe()
        return f"<{cls.__module__}.{cls.__qualname__} {state} {self._name} at {id(self):#x}>"

    def __reduce__(self) -> tuple[Any, tuple[Any, str, Any]]:
        if isinstance(self._m, Closed):
            raise ValueError(f"cannot pickle a closed {type(self).__qualname__}")
        return _attach, (type(self), self._name, self._extra())


class ThreadHandle:
    """What every monitor-based thread primitive adds to its algorithm: no resources to close,
    no pickling, a repr."""

    __slots__ = ()

    def close(self) -> None:
        """Do nothing: a thread primitive holds no resource beyond its memory.

        It exists so that code written against a :class:`~concurrency_kit.Model` can close
        its primitives whichever the model (a process primitive releases its shared memory).
        """

    def _describe(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        cls = type(self)
        return f"<{cls.__module__}.{cls.__qualname__} {self._describe()} at {id(self):#x}>"

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            f"cannot pickle {type(self).__qualname__!r} object: a thread primitive works "
            "within one process; use its Process... counterpart to share it between processes"
        )

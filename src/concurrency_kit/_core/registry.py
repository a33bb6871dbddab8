"""One mapping per segment per process, shared by every handle of it in that process.

A robust mutex must have a single address in a process (``mutex.py``): two mappings of one
segment would give one mutex two addresses, and the kernel's robust list could not find it
when its holder dies. So each kind of primitive keeps a :class:`Registry` of the segments this
process has mapped; unpickling a handle of a segment already mapped here reuses the mapping
and counts one more handle::

    handle ─┐
    handle ─┼──> Mapping (one per segment per process) ──> mmap of the segment
    handle ─┘          └── the last handle closes it: unmapped, unless a thread of this
                           process holds its mutex (then pinned until the process exits)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from concurrency_kit._core import mutex, shm

__all__ = ["Mapping", "Registry"]


class Mapping:
    """This process's mapping of one segment whose robust mutex is at ``mutex_offset``.

    Attributes:
        segment: the mapped segment.
        name: its name.
        handles: how many handles of this process use the mapping.
        mutex_address: the address of the segment's (first) robust mutex in this process.
    """

    __slots__ = ("handles", "mutex_address", "name", "segment")

    def __init__(self, segment: shm.Segment, mutex_offset: int = 0) -> None:
        self.segment = segment
        self.name = segment.name
        self.handles = 0
        self.mutex_address = segment.address + mutex_offset

    def held_here(self) -> bool:
        """Whether a live thread of this process holds the mutex."""
        tid = mutex.holder(self.mutex_address)
        return tid != 0 and os.path.exists(f"/proc/self/task/{tid}")


M = TypeVar("M", bound=Mapping)


class Registry(Generic[M]):
    """Segment name -> this process's :class:`Mapping` of it (see the module docstring)."""

    def __init__(self) -> None:
        self._mappings: dict[str, M] = {}
        # Re-entrant: a handle's finalizer (release) may run from a garbage collection that
        # starts while this thread is inside open().
        self._lock = threading.RLock()
        # Mappings whose mutex a thread of this process held when their last handle went.
        self._pinned: list[M] = []
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.RLock()  # another thread may have held it at fork time

    def add(self, mapping: M) -> M:
        """Record a mapping this process just created; it has one handle."""
        with self._lock:
            mapping.handles += 1
            self._mappings[mapping.name] = mapping
        return mapping

    def open(self, name: str, attach: Callable[[], M]) -> M:
        """The mapping of segment ``name``, made by ``attach()`` if this process has none;
        one more handle uses it."""
        with self._lock:
            mapping = self._mappings.get(name)
            if mapping is None:
                mapping = self._mappings[name] = attach()
            mapping.handles += 1
            return mapping

    def release(self, mapping: M) -> None:
        """Forget one handle of ``mapping``; the last one lets the mapping go.

        The memory is unmapped once the last view built on it is collected, unless a thread
        of this process holds the mutex: unmapping would leave the holder's robust list
        pointing at unmapped memory, so the mapping stays until the process exits.
        """
        with self._lock:
            mapping.handles -= 1
            if mapping.handles > 0:
                return
            if self._mappings.get(mapping.name) is mapping:
                del self._mappings[mapping.name]
        if mapping.held_here():
            self._pinned.append(mapping)
            return
        mapping.segment.close()

"""The two models of concurrency as records of classes.

``PROCESS.Pool is ProcessPool`` and ``THREAD.Pool is ThreadPool``: code written against a
:class:`Model` switches between processes and threads by changing one name::

    def total(model: Model) -> int:
        with model.Pool(2) as pool:
            return sum(pool.map(abs, range(-5, 5)))

Each capability adds its attribute here when it lands.
"""

from __future__ import annotations

import attrs

from concurrency_kit.pools.process import ProcessPool
from concurrency_kit.pools.thread import ThreadPool
from concurrency_kit.sync.process import ProcessLock, ProcessRLock
from concurrency_kit.sync.thread import ThreadLock, ThreadRLock

__all__ = ["PROCESS", "THREAD", "Model"]


@attrs.frozen
class Model:
    """One model of concurrency: its name and the classes that implement it.

    Attributes:
        name: ``"process"`` or ``"thread"``.
        Pool: the pool class of the model (:class:`ProcessPool` or :class:`ThreadPool`).
        Lock: the lock class (:class:`ProcessLock` or :class:`ThreadLock`).
        RLock: the re-entrant lock class (:class:`ProcessRLock` or :class:`ThreadRLock`).
    """

    name: str
    Pool: type[ProcessPool] | type[ThreadPool]
    Lock: type[ProcessLock] | type[ThreadLock]
    RLock: type[ProcessRLock] | type[ThreadRLock]

    def __repr__(self) -> str:
        return self.name.upper()


PROCESS = Model(name="process", Pool=ProcessPool, Lock=ProcessLock, RLock=ProcessRLock)
"""Processes: each worker has its own interpreter and memory; a crash is contained."""

THREAD = Model(name="thread", Pool=ThreadPool, Lock=ThreadLock, RLock=ThreadRLock)
"""Threads: workers share the interpreter and its memory; cheap to start and to talk to."""

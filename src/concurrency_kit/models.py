"""The models of concurrency as records of classes.

``PROCESS.Pool is ProcessPool`` and ``THREAD.Pool is ThreadPool``: code written against a
:class:`Model` switches between processes and threads by changing one name::

    def total(model: Model) -> int:
        with model.Pool(2) as pool:
            return sum(pool.map(abs, range(-5, 5)))

``CLUSTER`` is a :class:`PoolModel`: it has a pool only (``CLUSTER.Pool is ClusterPool``), so
code that needs nothing but a pool takes a ``PoolModel`` and runs on all of them. The other
capabilities stay on one machine.

``INTERPRETER`` (subinterpreters, Python 3.14+) is a ``PoolModel`` too, for now: its pool
(``INTERPRETER.Pool is InterpreterPool``) has landed, its other classes have not yet. It exists
on every Python; creating its pool before 3.14 raises an :class:`ImportError` that says so.

Each capability adds its attribute here when it lands.
"""

from __future__ import annotations

from typing import Any, NoReturn

import attrs

from concurrency_kit.channels import ProcessChannel, ThreadChannel
from concurrency_kit.pools import ClusterPool, InterpreterPool, ProcessPool, ThreadPool
from concurrency_kit.state import (
    ProcessSharedArray,
    ProcessSharedCounter,
    ProcessSharedDict,
    ProcessSharedValue,
    ThreadSharedArray,
    ThreadSharedCounter,
    ThreadSharedDict,
    ThreadSharedValue,
)
from concurrency_kit.supervision import ProcessSupervisor, ThreadSupervisor
from concurrency_kit.sync import (
    ProcessBarrier,
    ProcessBoundedSemaphore,
    ProcessCondition,
    ProcessEvent,
    ProcessGuarded,
    ProcessLock,
    ProcessRLock,
    ProcessRWLock,
    ProcessSemaphore,
    ThreadBarrier,
    ThreadBoundedSemaphore,
    ThreadCondition,
    ThreadEvent,
    ThreadGuarded,
    ThreadLock,
    ThreadRLock,
    ThreadRWLock,
    ThreadSemaphore,
)

__all__ = ["CLUSTER", "INTERPRETER", "PROCESS", "THREAD", "Model", "PoolModel"]


@attrs.frozen
class PoolModel:
    """A model of concurrency that offers a pool: its name and its pool class.

    :data:`CLUSTER` and :data:`INTERPRETER` are; every :class:`Model` is one too, so a function
    that takes a ``PoolModel`` runs on processes, threads, interpreters and a cluster alike.

    Attributes:
        name: ``"process"``, ``"thread"``, ``"interpreter"`` or ``"cluster"``.
        Pool: the pool class of the model (:class:`ProcessPool`, :class:`ThreadPool`,
            :class:`InterpreterPool` or :class:`ClusterPool`).
    """

    name: str
    Pool: type[ProcessPool] | type[ThreadPool] | type[InterpreterPool] | type[ClusterPool]

    def __repr__(self) -> str:
        return self.name.upper()

    def __getattr__(self, attribute: str) -> NoReturn:
        # Only reached when normal lookup fails: for CLUSTER.Lock, say why rather than "no
        # attribute" (a Model has every one of them, so it never gets here for those).
        single_machine = {field.name for field in attrs.fields(Model)} - {"name", "Pool"}
        if attribute in single_machine and self.name == "interpreter":
            raise AttributeError(
                f"{self!r} has no {attribute} yet: the interpreter model offers only a pool "
                f"so far ({self!r}.Pool, Python 3.14+): use PROCESS or THREAD for {attribute}"
            )
        if attribute in single_machine:
            raise AttributeError(
                f"{self!r} has no {attribute}: the {self.name} model offers only a pool "
                f"({self!r}.Pool). Synchronization, shared state, channels and supervisors "
                "stay on one machine: use PROCESS or THREAD for them"
            )
        raise AttributeError(f"{type(self).__name__} {self!r} has no attribute {attribute!r}")


@attrs.frozen(repr=False)  # PoolModel's repr: PROCESS, THREAD
class Model(PoolModel):
    """One model of concurrency on this machine: its name and the classes that implement it.

    Attributes:
        name: ``"process"`` or ``"thread"``.
        Pool: the pool class of the model (:class:`ProcessPool` or :class:`ThreadPool`).
        Lock: the lock class (:class:`ProcessLock` or :class:`ThreadLock`).
        RLock: the re-entrant lock class (:class:`ProcessRLock` or :class:`ThreadRLock`).
        Semaphore: :class:`ProcessSemaphore` or :class:`ThreadSemaphore`.
        BoundedSemaphore: :class:`ProcessBoundedSemaphore` or :class:`ThreadBoundedSemaphore`.
        Event: :class:`ProcessEvent` or :class:`ThreadEvent`.
        Condition: :class:`ProcessCondition` or :class:`ThreadCondition`.
        Barrier: :class:`ProcessBarrier` or :class:`ThreadBarrier`.
        RWLock: :class:`ProcessRWLock` or :class:`ThreadRWLock`.
        Guarded: :class:`ProcessGuarded` or :class:`ThreadGuarded`.
        SharedDict: :class:`ProcessSharedDict` or :class:`ThreadSharedDict`.
        Supervisor: :class:`ProcessSupervisor` or :class:`ThreadSupervisor`.
        SharedCounter: :class:`ProcessSharedCounter` or :class:`ThreadSharedCounter`.
        SharedValue: :class:`ProcessSharedValue` or :class:`ThreadSharedValue`.
        SharedArray: :class:`ProcessSharedArray` or :class:`ThreadSharedArray`.
        Channel: :class:`ProcessChannel` or :class:`ThreadChannel`.
    """

    Lock: type[ProcessLock] | type[ThreadLock]
    RLock: type[ProcessRLock] | type[ThreadRLock]
    Semaphore: type[ProcessSemaphore] | type[ThreadSemaphore]
    BoundedSemaphore: type[ProcessBoundedSemaphore] | type[ThreadBoundedSemaphore]
    Event: type[ProcessEvent] | type[ThreadEvent]
    Condition: type[ProcessCondition] | type[ThreadCondition]
    Barrier: type[ProcessBarrier] | type[ThreadBarrier]
    RWLock: type[ProcessRWLock] | type[ThreadRWLock]
    Guarded: type[ProcessGuarded[Any]] | type[ThreadGuarded[Any]]
    SharedDict: type[ProcessSharedDict] | type[ThreadSharedDict]
    Supervisor: type[ProcessSupervisor] | type[ThreadSupervisor]
    SharedCounter: type[ProcessSharedCounter] | type[ThreadSharedCounter]
    SharedValue: type[ProcessSharedValue] | type[ThreadSharedValue]
    SharedArray: type[ProcessSharedArray] | type[ThreadSharedArray]
    Channel: type[ProcessChannel[Any]] | type[ThreadChannel[Any]]


PROCESS = Model(
    name="process",
    Pool=ProcessPool,
    Lock=ProcessLock,
    RLock=ProcessRLock,
    Semaphore=ProcessSemaphore,
    BoundedSemaphore=ProcessBoundedSemaphore,
    Event=ProcessEvent,
    Condition=ProcessCondition,
    Barrier=ProcessBarrier,
    RWLock=ProcessRWLock,
    Guarded=ProcessGuarded,
    SharedDict=ProcessSharedDict,
    Supervisor=ProcessSupervisor,
    SharedCounter=ProcessSharedCounter,
    SharedValue=ProcessSharedValue,
    SharedArray=ProcessSharedArray,
    Channel=ProcessChannel,
)
"""Processes: each worker has its own interpreter and memory; a crash is contained."""

THREAD = Model(
    name="thread",
    Pool=ThreadPool,
    Lock=ThreadLock,
    RLock=ThreadRLock,
    Semaphore=ThreadSemaphore,
    BoundedSemaphore=ThreadBoundedSemaphore,
    Event=ThreadEvent,
    Condition=ThreadCondition,
    Barrier=ThreadBarrier,
    RWLock=ThreadRWLock,
    Guarded=ThreadGuarded,
    SharedDict=ThreadSharedDict,
    Supervisor=ThreadSupervisor,
    SharedCounter=ThreadSharedCounter,
    SharedValue=ThreadSharedValue,
    SharedArray=ThreadSharedArray,
    Channel=ThreadChannel,
)
"""Threads: workers share the interpreter and its memory; cheap to start and to talk to."""

INTERPRETER = PoolModel(name="interpreter", Pool=InterpreterPool)
"""Subinterpreters (Python 3.14+): each worker has its own interpreter and GIL in this process.

Memory is isolated as between processes (calls and results are pickled), while a task reaches
its worker without leaving the process; a crash in a task ends the whole process, as a thread's
would. It offers only a pool so far: ``INTERPRETER.Lock`` and the other classes raise
:class:`AttributeError`, and creating ``INTERPRETER.Pool`` before Python 3.14 raises
:class:`ImportError`.
"""

CLUSTER = PoolModel(name="cluster", Pool=ClusterPool)
"""A dask ``distributed`` cluster: a pool whose workers may run on other machines.

Needs the ``cluster`` extra. It offers only a pool: ``CLUSTER.Lock`` and the other
single-machine classes raise :class:`AttributeError`.
"""

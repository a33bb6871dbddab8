"""The models of concurrency as records of classes.

``PROCESS.Pool is ProcessPool`` and ``THREAD.Pool is ThreadPool``: code written against a
:class:`Model` switches between processes and threads by changing one name::

    def total(model: Model) -> int:
        with model.Pool(2) as pool:
            return sum(pool.map(abs, range(-5, 5)))

``CLUSTER`` is a :class:`PoolModel`: it has a pool only (``CLUSTER.Pool is ClusterPool``), so
code that needs nothing but a pool takes a ``PoolModel`` and runs on all of them. The other
capabilities stay on one machine.

``INTERPRETER`` (subinterpreters, Python 3.14+) is an :class:`InterpreterModel`: every row of
a ``Model``. Its pool, channel and supervisor are its own (``InterpreterPool``,
``InterpreterChannel``, ``InterpreterSupervisor``); for synchronization and shared state it
names the process classes (``INTERPRETER.Lock is ProcessLock``), whose shared memory the
interpreters of one process share as processes do, each verified between interpreters by
``tests/contract/``. It exists on every Python; before 3.14, creating its pool, channel or
supervisor, or reading one of its borrowed process classes, raises an :class:`ImportError`
that says so.

Each capability adds its attribute here when it lands.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, NoReturn, TypeVar, overload

import attrs

from concurrency_kit._core.platforms import require_interpreters
from concurrency_kit.channels import InterpreterChannel, ProcessChannel, ThreadChannel
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
from concurrency_kit.supervision import (
    InterpreterSupervisor,
    ProcessSupervisor,
    ThreadSupervisor,
)
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

__all__ = ["CLUSTER", "INTERPRETER", "PROCESS", "THREAD", "InterpreterModel", "Model", "PoolModel"]

C = TypeVar("C")


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


class _ProcessRow(Generic[C]):
    """A row the interpreter model takes from the process model: that class, on Python 3.14+.

    A descriptor rather than a field, so that reading ``INTERPRETER.Lock`` before 3.14 raises
    the :class:`ImportError` that creating ``INTERPRETER.Pool`` does, instead of handing out a
    class that would work there without any interpreter to share it with.
    """

    __slots__ = ("_cls", "_name")

    def __init__(self, cls: C) -> None:
        self._cls = cls
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> C: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> C: ...
    def __get__(self, instance: object | None, owner: type | None = None) -> C:
        if instance is not None:
            require_interpreters(f"INTERPRETER.{self._name}")
        return self._cls


@attrs.frozen(repr=False)  # PoolModel's repr: INTERPRETER
class InterpreterModel(PoolModel):
    """The interpreter model (Python 3.14+): every row of a :class:`Model`.

    :data:`INTERPRETER` is the one instance. It is not a :class:`Model` instance, because
    its borrowed process classes must say "Python 3.14 is needed" when read on an older
    Python (a ``Model`` holds plain classes); code written for every model takes
    ``Model | InterpreterModel``.

    Attributes:
        name: ``"interpreter"``.
        Pool: :class:`InterpreterPool`.
        Channel: :class:`InterpreterChannel`, the process channel made for interpreters.
        Supervisor: :class:`InterpreterSupervisor`: each child in a fresh interpreter.
        Lock: :class:`ProcessLock`. The process primitives and containers serve interpreters
            unchanged: the interpreters of one process map the same shared memory. So do
            ``RLock`` (:class:`ProcessRLock`), ``Semaphore`` (:class:`ProcessSemaphore`),
            ``BoundedSemaphore`` (:class:`ProcessBoundedSemaphore`), ``Event``
            (:class:`ProcessEvent`), ``Condition`` (:class:`ProcessCondition`), ``Barrier``
            (:class:`ProcessBarrier`), ``RWLock`` (:class:`ProcessRWLock`), ``Guarded``
            (:class:`ProcessGuarded`), ``SharedDict`` (:class:`ProcessSharedDict`),
            ``SharedCounter`` (:class:`ProcessSharedCounter`), ``SharedValue``
            (:class:`ProcessSharedValue`) and ``SharedArray`` (:class:`ProcessSharedArray`).
            Before Python 3.14, reading any of them raises :class:`ImportError`.
    """

    Channel: type[InterpreterChannel[Any]]
    Supervisor: type[InterpreterSupervisor]

    Lock = _ProcessRow(ProcessLock)
    RLock = _ProcessRow(ProcessRLock)
    Semaphore = _ProcessRow(ProcessSemaphore)
    BoundedSemaphore = _ProcessRow(ProcessBoundedSemaphore)
    Event = _ProcessRow(ProcessEvent)
    Condition = _ProcessRow(ProcessCondition)
    Barrier = _ProcessRow(ProcessBarrier)
    RWLock = _ProcessRow(ProcessRWLock)
    Guarded: ClassVar[_ProcessRow[type[ProcessGuarded[Any]]]] = _ProcessRow(ProcessGuarded)
    SharedDict = _ProcessRow(ProcessSharedDict)
    SharedCounter = _ProcessRow(ProcessSharedCounter)
    SharedValue = _ProcessRow(ProcessSharedValue)
    SharedArray = _ProcessRow(ProcessSharedArray)


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

INTERPRETER = InterpreterModel(
    name="interpreter",
    Pool=InterpreterPool,
    Channel=InterpreterChannel,
    Supervisor=InterpreterSupervisor,
)
"""Subinterpreters (Python 3.14+): each worker has its own interpreter and GIL in this process.

Memory is isolated as between processes (calls, results and channel items are pickled), while
everything stays inside one process; a crash in an interpreter ends the whole process, as a
thread's would. Synchronization and shared state are the process classes
(``INTERPRETER.Lock is ProcessLock``), shared through their handles. Its supervisor runs each
child in a fresh interpreter, so a restarted child starts from clean module state. Before
Python 3.14, creating ``INTERPRETER.Pool``, ``INTERPRETER.Channel`` or
``INTERPRETER.Supervisor``, or reading ``INTERPRETER.Lock`` and the other process classes,
raises :class:`ImportError`.
"""

CLUSTER = PoolModel(name="cluster", Pool=ClusterPool)
"""A dask ``distributed`` cluster: a pool whose workers may run on other machines.

Needs the ``cluster`` extra. It offers only a pool: ``CLUSTER.Lock`` and the other
single-machine classes raise :class:`AttributeError`.
"""

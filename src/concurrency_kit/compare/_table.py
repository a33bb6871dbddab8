"""The seed table as data: ten aspects, a claim per model, and the classes that embody each.

The seed compares processes with threads; interpreters (Python 3.14+) are the third column. Each
row's interpreter claim also says which of the two it resembles (:data:`Placement`), which
``compare`` checks against the three measured figures.

Class names are strings (public names in :mod:`concurrency_kit`) so that this module imports
nothing heavy; a test checks that every name exists, is exported and is documented. An empty
tuple of classes means the row's capability has not landed yet; :attr:`Claim.implemented` says
so explicitly, and the renderers print "not yet implemented".
"""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = ["ASPECTS", "Aspect", "Claim", "Placement"]

Placement = Literal["process", "thread", "between"]
"""Where a row's interpreter claim puts interpreters: like processes, like threads, or
between the two."""


@attrs.frozen
class Claim:
    """What the table says about one model for one aspect.

    Attributes:
        text: the claim, in our words.
        classes: public names in :mod:`concurrency_kit` that embody it for this model.
    """

    text: str
    classes: tuple[str, ...] = ()

    @property
    def implemented(self) -> bool:
        """Whether any class embodies the claim yet."""
        return bool(self.classes)


@attrs.frozen
class Aspect:
    """One row of the table.

    Attributes:
        key: a stable identifier, such as ``"creation_time"``.
        title: the row's heading, such as ``"Creation Time"``.
        package: the folder of :mod:`concurrency_kit` that serves the row.
        process: the claim for processes.
        thread: the claim for threads.
        interpreter: the claim for interpreters (the third column, Python 3.14+).
        interpreter_like: where that claim puts interpreters on the line from the threads'
            figure to the processes': ``"process"`` (at the processes' end, within a margin, or
            beyond it), ``"thread"`` (likewise at the threads' end) or ``"between"`` (inside the
            line, clearly apart from both ends), as ``compare`` measures them.
    """

    key: str
    title: str
    package: str
    process: Claim
    thread: Claim
    interpreter: Claim
    interpreter_like: Placement


ASPECTS: tuple[Aspect, ...] = (
    Aspect(
        key="definition",
        title="Definition",
        package="pools",
        process=Claim(
            "A process runs a program on its own: its own interpreter, its own memory.",
            ("ProcessPool",),
        ),
        thread=Claim(
            "A thread is a lighter unit of execution that lives inside a process and shares "
            "that process's memory with its sibling threads.",
            ("ThreadPool",),
        ),
        interpreter=Claim(
            "An interpreter is a Python runtime of its own inside this process: its own "
            "modules, globals and GIL, run by one of the process's threads.",
            ("InterpreterPool",),
        ),
        interpreter_like="process",
    ),
    Aspect(
        key="memory_space",
        title="Memory Space",
        package="state",
        process=Claim(
            "Every process has a separate address space; nothing is shared by default.",
            ("ProcessSharedArray", "ProcessSharedValue"),
        ),
        thread=Claim(
            "All threads of a process see one address space.",
            ("ThreadSharedArray", "ThreadSharedValue"),
        ),
        interpreter=Claim(
            "Interpreters share the process's address space but no Python object: each has "
            "its own modules and globals, and nothing is shared by default.",
            ("ProcessSharedArray", "ProcessSharedValue"),
        ),
        interpreter_like="process",
    ),
    Aspect(
        key="resource_sharing",
        title="Resource Sharing",
        package="state",
        process=Claim(
            "Processes do not share resources unless they set it up explicitly "
            "(shared memory, inherited or passed file descriptors).",
            ("ProcessSharedCounter", "ProcessGuarded"),
        ),
        thread=Claim(
            "Threads share the process's code, data and open files.",
            ("ThreadSharedCounter", "ThreadGuarded"),
        ),
        interpreter=Claim(
            "Interpreters share the process's open file descriptors, not its Python objects: a "
            "file object is reopened, and shared state is set up explicitly in shared memory.",
            ("ProcessSharedCounter", "ProcessGuarded"),
        ),
        interpreter_like="process",
    ),
    Aspect(
        key="creation_time",
        title="Creation Time",
        package="pools",
        process=Claim(
            "Starting a process is comparatively slow: a new interpreter must start or be forked.",
            ("ProcessPool",),
        ),
        thread=Claim("Starting a thread is faster.", ("ThreadPool",)),
        interpreter=Claim(
            "Starting an interpreter takes milliseconds, as a process does: it imports its "
            "own modules, though no process is made.",
            ("InterpreterPool",),
        ),
        interpreter_like="process",
    ),
    Aspect(
        key="context_switching",
        title="Context Switching",
        package="channels",
        process=Claim(
            "Switching between processes costs more (address spaces change).",
            ("ProcessChannel",),
        ),
        thread=Claim("Switching between threads of one process costs less.", ("ThreadChannel",)),
        interpreter=Claim(
            "A hand-off between interpreters switches threads of one process, but each has a "
            "GIL of its own: it costs what a hand-off between processes costs.",
            ("InterpreterChannel",),
        ),
        interpreter_like="process",
    ),
    Aspect(
        key="communication",
        title="Communication",
        package="channels",
        process=Claim(
            "Processes talk through inter-process communication, which is more involved and "
            "slower: data is serialized and copied.",
            ("ProcessChannel",),
        ),
        thread=Claim(
            "Threads talk through shared objects, which is simpler and faster.",
            ("ThreadChannel",),
        ),
        interpreter=Claim(
            "Interpreters talk by copying, as processes do: data is serialized and copied "
            "(through shared memory), without leaving the process.",
            ("InterpreterChannel",),
        ),
        interpreter_like="process",
    ),
    Aspect(
        key="overhead",
        title="Overhead",
        package="pools",
        process=Claim(
            "Each process carries more overhead: its own memory and resources.",
            ("ProcessPool",),
        ),
        thread=Claim(
            "Each thread carries less overhead, since memory and resources are shared.",
            ("ThreadPool",),
        ),
        interpreter=Claim(
            "Each interpreter carries its own modules and objects (megabytes), though no "
            "process of its own.",
            ("InterpreterPool",),
        ),
        interpreter_like="process",
    ),
    Aspect(
        key="crash_impact",
        title="Crash Impact",
        package="supervision",
        process=Claim(
            "A process that crashes leaves the other processes running.",
            ("ProcessSupervisor", "ProcessPool", "WorkerCrashedError"),
        ),
        thread=Claim(
            "A thread that crashes the interpreter (a fault in native code) takes the whole "
            "process, and every other thread, with it.",
            ("ThreadSupervisor", "ThreadPool"),
        ),
        interpreter=Claim(
            "A fault in native code in an interpreter takes the whole process, every "
            "interpreter and thread, with it (a Python exception stays in its interpreter).",
            ("InterpreterSupervisor", "InterpreterPool"),
        ),
        interpreter_like="thread",
    ),
    Aspect(
        key="synchronization",
        title="Synchronization",
        package="sync",
        process=Claim(
            "Processes synchronize through IPC mechanisms (shared memory, the kernel).",
            (
                "ProcessLock",
                "ProcessRLock",
                "ProcessSemaphore",
                "ProcessBoundedSemaphore",
                "ProcessEvent",
                "ProcessCondition",
                "ProcessBarrier",
                "ProcessRWLock",
                "ProcessGuarded",
            ),
        ),
        thread=Claim(
            "Threads synchronize with simpler primitives such as mutexes and semaphores.",
            (
                "ThreadLock",
                "ThreadRLock",
                "ThreadSemaphore",
                "ThreadBoundedSemaphore",
                "ThreadEvent",
                "ThreadCondition",
                "ThreadBarrier",
                "ThreadRWLock",
                "ThreadGuarded",
            ),
        ),
        interpreter=Claim(
            "Interpreters share no Python object, so they synchronize as processes do, "
            "through primitives in shared memory.",
            ("ProcessLock", "ProcessSemaphore", "ProcessEvent", "ProcessBarrier"),
        ),
        interpreter_like="process",
    ),
    Aspect(
        key="use_cases",
        title="Use Cases",
        package="compare",
        process=Claim(
            "Processes suit work that needs isolation and separate memory, and CPU-bound "
            "Python code (each process has its own GIL).",
            ("ProcessPool",),
        ),
        thread=Claim(
            "Threads suit work that communicates often and shares resources, and I/O-bound code.",
            ("ThreadPool",),
        ),
        interpreter=Claim(
            "Interpreters suit CPU-bound pure-Python work (each has its own GIL) whose imports "
            "load in a subinterpreter (numpy does not yet) and that need not survive a crash.",
            ("InterpreterPool",),
        ),
        interpreter_like="process",
    ),
)

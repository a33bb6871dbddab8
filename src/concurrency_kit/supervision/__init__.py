"""Supervision — the Crash Impact row: OTP supervisors with the same API for both models.

``_spec.py`` holds the values (child specs, policies, events, :func:`current_child`),
``_restart.py`` the restart algorithm written once, ``_async.py`` its async face
(``wait_async``, ``aevents``), ``thread.py``, ``process.py`` and ``interpreter.py`` (Python
3.14+; it imports everywhere) the runners that start, stop and watch each model's children.
"""

from __future__ import annotations

from concurrency_kit.errors import SupervisorEventsLost, SupervisorGaveUp
from concurrency_kit.supervision._async import SupervisorEventStream
from concurrency_kit.supervision._spec import (
    ALL_SIGNIFICANT,
    ANY_SIGNIFICANT,
    BRUTAL_KILL,
    NEVER,
    ONE_FOR_ALL,
    ONE_FOR_ONE,
    PERMANENT,
    REST_FOR_ONE,
    TEMPORARY,
    TRANSIENT,
    AutoShutdown,
    Backoff,
    ChildContext,
    ChildCounts,
    ChildInfo,
    ChildSpec,
    Restart,
    Shutdown,
    Strategy,
    SupervisorEvent,
    SupervisorStatistics,
    current_child,
)
from concurrency_kit.supervision.interpreter import InterpreterSupervisor
from concurrency_kit.supervision.process import ProcessSupervisor
from concurrency_kit.supervision.thread import ThreadSupervisor

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
    "InterpreterSupervisor",
    "ProcessSupervisor",
    "Restart",
    "Shutdown",
    "Strategy",
    "SupervisorEvent",
    "SupervisorEventStream",
    "SupervisorEventsLost",
    "SupervisorGaveUp",
    "SupervisorStatistics",
    "ThreadSupervisor",
    "current_child",
]

"""Channels — the Communication and Context Switching rows: one channel API for both models.

``thread.py`` passes references through a deque; ``process.py`` passes pickled items through
a packet-mode pipe and a shared-memory store; ``interpreter.py`` is the process channel, made
for the interpreters of one process (Python 3.14+). ``_base.py`` holds what both share, and
``_select.py`` the :func:`select` (and :func:`aselect`) that waits on channels of either
model; ``_async.py`` the async face of both (``asend``, ``arecv``, ``async for``).
"""

from __future__ import annotations

from concurrency_kit.channels._base import DEFAULT_CAPACITY, ChannelStatistics
from concurrency_kit.channels._select import aselect, select
from concurrency_kit.channels.interpreter import InterpreterChannel
from concurrency_kit.channels.process import DEFAULT_SHARED_MEMORY_SIZE, ProcessChannel
from concurrency_kit.channels.thread import ThreadChannel

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_SHARED_MEMORY_SIZE",
    "ChannelStatistics",
    "InterpreterChannel",
    "ProcessChannel",
    "ThreadChannel",
    "aselect",
    "select",
]

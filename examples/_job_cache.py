"""Helper of ``24_interpreter_supervisor.py``: a module with module-level state.

A worker keeps a cache here, as real code keeps registries, caches and configuration in module
globals. A crash halfway through an update leaves it half-written: every later run in the same
interpreter sees that (a thread child's restart), a run in a fresh interpreter does not (an
interpreter child's restart).
"""

from __future__ import annotations

cache: dict[str, object] = {}

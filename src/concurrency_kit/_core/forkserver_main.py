"""Run the parent's main script once in the fork server, so that workers start with it loaded.

A ``forkserver`` worker is forked from a server process; before it runs anything of ours it
re-runs the parent's main script (as ``__mp_main__``), so that what the script defines can be
unpickled there. The server is meant to have run the script already (it preloads
``"__main__"``) and then every worker would skip it; but CPython (3.10 to 3.13 at least) looks
for a ``main_path`` key that its preparation data does not have, so the server never does, and
each new worker pays for the script's imports again (numpy, pandas, ...): seconds on a busy
machine, for every worker and every replacement.

This module is one of the server's preloads (``_core/startmethod.py``). The parent puts the
script's path and its ``sys.argv`` in :data:`ENVIRONMENT_KEY` while it starts the server; here
the server runs the script the way a worker would, flagged as a child that is still starting
(so that a script which starts processes at import time fails here as it would in a worker,
instead of starting more). The workers then find ``__main__`` already set up and skip it. If
the script fails here, nothing is left half-done: the workers run it themselves, as before,
and report what fails.

The first worker gains nothing (the server runs the script before it forks, instead of the
worker after): every later one does, a replacement after a crash, a timeout, a memory recycle
or ``max_tasks_per_worker`` above all.
"""

from __future__ import annotations

import json
import os
import sys

__all__ = ["ENVIRONMENT_KEY", "encode"]

ENVIRONMENT_KEY = "CONCURRENCY_KIT_FORKSERVER_MAIN"


def encode(main_path: str, argv: list[str]) -> str:
    """The value of :data:`ENVIRONMENT_KEY`: the script and the ``sys.argv`` it runs with."""
    return json.dumps([main_path, argv])


def _preload_main() -> None:
    try:
        path, argv = json.loads(os.environ.pop(ENVIRONMENT_KEY, ""))
    except ValueError:
        return
    if not isinstance(path, str) or not os.path.isfile(path):
        return
    from multiprocessing import process, spawn

    current = process.current_process()
    # 3.14's fork server sets the flag itself around every preload and deletes it afterwards;
    # older ones set it only around their own script run. Leave it as it was found.
    was_inheriting = "_inheriting" in vars(current)
    current._inheriting = True  # type: ignore[attr-defined]
    try:
        sys.argv = list(argv)  # a worker runs the script with the parent's arguments too
        spawn.import_main_path(path)
    except BaseException:  # the workers run it again, and report what fails
        pass
    finally:
        if not was_inheriting:
            vars(current).pop("_inheriting", None)


_preload_main()

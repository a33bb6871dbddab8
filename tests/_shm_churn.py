"""Another program using /dev/shm: creates and removes entries in a loop, for the leak check.

Usage::

    python tests/_shm_churn.py

It runs until its standard input reaches end-of-file or it gets SIGTERM (or SIGINT), then
removes what it still has and exits with status 0. Give it a pipe it can wait on: started with
stdin at end-of-file already (``< /dev/null``, or a background job of a non-interactive shell)
it stops at once. From a shell, for example::

    exec 3> >(python tests/_shm_churn.py)   # churns while fd 3 is open
    python -m pytest ...
    exec 3>&-                               # stops it

Once churning it prints ``churning <pid>`` on its standard output (one line, flushed).

What it makes, each kept for a few rounds, then removed, so that some of each kind exist at
any moment:

* entries named like other programs' (``psm_<hex>``, ``sem.churn-<hex>``, ``churn-<hex>``,
  and the old ``ck_<32 hex>`` format);
* entries named like this library's segments, ``ck_<pid>_<32 hex>``, with this process's pid:
  a live process outside the test session;
* now and then, ``ck_<pid>_<32 hex>`` made by a short-lived child, which exits at once: a
  creator that is gone, as a crashed worker of another test run leaves for its tracker.

Nothing is mapped or kept open: what another program leaves looks like what a leak looks like.
Used by ``tests/test_leakcheck.py`` (a suite runs clean while it churns) and beside the test
suite in CI.
"""

from __future__ import annotations

import collections
import os
import secrets
import select
import signal
import sys
from collections.abc import Callable

SHM_DIR = "/dev/shm"
KEEP = 8  # entries of each kind alive at once
ORPHAN_EVERY = 16  # rounds between two entries made by a child that exits
PAUSE = 0.002  # seconds between rounds: a pace, so that it churns without hogging a core


def _make(name: str) -> str:
    os.close(os.open(f"{SHM_DIR}/{name}", os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
    return name


def _made_by_a_child() -> str | None:
    """A ``ck_`` entry whose creator has exited by the time this returns."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: make the entry, report its name, exit without cleanup
        code = 1
        try:
            os.close(r)
            os.write(w, _make(f"ck_{os.getpid()}_{secrets.token_hex(16)}").encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    try:
        name = os.read(r, 100).decode()
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    return name or None


def _remove(name: str) -> None:
    try:
        os.unlink(f"{SHM_DIR}/{name}")
    except FileNotFoundError:
        pass


def main() -> int:
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    kinds: list[Callable[[], str]] = [
        lambda: f"psm_{secrets.token_hex(4)}",
        lambda: f"sem.churn-{secrets.token_hex(6)}",
        lambda: f"churn-{secrets.token_hex(8)}",
        lambda: f"ck_{secrets.token_hex(16)}",
        lambda: f"ck_{os.getpid()}_{secrets.token_hex(16)}",
    ]
    alive: collections.deque[str] = collections.deque()
    orphans: collections.deque[str] = collections.deque()
    rounds = 0
    try:
        while not stop:
            for kind in kinds:
                alive.append(_make(kind()))
            while len(alive) > KEEP * len(kinds):
                _remove(alive.popleft())
            if rounds % ORPHAN_EVERY == 0:
                name = _made_by_a_child()
                if name:
                    orphans.append(name)
                while len(orphans) > 2:
                    _remove(orphans.popleft())
            if rounds == 0:
                print(f"churning {os.getpid()}", flush=True)
            rounds += 1
            try:
                readable, _, _ = select.select([sys.stdin], [], [], PAUSE)
            except InterruptedError:  # pragma: no cover - PEP 475 retries; a signal sets stop
                continue
            if readable and not os.read(sys.stdin.fileno(), 4096):
                break  # end-of-file: the caller is done
    finally:
        for name in (*alive, *orphans):
            _remove(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())

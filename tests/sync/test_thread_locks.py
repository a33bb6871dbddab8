"""Thread locks on the compiled core: a robust mutex in this process's memory.

What changed with the core (issue 16) and is not in the contract suite, which holds both
models to ``threading``'s behaviour: a thread that *ends* holding a lock does not leave it
locked for ever (the next acquirer takes it over, counts it and warns, as a process lock does
for a dead process), and a held lock whose last reference goes away keeps its memory, because
the holder's robust list (walked by the kernel when the holder exits) points into it.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading

import pytest

from concurrency_kit import LockOwnerDiedWarning, ThreadLock, ThreadRLock

DEADLOCK = 60.0
"""Seconds after which a wait that should have ended is a deadlock (a failure, not a pass)."""

LOCKS = [ThreadLock, ThreadRLock]


def end_holding(lock: ThreadLock | ThreadRLock, depth: int) -> None:
    """Acquire ``lock`` ``depth`` times in a new thread that then returns."""

    def hold() -> None:
        for _ in range(depth):
            assert lock.acquire(True, DEADLOCK)
        assert lock.statistics().recursion == depth

    thread = threading.Thread(target=hold)
    thread.start()
    thread.join(DEADLOCK)
    assert not thread.is_alive()


@pytest.mark.parametrize("cls", LOCKS)
def test_a_thread_that_ends_holding_a_lock_is_taken_over(cls: type[ThreadLock]) -> None:
    lock = cls()
    depth = 3 if cls is ThreadRLock else 1
    end_holding(lock, depth)
    # (The thread has returned, but the kernel marks the mutex only once the OS thread has
    # exited, which may be a moment after join() returns: nothing is asserted in between.)
    with pytest.warns(LockOwnerDiedWarning, match="a thread of this process") as record:
        assert lock.acquire(True, DEADLOCK)
    assert record[0].filename == __file__  # points at the caller of acquire
    stats = lock.statistics()
    assert stats.owner_thread == threading.get_native_id()
    assert stats.recursion == 1  # the new holder holds it once, whatever the dead one held
    assert stats.owner_deaths_recovered == 1
    lock.release()
    assert not lock.locked()
    with lock:  # recovered for good: no second warning (warnings are errors here)
        pass


@pytest.mark.parametrize("cls", LOCKS)
def test_a_takeover_with_warnings_as_errors_leaves_the_lock_free(cls: type[ThreadLock]) -> None:
    lock = cls()
    end_holding(lock, 1)
    with pytest.raises(LockOwnerDiedWarning):
        lock.acquire()  # the error reaches the caller, who never got the lock ...
    assert not lock.locked()  # ... so it is not left held
    assert lock.statistics().owner_deaths_recovered == 1
    assert lock.acquire(False)
    lock.release()


@pytest.mark.parametrize("cls", LOCKS)
def test_a_held_lock_outlives_its_last_reference(cls: type[ThreadLock]) -> None:
    # The holder thread ends after the lock object is gone: the kernel then writes into the
    # mutex (its robust list). The memory must still be there; in a child interpreter so that
    # a fault would show as its exit status, not take the test run down.
    code = f"""
        import gc, threading
        from concurrency_kit import {cls.__name__}

        def hold():
            lock = {cls.__name__}()
            lock.acquire()
            del lock
            gc.collect()
            for _ in range(1000):  # other robust mutexes come and go meanwhile
                other = {cls.__name__}()
                with other:
                    pass
        for _ in range(20):
            t = threading.Thread(target=hold)
            t.start()
            t.join()
        gc.collect()
        print("ok")
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=DEADLOCK,
        check=False,
    )
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr


def test_release_by_another_thread_is_refused() -> None:
    lock = ThreadLock()
    lock.acquire()
    errors: list[BaseException] = []

    def release() -> None:
        try:
            lock.release()
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=release)
    thread.start()
    thread.join(DEADLOCK)
    assert [str(e) for e in errors] == ["cannot release a lock held by another thread or process"]
    assert lock.locked()
    lock.release()
    gc.collect()

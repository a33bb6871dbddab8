"""InterpreterPool beyond the pool contract: what the interpreter model is, and what it cannot do.

The shared behaviour (submit, map, timeouts, cancels, shutdown, statistics) is in
``tests/contract/test_pools.py``, which runs over ``INTERPRETER`` too. Here: the model on Python
before 3.14 (a clear error), isolation of each worker's modules, the parent's ``sys.path`` in
the workers, functions and classes defined in ``__main__``, modules that refuse to load in a
subinterpreter, a task that outlives its timeout (its interpreter is abandoned, then closed), a
broken initializer, and a crash in a task, which ends the whole process.

Tasks that block wait at FIFO gates (``contract/_gates.py``), which work in any interpreter; a
time limit only turns a deadlock into a failure.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import concurrency_kit as ck
from contract._gates import Gate, pass_two, wait_at

needs_314 = pytest.mark.skipif(
    sys.version_info < (3, 14), reason="subinterpreters (concurrent.interpreters) need 3.14+"
)

DEADLOCK = 60.0
"""Seconds after which a wait that should have ended is a deadlock (a failure, not a pass)."""

_seen: list[int] = []


def remember(value: int) -> list[int]:
    """Append to this module's list where the task runs, and return the list there."""
    _seen.append(value)
    return list(_seen)


def interpreter_id() -> int:
    from concurrent import interpreters

    return int(interpreters.get_current().id)


def is_enabled() -> bool:
    """Imports faulthandler when it runs: a module that refuses to load in a subinterpreter."""
    import faulthandler

    return faulthandler.is_enabled()


def fail_to_start() -> None:
    raise OSError("no database here")


def add(a: int, b: int = 0) -> int:
    return a + b


def loop_until_interrupted(started: str, stopped: str) -> None:
    """Say so at ``started``, then loop in Python for ever; on the way out (the interrupt),
    say so at ``stopped``, from the ``finally`` block the interrupt runs. (A short timeout may
    expire while the task waits for the test at ``started``: the interrupt then lands as that
    ``open`` returns, inside the ``try`` all the same.)"""
    try:
        with open(started, "wb") as fifo:
            fifo.write(b"go")
        while True:
            pass
    finally:
        with open(stopped, "wb") as fifo:
            fifo.write(b"go")


def signal_then_block(started_fd: int, gate_fd: int) -> str:
    """Write a byte to ``started_fd``, then block in C reading ``gate_fd``."""
    os.write(started_fd, b"s")
    os.read(gate_fd, 1)
    return "late"


def log_twice(message: str) -> int:
    """Log at INFO and at DEBUG on one logger, where the task runs."""
    logger = logging.getLogger("ck.tests.interpreter")
    logger.info("from the worker: %s", message)
    logger.debug("not wanted")
    return 1


def sleep_in_a_loop(stopped: str) -> None:
    """Loop for ever, asleep in ``time.sleep`` nearly all the time; say so at ``stopped`` on
    the way out."""
    try:
        while True:
            time.sleep(0.005)
    finally:
        with open(stopped, "wb") as fifo:
            fifo.write(b"go")


def loop_forever() -> None:
    while True:
        pass


def wait_for_task(path: str) -> None:
    """Wait at the gate ``path`` until a task writes to it; fail (not hang) on a deadlock."""
    waiter = threading.Thread(target=wait_at, args=(path,), daemon=True)
    waiter.start()
    waiter.join(DEADLOCK)
    if waiter.is_alive():
        with open(path, "wb") as fifo:  # let the waiter go
            fifo.write(b"")
        pytest.fail(f"no task reached {path} within {DEADLOCK} s")


# -- every Python ------------------------------------------------------------------------------


def test_the_model_has_this_pool() -> None:
    # The model's other rows are tested with their rows (the contract suites).
    assert ck.INTERPRETER.name == "interpreter"
    assert repr(ck.INTERPRETER) == "INTERPRETER"
    assert ck.INTERPRETER.Pool is ck.InterpreterPool
    assert isinstance(ck.INTERPRETER, ck.PoolModel)
    with pytest.raises(AttributeError, match="has no attribute 'Nonsense'"):
        ck.INTERPRETER.Nonsense  # noqa: B018


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="the error of Pythons before 3.14")
def test_before_python_3_14_the_pool_says_what_it_needs() -> None:
    version = ".".join(map(str, sys.version_info[:3]))
    with pytest.raises(ImportError, match=rf"needs Python 3\.14 .*this is Python {version}"):
        ck.INTERPRETER.Pool(2)
    with pytest.raises(ImportError, match="PROCESS or THREAD"):
        ck.InterpreterPool()


# -- Python 3.14+ --------------------------------------------------------------------------------


@needs_314
def test_each_worker_is_an_interpreter_with_its_own_modules() -> None:
    with ck.InterpreterPool(1) as pool:
        assert pool.submit(interpreter_id).result(timeout=DEADLOCK) != interpreter_id()
        assert pool.submit(remember, 1).result(timeout=DEADLOCK) == [1]
        assert pool.submit(remember, 2).result(timeout=DEADLOCK) == [1, 2]
        assert pool.statistics().model == "interpreter"
    assert _seen == []  # the worker changed its own copy of this module, not ours


@needs_314
def test_workers_see_the_callers_sys_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A new interpreter computes its own sys.path; the pool gives it the caller's, so a module
    # found through a directory added at run time pickles by reference and imports there.
    (tmp_path / "added_at_run_time.py").write_text("def triple(x):\n    return 3 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import added_at_run_time

    try:
        with ck.InterpreterPool(1) as pool:
            assert pool.submit(added_at_run_time.triple, 5).result(timeout=DEADLOCK) == 15
    finally:
        sys.modules.pop("added_at_run_time", None)


@needs_314
def test_a_module_that_refuses_subinterpreters_fails_the_call_clearly() -> None:
    with ck.InterpreterPool(1) as pool:
        # Imported by the task as it runs.
        with pytest.raises(ImportError, match="faulthandler does not support loading") as info:
            pool.submit(is_enabled).result(timeout=DEADLOCK)
        assert "PROCESS or THREAD" in str(info.value)
        # Imported to unpickle the call itself (the function is faulthandler's).
        import faulthandler

        with pytest.raises(ImportError, match="faulthandler does not support loading"):
            pool.submit(faulthandler.is_enabled).result(timeout=DEADLOCK)
        assert pool.submit(add, 1, 2).result(timeout=DEADLOCK) == 3  # the pool carries on
        stats = pool.statistics()
    assert (stats.tasks_failed, stats.tasks_completed, stats.workers_replaced) == (2, 1, 0)


@needs_314
def test_a_task_past_its_timeout_abandons_its_interpreter() -> None:
    # The call blocks in C (os.read) past its timeout: its future fails at the deadline and a
    # new interpreter takes its place; the interrupt lands only when the read returns (or,
    # if the timeout passed before the call began, the call never begins). Either way the old
    # interpreter is closed once the gate opens, and its thread goes.
    started_r, started_w = os.pipe()
    gate_r, gate_w = os.pipe()
    try:
        with ck.InterpreterPool(1, name="stuck") as pool:
            assert pool.submit(add, 1).result(timeout=DEADLOCK) == 1  # this module imported
            stuck = pool.schedule(signal_then_block, (started_w, gate_r), timeout=0.1)
            try:
                with pytest.raises(ck.TaskTimeoutError, match="abandoned"):
                    stuck.result(timeout=DEADLOCK)
                stats = pool.statistics()
                assert (stats.tasks_timed_out, stats.workers_replaced) == (1, 1)
                # A new interpreter took its place and runs tasks while the old one is stuck.
                assert pool.submit(add, 2, 2).result(timeout=DEADLOCK) == 4
            finally:
                os.write(gate_w, b"g")  # the stuck call returns; its interpreter is closed
            for thread in [t for t in threading.enumerate() if t.name == "stuck-1"]:
                thread.join(DEADLOCK)
                assert not thread.is_alive()
            assert pool.statistics().workers_abandoned == 0
    finally:
        for fd in (started_r, started_w, gate_r, gate_w):
            os.close(fd)
    assert stuck.exception(timeout=0).__class__ is ck.TaskTimeoutError


@needs_314
def test_a_task_looping_past_its_timeout_is_interrupted(tmp_path: Path) -> None:
    # The pool raises an exception in the abandoned call (a thread of the worker's interpreter
    # does: see _interpreter_worker._Guard): it unwinds, its finally block runs, and the
    # interpreter is closed, where a call stuck for ever used to keep it and its thread.
    started, stopped = Gate(tmp_path, "started"), Gate(tmp_path, "stopped")
    with ck.InterpreterPool(1, name="looping") as pool:
        assert pool.submit(add, 1).result(timeout=DEADLOCK) == 1  # this module imported there
        looping = pool.schedule(loop_until_interrupted, (started.path, stopped.path), timeout=0.05)
        wait_for_task(started.path)
        error = looping.exception(timeout=DEADLOCK)
        assert isinstance(error, ck.TaskTimeoutError)
        assert "interrupted" in str(error)
        wait_for_task(stopped.path)  # its finally block ran: the loop was interrupted
        abandoned = [t for t in threading.enumerate() if t.name == "looping-1"]
        for thread in abandoned:  # its interpreter is closed, then its thread ends
            thread.join(DEADLOCK)
            assert not thread.is_alive()
        stats = pool.statistics()
        assert (stats.tasks_timed_out, stats.workers_abandoned, stats.workers_replaced) == (1, 0, 1)
        assert pool.submit(add, 2, 3).result(timeout=DEADLOCK) == 5  # the new interpreter


@needs_314
@pytest.mark.parametrize("timeout", [1e-9, 1e-6, 0.001])
def test_an_interrupt_before_the_call_begins_is_kept(timeout: float) -> None:
    # A timeout this short often expires before the worker has taken its task: the interrupt
    # waits for the call, which then never begins (or ends at once). Either way the loop ends:
    # the interpreter is closed and its thread goes.
    with ck.InterpreterPool(1, name="short") as pool:
        looping = pool.schedule(loop_forever, timeout=timeout)
        assert isinstance(looping.exception(timeout=DEADLOCK), ck.TaskTimeoutError)
        for thread in [t for t in threading.enumerate() if t.name == "short-1"]:
            thread.join(DEADLOCK)
            assert not thread.is_alive()
        assert pool.statistics().workers_abandoned == 0
        assert pool.submit(add, 1, 1).result(timeout=DEADLOCK) == 2


@needs_314
def test_a_task_that_mostly_sleeps_is_interrupted_too(tmp_path: Path) -> None:
    # The guard waits for the call to run Python code (an interrupt raised in a blocking C
    # call lands as it returns, before the task uses what it waited for), but not for ever:
    # a call still asleep after INTERRUPT_GRACE is interrupted anyway.
    stopped = Gate(tmp_path, "stopped")
    with ck.InterpreterPool(1, name="sleepy") as pool:
        assert pool.submit(add, 1).result(timeout=DEADLOCK) == 1  # this module imported there
        sleepy = pool.schedule(sleep_in_a_loop, (stopped.path,), timeout=0.05)
        assert isinstance(sleepy.exception(timeout=DEADLOCK), ck.TaskTimeoutError)
        wait_for_task(stopped.path)  # its finally block ran
        for thread in [t for t in threading.enumerate() if t.name == "sleepy-1"]:
            thread.join(DEADLOCK)
            assert not thread.is_alive()


@needs_314
def test_a_running_task_cannot_be_cancelled(tmp_path: Path) -> None:
    # As in the standard library (and the thread pool): cancel() of a running task is False,
    # and the task runs to its end. Only a timeout interrupts a call.
    started, gate = Gate(tmp_path, "started"), Gate(tmp_path, "gate")
    with ck.InterpreterPool(1) as pool:
        running = pool.submit(pass_two, started.path, gate.path, "done")
        started.release()
        assert not running.cancel()
        gate.release()
        assert running.result(timeout=DEADLOCK) == "done"


@needs_314
def test_worker_logs_reach_this_interpreters_loggers(caplog: pytest.LogCaptureFixture) -> None:
    # As ProcessPool's forward_logs: a worker interpreter's records are handled by the logger
    # of the same name here, with its level (DEBUG is dropped) and the worker's name; they
    # come before the task's answer.
    with (
        caplog.at_level(logging.INFO, logger="ck.tests.interpreter"),
        ck.InterpreterPool(1, name="logging") as pool,
    ):
        assert pool.submit(log_twice, "hello").result(timeout=DEADLOCK) == 1
        records = [r for r in caplog.records if r.name == "ck.tests.interpreter"]
        assert [r.getMessage() for r in records] == ["from the worker: hello"]
        assert records[0].worker == "logging-1"  # type: ignore[attr-defined]
        assert records[0].processName == "logging-1"


@needs_314
def test_worker_logs_stay_in_the_worker_when_not_forwarded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        caplog.at_level(logging.INFO, logger="ck.tests.interpreter"),
        ck.InterpreterPool(1, forward_logs=False) as pool,
    ):
        assert pool.submit(log_twice, "hello").result(timeout=DEADLOCK) == 1
    assert [r for r in caplog.records if r.name == "ck.tests.interpreter"] == []


@needs_314
def test_a_broken_initializer_breaks_the_pool() -> None:
    with ck.InterpreterPool(2, initializer=fail_to_start) as pool:
        future = pool.submit(add, 1)
        with pytest.raises(ck.BrokenPoolError, match="initializer raised OSError") as info:
            future.result(timeout=DEADLOCK)
        assert isinstance(info.value.__cause__, OSError)
        with pytest.raises(ck.BrokenPoolError):
            pool.submit(add, 1)


@needs_314
def test_worker_state_is_per_interpreter() -> None:
    with ck.InterpreterPool(1, initializer=dict, initargs=({"name": "db"},)) as pool:
        assert pool.submit(ck.worker_state).result(timeout=DEADLOCK) == {"name": "db"}


_MAIN_SCRIPT = """
import concurrency_kit as ck

class Point:
    def __init__(self, x):
        self.x = x

def moved(point):
    return Point(point.x + 1)

if __name__ == "__main__":
    with ck.InterpreterPool(1) as pool:
        result = pool.submit(moved, Point(1)).result(timeout=60)
        print(type(result) is Point, result.x)
"""


@needs_314
def test_functions_and_classes_defined_in_main_work(tmp_path: Path) -> None:
    # cloudpickle sends them by value, and brings the class back as the caller's own class
    # (InterpreterPoolExecutor pickles by reference, so __main__'s names are not found there).
    script = tmp_path / "main_script.py"
    script.write_text(_MAIN_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=DEADLOCK,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "2"]


_CRASH_SCRIPT = """
import ctypes
import concurrency_kit as ck

def crash():
    ctypes.string_at(0)  # reads address 0: SIGSEGV

if __name__ == "__main__":
    with ck.InterpreterPool(1) as pool:
        print("submitting", flush=True)
        pool.submit(crash).result(timeout=60)
        print("survived", flush=True)
"""


@needs_314
def test_a_crash_in_a_task_ends_the_whole_process(tmp_path: Path) -> None:
    # What the docs say plainly: nothing isolates an interpreter from the process it lives in.
    script = tmp_path / "crash_script.py"
    script.write_text(textwrap.dedent(_CRASH_SCRIPT))
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=DEADLOCK,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
    )
    assert done.stdout.split("\n")[0] == "submitting"
    assert "survived" not in done.stdout
    assert done.returncode == -signal.SIGSEGV


_STUCK_AT_EXIT_SCRIPT = """
import time
import concurrency_kit as ck

if __name__ == "__main__":
    with ck.InterpreterPool(1) as pool:
        stuck = pool.schedule(time.sleep, (3600,), timeout=0.1)
        print(type(stuck.exception(timeout=60)).__name__, flush=True)
    print("leaving", flush=True)
"""


@needs_314
def test_an_interpreter_stuck_in_a_task_does_not_hold_the_exit(tmp_path: Path) -> None:
    # Its task cannot be stopped, but the program's exit does not wait for it.
    script = tmp_path / "stuck_script.py"
    script.write_text(_STUCK_AT_EXIT_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=DEADLOCK,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["TaskTimeoutError", "leaving"]

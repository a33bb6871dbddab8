"""Fault tests for ProcessPool: real crashes, timeouts, cancels, pickling failures, broken
initializers, worker recycling, parent death and Ctrl-C.

Synchronization: workers report to the test and wait for it through named FIFOs (:class:`Fifo`),
and the test waits for a process to exit with a pidfd; nothing here sleeps to let something
happen. The time limits below only turn a deadlock into a failure with a message.

A failing test must not hang on its blocked workers: :func:`process_pool` is
``with ProcessPool(...)`` that, when the body raises, stops the pool the way Ctrl-C does (kill
the workers) instead of waiting for tasks that will never finish.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import os
import pickle
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import BrokenExecutor, CancelledError
from pathlib import Path
from typing import Any

import _fault_tasks as tasks
import pytest

from _children import descendants, wait_until
from concurrency_kit import (
    BrokenPoolError,
    ProcessPool,
    RemoteTraceback,
    SerializationError,
    TaskTimeoutError,
    ThreadPool,
    WorkerCrashedError,
)

FAST_METHODS = ["forkserver", "fork"]
"""Start methods most tests run with; ``spawn`` (slowest to start) joins only the key tests."""
ALL_METHODS = [*FAST_METHODS, "spawn"]

DEADLOCK = 20.0
"""Seconds after which a wait that should have ended is a deadlock (a failure, not a pass)."""
EXIT_DEADLINE = 5.0
"""Deadlock catch for processes that must exit; the design's target is one second."""


# -- helpers ----------------------------------------------------------------------------------


class Fifo:
    """A named FIFO the test holds open for reading *and* writing.

    Holding both ends means a worker's ``open`` never blocks. Workers write lines to it
    (:func:`_fault_tasks.report`), read by :meth:`read_line`; or wait at it
    (:func:`_fault_tasks.wait_gate`) until :meth:`release` writes a byte — which may come
    before or after the worker arrives, like an event.
    """

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = str(path)
        self._fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self._buffer = b""

    def release(self, count: int = 1) -> None:
        os.write(self._fd, b"!" * count)

    def read_line(
        self, timeout: float = DEADLOCK, child: subprocess.Popen[bytes] | None = None
    ) -> str:
        """The next line a worker wrote; fails after ``timeout`` or when ``child`` exits."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no report on {self.path} within {timeout} s (deadlock?)")
            # With a child program to watch, wake up now and then to see whether it died.
            wait = remaining if child is None else min(remaining, 0.25)
            ready, _, _ = select.select([self._fd], [], [], wait)
            if ready:
                self._buffer += os.read(self._fd, 4096)
            elif child is not None and child.poll() is not None:
                raise AssertionError(f"the child program exited early ({child.returncode})")
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def read_pid(self, child: subprocess.Popen[bytes] | None = None) -> int:
        return int(self.read_line(child=child))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Callable[[str], Fifo]]:
    """Make FIFOs in ``tmp_path``; all are closed when the test ends."""
    made: list[Fifo] = []

    def make(name: str) -> Fifo:
        made.append(Fifo(tmp_path / name))
        return made[-1]

    yield make
    for f in made:
        f.close()


@contextlib.contextmanager
def process_pool(*args: Any, **kwargs: Any) -> Iterator[ProcessPool]:
    """``with ProcessPool(*args, **kwargs)``, but a failing body kills the workers at once."""
    with ProcessPool(*args, **kwargs) as pool:
        try:
            yield pool
        except BaseException as exc:
            # The Ctrl-C path of __exit__: cancel what is pending, kill the workers.
            pool.__exit__(KeyboardInterrupt, KeyboardInterrupt(), None)
            raise exc


def open_pidfds(pids: list[int]) -> dict[int, int]:
    """A pidfd per live process of ``pids`` (one that is already gone is left out)."""
    fds = {}
    for pid in pids:
        try:
            fds[pid] = os.pidfd_open(pid)
        except ProcessLookupError:
            pass
    return fds


def wait_exited(pidfds: dict[int, int], timeout: float) -> tuple[set[int], float]:
    """Wait until every process of ``pidfds`` has exited, or ``timeout``.

    Returns:
        The pids still alive at the deadline, and the seconds waited.
    """
    start = time.monotonic()
    alive = dict(pidfds)
    while alive:
        remaining = start + timeout - time.monotonic()
        if remaining <= 0:
            break
        ready, _, _ = select.select(list(alive.values()), [], [], remaining)
        for pid in [pid for pid, fd in alive.items() if fd in ready]:
            del alive[pid]
    return set(alive), time.monotonic() - start


def assert_exits(pids: list[int], timeout: float = EXIT_DEADLINE) -> float:
    """Assert every process of ``pids`` exits within ``timeout``; the seconds it took."""
    pidfds = open_pidfds(pids)
    try:
        alive, waited = wait_exited(pidfds, timeout)
    finally:
        for fd in pidfds.values():
            os.close(fd)
    assert not alive, f"processes {sorted(alive)} still alive {timeout} s later"
    return waited


# -- a worker that dies ----------------------------------------------------------------------

CRASHES = {
    # kind: (exitcode, signal) the error must report
    "exit3": (3, None),
    "sigkill": (-signal.SIGKILL, signal.SIGKILL),
    "sigsegv-ctypes": (-signal.SIGSEGV, signal.SIGSEGV),
    "sigsegv-kill": (-signal.SIGSEGV, signal.SIGSEGV),
    "killed-from-outside": (-signal.SIGKILL, signal.SIGKILL),  # what the OOM killer does
}


@pytest.mark.parametrize(
    ("start_method", "kind", "timed"),
    [(method, kind, False) for method in FAST_METHODS for kind in CRASHES]
    + [("forkserver", "exit3", True), ("forkserver", "killed-from-outside", True)]
    + [("spawn", "exit3", False), ("spawn", "sigsegv-ctypes", False)],
)
def test_crash_fails_only_the_task_it_was_running(
    start_method: str, kind: str, timed: bool, fifo: Callable[[str], Fifo]
) -> None:
    # "timed": the victim was scheduled with a (generous) timeout, which the pool tracks
    # differently; a crash must still be reported as a crash, not as a timeout.
    reports, bystander_gate, victim_gate = fifo("reports"), fifo("bystander"), fifo("victim")
    timeout = DEADLOCK if timed else None
    with process_pool(2, start_method=start_method) as pool:
        bystander = pool.submit(tasks.hold, reports.path, bystander_gate.path, "bystander")
        bystander_pid = reports.read_pid()
        if kind == "killed-from-outside":
            victim = pool.schedule(tasks.block_forever, (reports.path,), timeout=timeout)
        else:
            args = (kind, reports.path, victim_gate.path)
            victim = pool.schedule(tasks.crash, args, timeout=timeout)
        victim_pid = reports.read_pid()  # it runs beside the bystander, on the other worker
        assert victim_pid != bystander_pid
        queued = [pool.submit(tasks.square, i) for i in range(8)]

        if kind == "killed-from-outside":
            os.kill(victim_pid, signal.SIGKILL)
        else:
            victim_gate.release()
        with pytest.raises(WorkerCrashedError) as info:
            victim.result(timeout=DEADLOCK)

        exitcode, signum = CRASHES[kind]
        error = info.value
        assert (error.exitcode, error.signal, error.pid) == (exitcode, signum, victim_pid)
        assert str(victim_pid) in str(error)
        assert not bystander.done()  # still running, untouched by its neighbour's death
        bystander_gate.release()
        assert bystander.result(timeout=DEADLOCK) == "bystander"
        assert [f.result(timeout=DEADLOCK) for f in queued] == [i * i for i in range(8)]
        assert pool.submit(tasks.getpid).result(timeout=DEADLOCK) != victim_pid
        # The replacement may still be starting: the tasks could all run on the bystander.
        wait_until(lambda: pool.statistics().workers_replaced == 1, "the dead worker replaced")
        stats = pool.statistics()
        assert stats.tasks_crashed == 1
        assert stats.workers_replaced == 1
        assert stats.tasks_completed == 8 + 2
        assert (stats.tasks_failed, stats.tasks_timed_out) == (0, 0)


@pytest.mark.parametrize("start_method", FAST_METHODS)
@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_tasks_sent_to_a_crashing_worker_are_not_lost(
    start_method: str, warm: bool, tmp_path: Path
) -> None:
    # One worker, so every task goes through the worker that crashes. "warm": the pool has
    # seen many short tasks first, so it sends them to the worker in large batches. Every task
    # but the bad one must succeed, and run exactly once (the log counts the runs).
    log = tmp_path / "runs.log"
    log.touch()
    count, bad = 120, 57
    with process_pool(1, start_method=start_method) as pool:
        if warm:
            warmup = [pool.submit(tasks.square, i) for i in range(300)]
            assert [f.result(timeout=DEADLOCK) for f in warmup] == [i * i for i in range(300)]
        futures = [pool.submit(tasks.crash_on_logged, i, bad, str(log)) for i in range(count)]
        outcomes: list[object] = []
        for future in futures:
            try:
                outcomes.append(future.result(timeout=DEADLOCK))
            except WorkerCrashedError as exc:
                outcomes.append(exc)
        stats = pool.statistics()
    crashed = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, Exception)]
    assert crashed == [bad]
    assert outcomes[:bad] + outcomes[bad + 1 :] == [i * i for i in range(count) if i != bad]
    runs = collections.Counter(int(line) for line in log.read_text().split())
    assert sorted(runs) == [i for i in range(count) if i != bad]
    assert max(runs.values()) == 1, "a crash made the pool run finished tasks again"
    assert (stats.tasks_crashed, stats.workers_replaced) == (1, 1)


def test_crashing_tasks_in_a_row_do_not_break_the_pool() -> None:
    # Every replacement worker dies on its first task: that is a task's fault, not a worker
    # that cannot start, so the pool must not declare itself broken.
    with process_pool(1) as pool:
        crashing = [pool.submit(tasks.crash_on, 1, 1) for _ in range(5)]
        after = pool.submit(tasks.square, 3)
        for future in crashing:
            with pytest.raises(WorkerCrashedError):
                future.result(timeout=DEADLOCK)
        assert after.result(timeout=DEADLOCK) == 9
        stats = pool.statistics()
        assert (stats.tasks_crashed, stats.workers_replaced) == (5, 5)


@pytest.mark.parametrize("chunksize", [1, 4])
def test_crash_in_map_raises_where_iteration_reaches_its_chunk(chunksize: int) -> None:
    # As in Executor.map, the error is raised where iteration reaches the failed item (here
    # the first item of the chunk whose worker died) and the map ends; the pool carries on.
    count, bad = 40, 13
    first_of_chunk = bad - bad % chunksize
    with process_pool(2) as pool:
        results = pool.map(tasks.crash_on, range(count), [bad] * count, chunksize=chunksize)
        delivered = [next(results) for _ in range(first_of_chunk)]
        with pytest.raises(WorkerCrashedError):
            next(results)
        assert delivered == [i * i for i in range(first_of_chunk)]
        assert next(results, "ended") == "ended"
        assert pool.submit(tasks.square, 3).result(timeout=DEADLOCK) == 9
        assert pool.statistics().tasks_crashed == 1


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_tasks_do_not_wait_behind_a_long_task_while_a_worker_is_idle(
    warm: bool, fifo: Callable[[str], Fifo]
) -> None:
    # Not a crash, but the same promise seen from the other side: a worker stuck in a long
    # task must not hold up short tasks that the other, idle worker can run. ("warm": the pool
    # has measured its tasks as short, which makes it send them to workers in batches.)
    reports, gates = fifo("reports"), [fifo(f"gate-{i}") for i in range(3)]
    with process_pool(2) as pool:
        starters = [pool.submit(tasks.hold, reports.path, gates[i].path, i) for i in range(2)]
        assert reports.read_pid() != reports.read_pid()  # two workers, both up
        for gate in gates[:2]:
            gate.release()
        assert [f.result(timeout=DEADLOCK) for f in starters] == [0, 1]
        if warm:
            warmup = [pool.submit(tasks.square, i) for i in range(300)]
            assert [f.result(timeout=DEADLOCK) for f in warmup] == [i * i for i in range(300)]
        long = pool.submit(tasks.hold, reports.path, gates[2].path, "long")
        reports.read_pid()
        short = [pool.submit(tasks.square, i) for i in range(20)]
        assert [f.result(timeout=DEADLOCK) for f in short] == [i * i for i in range(20)]
        assert not long.done()
        gates[2].release()
        assert long.result(timeout=DEADLOCK) == "long"


# -- per-task timeouts ------------------------------------------------------------------------


@pytest.mark.parametrize("start_method", ALL_METHODS)
def test_timeout_kills_and_replaces_the_worker(
    start_method: str, fifo: Callable[[str], Fifo]
) -> None:
    reports = fifo("reports")
    with process_pool(1, start_method=start_method) as pool:
        submitted = time.monotonic()
        late = pool.schedule(tasks.block_forever, (reports.path,), timeout=0.5)
        queued = [pool.submit(tasks.square, i) for i in range(3)]  # behind it, same worker
        late_pid = reports.read_pid()
        with pytest.raises(TaskTimeoutError) as info:
            late.result(timeout=DEADLOCK)
        assert time.monotonic() - submitted >= 0.5  # never before its deadline
        assert isinstance(info.value, TimeoutError)
        assert_exits([late_pid])  # killed, not left running
        assert [f.result(timeout=DEADLOCK) for f in queued] == [0, 1, 4]
        assert pool.submit(tasks.getpid).result(timeout=DEADLOCK) != late_pid
        stats = pool.statistics()
        assert (stats.tasks_timed_out, stats.workers_replaced, stats.tasks_crashed) == (1, 1, 0)


def test_task_within_its_timeout_succeeds(fifo: Callable[[str], Fifo]) -> None:
    reports, gate = fifo("reports"), fifo("gate")
    with process_pool(1) as pool:
        assert pool.schedule(tasks.square, (3,), timeout=DEADLOCK).result(timeout=DEADLOCK) == 9
        held = pool.schedule(tasks.hold, (reports.path, gate.path, "in time"), timeout=DEADLOCK)
        pid = reports.read_pid()
        gate.release()
        assert held.result(timeout=DEADLOCK) == "in time"
        assert pool.submit(tasks.getpid).result(timeout=DEADLOCK) == pid  # not replaced
        stats = pool.statistics()
        assert (stats.tasks_timed_out, stats.workers_replaced) == (0, 0)


def test_timeout_counts_from_start_not_from_queueing(fifo: Callable[[str], Fifo]) -> None:
    # The first task keeps the only worker busy for three times the second task's timeout
    # (it sleeps in the worker); the second, queued all that time, must not time out.
    timeout = 0.5
    reports = fifo("reports")
    with process_pool(1) as pool:
        ready = pool.submit(tasks.report, reports.path, "ready")
        assert reports.read_line() == "ready"
        assert ready.result(timeout=DEADLOCK) is None
        first = pool.submit(tasks.sleep_then, 3 * timeout, "first")
        second = pool.schedule(tasks.square, (7,), timeout=timeout)
        assert first.result(timeout=DEADLOCK) == "first"
        assert second.result(timeout=DEADLOCK) == 49
        assert pool.statistics().tasks_timed_out == 0


# -- cancel -----------------------------------------------------------------------------------


@pytest.mark.parametrize("start_method", FAST_METHODS)
def test_cancel_queued_tasks_never_run(
    start_method: str, fifo: Callable[[str], Fifo], tmp_path: Path
) -> None:
    reports, gate = fifo("reports"), fifo("gate")
    markers = [tmp_path / f"marker-{i}" for i in range(6)]
    with process_pool(1, start_method=start_method) as pool:
        first = pool.submit(tasks.hold, reports.path, gate.path, "first")
        pid = reports.read_pid()
        futures = [pool.submit(tasks.touch, str(marker)) for marker in markers]
        # Some of these may already sit at the worker, others in the pool's queue.
        for future in futures[0::2]:
            assert future.cancel() is True
            assert future.cancelled()
        gate.release()
        assert first.result(timeout=DEADLOCK) == "first"
        assert [f.result(timeout=DEADLOCK) for f in futures[1::2]] == [
            str(m) for m in markers[1::2]
        ]
        for future in futures[0::2]:
            with pytest.raises(CancelledError):
                future.result(timeout=0)
        assert pool.submit(tasks.getpid).result(timeout=DEADLOCK) == pid  # nobody was killed
        stats = pool.statistics()
        assert (stats.tasks_cancelled, stats.workers_replaced) == (3, 0)
    # The pool has shut down: whatever was going to run has run.
    assert [m.exists() for m in markers] == [False, True] * 3


@pytest.mark.parametrize("start_method", FAST_METHODS)
def test_cancel_running_task_kills_and_replaces_its_worker(
    start_method: str, fifo: Callable[[str], Fifo]
) -> None:
    reports, gate = fifo("reports"), fifo("gate")
    with process_pool(2, start_method=start_method) as pool:
        bystander = pool.submit(tasks.hold, reports.path, gate.path, "bystander")
        bystander_pid = reports.read_pid()
        victim = pool.submit(tasks.block_forever, reports.path)
        victim_pid = reports.read_pid()
        assert victim_pid != bystander_pid
        queued = [pool.submit(tasks.square, i) for i in range(4)]
        assert victim.cancel() is True
        assert victim.cancelled()
        with pytest.raises(CancelledError):
            victim.result(timeout=0)
        assert_exits([victim_pid])
        assert not bystander.done()
        gate.release()
        assert bystander.result(timeout=DEADLOCK) == "bystander"
        assert [f.result(timeout=DEADLOCK) for f in queued] == [0, 1, 4, 9]
        assert pool.submit(tasks.getpid).result(timeout=DEADLOCK) not in (victim_pid, None)
        # The pool's thread starts the replacement; the tasks above may all have run on the
        # bystander's worker before it is registered.
        wait_until(lambda: pool.statistics().workers_replaced == 1, "the killed worker replaced")
        stats = pool.statistics()
        assert (stats.tasks_cancelled, stats.workers_replaced, stats.tasks_crashed) == (1, 1, 0)
        assert victim.cancel() is True  # as in the stdlib: cancelling again still says True


def test_cancel_finished_task_returns_false() -> None:
    with process_pool(1) as pool:
        done = pool.submit(tasks.square, 2)
        assert done.result(timeout=DEADLOCK) == 4
        failed = pool.submit(tasks.call_inner, 1)
        with pytest.raises(tasks.CustomError):
            failed.result(timeout=DEADLOCK)
        crashed = pool.submit(tasks.crash_on, 1, 1)
        with pytest.raises(WorkerCrashedError):
            crashed.result(timeout=DEADLOCK)
        for future in (done, failed, crashed):
            assert future.cancel() is False
            assert not future.cancelled()
        assert done.result(timeout=0) == 4
        assert pool.statistics().tasks_cancelled == 0


# -- values that cannot cross the process boundary --------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "named"),
    [
        ((threading.Lock(),), {}, ["argument 0", "lock"]),
        ((1, (i for i in range(3))), {}, ["argument 1", "generator"]),
        ((), {"x": threading.Lock()}, ["'x'", "lock"]),
    ],
    ids=["lock", "generator", "keyword"],
)
def test_unpicklable_argument_fails_submit_at_once(
    args: tuple[object, ...], kwargs: dict[str, object], named: list[str]
) -> None:
    with process_pool(1) as pool:
        with pytest.raises(SerializationError) as info:
            pool.submit(tasks.identity, *args, **kwargs)
        assert isinstance(info.value, pickle.PickleError)
        message = str(info.value).lower()
        for word in named:
            assert word.lower() in message
        assert pool.submit(tasks.square, 5).result(timeout=DEADLOCK) == 25
        stats = pool.statistics()
        assert (stats.tasks_completed, stats.tasks_failed, stats.tasks_queued) == (1, 0, 0)


@pytest.mark.parametrize(
    ("fn", "named"),
    [(tasks.return_lock, "lock"), (tasks.return_socket, "socket")],
    ids=["lock", "socket"],
)
def test_unpicklable_result_fails_only_its_future(fn: Callable[[], object], named: str) -> None:
    with process_pool(1) as pool:
        pid = pool.submit(tasks.getpid).result(timeout=DEADLOCK)
        bad = pool.submit(fn)
        after = [pool.submit(tasks.square, i) for i in range(3)]
        with pytest.raises(SerializationError) as info:
            bad.result(timeout=DEADLOCK)
        assert "result" in str(info.value)
        assert named in str(info.value).lower()
        assert [f.result(timeout=DEADLOCK) for f in after] == [0, 1, 4]
        assert pool.submit(tasks.getpid).result(timeout=DEADLOCK) == pid
        assert pool.statistics().workers_replaced == 0


@pytest.mark.parametrize(
    ("fn", "type_name"),
    [(tasks.raise_unpicklable, "UnpicklableError"), (tasks.raise_bad_init, "BadInitError")],
    ids=["unpicklable", "breaks-unpickling"],
)
def test_exception_that_cannot_be_sent_back_fails_its_future(
    fn: Callable[[], object], type_name: str
) -> None:
    with process_pool(1) as pool:
        bad = pool.submit(fn)
        after = pool.submit(tasks.square, 4)
        with pytest.raises(SerializationError) as info:
            bad.result(timeout=DEADLOCK)
        assert type_name in str(info.value)
        cause = info.value.__cause__
        assert isinstance(cause, RemoteTraceback)
        assert fn.__name__ in cause.tb  # the worker's traceback survives
        assert after.result(timeout=DEADLOCK) == 16


# -- remote exceptions ------------------------------------------------------------------------


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_worker_exception_keeps_its_type_and_traceback(start_method: str) -> None:
    with process_pool(1, start_method=start_method) as pool:
        future = pool.submit(tasks.call_inner, 42)
        with pytest.raises(tasks.CustomError, match="bad value 42") as info:
            future.result(timeout=DEADLOCK)
    error = info.value
    assert type(error) is tasks.CustomError
    cause = error.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "distinctive_inner_function" in cause.tb
    assert "call_inner" in cause.tb
    assert "CustomError: bad value 42" in cause.tb
    printed = "".join(traceback.format_exception(error))
    assert "distinctive_inner_function" in printed  # shown below the caller's traceback


# -- initializers that fail -------------------------------------------------------------------


def broken_pool_errors(pool: ProcessPool, count: int) -> list[BrokenPoolError]:
    """Submit ``count`` tasks to a pool whose workers cannot start; every error it gives.

    The first task's future must fail; a later submit may fail at once instead, depending on
    how soon the pool notices. Either way the error is a BrokenPoolError.
    """
    errors: list[BrokenPoolError] = []
    for i in range(count):
        try:
            future = pool.submit(tasks.square, i)
        except BrokenPoolError as exc:
            assert i > 0, "the pool was broken before any worker started"
            errors.append(exc)
            continue
        with pytest.raises(BrokenPoolError) as info:
            future.result(timeout=DEADLOCK)
        errors.append(info.value)
    with pytest.raises(BrokenPoolError) as later:
        pool.submit(tasks.square, 1)
    errors.append(later.value)
    for error in errors:
        assert isinstance(error, BrokenExecutor)
    return errors


@pytest.mark.parametrize("start_method", FAST_METHODS)
def test_initializer_that_raises_breaks_the_pool(start_method: str) -> None:
    with process_pool(
        2,
        start_method=start_method,
        initializer=tasks.failing_initializer,
        initargs=("init boom",),
    ) as pool:
        for error in broken_pool_errors(pool, 4):
            assert "initializer" in str(error)
            cause = error.__cause__
            assert isinstance(cause, RuntimeError)
            assert str(cause) == "init boom"
        assert pool.statistics().workers_replaced <= 2  # no restart loop
    # (leaving the block returned: shutdown of a broken pool does not hang)


@pytest.mark.parametrize("start_method", FAST_METHODS)
def test_initializer_that_exits_breaks_the_pool(start_method: str) -> None:
    with process_pool(2, start_method=start_method, initializer=tasks.exiting_initializer) as pool:
        for error in broken_pool_errors(pool, 4):
            cause = error.__cause__
            assert isinstance(cause, WorkerCrashedError)
            assert cause.exitcode == 1
        assert pool.statistics().workers_replaced <= 4  # a few attempts, then it gives up


# -- worker recycling -------------------------------------------------------------------------


@pytest.mark.parametrize("start_method", ALL_METHODS)
def test_max_tasks_per_worker_recycles_with_every_start_method(start_method: str) -> None:
    with process_pool(2, start_method=start_method, max_tasks_per_worker=2) as pool:
        futures = [pool.submit(tasks.square_with_pid, i) for i in range(10)]
        results = [f.result(timeout=DEADLOCK) for f in futures]
        stats = pool.statistics()
    assert [value for value, _ in results] == [i * i for i in range(10)]
    per_pid = collections.Counter(pid for _, pid in results)
    assert max(per_pid.values()) <= 2
    assert len(per_pid) >= 5
    assert stats.workers_replaced >= 3
    assert stats.tasks_crashed == 0


# -- the parent dies --------------------------------------------------------------------------

_REPORTING_TASK = """
import multiprocessing
import os
import signal
import sys
import threading
import time

from concurrency_kit import ProcessPool

# Ctrl-C raises KeyboardInterrupt whatever this program inherited: a job started in the
# background by a non-interactive shell starts with SIGINT ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)


def block(report_path):
    fd = os.open(report_path, os.O_WRONLY)
    os.write(fd, f"{os.getpid()}\\n".encode())
    os.close(fd)
    while True:
        time.sleep(3600)
"""

PARENT_DEATH_PROGRAM = (
    _REPORTING_TASK
    + """

if __name__ == "__main__":
    pool = ProcessPool(2, start_method=sys.argv[1])
    futures = [pool.submit(block, sys.argv[2]) for _ in range(2)]
    futures[0].result()  # never returns: the test kills this program
"""
)

CTRL_C_PROGRAM = (
    _REPORTING_TASK
    + """

def main(where, report_path):
    try:
        with ProcessPool(2) as pool:
            futures = [pool.submit(block, report_path) for _ in range(5)]  # 2 run, 3 queued
            if where == "result":
                futures[0].result()
            # where == "shutdown": leaving the block waits for the tasks
    finally:
        # Once the block is left, the pool has stopped: no thread of it, no worker left.
        threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        print(f"after the block: threads {threads}", file=sys.stderr)
        print(f"after the block: children {multiprocessing.active_children()}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
"""
)


@contextlib.contextmanager
def child_program(
    tmp_path: Path, source: str, *args: str
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """Run ``source`` as a Python program in its own session; always reap it.

    Yields the process and the file its stderr goes to (a file, not a pipe: a leaked worker
    holding a pipe open would make reading it hang).
    """
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(source))
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "wb") as stderr:
        child = subprocess.Popen(
            [sys.executable, str(script), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        yield child, stderr_path
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()


@contextlib.contextmanager
def kill_leftovers(pids: list[int]) -> Iterator[None]:
    """On the way out, SIGKILL whichever of ``pids`` still runs (through pidfds: no pid reuse)."""
    pidfds = open_pidfds(pids)
    try:
        yield
    finally:
        for fd in pidfds.values():
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            os.close(fd)


@pytest.mark.parametrize("start_method", ALL_METHODS)
def test_workers_exit_when_the_parent_is_killed(
    start_method: str, fifo: Callable[[str], Fifo], tmp_path: Path
) -> None:
    reports = fifo("reports")
    with child_program(tmp_path, PARENT_DEATH_PROGRAM, start_method, reports.path) as (
        child,
        stderr_path,
    ):
        worker_pids = {reports.read_pid(child), reports.read_pid(child)}
        family = descendants(child.pid)  # the workers, and the forkserver if any
        assert worker_pids <= set(family), stderr_path.read_text()
        with kill_leftovers(family):
            pidfds = open_pidfds(family)
            try:
                child.kill()
                child.wait()
                alive, waited = wait_exited(pidfds, EXIT_DEADLINE)
            finally:
                for fd in pidfds.values():
                    os.close(fd)
            print(f"{start_method}: {len(family)} children gone {waited * 1000:.0f} ms after")
            assert not alive, (
                f"still alive {EXIT_DEADLINE} s after the parent was killed: {sorted(alive)} "
                f"(workers {sorted(worker_pids)})"
            )


# -- Ctrl-C -----------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["result", "shutdown"])
@pytest.mark.parametrize("target", ["process", "group"])
def test_ctrl_c_shuts_the_pool_down_cleanly(
    target: str, where: str, fifo: Callable[[str], Fifo], tmp_path: Path
) -> None:
    # "group" is what a terminal does: SIGINT to every process of the foreground group, the
    # workers included. "result": the program waits on a future; "shutdown": it waits in the
    # `with` block's exit for tasks that never finish.
    reports = fifo("reports")
    with child_program(tmp_path, CTRL_C_PROGRAM, where, reports.path) as (child, stderr_path):
        worker_pids = {reports.read_pid(child), reports.read_pid(child)}
        family = descendants(child.pid)
        assert worker_pids <= set(family)
        with kill_leftovers(family):
            pidfds = open_pidfds(family)
            try:
                if target == "group":
                    os.killpg(child.pid, signal.SIGINT)
                else:
                    os.kill(child.pid, signal.SIGINT)
                try:
                    returncode = child.wait(timeout=DEADLOCK)
                except subprocess.TimeoutExpired:
                    raise AssertionError(
                        f"the program did not exit after Ctrl-C:\n{stderr_path.read_text()}"
                    ) from None
                alive, _ = wait_exited(pidfds, EXIT_DEADLINE)
            finally:
                for fd in pidfds.values():
                    os.close(fd)
            stderr = stderr_path.read_text()
            assert returncode in (-signal.SIGINT, 128 + signal.SIGINT, 1), stderr
            assert not alive, f"left behind: {sorted(alive)}\n{stderr}"
            assert "after the block: threads []\n" in stderr, stderr
            assert "after the block: children []\n" in stderr, stderr
            assert stderr.count("Traceback (most recent call last)") <= 1, stderr
            assert stderr.count("KeyboardInterrupt") <= 1, stderr


@pytest.mark.parametrize("pool_class", [ProcessPool, ThreadPool])
def test_a_forked_child_does_not_stop_its_parents_pools(pool_class: type[Any]) -> None:
    """A fork child inherits copies of the parent's pools; at its exit it must leave them be.

    The copy's lock is held here at the fork, as a parent thread may hold it at any moment (a
    caller reading its worker's answer does): a child that tried to stop the copy would hang.
    """
    context = multiprocessing.get_context("fork")
    with pool_class(1) as pool:
        assert pool.submit(tasks.square, 3).result(timeout=DEADLOCK) == 9
        with pool._core.lock:
            child = context.Process(target=tasks.getpid)
            child.start()
        child.join(DEADLOCK)
        if child.exitcode is None:
            child.kill()
            child.join()
            pytest.fail("the fork child hung at exit, stopping its copy of the parent's pool")
        assert child.exitcode == 0

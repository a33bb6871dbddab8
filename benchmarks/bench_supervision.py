"""Supervisors: how fast a crashed child is replaced (the targets of the supervisors issue, 7).

Run ``python benchmarks/bench_supervision.py --help`` for the options and see
``benchmarks/README.md`` for how to read the tables. Process children use the default start
method (``forkserver``). No peer library is measured (none has OTP's semantics, see the
issue); each benchmark has a hand-rolled restart loop as its reference row instead: the
least a supervisor can do, ``start(); wait for the exit; start again``, with no strategy,
no intensity, no events.

Benchmarks (``--only NAME``):

* ``process_restart``: crash -> replacement running, for one process child: the child stamps
  :func:`time.monotonic` (``CLOCK_MONOTONIC``, one clock for every process) just before it
  ``os._exit(1)``\\ s, its replacement stamps it on entering its target; one sample is the
  difference (latency). Crashes are spaced ``PAUSE`` seconds apart, as crashes are in a
  system worth supervising (back-to-back crashes are the crash-loop benchmarks' business).
  Target: median <= 20 ms.
* ``thread_restart``: the same for one thread child that raises. Target: median <= 2 ms.
* ``process_crash_loop``, ``thread_crash_loop``: a child that dies as soon as it starts,
  restarted ``n`` times (the issue's 1,000 in a full run); cycles per second (throughput).
  After each round the supervisor is stopped and the round fails if it left a process, a
  thread or a file descriptor behind.

How a latency sample is taken (process children; threads use two queues instead)::

    bench (this process)          supervisor loop thread         child k        child k+1
    gate.release()  ─────────────────────────────────────────>  wakes up
                                                                 stamp "crash"
    reads "crash" <───────────────────────────────────────────  os._exit(1)
                                  sentinel ready: exit event,
                                  restart: assign the standby ─────────────────>  enters
    reads "start" <──────────────────────────────────────────────────────────────  stamp "start"
    sample = start - crash
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import queue
import select
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from multiprocessing.connection import wait
from typing import Any, Final

from _runner import Benchmark, Config, Contender, Measure, Target, main

# Imported here, not lazily: the forkserver preloads this script (``__main__``), so a child
# process starts with concurrency_kit imported, as it does under any program that uses it.
from concurrency_kit import ChildSpec, ProcessSupervisor, ThreadSupervisor, current_child

START_METHOD: Final = "forkserver"
PACKAGES = ("concurrency_kit",)
DEADLOCK: Final = 60.0
"""Seconds before a child that never answers counts as hung (only catches deadlocks)."""
PAUSE: Final = 0.25
"""Seconds between two crashes in the restart benchmarks (longer than a standby's start)."""
HUGE: Final = 10**9
"""An intensity no benchmark reaches: the supervisors never give up here."""


def mp_context() -> Any:
    return multiprocessing.get_context(START_METHOD)


# -- children (module level: pickled by value for supervisors, by reference for multiprocessing)


def stop_fd() -> int | None:
    """A pipe's read end that becomes readable when the running child is asked to stop.

    ``None`` outside a supervised child (the hand-rolled loops kill their children instead).
    """
    try:
        context = current_child()
    except RuntimeError:
        return None
    stop_r, stop_w = os.pipe()
    context.on_stop(lambda: os.write(stop_w, b"!"))  # may run in the SIGTERM handler
    return stop_r


def process_restart_child(gate_path: str, report_path: str) -> None:
    """Stamp "start"; wait at the gate (or for a stop request); stamp "crash" and die."""
    started = time.monotonic()
    report = os.open(report_path, os.O_WRONLY)
    os.write(report, f"start {started!r}\n".encode())
    gate = os.open(gate_path, os.O_RDONLY | os.O_NONBLOCK)  # the bench holds a writer open
    stop = stop_fd()
    watched = [gate] if stop is None else [gate, stop]
    while True:
        ready, _, _ = select.select(watched, [], [])
        if stop in ready:
            return
        try:
            if os.read(gate, 1):
                break
        except BlockingIOError:
            pass
    os.write(report, f"crash {time.monotonic()!r}\n".encode())
    os._exit(1)


def thread_restart_child(commands: queue.SimpleQueue[str], stamps: queue.SimpleQueue[Any]) -> None:
    """The thread version: stamps on a queue, the crash command from a queue, then raise."""
    stamps.put(("start", time.monotonic()))
    with contextlib.suppress(RuntimeError):
        current_child().on_stop(partial(commands.put, "stop"))
    if commands.get() == "stop":
        return
    stamps.put(("crash", time.monotonic()))
    raise RuntimeError("crash")


def crash_now() -> None:
    os._exit(1)


def raise_now() -> None:
    raise RuntimeError("crash")


def contained(target: Callable[..., None], *args: Any) -> None:
    """Run ``target`` in a hand-rolled thread loop, swallowing its exception (as a supervisor
    does: no ``threading.excepthook`` report)."""
    with contextlib.suppress(Exception):
        target(*args)


# -- the FIFOs of the process children ----------------------------------------------------------


class Fifo:
    """A named FIFO held open for reading and writing (so a child's ``open`` never blocks)."""

    def __init__(self, path: str) -> None:
        os.mkfifo(path, 0o600)
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self._buffer = b""

    def release(self) -> None:
        os.write(self.fd, b"!")

    def read_line(self) -> str:
        deadline = time.monotonic() + DEADLOCK
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self.fd], [], [], max(0.0, remaining))
            if not ready:
                raise AssertionError(f"no answer on {self.path} in {DEADLOCK:g} s (deadlock?)")
            self._buffer += os.read(self.fd, 4096)
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def stamp(self, kind: str) -> float:
        got, _, value = self.read_line().partition(" ")
        if got != kind:
            raise AssertionError(f"expected a {kind!r} stamp, got {got!r}")
        return float(value)

    def close(self) -> None:
        os.close(self.fd)


@contextlib.contextmanager
def fifos() -> Iterator[tuple[Fifo, Fifo]]:
    """A gate and a report FIFO in a private temporary directory."""
    with tempfile.TemporaryDirectory(prefix="bench-supervision-") as tmp:
        gate, report = Fifo(os.path.join(tmp, "gate")), Fifo(os.path.join(tmp, "report"))
        try:
            yield gate, report
        finally:
            gate.close()
            report.close()


# -- leaks ------------------------------------------------------------------------------------


def _descendants() -> set[int]:
    """Live (not zombie) descendants of this process, minus multiprocessing's singletons."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rindex(b")") + 2 :].split()
            if fields[0] != b"Z":
                children.setdefault(int(fields[1]), []).append(int(name))
    found: set[int] = set()
    todo = list(children.get(os.getpid(), ()))
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, ()))
    return found


Resources = tuple[set[int], set[str], set[threading.Thread]]


def _resources() -> Resources:
    """What a supervisor could leak: child processes, open fds, threads."""
    return _descendants(), set(os.listdir("/proc/self/fd")), set(threading.enumerate())


def start_singletons() -> None:
    """Start the forkserver and the resource tracker (kept for good) before any snapshot."""
    multiprocessing.resource_tracker.ensure_running()
    multiprocessing.forkserver.ensure_running()


def check_no_leaks(before: Resources, what: str) -> None:
    """Fail if processes, fds or threads exist that did not before.

    A supervisor's ``stop()`` returns once its children are reaped and its pipes closed; its
    loop thread ends a moment later, so threads get a short grace period (a poll, bounded).
    """
    deadline = time.monotonic() + 2.0
    while True:
        processes, fds, threads = _resources()
        new = (processes - before[0], fds - before[1], threads - before[2])
        if not any(new) or time.monotonic() >= deadline:
            break
        time.sleep(0.005)
    if any(new):
        raise AssertionError(
            f"{what} leaked: processes {sorted(new[0])}, fds {sorted(new[1])}, "
            f"threads {sorted(t.name for t in new[2])}"
        )


# -- restart latency ----------------------------------------------------------------------------


def restart_samples(
    k: int, crash: Callable[[], None], read: Callable[[str], float], pause: float = 0.0
) -> list[float]:
    """``k`` crash -> replacement samples: ``crash()`` the running child, read the stamps.

    ``pause``: seconds before each crash (see ``PAUSE``).
    """
    samples = []
    for _ in range(k):
        if pause:
            time.sleep(pause)
        crash()
        crashed = read("crash")
        samples.append(read("start") - crashed)
    return samples


@contextlib.contextmanager
def process_restart_supervisor(k: int) -> Iterator[Measure]:
    with fifos() as (gate, report):
        spec = ChildSpec("child", process_restart_child, (gate.path, report.path))
        with ProcessSupervisor([spec], intensity=HUGE, period=1.0):
            report.stamp("start")
            yield partial(restart_samples, k, gate.release, report.stamp, PAUSE)


@contextlib.contextmanager
def process_restart_by_hand(k: int) -> Iterator[Measure]:
    """The reference: a thread that starts a ``multiprocessing.Process``, waits for its
    sentinel, and starts another."""
    ctx = mp_context()
    stop_r, stop_w = os.pipe()

    def loop(gate: Fifo, report: Fifo) -> None:
        while True:
            process = ctx.Process(target=process_restart_child, args=(gate.path, report.path))
            process.start()
            ready = wait([process.sentinel, stop_r])
            if stop_r in ready and process.exitcode is None:
                process.kill()
            process.join()
            process.close()
            if stop_r in ready:
                return

    with fifos() as (gate, report):
        runner = threading.Thread(target=loop, args=(gate, report), name="restart-by-hand")
        runner.start()
        try:
            report.stamp("start")
            yield partial(restart_samples, k, gate.release, report.stamp, PAUSE)
        finally:
            os.write(stop_w, b"!")
            runner.join()
            os.close(stop_r)
            os.close(stop_w)


def queue_reader(stamps: queue.SimpleQueue[Any]) -> Callable[[str], float]:
    def read(kind: str) -> float:
        got, value = stamps.get(timeout=DEADLOCK)
        if got != kind:
            raise AssertionError(f"expected a {kind!r} stamp, got {got!r}")
        return float(value)

    return read


@contextlib.contextmanager
def thread_restart_supervisor(k: int) -> Iterator[Measure]:
    commands: queue.SimpleQueue[str] = queue.SimpleQueue()
    stamps: queue.SimpleQueue[Any] = queue.SimpleQueue()
    read = queue_reader(stamps)
    spec = ChildSpec("child", thread_restart_child, (commands, stamps))
    with ThreadSupervisor([spec], intensity=HUGE, period=1.0):
        read("start")
        yield partial(restart_samples, k, partial(commands.put, "crash"), read)


@contextlib.contextmanager
def thread_restart_by_hand(k: int) -> Iterator[Measure]:
    """The reference: a thread that starts a thread, joins it, and starts another."""
    commands: queue.SimpleQueue[str] = queue.SimpleQueue()
    stamps: queue.SimpleQueue[Any] = queue.SimpleQueue()
    stopping = threading.Event()
    read = queue_reader(stamps)

    def loop() -> None:
        while not stopping.is_set():
            child = threading.Thread(
                target=contained, args=(thread_restart_child, commands, stamps)
            )
            child.start()
            child.join()

    runner = threading.Thread(target=loop, name="restart-by-hand")
    runner.start()
    try:
        read("start")
        yield partial(restart_samples, k, partial(commands.put, "crash"), read)
    finally:
        stopping.set()
        commands.put("stop")
        runner.join()


# -- crash loops --------------------------------------------------------------------------------


def supervised_crash_loop(make: Callable[..., Any], target: Callable[[], None], n: int) -> float:
    """Start a supervisor of one child that dies at once; the seconds until its ``n``-th
    restart. The supervisor is stopped (untimed) and must leave nothing behind."""
    before = _resources()
    done = threading.Event()
    restarts = 0

    def count(event: Any) -> None:
        nonlocal restarts
        if event.kind == "restart":
            restarts += 1
            if restarts == n:
                done.set()

    supervisor = make([ChildSpec("crasher", target)], intensity=HUGE, period=1.0)
    supervisor.subscribe(count)
    started = time.perf_counter()
    supervisor.start()
    try:
        if not done.wait(DEADLOCK):
            raise AssertionError(f"{restarts} restarts of {n} after {DEADLOCK:g} s (deadlock?)")
        elapsed = time.perf_counter() - started
    finally:
        supervisor.stop()
    check_no_leaks(before, f"{n} crash-and-restart cycles")
    return elapsed


def process_loop_by_hand(n: int) -> float:
    ctx = mp_context()
    started = time.perf_counter()
    for _ in range(n + 1):  # the first start and n restarts, as above
        process = ctx.Process(target=crash_now)
        process.start()
        process.join()
        process.close()
    return time.perf_counter() - started


def thread_loop_by_hand(n: int) -> float:
    started = time.perf_counter()
    for _ in range(n + 1):
        child = threading.Thread(target=contained, args=(raise_now,))
        child.start()
        child.join()
    return time.perf_counter() - started


@contextlib.contextmanager
def simple(measure: Measure, process: bool = False) -> Iterator[Measure]:
    if process:
        start_singletons()
    yield measure


# -- the benchmarks -----------------------------------------------------------------------------

BY_HAND_PROCESS = "multiprocessing restart loop"
BY_HAND_THREAD = "threading restart loop"


def restart_benchmarks(config: Config) -> list[Benchmark]:
    k = config.size(30, 6, 2)
    by_hand_note = "start, wait for the sentinel, start again: no standby, no strategy, no events"
    return [
        Benchmark(
            name="process_restart",
            title=f"a process child crashes; its replacement runs ({k} crashes per round)",
            kind="latency",
            unit="ms",
            reference=BY_HAND_PROCESS,
            contenders=(
                Contender("ProcessSupervisor", partial(process_restart_supervisor, k)),
                Contender(BY_HAND_PROCESS, partial(process_restart_by_hand, k), note=by_hand_note),
            ),
            targets=(
                Target(
                    "ProcessSupervisor",
                    None,
                    0.020,
                    label="ProcessSupervisor crash -> replacement running",
                ),
            ),
        ),
        Benchmark(
            name="thread_restart",
            title=f"a thread child raises; its replacement runs ({k} crashes per round)",
            kind="latency",
            unit="us",
            reference=BY_HAND_THREAD,
            contenders=(
                Contender("ThreadSupervisor", partial(thread_restart_supervisor, k)),
                Contender(BY_HAND_THREAD, partial(thread_restart_by_hand, k)),
            ),
            targets=(
                Target(
                    "ThreadSupervisor",
                    None,
                    0.002,
                    label="ThreadSupervisor crash -> replacement running",
                ),
            ),
        ),
    ]


def crash_loop_benchmarks(config: Config) -> list[Benchmark]:
    n_process = config.size(1_000, 10, 3)
    n_thread = config.size(1_000, 200, 10)
    return [
        Benchmark(
            name="process_crash_loop",
            title=f"a process child dies at once, restarted {n_process} times per round",
            kind="throughput",
            unit="cycles",
            reference=BY_HAND_PROCESS,
            rounds=1,  # a full run: 1,000 cycles take a minute or two per contender
            contenders=(
                Contender(
                    "ProcessSupervisor",
                    partial(
                        simple,
                        partial(supervised_crash_loop, ProcessSupervisor, crash_now, n_process),
                        True,
                    ),
                    items=n_process,
                    note="stopped after each round: no process, thread or fd may be left",
                ),
                Contender(
                    BY_HAND_PROCESS,
                    partial(simple, partial(process_loop_by_hand, n_process), True),
                    items=n_process,
                ),
            ),
        ),
        Benchmark(
            name="thread_crash_loop",
            title=f"a thread child raises at once, restarted {n_thread} times per round",
            kind="throughput",
            unit="cycles",
            reference=BY_HAND_THREAD,
            contenders=(
                Contender(
                    "ThreadSupervisor",
                    partial(
                        simple,
                        partial(supervised_crash_loop, ThreadSupervisor, raise_now, n_thread),
                    ),
                    items=n_thread,
                    note="stopped after each round: no thread or fd may be left",
                ),
                Contender(
                    BY_HAND_THREAD,
                    partial(simple, partial(thread_loop_by_hand, n_thread)),
                    items=n_thread,
                ),
            ),
        ),
    ]


def build(config: Config) -> list[Benchmark]:
    """Every benchmark of this script, sized for ``config``."""
    return [*restart_benchmarks(config), *crash_loop_benchmarks(config)]


if __name__ == "__main__":
    sys.exit(main(build, description=__doc__ or "", packages=PACKAGES))

"""The leak check (``ck_leakcheck``) catches each kind of leak, and passes clean tests.

Each case runs an inner pytest session in a subprocess with the plugin loaded and checks its
verdict. What the inner tests leak dies with the inner session: daemon threads and fds go with
its process, and child processes block reading a pipe that only the inner session holds, so
they read end-of-file and exit when it ends; a leaked segment is removed by the inner
session's resource tracker when it ends. The outer test still waits for the processes by pid
(and kills them if they linger) and removes the segments, so it leaks nothing itself.

/dev/shm is shared with every program on the machine: the check charges a segment to a test
only if the test's process tree made it (a leak by the test process, or by a child that has
exited since, is caught), and a suite passes while another program (``_shm_churn.py``) makes
and removes entries of every kind the whole time.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
SHORT_DEADLINE = "0.2"  # inner cases that must fail: no need to wait long for cleanup
INNER_TIMEOUT = 90.0
EXIT_TIMEOUT = 30.0

INNER_PRELUDE = '''
import gc
import multiprocessing
import os
import subprocess
import sys
import threading
import time
import warnings
import weakref
from pathlib import Path

from concurrency_kit import ProcessLock
from concurrency_kit._core import shm

HERE = Path(__file__).parent
KEEP = []  # what a leaking test holds on to until the session ends


def record_segment(name):
    """Tell the outer test which segment to remove."""
    (HERE / "shm-name.txt").write_text(name)


def in_a_child(fn):
    """Run ``fn()`` in a forked child (which exits at once, no cleanup); return its result."""
    r, w = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: forking with threads
        pid = os.fork()
    if pid == 0:
        try:
            os.write(w, fn().encode())
        finally:
            os._exit(0)
    os.close(w)
    try:
        return os.read(r, 1000).decode()
    finally:
        os.close(r)
        os.waitpid(pid, 0)


def record_pids(*pids):
    """Tell the outer test which processes to wait for (with their start times)."""
    lines = []
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        lines.append(f"{pid} {stat[stat.rindex(b')') + 2:].split()[19].decode()}")
    (HERE / "pids.txt").write_text("\\n".join(lines))
'''

INNER_CASES = {
    "clean": """
        def test_clean():
            thread = threading.Thread(target=lambda: None)
            thread.start()
            thread.join()
            os.close(os.open(os.devnull, os.O_RDONLY))
            child = subprocess.Popen([sys.executable, "-c", "pass"])
            assert child.wait() == 0
    """,
    "cleanup_after_return": """
        def test_thread_stopped_by_a_finalizer_after_the_test():
            # Like a pool forgotten in a reference cycle: the thread is still running when the
            # test returns; the leak check's gc.collect() runs the finalizer that releases it,
            # and it exits a moment later, which the check waits for.
            gc.disable()  # the cycle survives until the check collects it
            release = threading.Event()
            threading.Thread(target=release.wait, name="stopped-by-finalizer").start()

            class Resource:
                pass

            resource = Resource()
            resource.cycle = resource
            weakref.finalize(resource, release.set)
    """,
    "thread": """
        def test_leaks_thread():
            started = threading.Event()

            def block():
                started.set()
                threading.Event().wait()

            threading.Thread(target=block, name="ck-leaky-thread", daemon=True).start()
            started.wait()
    """,
    "fd": """
        def test_leaks_fd():
            KEEP.append(os.open(os.devnull, os.O_RDONLY))
    """,
    "segment": """
        def test_leaks_segment():
            segment = shm.create(64)  # never unlinked
            KEEP.append(segment)
            record_segment(segment.name)
    """,
    "segment_in_a_child": """
        LEAKING_CHILD = (
            "import os, secrets; "
            "name = f'ck_{os.getpid()}_{secrets.token_hex(16)}'; "
            "os.close(os.open('/dev/shm/' + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)); "
            "print(name)"
        )


        def test_leaks_segment_in_a_child():
            # A segment of a child that has exited when the check looks, which nothing removes:
            # the child makes the file itself (a segment made with shm.create would be removed
            # by the resource tracker, which a fresh interpreter starts and stops with it).
            child = subprocess.run(
                [sys.executable, "-c", LEAKING_CHILD], capture_output=True, text=True, check=True
            )
            name = child.stdout.strip()
            assert shm.creator_pid(name) is not None
            record_segment(name)
    """,
    "churn": """
        CHURN_PID = int(os.environ["CK_CHURN_PID"])


        def seen_by_kind(names):
            kinds = set()
            for name in names:
                pid = shm.creator_pid(name)
                if pid is None:
                    kinds.add("not ck_<pid>_<hex>")
                elif pid == CHURN_PID:
                    kinds.add("ck_, a live creator")
                else:
                    kinds.add("ck_, a creator gone")
            return kinds


        def test_other_programs_entries_come_and_go_while_this_test_runs():
            # Until entries of every kind have appeared during the test, so that the check
            # finds some that are not the test's; a deadlock bound, not a delay.
            before = set(os.listdir("/dev/shm"))
            end = time.monotonic() + 60
            while len(seen_by_kind(set(os.listdir("/dev/shm")) - before)) < 3:
                assert time.monotonic() < end, "the churning program made nothing"
                time.sleep(0.001)


        def test_segments_made_and_removed():
            for _ in range(20):
                segment = shm.create(64)
                segment.unlink()
                segment.close()


        def test_segment_made_and_removed_by_a_child():
            def make_and_remove():
                segment = shm.create(64)
                segment.unlink()
                return segment.name

            assert not Path("/dev/shm", in_a_child(make_and_remove)).exists()


        def test_process_lock():
            lock = ProcessLock()
            with lock:
                pass
            lock.close()
    """,
    "subprocess": """
        CHILD = '''
        import subprocess, sys
        grandchild = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"])
        print(grandchild.pid, flush=True)
        sys.stdin.read()
        '''

        def test_leaks_child_and_grandchild():
            # Both block reading the pipe this session holds; both exit when it ends.
            child = subprocess.Popen(
                [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            KEEP.append(child)
            grandchild = int(child.stdout.readline())
            record_pids(child.pid, grandchild)
    """,
    "zombie": """
        def test_leaks_unreaped_child():
            child = subprocess.Popen([sys.executable, "-c", "pass"])
            KEEP.append(child)
            # Wait until it has exited, without reaping it.
            os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    """,
    "forkserver_worker": """
        def block(conn):
            try:
                conn.recv()
            except EOFError:
                pass

        def test_leaks_forkserver_worker():
            # The worker is a child of the forkserver, not of this process.
            ctx = multiprocessing.get_context("forkserver")
            reader, writer = ctx.Pipe(duplex=False)
            worker = ctx.Process(target=block, args=(reader,), daemon=True)
            worker.start()
            reader.close()
            KEEP.append((worker, writer))
            record_pids(worker.pid)
    """,
}


@pytest.fixture
def churn(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """Another program making and removing /dev/shm entries (``_shm_churn.py``); yields its pid.

    Stopped (by closing its stdin) and waited for after the test; it removes its entries.
    """
    process = subprocess.Popen(
        [sys.executable, str(TESTS_DIR / "_shm_churn.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        assert process.stdout.readline() == f"churning {process.pid}\n"
        monkeypatch.setenv("CK_CHURN_PID", str(process.pid))
        yield process.pid
    finally:
        process.stdin.close()
        try:
            code = process.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        finally:
            process.stdout.close()
    assert code == 0


def _run_inner(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, case: str, deadline: str
) -> pytest.RunResult:
    monkeypatch.setenv("PYTHONPATH", str(TESTS_DIR))
    pytester.makepyfile(
        test_inner=INNER_PRELUDE + "\n" + textwrap.dedent(INNER_CASES[case]).lstrip("\n")
    )
    return pytester.runpytest_subprocess(
        "-p",
        "ck_leakcheck",
        "-o",
        f"leakcheck_deadline={deadline}",
        "-p",
        "no:cacheprovider",
        timeout=INNER_TIMEOUT,
    )


def _wait_gone(pid: int, start: str) -> bool:
    """Wait until process ``pid`` (started at ``start``) exits; kill it if it lingers.

    Returns whether it exited by itself. The start time guards against a reused pid.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except (FileNotFoundError, ProcessLookupError):  # reaped before the open or the read
            return True
        if stat[stat.rindex(b")") + 2 :].split()[19].decode() != start:
            return True  # the pid now names another process: ours is gone
        if select.select([pidfd], [], [], EXIT_TIMEOUT)[0]:
            return True
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        select.select([pidfd], [], [], EXIT_TIMEOUT)
        return False
    finally:
        os.close(pidfd)


def _wait_for_recorded(pytester: pytest.Pytester) -> None:
    record = pytester.path / "pids.txt"
    if not record.exists():  # the inner test failed before it started them
        return
    lingering = []
    for line in record.read_text().splitlines():
        pid, start = line.split()
        if not _wait_gone(int(pid), start):
            lingering.append(pid)
    assert not lingering, f"processes {lingering} outlived the inner session; killed them"


def test_clean_test_passes(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run_inner(pytester, monkeypatch, "clean", SHORT_DEADLINE)
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*LEAK*")


def test_asynchronous_cleanup_is_not_a_leak(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The default deadline: this is the case it exists for.
    result = _run_inner(pytester, monkeypatch, "cleanup_after_return", "5")
    result.assert_outcomes(passed=1)


def _assert_leak_error(result: pytest.RunResult, test_name: str, *lines: str) -> None:
    # A leak fails the teardown of the test that leaked, with the list as its message.
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([f"*ERROR at teardown of {test_name}*", *lines])
    result.stdout.fnmatch_lines([f"ERROR test_inner.py::{test_name} - Failed: LEAK: *"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_detects_thread(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run_inner(pytester, monkeypatch, "thread", SHORT_DEADLINE)
    _assert_leak_error(
        result,
        "test_leaks_thread",
        "LEAK: the test leaked 1 thread (still there 0.2 s after the test*",
        "threads:",
        "*'ck-leaky-thread' (daemon, ident *), at:",
        "*in block: threading.Event().wait()",
    )


def test_detects_fd(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run_inner(pytester, monkeypatch, "fd", SHORT_DEADLINE)
    _assert_leak_error(
        result,
        "test_leaks_fd",
        "LEAK: the test leaked 1 file descriptor *",
        "file descriptors:",
        "*fd * -> /dev/null",
    )


def _remove_recorded_segment(pytester: pytest.Pytester) -> str:
    record = pytester.path / "shm-name.txt"
    if not record.exists():  # the inner test failed before it made one
        return ""
    name = record.read_text()
    Path("/dev/shm", name).unlink(missing_ok=True)
    return name


@pytest.mark.parametrize(
    ("case", "test_name"),
    [
        ("segment", "test_leaks_segment"),
        ("segment_in_a_child", "test_leaks_segment_in_a_child"),
    ],
    ids=["by-the-test-process", "by-a-child-that-exited"],
)
def test_detects_segment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, case: str, test_name: str
) -> None:
    try:
        result = _run_inner(pytester, monkeypatch, case, SHORT_DEADLINE)
    finally:
        name = _remove_recorded_segment(pytester)
    assert name
    _assert_leak_error(
        result,
        test_name,
        "LEAK: the test leaked 1 /dev/shm entry *",
        "/dev/shm entries:",
        f"*/dev/shm/{name}",
    )


def test_suite_passes_while_another_program_churns_dev_shm(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, churn: int
) -> None:
    # The default deadline, as in a real run: another program's entries are never charged,
    # however long the check looks.
    result = _run_inner(pytester, monkeypatch, "churn", "5")
    result.assert_outcomes(passed=4)
    result.stdout.no_fnmatch_line("*LEAK*")


def test_detects_child_and_grandchild(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        result = _run_inner(pytester, monkeypatch, "subprocess", SHORT_DEADLINE)
        pids = [line.split()[0] for line in (pytester.path / "pids.txt").read_text().splitlines()]
        # The pipes to the child are leaked fds as well.
        _assert_leak_error(
            result,
            "test_leaks_child_and_grandchild",
            "LEAK: the test leaked 2 processes, 2 file descriptors *",
            "processes:",
            f"*pid {pids[0]} (parent *, state *): *python -c \\nimport subprocess, sys\\n*",
            f"*pid {pids[1]} (parent {pids[0]}, state *): *python* -c import sys; sys.stdin.read()",
        )
    finally:
        _wait_for_recorded(pytester)


def test_detects_unreaped_child(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    # The zombie is reaped by init when the inner session ends.
    result = _run_inner(pytester, monkeypatch, "zombie", SHORT_DEADLINE)
    _assert_leak_error(
        result,
        "test_leaks_unreaped_child",
        "LEAK: the test leaked 1 process *",
        "processes:",
        "*pid * (parent *, zombie: exited, never reaped): *",
    )


def test_detects_forkserver_worker(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        result = _run_inner(pytester, monkeypatch, "forkserver_worker", SHORT_DEADLINE)
        ((pid, _),) = (
            line.split() for line in (pytester.path / "pids.txt").read_text().splitlines()
        )
        _assert_leak_error(
            result,
            "test_leaks_forkserver_worker",
            "LEAK: the test leaked 1 process, * file descriptors *",
            "processes:",
            f"*pid {pid} (parent *, state *): *from multiprocessing.forkserver import main*",
        )
    finally:
        _wait_for_recorded(pytester)

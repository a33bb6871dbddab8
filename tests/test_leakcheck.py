"""The leak check (``ck_leakcheck``) catches each kind of leak, and passes clean tests.

Each case runs an inner pytest session in a subprocess with the plugin loaded and checks its
verdict. What the inner tests leak dies with the inner session: daemon threads and fds go with
its process, and child processes block reading a pipe that only the inner session holds, so
they read end-of-file and exit when it ends. The outer test still waits for them by pid (and
kills them if they linger) and removes the /dev/shm entry, so it leaks nothing itself.
"""

from __future__ import annotations

import os
import select
import signal
import textwrap
import uuid
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
import weakref
from pathlib import Path

HERE = Path(__file__).parent
KEEP = []  # what a leaking test holds on to until the session ends


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
    "shm": """
        def test_leaks_shm():
            # shm_open(3) on Linux is open(2) in /dev/shm. Not multiprocessing.shared_memory:
            # its resource tracker would remove the segment behind the outer test's back.
            name = (HERE / "shm-name.txt").read_text()
            os.close(os.open(f"/dev/shm/{name}", os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
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
        except FileNotFoundError:
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


def test_detects_shm_entry(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"ck-leakcheck-selftest-{uuid.uuid4().hex}"
    (pytester.path / "shm-name.txt").write_text(name)
    try:
        result = _run_inner(pytester, monkeypatch, "shm", SHORT_DEADLINE)
        _assert_leak_error(
            result,
            "test_leaks_shm",
            "LEAK: the test leaked 1 /dev/shm entry *",
            "/dev/shm entries:",
            f"*/dev/shm/{name}",
        )
    finally:
        Path("/dev/shm", name).unlink(missing_ok=True)


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

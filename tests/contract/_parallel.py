"""Run one function in parallel workers of a model: threads, forkserver processes, or (for
INTERPRETER) interpreters of this process.

Shared by the contract suites of the shared-state containers. Each worker waits on a barrier
of the model before it works, so the workers really overlap; results come back in order, and
a worker that raised fails the test with its error.
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from concurrency_kit import Model

DEADLOCK = 60.0
"""Seconds after which a worker that has not answered is a deadlock (a failure)."""


def run_child(target: Callable[..., Any], args: tuple[Any, ...], conn: Connection) -> None:
    try:
        conn.send(("ok", target(*args)))
    except BaseException as exc:
        conn.send(("raised", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _by_value(target: Callable[..., Any], args: tuple[Any, ...]) -> bytes:
    import cloudpickle

    module = sys.modules[target.__module__]
    cloudpickle.register_pickle_by_value(module)
    try:
        return bytes(cloudpickle.dumps((target, args)))
    finally:
        cloudpickle.unregister_pickle_by_value(module)


def _in_threads(call: Callable[[int], Any], n: int, what: str) -> list[Any]:
    """``call(i)`` for each ``i < n``, each in a thread of its own; ``("ok", result)`` or
    ``("raised", message)`` each, in order. A thread still running after :data:`DEADLOCK`
    fails the test (``what`` names the worker)."""
    results: list[Any] = [("raised", "no answer")] * n

    def run(i: int) -> None:
        try:
            results[i] = ("ok", call(i))
        except BaseException as exc:
            results[i] = ("raised", f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLOCK)
        assert not t.is_alive(), f"a worker {what} hung"
    return results


def call_pickled(blob: bytes) -> Any:
    """In the worker interpreter: unpickle ``(target, args)`` and return ``target(*args)``."""
    import pickle

    target, args = pickle.loads(blob)
    return target(*args)


def run_in_interpreters(target: Callable[..., Any], arg_lists: list[tuple[Any, ...]]) -> list[Any]:
    """``target(*args)`` once per ``args``, each in a new interpreter of this process (Python
    3.14+) run by a thread of this one; ``("ok", result)`` or ``("raised", message)`` each.

    ``target`` and its arguments are pickled by value into the interpreter, which imports
    only this module (with this interpreter's ``sys.path``) to unpickle them.
    """
    from concurrent import interpreters

    n = len(arg_lists)
    # By value (cloudpickle), the target and its arguments: a test module that imports what a
    # subinterpreter cannot (numpy, hypothesis) is then never imported there.
    blobs = [_by_value(target, args) for args in arg_lists]
    interps = [interpreters.create() for _ in range(n)]
    try:
        for interp in interps:
            interp.exec(f"import sys\nsys.path[:] = {sys.path!r}")
        return _in_threads(lambda i: interps[i].call(call_pickled, blobs[i]), n, "interpreter")
    finally:
        for interp in interps:
            interp.close()


def run_parallel(
    model: Model, target: Callable[..., Any], arg_lists: list[tuple[Any, ...]]
) -> list[Any]:
    """Run ``target(barrier, *args)`` once per ``args`` in parallel workers of ``model``.

    Every worker gets the same barrier (of the model) to wait on before it starts its work.
    Returns the results in order; a worker that raised fails the test.
    """
    n = len(arg_lists)
    barrier = model.Barrier(n)
    try:
        if model.name == "interpreter":
            results = run_in_interpreters(target, [(barrier, *args) for args in arg_lists])
        elif model.name == "thread":
            results = _in_threads(lambda i: target(barrier, *arg_lists[i]), n, "thread")
        else:
            ctx = multiprocessing.get_context("forkserver")
            pipes = [ctx.Pipe(duplex=False) for _ in range(n)]
            procs = [
                ctx.Process(target=run_child, args=(target, (barrier, *args), send))
                for args, (_, send) in zip(arg_lists, pipes, strict=True)
            ]
            try:
                for p in procs:
                    p.start()
                for _, send in pipes:
                    send.close()
                results = []
                for recv, _ in pipes:
                    assert recv.poll(DEADLOCK), "a worker process did not answer (deadlock?)"
                    results.append(recv.recv())
                for p in procs:
                    p.join(DEADLOCK)
                    assert p.exitcode == 0
            finally:
                for p in procs:
                    if p.is_alive():
                        p.kill()
                        p.join()
                    p.close()
                for recv, _ in pipes:
                    recv.close()
    finally:
        barrier_close = getattr(barrier, "close", None)
        if barrier_close is not None:
            barrier_close()
    failures = [r[1] for r in results if r[0] != "ok"]
    assert not failures, failures
    return [r[1] for r in results]

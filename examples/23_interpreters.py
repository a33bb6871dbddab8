"""Interpreters (Python 3.14+): a third model, run by the same code as threads and processes.

Each worker of ``INTERPRETER.Pool`` is an interpreter of its own inside this process, with its
own GIL: pure-Python work runs in parallel as on processes. What it cannot do is said at the
end: a module without subinterpreter support (numpy, or the standard library's faulthandler)
cannot be imported in a worker, and the task fails at once with an ImportError saying so.

On an older Python the example says what it needs and exits.
"""

from __future__ import annotations

import sys
import time

from concurrency_kit import INTERPRETER, PROCESS, THREAD, PoolModel


def count_primes(limit: int) -> int:
    """Deliberately plain Python: all bytecode, no I/O, no C extension."""
    found = 0
    for n in range(2, limit):
        if all(n % d for d in range(2, int(n**0.5) + 1)):
            found += 1
    return found


def uses_faulthandler() -> bool:
    import faulthandler  # a module that refuses to load in a subinterpreter

    return faulthandler.is_enabled()


def timed_run(model: PoolModel, jobs: list[int]) -> float:
    with model.Pool(2) as pool:
        pool.submit(count_primes, 10).result()  # warm up: start a worker first
        start = time.perf_counter()
        total = sum(pool.map(count_primes, jobs, chunksize=1))
        elapsed = time.perf_counter() - start
    print(f"{model!r:>11}: {total} primes in {elapsed:.2f} s")
    return elapsed


if __name__ == "__main__":
    if sys.version_info < (3, 14):
        try:
            INTERPRETER.Pool(2)
        except ImportError as exc:
            print(f"this example needs Python 3.14 or newer; here INTERPRETER.Pool says:\n{exc}")
        sys.exit(0)

    jobs = [150_000] * 4
    seconds = {model: timed_run(model, jobs) for model in (THREAD, PROCESS, INTERPRETER)}
    print(
        f"interpreters were {seconds[THREAD] / seconds[INTERPRETER]:.1f}x as fast as threads "
        f"and {seconds[PROCESS] / seconds[INTERPRETER]:.1f}x as fast as processes"
    )

    with INTERPRETER.Pool(1) as pool:
        try:
            pool.submit(uses_faulthandler).result()
        except ImportError as exc:
            print(f"a module that cannot load in a subinterpreter: {exc}")
        print("the pool carries on:", pool.submit(count_primes, 100).result(), "primes below 100")

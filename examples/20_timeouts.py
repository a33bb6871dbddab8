"""A per-task timeout, in both models: processes kill the late worker, threads abandon it.

``schedule(fn, args, timeout=...)`` counts from when the task starts running. A process pool
kills the late worker and replaces it; a thread cannot be killed, so the thread pool fails the
future at the deadline, abandons the stuck thread and starts a new one.
"""

from __future__ import annotations

import threading
import time

from concurrency_kit import PROCESS, THREAD, Model, TaskTimeoutError


def sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "finished"


def demo(model: Model) -> None:
    # A thread cannot be killed, so the thread demo's slow task waits on an event that we set
    # at the end, to let the abandoned thread finish; a process worker simply sleeps.
    stop_waiting = threading.Event()

    def wait(seconds: float) -> str:
        stop_waiting.wait(seconds)
        return "finished"

    slow = sleep if model is PROCESS else wait
    with model.Pool(1) as pool:
        late = pool.schedule(slow, (60,), timeout=0.2)
        try:
            late.result()
        except TaskTimeoutError as exc:
            print(f"{model.name}: {exc}")
        on_time = pool.schedule(slow, (0.01,), timeout=30)
        print(f"{model.name}: the next task ran on a fresh worker: {on_time.result()}")
        stats = pool.statistics()
        print(
            f"{model.name}: timed out {stats.tasks_timed_out}, replaced {stats.workers_replaced},"
            f" abandoned threads still running {stats.workers_abandoned}"
        )
        stop_waiting.set()  # lets an abandoned thread finish; a killed process is long gone


if __name__ == "__main__":
    start = time.perf_counter()
    demo(PROCESS)
    demo(THREAD)
    print(f"both demos took {time.perf_counter() - start:.1f} s, not the 60 s the task wanted")

"""Workers advance in lock-step: a Barrier keeps anyone from starting step k+1 before all end k.

Heat spreads along a rod: at every step each cell becomes the mean of itself and its two
neighbours. Four workers each compute a quarter of the next generation from the previous one;
the cells at the edge of a quarter need a neighbour's cells, so no worker may start a step
before every worker has finished the one before. ``barrier.wait()`` at the end of each step
says exactly that, and the parallel result then equals the sequential one, bit for bit.

The same function runs with threads and with processes; the two generations live in
``multiprocessing`` shared arrays, which threads can use as well.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Sequence
from typing import Any

from concurrency_kit import PROCESS, THREAD, Model

CELLS = 64
WORKERS = 4
STEPS = 100
CTX = multiprocessing.get_context("forkserver")


def step_cells(src: Sequence[float], dst: Any, lo: int, hi: int) -> None:
    """Compute cells ``lo`` to ``hi`` of the next generation (the rod's ends reflect)."""
    for i in range(lo, hi):
        left = src[i - 1] if i > 0 else src[i]
        right = src[i + 1] if i < CELLS - 1 else src[i]
        dst[i] = (left + src[i] + right) / 3


def worker(grids: Sequence[Any], index: int, barrier: Any) -> None:
    lo, hi = index * CELLS // WORKERS, (index + 1) * CELLS // WORKERS
    for step in range(STEPS):
        step_cells(grids[step % 2], grids[(step + 1) % 2], lo, hi)
        barrier.wait()  # everyone has written generation step + 1


def sequential() -> list[float]:
    grids = [[0.0] * CELLS, [0.0] * CELLS]
    grids[0][CELLS // 2] = 1000.0
    for step in range(STEPS):
        step_cells(grids[step % 2], grids[(step + 1) % 2], 0, CELLS)
    return grids[STEPS % 2]


def run(model: Model) -> None:
    grids = [CTX.RawArray("d", CELLS), CTX.RawArray("d", CELLS)]
    grids[0][CELLS // 2] = 1000.0  # a hot spot in the middle
    barrier = model.Barrier(WORKERS)
    try:
        start = CTX.Process if model is PROCESS else threading.Thread
        runners = [start(target=worker, args=(grids, i, barrier)) for i in range(WORKERS)]
        for runner in runners:
            runner.start()
        for runner in runners:
            runner.join()
        rod = grids[STEPS % 2][:]
        print(f"{model.name}: {WORKERS} workers, {barrier.statistics().passes} barrier passes")
        print(
            f"{model.name}: every 8th cell after {STEPS} steps: {[round(t, 1) for t in rod[::8]]}"
        )
        print(f"{model.name}: equal to the sequential result: {rod == sequential()}")
        assert rod == sequential()
    finally:
        barrier.close()


if __name__ == "__main__":
    run(THREAD)
    run(PROCESS)

"""Several processes fill one NumPy array in shared memory; the parent sums it, with no copies.

A ``multiprocessing.Array`` can only be inherited when a process starts. A ``ProcessSharedArray``
is a picklable handle: it travels as an ordinary task argument of a ``ProcessPool``, and every
worker that receives it maps the same shared-memory segment. Each worker wraps that memory in a
NumPy array (``numpy.frombuffer(arr.memoryview(), ...)``: a view, not a copy) and fills its own
slice, so no lock is needed; the pool only returns how many items each worker wrote. The parent
then sees every worker's writes in its own NumPy view of the same memory.

Writers that share items would hold ``arr.lock()`` around each update (see ``docs/state.rst``).
"""

from __future__ import annotations

import os

import numpy

from concurrency_kit import ProcessPool, ProcessSharedArray

ITEMS = 1_000_000
SLICES = 8


def fill(arr: ProcessSharedArray, start: int, stop: int) -> tuple[int, int]:
    """Write sqrt(i) into items [start, stop) of the shared array, in place."""
    view = numpy.frombuffer(arr.memoryview(), dtype=numpy.float64)
    view[start:stop] = numpy.sqrt(numpy.arange(start, stop, dtype=numpy.float64))
    return os.getpid(), stop - start


def main() -> None:
    with ProcessSharedArray("d", ITEMS) as arr, ProcessPool(2) as pool:
        bounds = [(k * ITEMS // SLICES, (k + 1) * ITEMS // SLICES) for k in range(SLICES)]
        results = list(
            pool.map(fill, [arr] * SLICES, [start for start, _ in bounds], [s for _, s in bounds])
        )
        writers = sorted({pid for pid, _ in results})
        print(f"{sum(n for _, n in results)} items written by worker processes {writers}")

        items = numpy.frombuffer(arr.memoryview(), dtype=numpy.float64)
        total = items.sum()
        expected = numpy.sqrt(numpy.arange(ITEMS, dtype=numpy.float64)).sum()
        print(f"sum seen by the parent: {total:.6f}")
        print(f"sum computed locally:   {expected:.6f}")
        assert numpy.isclose(total, expected)
        print(f"arr[ITEMS - 1] = {arr[ITEMS - 1]:.6f} (indexing works too, under the array's lock)")
        same = numpy.shares_memory(numpy.asarray(arr), items)
        print(f"numpy.asarray(arr) is a view of the same memory: {same}")
        del items  # a NumPy view keeps the memory mapped: let it go before the array closes


if __name__ == "__main__":
    main()

"""Readers share an RWLock, a writer gets it alone, and nonstop readers cannot starve the writer.

Four readers read a record over and over, each read slow enough that the reads overlap: with a
reader-preferring lock the read side would never be free and the writer would wait for ever.
``RWLock`` prefers writers: once a writer waits, new readers queue behind it, so it gets in as
soon as the reads in progress end. The writer rewrites the record slot by slot (slowly, so an
unprotected reader would catch it half-written); readers check that every slot agrees.

The same function runs with threads and with processes: the record lives in a
``multiprocessing`` shared array, which threads can use as well.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

from concurrency_kit import PROCESS, THREAD, Model

READERS = 4
WRITES = 20
SLOTS = 8
READ_SECONDS = 0.002  # how long one read holds the read side: the reads overlap
PAUSE_SECONDS = 0.002  # the writer's pause between writes, so that readers get in

CTX = multiprocessing.get_context("forkserver")


def reader(
    rwlock: Any, record: Any, reads: Any, torn: Any, index: int, ready: Any, done: Any
) -> None:
    """Read the record until the writer is done; count the reads and the torn records seen."""
    count = bad = 0
    ready.wait()
    while not done.is_set():
        with rwlock.read():
            first = record[:]
            time.sleep(READ_SECONDS)  # a slow read: other readers come and go meanwhile
            if len(set(first)) != 1 or record[:] != first:
                bad += 1
        count += 1
    reads[index], torn[index] = count, bad


def writer(rwlock: Any, record: Any, waits: Any, ready: Any, done: Any) -> None:
    """Rewrite the record ``WRITES`` times; note how long each write waited for the lock."""
    try:
        ready.wait()  # every reader is running
        for version in range(1, WRITES + 1):
            asked = time.perf_counter()
            with rwlock.write():
                waits[version - 1] = time.perf_counter() - asked
                for slot in range(SLOTS):
                    record[slot] = version
                    time.sleep(READ_SECONDS / SLOTS)  # half-written, for a while
            time.sleep(PAUSE_SECONDS)
    finally:
        done.set()


def start(model: Model, target: Any, *args: Any) -> Any:
    worker = CTX.Process if model is PROCESS else threading.Thread
    runner = worker(target=target, args=args)
    runner.start()
    return runner


def run(model: Model) -> None:
    rwlock, ready, done = model.RWLock(), model.Barrier(READERS + 1), model.Event()
    record = CTX.RawArray("q", SLOTS)
    reads, torn = CTX.RawArray("q", READERS), CTX.RawArray("q", READERS)
    waits = CTX.RawArray("d", WRITES)
    try:
        readers = [
            start(model, reader, rwlock, record, reads, torn, i, ready, done)
            for i in range(READERS)
        ]
        start(model, writer, rwlock, record, waits, ready, done).join()
        for runner in readers:
            runner.join()
        stats = rwlock.statistics()
        print(
            f"{model.name}: {READERS} readers made {sum(reads)} reads {list(reads)} while the "
            f"writer made {WRITES} writes"
        )
        print(
            f"{model.name}: longest wait of the writer: {max(waits) * 1e3:.1f} ms "
            f"(one read takes {READ_SECONDS * 1e3:.1f} ms); torn records seen: {sum(torn)}"
        )
        print(
            f"{model.name}: statistics: {stats.read_acquisitions} read and "
            f"{stats.write_acquisitions} write acquisitions, {stats.contentions} had to wait"
        )
        assert record[:] == [WRITES] * SLOTS, "the last write was lost"
        assert sum(torn) == 0, "a reader saw a half-written record"
    finally:
        for primitive in (rwlock, ready, done):
            primitive.close()


if __name__ == "__main__":
    run(THREAD)
    run(PROCESS)

"""Stream NumPy frames from one process to another through a channel: one copy in, one copy out.

A ``ProcessChannel`` pickles items with protocol 5, so a NumPy array's data travels out of
band: ``send`` copies it once into the channel's shared memory, ``recv`` copies it once into
the array it returns. No pickle stream holding the data is built and no pipe carries it, which
is what a ``multiprocessing.Queue`` does with every byte.

The producer fills one buffer and sends it again and again: ``send`` has copied the frame when
it returns, so the buffer is free to be overwritten. ``capacity=8`` keeps at most eight frames
(32 MiB) in flight. The parent checks every frame and prints the throughput.
"""

from __future__ import annotations

import time

import numpy

from concurrency_kit import ProcessChannel, ProcessPool

SHAPE = (512, 1024)  # float64: 4 MiB a frame
FRAMES = 100


def produce(frames: ProcessChannel, count: int) -> None:
    """Send ``count`` frames, frame ``i`` filled with ``i``, reusing one buffer."""
    frame = numpy.empty(SHAPE, dtype=numpy.float64)
    with frames:  # closed after the last frame: the parent's loop ends
        for i in range(count):
            frame.fill(i)
            frames.send(frame)


def main() -> None:
    with ProcessChannel(capacity=8, name="frames") as frames, ProcessPool(1) as pool:
        producer = pool.submit(produce, frames, FRAMES)
        first = frames.recv()  # the clock starts once the producer is running
        start = time.perf_counter()
        received = 1
        for frame in frames:
            assert frame.shape == SHAPE
            assert frame.dtype == numpy.float64
            assert frame[0, 0] == frame[-1, -1] == received, "a frame arrived out of order"
            received += 1
        elapsed = time.perf_counter() - start
        producer.result()

    megabytes = (received - 1) * first.nbytes / 1e6
    print(f"received {received} frames of {first.nbytes / 2**20:.0f} MiB ({SHAPE}, float64)")
    print(f"throughput: {megabytes / elapsed:,.0f} MB/s ({megabytes:,.0f} MB in {elapsed:.3f} s)")
    print(f"the received array is writable and the parent's own: {first.flags.writeable}")

    # For scale: one copy of a frame within this process (the channel makes two, in parallel).
    target = numpy.empty_like(first)
    start = time.perf_counter()
    for _ in range(20):
        numpy.copyto(target, first)
    copy_rate = 20 * first.nbytes / 1e6 / (time.perf_counter() - start)
    print(f"for scale, one in-process copy of a frame runs at {copy_rate:,.0f} MB/s")


if __name__ == "__main__":
    main()

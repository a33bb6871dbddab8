"""Channels against the standard library and faster-fifo: the targets of the channels issue.

Run ``python benchmarks/bench_channels.py --help`` for the options and see ``benchmarks/README.md``
for how to read the tables. Every process contender, ours and the peers alike, runs its peer in
a child process started with ``forkserver`` (the library's default start method); this process
is the other end. Every queue has its default size unless a note under its table says otherwise
(``ProcessChannel()`` and ``ThreadChannel()`` hold 256 items, ``multiprocessing.Queue()`` and
``queue.Queue()`` are unbounded).

Benchmarks (``--only NAME``):

* ``process_int``, ``process_bytes100``: one producer process sends ``n`` small messages (an
  ``int``; a 100-byte ``bytes``) one by one to one consumer (this process) that receives them one
  by one: ``send``/``recv`` against ``multiprocessing.Queue`` ``put``/``get`` and
  ``faster_fifo.Queue`` ``put``/``get`` (messages per second, from the producer's go to the
  consumer's last receive). Targets: ours >= 2x ``multiprocessing.Queue`` and >= 1.5x
  faster-fifo.
* ``process_batch_int``, ``process_batch_bytes100``: the same messages in batches of 64:
  ``send_many``/``recv_many(64)`` against ``multiprocessing.Queue`` ``put``/``get`` one by one
  (the target: ours >= 5x) and faster-fifo's ``put_many``/``get_many``; one more row puts a list
  of 64 items as one ``multiprocessing.Queue`` message, the usual hand-made batching.
* ``process_4mib``: 4 MiB ``bytes`` payloads, one by one (bytes per second: ``1.2G/s`` is
  1.2 GB/s). The reference row is an in-process copy of the same 4 MiB into a preallocated
  ``bytearray`` (``memoryview(dst)[:] = src``, one memcpy; ``dst[:] = src`` is about half as
  fast on CPython 3.11), so the ``x ref`` column is the fraction of
  memcpy bandwidth each contender reaches; a second in-process row, ``bytes(memoryview(src))``,
  also allocates the copy, as any receiver of a new ``bytes`` must. Targets: ours >= 3x
  ``multiprocessing.Queue`` and >= 1.0x faster-fifo.
* ``process_pingpong``: a child echoes every message back: one round trip (latency, sampled one
  by one) for a pair of ``ProcessChannel`` s, a pair of ``multiprocessing.Queue`` s, a pair of
  ``faster_fifo.Queue`` s and the floor, 8 bytes over two raw pipes with ``os.write``/``os.read``.
  Target: ours <= 1.3x the pipes.
* ``process_wait_cpu``: the CPU time the consumer process spends per message (``time.process_time``)
  while the producer sleeps 0.5 ms before each send: what waiting for a message costs (a
  receiver that spins before it sleeps shows it here, and looks good in ``process_pingpong``).
  No target; the floor is a blocking ``os.read`` of 8 bytes from a raw pipe.
* ``thread_int``: the ``process_int`` benchmark between two threads of this process:
  ``ThreadChannel`` against ``queue.Queue()`` (the target: ours >= 1.0x), with
  ``queue.Queue(256)`` (the same bound as ours) and ``queue.SimpleQueue`` for reference.
* ``thread_pingpong``: the ping-pong between two threads: ``ThreadChannel`` against
  ``queue.Queue`` (target: ours <= 1.0x) and ``queue.SimpleQueue``.

A throughput round sends one "go" to the producer (started and warmed up before the rounds) and
times until the consumer has received the ``n``-th message; the last message is checked after
the clock stops. Our contenders are skipped, not failed, while ``concurrency_kit`` does not
export the channels, and faster-fifo's while it is not installed.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from itertools import repeat
from multiprocessing.connection import Connection
from typing import Any, Final, Literal

from _runner import (
    Benchmark,
    Config,
    Contender,
    Measure,
    Target,
    main,
    pipe_floor,
    sample_each,
)

START_METHOD: Final = "forkserver"
PACKAGES = ("concurrency_kit", "faster-fifo")
FASTER_FIFO = ("faster_fifo",)
DEADLOCK: Final = 60.0
"""Seconds before a peer that never answers counts as hung (only catches deadlocks)."""
BATCH: Final = 64
SMALL_BYTES: Final = bytes(range(100))
BIG: Final = 4 * 1024 * 1024
BIG_BYTES: Final = bytes(range(256)) * (BIG // 256)
"""Real pages (not the shared zero page a fresh ``bytes(BIG)`` may read from)."""
FASTER_FIFO_BIG: Final = 64 * 1024 * 1024
"""``max_size_bytes`` of the faster-fifo queue for 4 MiB payloads (its default holds 1 MB)."""
THREAD_BOUND: Final = 256

PACE: Final = 0.0005
"""Seconds the producer sleeps before each send in ``process_wait_cpu``."""

Mode = Literal["each", "many", "list", "paced"]
"""How a producer sends ``n`` items: one by one; ``BATCH`` per batch call; a list per message;
one by one, sleeping ``PACE`` seconds before each."""


def mp_context() -> Any:
    return multiprocessing.get_context(START_METHOD)


class Ends:
    """The two ends of one queue-like object, as plain callables, and how to dispose of it.

    The send callables are bound methods: a child process gets them pickled with their queue.
    """

    def __init__(
        self,
        send: Callable[[Any], object],
        recv: Callable[[], Any],
        close: Callable[[], object],
        send_many: Callable[[list[Any]], object] | None = None,
        recv_many: Callable[[int], list[Any]] | None = None,
    ) -> None:
        self.send = send
        self.recv = recv
        self.close = close
        self.send_many = send_many
        self.recv_many = recv_many


# -- the contenders' queues -------------------------------------------------------------------


def process_channel() -> Ends:
    from concurrency_kit import ProcessChannel  # an ImportError skips the contender

    channel: Any = ProcessChannel()
    return Ends(channel.send, channel.recv, channel.close, channel.send_many, channel.recv_many)


def thread_channel() -> Ends:
    from concurrency_kit import ThreadChannel  # an ImportError skips the contender

    channel: Any = ThreadChannel()
    return Ends(channel.send, channel.recv, channel.close, channel.send_many, channel.recv_many)


def mp_queue() -> Ends:
    q = mp_context().Queue()

    def close() -> None:
        q.close()
        q.join_thread()  # this process's feeder thread, if it ever put

    return Ends(q.put, q.get, close)


def faster_fifo_queue(max_size_bytes: int | None = None) -> Ends:
    import faster_fifo  # type: ignore[import-untyped]

    q = faster_fifo.Queue() if max_size_bytes is None else faster_fifo.Queue(max_size_bytes)

    def get_many(max_items: int) -> list[Any]:
        return q.get_many(max_messages_to_get=max_items)  # type: ignore[no-any-return]

    return Ends(q.put, q.get, q.close, q.put_many, get_many)


def write8(conn: Connection, item: object) -> None:
    os.write(conn.fileno(), b"ping1234")


def raw_pipe() -> Ends:
    """8 bytes per message over a pipe, raw ``os.write``/``os.read`` (blocking)."""
    reader, writer = mp_context().Pipe(duplex=False)
    rfd = reader.fileno()

    def close() -> None:
        reader.close()
        writer.close()

    return Ends(partial(write8, writer), partial(os.read, rfd, 8), close)


def thread_queue(maxsize: int = 0) -> Ends:
    q: queue.Queue[Any] = queue.Queue(maxsize)
    return Ends(q.put, q.get, lambda: None)


def simple_queue() -> Ends:
    q: queue.SimpleQueue[Any] = queue.SimpleQueue()
    return Ends(q.put, q.get, lambda: None)


# -- peers: a thread, or a child process --------------------------------------------------------


@contextmanager
def peer(
    target: Callable[..., None],
    args: tuple[Any, ...],
    in_process: bool,
    stop: Callable[[Connection], object],
) -> Iterator[Connection]:
    """Run ``target(*args, conn)`` in a child process or a thread; yield this side's ``conn``.

    The peer sends ``"ready"`` once it is set up; ``stop(conn)`` tells it to return, then it is
    joined (a child that does not exit within ``DEADLOCK`` seconds is killed).
    """
    conn, child_conn = multiprocessing.Pipe()
    runner: Any
    if in_process:
        runner = mp_context().Process(target=target, args=(*args, child_conn), name="bench-peer")
    else:
        runner = threading.Thread(target=target, args=(*args, child_conn), name="bench-peer")
    runner.start()
    try:
        if in_process:
            child_conn.close()
        if not conn.poll(DEADLOCK) or conn.recv() != "ready":
            raise AssertionError("the peer never started")
        yield conn
    finally:
        try:
            stop(conn)
        except OSError:
            pass  # the peer is gone already
        runner.join(DEADLOCK)
        if in_process:
            if runner.exitcode is None:
                runner.kill()
                runner.join()
            runner.close()
        else:
            child_conn.close()
        conn.close()


def chunk_of(payload: Any) -> list[Any]:
    """One batch: the ints ``0 .. BATCH-1``, or ``BATCH`` times the payload."""
    return list(range(BATCH)) if payload is None else [payload] * BATCH


def producer(send: Callable[[Any], object], mode: Mode, payload: Any, conn: Connection) -> None:
    """The producer (a thread, or the body of a child process): ``n`` items per command.

    ``payload`` ``None`` sends ints (``0 .. n-1`` one by one, ``0 .. BATCH-1`` per batch); else
    the same object every time. A command ``None`` ends it.
    """
    try:
        conn.send("ready")
        chunk = chunk_of(payload)
        while True:
            n = conn.recv()
            if n is None:
                return
            if mode == "paced":
                for i in range(n):
                    time.sleep(PACE)
                    send(i)
            elif mode != "each":
                for _ in repeat(None, n // BATCH):
                    send(chunk)
            elif payload is None:
                for i in range(n):
                    send(i)
            else:
                for _ in repeat(None, n):
                    send(payload)
    finally:
        conn.close()


def consume(ends: Ends, mode: Mode, n: int) -> Any:
    """Receive ``n`` items the way ``mode`` sends them; return the last one."""
    last: Any = None
    if mode in ("each", "paced"):
        recv = ends.recv
        for _ in repeat(None, n):
            last = recv()
        return last
    got = 0
    if mode == "many":
        assert ends.recv_many is not None
        recv_many = ends.recv_many
        while got < n:
            items = recv_many(BATCH)
            got += len(items)
            last = items[-1]
    else:
        recv = ends.recv
        while got < n:
            items = recv()
            got += len(items)
            last = items[-1]
    if got != n:
        raise AssertionError(f"received {got} items, {n} were sent")
    return last


def expected_last(payload: Any, mode: Mode, n: int) -> Any:
    if payload is not None:
        return payload
    return n - 1 if mode in ("each", "paced") else BATCH - 1


# -- throughput -------------------------------------------------------------------------------


def send_stop(conn: Connection) -> None:
    conn.send(None)


@contextmanager
def stream_contender(
    make: Callable[[], Ends],
    mode: Mode,
    payload: Any,
    n: int,
    in_process: bool,
    check: bool = True,
    cpu: bool = False,
) -> Iterator[Measure]:
    """One producer (a child process or a thread) sends ``n`` items per round to this thread.

    A round returns the seconds from the producer's go to the last item received, or with
    ``cpu`` the CPU seconds this process spent per item meanwhile. With ``check`` the last
    item received is compared with the last one sent, after the clock stops.
    """
    ends = make()
    try:
        send = ends.send_many if mode == "many" else ends.send
        assert send is not None
        with peer(producer, (send, mode, payload), in_process, send_stop) as conn:
            expected = expected_last(payload, mode, n)

            clock = time.process_time if cpu else time.perf_counter

            def measure() -> float:
                start = clock()
                conn.send(n)
                last = consume(ends, mode, n)
                elapsed = clock() - start
                if check and last != expected:  # checked outside the timed work
                    raise AssertionError("the last item received is not the last one sent")
                return elapsed / n if cpu else elapsed

            yield measure
    finally:
        ends.close()


@contextmanager
def memcpy_contender(n: int, allocate: bool) -> Iterator[Measure]:
    """Copy ``BIG_BYTES`` ``n`` times in this process: into one ``bytearray``, or into new bytes."""
    src = BIG_BYTES
    dst = memoryview(bytearray(BIG))  # a memoryview slice assignment is one memcpy

    def measure() -> float:
        start = time.perf_counter()
        if allocate:
            for _ in repeat(None, n):
                copy = bytes(memoryview(src))
            del copy
        else:
            for _ in repeat(None, n):
                dst[:] = src
        return time.perf_counter() - start

    yield measure


# -- ping-pong --------------------------------------------------------------------------------


def echo_peer(recv: Callable[[], Any], send: Callable[[Any], object], conn: Connection) -> None:
    """The echo peer (a thread, or the body of a child process): send back every item received
    until ``None``."""
    try:
        conn.send("ready")
        while True:
            item = recv()
            if item is None:
                return
            send(item)
    finally:
        conn.close()


@contextmanager
def pingpong_contender(make: Callable[[], Ends], k: int, in_process: bool) -> Iterator[Measure]:
    """``k`` round trips per round, each timed: send ``1`` on ``ping``, receive it on ``pong``."""
    ping = make()
    try:
        pong = make()
        try:
            with peer(
                echo_peer,
                (ping.recv, pong.send),
                in_process,
                lambda _conn: ping.send(None),
            ):
                send, recv = ping.send, pong.recv

                def round_trip() -> None:
                    send(1)
                    if recv() != 1:
                        raise AssertionError("the echo peer answered something else")

                for _ in range(20):
                    round_trip()
                yield sample_each(round_trip, k)
        finally:
            pong.close()
    finally:
        ping.close()


# -- the benchmarks ---------------------------------------------------------------------------


def small_benchmarks(config: Config) -> list[Benchmark]:
    n = config.size(BATCH * 1_500, BATCH * 250, BATCH * 4)
    benchmarks = []
    for name, payload, what in (
        ("int", None, "ints"),
        ("bytes100", SMALL_BYTES, "100-byte bytes"),
    ):
        stream = partial(stream_contender, payload=payload, n=n, in_process=True)
        benchmarks.append(
            Benchmark(
                name=f"process_{name}",
                title=f"one producer process -> one consumer process, {n} {what} one by one",
                kind="throughput",
                unit="msgs",
                reference="multiprocessing.Queue",
                contenders=(
                    Contender("ProcessChannel", partial(stream, process_channel, "each"), items=n),
                    Contender("multiprocessing.Queue", partial(stream, mp_queue, "each"), items=n),
                    Contender(
                        "faster_fifo.Queue",
                        partial(stream, faster_fifo_queue, "each"),
                        items=n,
                        requires=FASTER_FIFO,
                    ),
                ),
                targets=(
                    Target("ProcessChannel", "multiprocessing.Queue", 2.0),
                    Target("ProcessChannel", "faster_fifo.Queue", 1.5),
                ),
            )
        )
    for name, payload, what in (
        ("int", None, "ints"),
        ("bytes100", SMALL_BYTES, "100-byte bytes"),
    ):
        stream = partial(stream_contender, payload=payload, n=n, in_process=True)
        benchmarks.append(
            Benchmark(
                name=f"process_batch_{name}",
                title=f"one producer process -> one consumer process, {n} {what} in batches "
                f"of {BATCH}",
                kind="throughput",
                unit="msgs",
                reference="multiprocessing.Queue",
                contenders=(
                    Contender(
                        "ProcessChannel send_many",
                        partial(stream, process_channel, "many"),
                        items=n,
                        note=f"send_many(batch) / recv_many({BATCH})",
                    ),
                    Contender(
                        "multiprocessing.Queue",
                        partial(stream, mp_queue, "each"),
                        items=n,
                        note="put / get one by one",
                    ),
                    Contender(
                        "multiprocessing.Queue list",
                        partial(stream, mp_queue, "list"),
                        items=n,
                        note=f"put(batch) / get(): a list of {BATCH} items per message",
                    ),
                    Contender(
                        "faster_fifo put_many",
                        partial(stream, faster_fifo_queue, "many"),
                        items=n,
                        requires=FASTER_FIFO,
                        note=f"put_many(batch) / get_many(max_messages_to_get={BATCH})",
                    ),
                ),
                targets=(Target("ProcessChannel send_many", "multiprocessing.Queue", 5.0),),
            )
        )
    return benchmarks


def big_benchmark(config: Config) -> Benchmark:
    n = config.size(150, 40, 2)
    items = n * BIG
    stream = partial(stream_contender, mode="each", payload=BIG_BYTES, n=n, in_process=True)
    return Benchmark(
        name="process_4mib",
        title=f"one producer process -> one consumer process, {n} bytes payloads of 4 MiB "
        "(bytes/s; x ref: the fraction of memcpy)",
        kind="throughput",
        unit="bytes",
        reference="memcpy (in-process)",
        contenders=(
            Contender(
                "memcpy (in-process)",
                partial(memcpy_contender, n, False),
                items=items,
                note="memoryview(dst)[:] = src, a preallocated 4 MiB bytearray, this process only",
            ),
            Contender(
                "bytes(memoryview) (in-process)",
                partial(memcpy_contender, n, True),
                items=items,
                note="a new 4 MiB bytes per copy, this process only",
            ),
            Contender("ProcessChannel", partial(stream, process_channel), items=items),
            Contender("multiprocessing.Queue", partial(stream, mp_queue), items=items),
            Contender(
                "faster_fifo.Queue",
                partial(stream, partial(faster_fifo_queue, FASTER_FIFO_BIG)),
                items=items,
                requires=FASTER_FIFO,
                note=f"max_size_bytes={FASTER_FIFO_BIG // 2**20} MiB (the default holds 1 MB)",
            ),
        ),
        targets=(
            Target("ProcessChannel", "multiprocessing.Queue", 3.0),
            Target("ProcessChannel", "faster_fifo.Queue", 1.0),
        ),
    )


def pingpong_benchmarks(config: Config) -> list[Benchmark]:
    k = config.size(3_000, 500, 20)
    process = partial(pingpong_contender, k=k, in_process=True)
    thread = partial(pingpong_contender, k=k, in_process=False)
    return [
        Benchmark(
            name="process_pingpong",
            title=f"one message to a child process and back ({k} samples per round)",
            kind="latency",
            unit="us",
            reference="os.pipe ping-pong (floor)",
            contenders=(
                Contender("ProcessChannel", partial(process, process_channel)),
                Contender("multiprocessing.Queue", partial(process, mp_queue)),
                Contender(
                    "faster_fifo.Queue", partial(process, faster_fifo_queue), requires=FASTER_FIFO
                ),
                Contender(
                    "os.pipe ping-pong (floor)",
                    partial(pipe_floor, mp_context(), k),
                    note=(
                        "8 bytes to a child process and back over two pipes, raw os.write/os.read; "
                        "often bimodal (compare q1 and q3): fast when the other CPU is awake"
                    ),
                ),
            ),
            targets=(Target("ProcessChannel", "os.pipe ping-pong (floor)", 1.3),),
        ),
        Benchmark(
            name="thread_pingpong",
            title=f"one message to another thread and back ({k} samples per round)",
            kind="latency",
            unit="us",
            reference="queue.Queue",
            contenders=(
                Contender("ThreadChannel", partial(thread, thread_channel)),
                Contender("queue.Queue", partial(thread, thread_queue)),
                Contender("queue.SimpleQueue", partial(thread, simple_queue)),
            ),
            targets=(Target("ThreadChannel", "queue.Queue", 1.0),),
        ),
    ]


def wait_cpu_benchmark(config: Config) -> Benchmark:
    n = config.size(400, 100, 10)
    stream = partial(stream_contender, mode="paced", payload=None, n=n, in_process=True, cpu=True)
    return Benchmark(
        name="process_wait_cpu",
        title=f"CPU time of a consumer process per message, {n} ints sent "
        f"{PACE * 1e3:g} ms apart (what waiting costs)",
        kind="latency",
        unit="us",
        reference="multiprocessing.Queue",
        contenders=(
            Contender("ProcessChannel", partial(stream, process_channel)),
            Contender("multiprocessing.Queue", partial(stream, mp_queue)),
            Contender(
                "faster_fifo.Queue", partial(stream, faster_fifo_queue), requires=FASTER_FIFO
            ),
            Contender(
                "os.pipe (floor)",
                partial(stream, raw_pipe, check=False),
                note="8 bytes per message, raw os.write/os.read; the consumer blocks in read",
            ),
        ),
    )


def thread_benchmark(config: Config) -> Benchmark:
    n = config.size(BATCH * 3_000, BATCH * 500, BATCH * 4)
    stream = partial(stream_contender, mode="each", payload=None, n=n, in_process=False)
    return Benchmark(
        name="thread_int",
        title=f"one producer thread -> one consumer thread, {n} ints one by one",
        kind="throughput",
        unit="msgs",
        reference="queue.Queue",
        contenders=(
            Contender("ThreadChannel", partial(stream, thread_channel), items=n),
            Contender("queue.Queue", partial(stream, thread_queue), items=n, note="unbounded"),
            Contender(
                f"queue.Queue({THREAD_BOUND})",
                partial(stream, partial(thread_queue, THREAD_BOUND)),
                items=n,
                note="bounded like ThreadChannel()",
            ),
            Contender("queue.SimpleQueue", partial(stream, simple_queue), items=n),
        ),
        targets=(Target("ThreadChannel", "queue.Queue", 1.0),),
    )


def build(config: Config) -> list[Benchmark]:
    """Every benchmark of this script, sized for ``config``."""
    ping_process, ping_thread = pingpong_benchmarks(config)
    return [
        *small_benchmarks(config),
        big_benchmark(config),
        ping_process,
        wait_cpu_benchmark(config),
        thread_benchmark(config),
        ping_thread,
    ]


if __name__ == "__main__":
    sys.exit(main(build, description=__doc__ or "", packages=PACKAGES))

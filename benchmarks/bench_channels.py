"""Channels against the standard library and faster-fifo: the targets of issue 17 ("channels
fast at every capacity"), every cell of its table in one run.

Run ``python benchmarks/bench_channels.py --help`` for the options and see ``benchmarks/README.md``
for how to read the tables. Every process contender, ours and the peers alike, runs its peers in
child processes started with ``forkserver`` (the library's default start method); this process is
the consumer. Each table's title names its configuration (producers, capacity, payload, ``n``,
start method) and the notes under it the exact constructor of every contender.

Matching capacities: ``ProcessChannel(capacity=c)`` runs against
``multiprocessing.Queue(maxsize=c)`` (``maxsize=0`` for ``c=None``, unbounded) and
``faster_fifo.Queue(max_size_bytes=b)``. faster-fifo bounds bytes, not items: each message takes
an 8-byte length header plus its pickle (``ForkingPickler.dumps``) in its ring, so
``b = c * (8 + pickled size of the largest item)``, which holds exactly ``c`` messages (at least
one), capped at 256 MiB, the default ``shared_memory_size`` of ``ProcessChannel`` and so the
most bytes ours holds; ``c=None`` gets those 256 MiB too.

Benchmarks (``--only NAME``; ``CAP`` is ``cap1``, ``cap64``, ``cap256``, ``cap257``,
``cap1024``, ``cap65536`` or ``unbounded``):

* ``process_int_CAP``, ``process_bytes100_CAP``: one producer process sends ``n`` messages (an
  ``int``; a 100-byte ``bytes``) one by one to one consumer (this process) that receives them one
  by one: ``send``/``recv`` against ``put``/``get`` (messages per second, from the producer's go
  to the consumer's last receive). Targets: ours >= 2x ``multiprocessing.Queue`` and >= 1.5x
  faster-fifo, at every capacity.
* ``process_2to1_CAP``, ``process_4to1_CAP`` (``cap256``, ``unbounded``): 2 (4) producer
  processes each send ``n / 2`` (``n / 4``) ints to one consumer. Targets: >= 1.5x
  ``multiprocessing.Queue``, >= 1.2x faster-fifo.
* ``process_64kib_CAP`` (``cap256``, ``unbounded``): 64 KiB ``bytes`` one by one (bytes per
  second). Targets: >= 1.5x ``multiprocessing.Queue``, >= 1.0x faster-fifo.
* ``process_4mib_CAP`` (``cap256``, ``unbounded``): 4 MiB ``bytes`` one by one (bytes per
  second). Two in-process rows for reference: the reference row copies the same 4 MiB into a
  preallocated ``bytearray`` (``memoryview(dst)[:] = src``, one memcpy), so the ``x ref``
  column is the fraction of memcpy bandwidth each contender reaches; ``bytes(memoryview(src))``
  also allocates the copy, as any receiver of a new ``bytes`` must. Targets: >= 3x
  ``multiprocessing.Queue``, >= 1.2x faster-fifo.
* ``process_batch_int``, ``process_batch_bytes100``: the small messages in batches of 64:
  ``send_many``/``recv_many(64)`` on ``ProcessChannel()`` (capacity 256, the default) and on
  ``ProcessChannel(None)`` (unbounded, as ``multiprocessing.Queue()`` is) against the hand-made
  batching, a list of 64 items per ``multiprocessing.Queue().put``/``get`` (the target, for
  both: ours >= 1.0x), and faster-fifo's ``put_many``/``get_many`` for reference.
* ``process_rendezvous``: ints one by one through ``ProcessChannel(capacity=0)`` (each
  ``send`` returns once the consumer has taken its item) against
  ``multiprocessing.Queue(maxsize=1)`` (target: ours >= 1.0x), and a faster-fifo queue holding
  one message for reference.
* ``process_pingpong``: a child echoes every message back: one round trip (latency, sampled one
  by one) for a pair of ``ProcessChannel()``, of ``multiprocessing.Queue()`` and of
  ``faster_fifo.Queue()``, and the floor, 8 bytes over two blocking raw pipes
  (``os.write``/``os.read``). Target: ours <= 1.0x the pipes.
* ``process_wait_cpu``: the CPU time the consumer process spends per message
  (``time.process_time``) while the producer sleeps 0.5 ms before each send: what waiting for a
  message costs (a receiver that spins before it sleeps shows it here, and looks good in
  ``process_pingpong``). For reference, no target; the floor is a blocking ``os.read``.
* ``thread_int_cap256``, ``thread_int_unbounded``: ints one by one between two threads of this
  process: ``ThreadChannel(256)`` against ``queue.Queue(256)`` and ``ThreadChannel(None)``
  against ``queue.Queue()`` (targets: ours >= 2x), ``queue.SimpleQueue`` for reference.
* ``thread_pingpong``: the ping-pong between two threads: ``ThreadChannel`` against
  ``queue.Queue`` and ``queue.SimpleQueue``, for reference (no target).
* ``process_resident``: a producer process sends a burst of 32 items of 4 MiB into
  ``ProcessChannel(None)``; once all are sent this process receives them, then waits on the
  empty channel (``recv(timeout=1.0)``). The bytes of the channel's shared-memory store that are
  resident (``st_blocks`` of its file in ``/dev/shm``): while it holds the burst, as the last
  item is received, and after the 1 s wait. Target: <= 1 MiB after the wait.

A throughput round sends one "go" to the producers (started and warmed up before the rounds)
and times until the consumer has received the ``n``-th message; the last message is checked
after the clock stops. Our contenders are skipped, not failed, while ``concurrency_kit`` does not
export the channels, and faster-fifo's while it is not installed.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from functools import partial
from itertools import repeat
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
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
MEDIUM: Final = 64 * 1024
MEDIUM_BYTES: Final = bytes(range(256)) * (MEDIUM // 256)
BIG: Final = 4 * 1024 * 1024
BIG_BYTES: Final = bytes(range(256)) * (BIG // 256)
"""Real pages (not the shared zero page a fresh ``bytes(BIG)`` may read from)."""
MIB: Final = 1024 * 1024
STORE_BYTES: Final = 256 * MIB
"""``ProcessChannel``'s default ``shared_memory_size``: the most bytes it holds; faster-fifo's
buffer is capped at the same size."""
FASTER_FIFO_HEADER: Final = 8
"""faster-fifo's per-message overhead in its ring: a ``size_t`` length before each pickle."""
CAPACITIES: Final[tuple[int | None, ...]] = (1, 64, 256, 257, 1024, 65536, None)
"""The capacities of the one-producer small-message sweep (issue 17)."""
PAIR: Final[tuple[int | None, ...]] = (256, None)
"""The capacities of the other process cells."""
DEFAULT_CAPACITY: Final = 256
"""``ProcessChannel()`` and ``ThreadChannel()``."""

PACE: Final = 0.0005
"""Seconds the producer sleeps before each send in ``process_wait_cpu``."""
BURST: Final = 32
"""Items of 4 MiB in the ``process_resident`` burst."""
IDLE_WAIT: Final = 1.0
"""Seconds the receiver waits on the emptied channel before ``process_resident`` looks again."""
RESIDENT_BOUND: Final = 1 * MIB
MEMCPY_FACTOR: Final = 10
"""The in-process 4 MiB copies make this many times the items of a ``process_4mib`` round."""
LIST_FACTOR: Final = 2
"""``multiprocessing.Queue`` with a list per message sends this many times the items of our
``send_many`` per round, and faster-fifo's ``put_many`` (much slower) one
``FASTER_FIFO_BATCH_SHARE``-th of them: rounds of about the same length (as measured when the
sizes were set), none too short to time. Throughput does not depend on the count."""
FASTER_FIFO_BATCH_SHARE: Final = 16

SendMode = Literal["each", "many", "list", "paced"]
"""How a producer sends ``n`` items: one by one; ``BATCH`` per batch call; a list per message;
one by one, sleeping ``PACE`` seconds before each."""


def mp_context() -> Any:
    return multiprocessing.get_context(START_METHOD)


def cap_name(capacity: int | None) -> str:
    """``cap256``, or ``unbounded`` for ``None``: the suffix of a benchmark's name."""
    return "unbounded" if capacity is None else f"cap{capacity}"


def cap_text(capacity: int | None) -> str:
    return "None (unbounded)" if capacity is None else str(capacity)


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


def process_channel(capacity: int | None = DEFAULT_CAPACITY) -> Ends:
    from concurrency_kit import ProcessChannel  # an ImportError skips the contender

    channel: Any = ProcessChannel(capacity)
    return Ends(channel.send, channel.recv, channel.close, channel.send_many, channel.recv_many)


def thread_channel(capacity: int | None = DEFAULT_CAPACITY) -> Ends:
    from concurrency_kit import ThreadChannel  # an ImportError skips the contender

    channel: Any = ThreadChannel(capacity)
    return Ends(channel.send, channel.recv, channel.close, channel.send_many, channel.recv_many)


def mp_queue(maxsize: int = 0) -> Ends:
    q = mp_context().Queue(maxsize)

    def close() -> None:
        q.close()
        q.join_thread()  # this process's feeder thread, if it ever put

    return Ends(q.put, q.get, close)


def faster_fifo_queue(max_size_bytes: int | None = None) -> Ends:
    import faster_fifo  # type: ignore[import-not-found,import-untyped,unused-ignore]

    q = faster_fifo.Queue() if max_size_bytes is None else faster_fifo.Queue(max_size_bytes)

    def get_many(max_items: int) -> list[Any]:
        return q.get_many(max_messages_to_get=max_items)  # type: ignore[no-any-return]

    # put/get wait at most 10 s by default; a peer that slow is hung anyway.
    return Ends(q.put, q.get, q.close, q.put_many, get_many)


def faster_fifo_bytes(capacity: int | None, largest: Any) -> int:
    """faster-fifo's ``max_size_bytes`` holding ``capacity`` messages as large as ``largest``
    (at least one), capped at ``STORE_BYTES`` (also the size for ``None``)."""
    if capacity is None:
        return STORE_BYTES
    per_message = FASTER_FIFO_HEADER + len(ForkingPickler.dumps(largest))
    return min(max(1, capacity) * per_message, STORE_BYTES)


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


def producer(send: Callable[[Any], object], mode: SendMode, payload: Any, conn: Connection) -> None:
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


def consume(ends: Ends, mode: SendMode, n: int) -> Any:
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


def expected_last(payload: Any, mode: SendMode, n: int) -> Any:
    if payload is not None:
        return payload
    return n - 1 if mode in ("each", "paced") else BATCH - 1


# -- throughput -------------------------------------------------------------------------------


def send_stop(conn: Connection) -> None:
    conn.send(None)


@contextmanager
def stream_contender(
    make: Callable[[], Ends],
    mode: SendMode,
    payload: Any,
    n: int,
    in_process: bool,
    producers: int = 1,
    check: bool = True,
    cpu: bool = False,
) -> Iterator[Measure]:
    """``producers`` producers (child processes or threads) send ``n`` items per round, ``n /
    producers`` each, to this thread.

    A round returns the seconds from the producers' go to the last item received, or with
    ``cpu`` the CPU seconds this process spent per item meanwhile. With ``check`` the last
    item received is compared with the last one sent (one producer), or its type with the
    payload's (several), after the clock stops.
    """
    if n % producers:
        raise ValueError(f"{n} items do not split evenly between {producers} producers")
    share = n // producers
    ends = make()
    try:
        send = ends.send_many if mode == "many" else ends.send
        assert send is not None
        with ExitStack() as stack:
            conns = [
                stack.enter_context(peer(producer, (send, mode, payload), in_process, send_stop))
                for _ in range(producers)
            ]
            expected = expected_last(payload, mode, share)
            clock = time.process_time if cpu else time.perf_counter

            def measure() -> float:
                start = clock()
                for conn in conns:
                    conn.send(share)
                last = consume(ends, mode, n)
                elapsed = clock() - start
                if check:  # checked outside the timed work
                    same = type(last) is type(expected) if producers > 1 else last == expected
                    if not same:
                        raise AssertionError("the last item received is not one that was sent")
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


# -- resident memory --------------------------------------------------------------------------


def burst_producer(channel: Any, payload: Any, conn: Connection) -> None:
    """The body of a child process: per command ``count``, send ``count`` times ``payload``,
    then answer ``"sent"``; a command ``None`` ends it."""
    try:
        conn.send("ready")
        while True:
            count = conn.recv()
            if count is None:
                return
            for _ in repeat(None, count):
                channel.send(payload)
            conn.send("sent")
    finally:
        conn.close()


When = Literal["holding", "emptied", "idle"]


@contextmanager
def resident_contender(count: int, when: When) -> Iterator[Measure]:
    """A burst of ``count`` 4 MiB items per round through ``ProcessChannel(None)``; a round
    returns the resident bytes of the channel's store at the moment ``when``: all items sent
    (``holding``), the last one received (``emptied``), or after waiting ``IDLE_WAIT`` seconds
    on the empty channel (``idle``)."""
    from concurrency_kit import ChannelTimeout, ProcessChannel  # an ImportError skips it

    channel: Any = ProcessChannel(None)
    # A private attribute, fine in a benchmark: the shared-memory segment holding the store.
    path = f"/dev/shm/{channel._store.name}"

    def resident() -> float:
        return float(os.stat(path).st_blocks * 512)

    try:
        with peer(burst_producer, (channel, BIG_BYTES), True, send_stop) as conn:

            def measure() -> float:
                conn.send(count)
                if not conn.poll(DEADLOCK) or conn.recv() != "sent":
                    raise AssertionError("the producer never sent its burst")
                value = resident()
                for _ in repeat(None, count):
                    if channel.recv(timeout=DEADLOCK) != BIG_BYTES:
                        raise AssertionError("received something else than the burst")
                if when == "emptied":
                    value = resident()
                elif when == "idle":
                    try:
                        channel.recv(timeout=IDLE_WAIT)
                    except ChannelTimeout:
                        value = resident()
                    else:
                        raise AssertionError("an item came out of an empty channel")
                return value

            yield measure
    finally:
        channel.close()


# -- the benchmarks ---------------------------------------------------------------------------

PAYLOADS: Final = (("int", None, "ints"), ("bytes100", SMALL_BYTES, "100-byte bytes"))

SMALL_N: Final[dict[int | None, tuple[int, int, int]]] = {
    # capacity: (full, quick, smoke) messages per round; multiples of 4 * BATCH
    1: (BATCH * 160, BATCH * 64, BATCH * 4),
    64: (BATCH * 1_000, BATCH * 200, BATCH * 4),
    256: (BATCH * 1_000, BATCH * 200, BATCH * 4),
    257: (BATCH * 1_000, BATCH * 200, BATCH * 4),
    1024: (BATCH * 1_000, BATCH * 200, BATCH * 4),
    65536: (BATCH * 1_000, BATCH * 200, BATCH * 4),
    None: (BATCH * 1_000, BATCH * 200, BATCH * 4),
}


def matching_contenders(
    stream: Callable[..., Any],
    capacity: int | None,
    largest: Any,
    items: int,
) -> tuple[Contender, ...]:
    """Ours, ``multiprocessing.Queue`` and faster-fifo at the same ``capacity`` (see the module
    docstring for faster-fifo's bytes)."""
    ff_bytes = faster_fifo_bytes(capacity, largest)
    ff_rule = (
        f"{ff_bytes // MIB} MiB, as ProcessChannel's store (unbounded)"
        if capacity is None
        else f"{capacity} x ({FASTER_FIFO_HEADER} + {len(ForkingPickler.dumps(largest))}) bytes "
        "(length header + pickle of the largest item)"
        + (f", capped at {STORE_BYTES // MIB} MiB" if ff_bytes == STORE_BYTES else "")
    )
    return (
        Contender(
            "ProcessChannel",
            partial(stream, partial(process_channel, capacity)),
            items=items,
            note=f"ProcessChannel(capacity={capacity})",
        ),
        Contender(
            "multiprocessing.Queue",
            partial(stream, partial(mp_queue, capacity or 0)),
            items=items,
            note=f"multiprocessing.Queue(maxsize={capacity or 0})",
        ),
        Contender(
            "faster_fifo.Queue",
            partial(stream, partial(faster_fifo_queue, ff_bytes)),
            items=items,
            requires=FASTER_FIFO,
            note=f"faster_fifo.Queue(max_size_bytes={ff_bytes}): {ff_rule}",
        ),
    )


def small_benchmarks(config: Config) -> list[Benchmark]:
    benchmarks = []
    for name, payload, what in PAYLOADS:
        for capacity in CAPACITIES:
            n = config.size(*SMALL_N[capacity])
            stream = partial(stream_contender, mode="each", payload=payload, n=n, in_process=True)
            largest = n - 1 if payload is None else payload
            benchmarks.append(
                Benchmark(
                    name=f"process_{name}_{cap_name(capacity)}",
                    title=f"1 producer process -> 1 consumer process, {what} one by one, "
                    f"capacity {cap_text(capacity)}, n={n}, {START_METHOD}",
                    kind="throughput",
                    unit="msgs",
                    reference="multiprocessing.Queue",
                    contenders=matching_contenders(stream, capacity, largest, n),
                    targets=(
                        Target("ProcessChannel", "multiprocessing.Queue", 2.0),
                        Target("ProcessChannel", "faster_fifo.Queue", 1.5),
                    ),
                )
            )
    return benchmarks


def multi_benchmarks(config: Config) -> list[Benchmark]:
    n = config.size(BATCH * 1_000, BATCH * 200, BATCH * 4)
    benchmarks = []
    for producers in (2, 4):
        for capacity in PAIR:
            stream = partial(
                stream_contender,
                mode="each",
                payload=None,
                n=n,
                in_process=True,
                producers=producers,
            )
            benchmarks.append(
                Benchmark(
                    name=f"process_{producers}to1_{cap_name(capacity)}",
                    title=f"{producers} producer processes -> 1 consumer process, ints one by "
                    f"one ({n // producers} each), capacity {cap_text(capacity)}, n={n}, "
                    f"{START_METHOD}",
                    kind="throughput",
                    unit="msgs",
                    reference="multiprocessing.Queue",
                    contenders=matching_contenders(stream, capacity, n // producers - 1, n),
                    targets=(
                        Target("ProcessChannel", "multiprocessing.Queue", 1.5),
                        Target("ProcessChannel", "faster_fifo.Queue", 1.2),
                    ),
                )
            )
    return benchmarks


def medium_benchmarks(config: Config) -> list[Benchmark]:
    n = config.size(8_000, 2_000, 8)
    benchmarks = []
    for capacity in PAIR:
        stream = partial(stream_contender, mode="each", payload=MEDIUM_BYTES, n=n, in_process=True)
        benchmarks.append(
            Benchmark(
                name=f"process_64kib_{cap_name(capacity)}",
                title=f"1 producer process -> 1 consumer process, 64 KiB bytes one by one, "
                f"capacity {cap_text(capacity)}, n={n}, {START_METHOD} (bytes/s)",
                kind="throughput",
                unit="bytes",
                reference="multiprocessing.Queue",
                contenders=matching_contenders(stream, capacity, MEDIUM_BYTES, n * MEDIUM),
                targets=(
                    Target("ProcessChannel", "multiprocessing.Queue", 1.5),
                    Target("ProcessChannel", "faster_fifo.Queue", 1.0),
                ),
            )
        )
    return benchmarks


def big_benchmarks(config: Config) -> list[Benchmark]:
    n = config.size(120, 30, 2)
    items = n * BIG
    copies = n * MEMCPY_FACTOR  # an in-process copy is ~10x faster: rounds as long as the others
    benchmarks = []
    for capacity in PAIR:
        stream = partial(stream_contender, mode="each", payload=BIG_BYTES, n=n, in_process=True)
        benchmarks.append(
            Benchmark(
                name=f"process_4mib_{cap_name(capacity)}",
                title=f"1 producer process -> 1 consumer process, 4 MiB bytes one by one, "
                f"capacity {cap_text(capacity)}, n={n}, {START_METHOD} "
                "(bytes/s; x ref: the fraction of memcpy)",
                kind="throughput",
                unit="bytes",
                reference="memcpy (in-process)",
                contenders=(
                    Contender(
                        "memcpy (in-process)",
                        partial(memcpy_contender, copies, False),
                        items=copies * BIG,
                        note="memoryview(dst)[:] = src, a preallocated 4 MiB bytearray, "
                        f"this process only, n={copies}",
                    ),
                    Contender(
                        "bytes(memoryview) (in-process)",
                        partial(memcpy_contender, copies, True),
                        items=copies * BIG,
                        note=f"a new 4 MiB bytes per copy, this process only, n={copies}",
                    ),
                    *matching_contenders(stream, capacity, BIG_BYTES, items),
                ),
                targets=(
                    Target("ProcessChannel", "multiprocessing.Queue", 3.0),
                    Target("ProcessChannel", "faster_fifo.Queue", 1.2),
                ),
            )
        )
    return benchmarks


def batch_benchmarks(config: Config) -> list[Benchmark]:
    n = config.size(BATCH * 8_000, BATCH * 1_600, BATCH * 16)
    n_list = n * LIST_FACTOR
    n_ff = n // FASTER_FIFO_BATCH_SHARE
    benchmarks = []
    for name, payload, what in PAYLOADS:
        stream = partial(stream_contender, payload=payload, in_process=True)
        largest = BATCH - 1 if payload is None else payload
        ff_bytes = faster_fifo_bytes(DEFAULT_CAPACITY, largest)
        benchmarks.append(
            Benchmark(
                name=f"process_batch_{name}",
                title=f"1 producer process -> 1 consumer process, {what} in batches of {BATCH}, "
                f"n={n} (per row: see the notes), {START_METHOD}",
                kind="throughput",
                unit="msgs",
                reference="multiprocessing.Queue list",
                contenders=(
                    Contender(
                        "ProcessChannel send_many",
                        partial(stream, process_channel, "many", n=n),
                        items=n,
                        note=f"ProcessChannel() (capacity {DEFAULT_CAPACITY}): "
                        f"send_many(batch) / recv_many({BATCH}), n={n}",
                    ),
                    Contender(
                        "ProcessChannel(None) send_many",
                        partial(stream, partial(process_channel, None), "many", n=n),
                        items=n,
                        note=f"ProcessChannel(None) (unbounded, like multiprocessing.Queue()): "
                        f"send_many(batch) / recv_many({BATCH}), n={n}",
                    ),
                    Contender(
                        "multiprocessing.Queue list",
                        partial(stream, mp_queue, "list", n=n_list),
                        items=n_list,
                        note=f"multiprocessing.Queue(): put(batch) / get(), a list of {BATCH} "
                        f"items per message (the hand-made batching), n={n_list} (a round as "
                        "long as the others')",
                    ),
                    Contender(
                        "faster_fifo put_many",
                        partial(stream, partial(faster_fifo_queue, ff_bytes), "many", n=n_ff),
                        items=n_ff,
                        requires=FASTER_FIFO,
                        note=f"faster_fifo.Queue(max_size_bytes={ff_bytes}), {DEFAULT_CAPACITY} "
                        f"items as in the module docstring: put_many(batch) / "
                        f"get_many(max_messages_to_get={BATCH}), n={n_ff} (a round as long as "
                        "the others')",
                    ),
                ),
                targets=(
                    Target("ProcessChannel send_many", "multiprocessing.Queue list", 1.0),
                    Target("ProcessChannel(None) send_many", "multiprocessing.Queue list", 1.0),
                ),
            )
        )
    return benchmarks


def rendezvous_benchmark(config: Config) -> Benchmark:
    n = config.size(BATCH * 64, BATCH * 24, BATCH * 4)
    stream = partial(stream_contender, mode="each", payload=None, n=n, in_process=True)
    ff_bytes = faster_fifo_bytes(1, n - 1)
    return Benchmark(
        name="process_rendezvous",
        title=f"1 producer process -> 1 consumer process, ints one by one, rendezvous, n={n}, "
        f"{START_METHOD}",
        kind="throughput",
        unit="msgs",
        reference="multiprocessing.Queue",
        contenders=(
            Contender(
                "ProcessChannel",
                partial(stream, partial(process_channel, 0)),
                items=n,
                note="ProcessChannel(capacity=0): send returns once its item is taken",
            ),
            Contender(
                "multiprocessing.Queue",
                partial(stream, partial(mp_queue, 1)),
                items=n,
                note="multiprocessing.Queue(maxsize=1): put returns once the item is queued",
            ),
            Contender(
                "faster_fifo.Queue",
                partial(stream, partial(faster_fifo_queue, ff_bytes)),
                items=n,
                requires=FASTER_FIFO,
                note=f"faster_fifo.Queue(max_size_bytes={ff_bytes}): one message, for reference",
            ),
        ),
        targets=(Target("ProcessChannel", "multiprocessing.Queue", 1.0),),
    )


def pingpong_benchmarks(config: Config) -> list[Benchmark]:
    k = config.size(3_000, 500, 20)
    process = partial(pingpong_contender, k=k, in_process=True)
    thread = partial(pingpong_contender, k=k, in_process=False)
    return [
        Benchmark(
            name="process_pingpong",
            title=f"one int to a child process and back, {k} samples per round, {START_METHOD}",
            kind="latency",
            unit="us",
            reference="os.pipe ping-pong (floor)",
            contenders=(
                Contender(
                    "ProcessChannel", partial(process, process_channel), note="ProcessChannel()"
                ),
                Contender(
                    "multiprocessing.Queue",
                    partial(process, mp_queue),
                    note="multiprocessing.Queue()",
                ),
                Contender(
                    "faster_fifo.Queue",
                    partial(process, faster_fifo_queue),
                    requires=FASTER_FIFO,
                    note="faster_fifo.Queue() (its default 1 MB)",
                ),
                Contender(
                    "os.pipe ping-pong (floor)",
                    partial(pipe_floor, mp_context(), k),
                    note=(
                        "8 bytes to a child process and back over two pipes, raw blocking "
                        "os.write/os.read; often bimodal (compare q1 and q3): fast when the "
                        "other CPU is awake"
                    ),
                ),
            ),
            targets=(Target("ProcessChannel", "os.pipe ping-pong (floor)", 1.0),),
        ),
        Benchmark(
            name="thread_pingpong",
            title=f"one int to another thread and back, {k} samples per round (reference)",
            kind="latency",
            unit="us",
            reference="queue.Queue",
            contenders=(
                Contender("ThreadChannel", partial(thread, thread_channel), note="ThreadChannel()"),
                Contender("queue.Queue", partial(thread, thread_queue), note="queue.Queue()"),
                Contender("queue.SimpleQueue", partial(thread, simple_queue)),
            ),
        ),
    ]


def wait_cpu_benchmark(config: Config) -> Benchmark:
    n = config.size(400, 100, 10)
    stream = partial(stream_contender, mode="paced", payload=None, n=n, in_process=True, cpu=True)
    return Benchmark(
        name="process_wait_cpu",
        title=f"CPU time of a consumer process per message, {n} ints sent "
        f"{PACE * 1e3:g} ms apart, 1 producer, {START_METHOD} (what waiting costs; reference)",
        kind="latency",
        unit="us",
        reference="multiprocessing.Queue",
        contenders=(
            Contender("ProcessChannel", partial(stream, process_channel), note="ProcessChannel()"),
            Contender(
                "multiprocessing.Queue", partial(stream, mp_queue), note="multiprocessing.Queue()"
            ),
            Contender(
                "faster_fifo.Queue",
                partial(stream, faster_fifo_queue),
                requires=FASTER_FIFO,
                note="faster_fifo.Queue()",
            ),
            Contender(
                "os.pipe (floor)",
                partial(stream, raw_pipe, check=False),
                note="8 bytes per message, raw os.write/os.read; the consumer blocks in read",
            ),
        ),
    )


def thread_benchmarks(config: Config) -> list[Benchmark]:
    n = config.size(BATCH * 3_000, BATCH * 1_000, BATCH * 4)
    stream = partial(stream_contender, mode="each", payload=None, n=n, in_process=False)
    benchmarks = []
    for capacity in PAIR:
        maxsize = capacity or 0
        contenders = [
            Contender(
                "ThreadChannel",
                partial(stream, partial(thread_channel, capacity)),
                items=n,
                note=f"ThreadChannel({capacity})",
            ),
            Contender(
                "queue.Queue",
                partial(stream, partial(thread_queue, maxsize)),
                items=n,
                note=f"queue.Queue({maxsize or ''})",
            ),
        ]
        if capacity is None:
            contenders.append(
                Contender("queue.SimpleQueue", partial(stream, simple_queue), items=n)
            )
        benchmarks.append(
            Benchmark(
                name=f"thread_int_{cap_name(capacity)}",
                title=f"1 producer thread -> 1 consumer thread, ints one by one, capacity "
                f"{cap_text(capacity)}, n={n}",
                kind="throughput",
                unit="msgs",
                reference="queue.Queue",
                contenders=tuple(contenders),
                targets=(Target("ThreadChannel", "queue.Queue", 2.0),),
            )
        )
    return benchmarks


def resident_benchmark(config: Config) -> Benchmark:
    count = config.size(BURST, BURST, 2)
    resident = partial(resident_contender, count)
    return Benchmark(
        name="process_resident",
        title=f"resident bytes of ProcessChannel(None)'s store around a burst of {count} x 4 MiB "
        f"from 1 producer process, {START_METHOD}",
        kind="size",
        unit="MiB",
        reference="holding the burst",
        contenders=(
            Contender(
                "holding the burst",
                partial(resident, "holding"),
                note="every item sent, none received yet",
            ),
            Contender(
                "as it empties",
                partial(resident, "emptied"),
                note="just after the last item is received",
            ),
            Contender(
                f"idle {IDLE_WAIT:g} s",
                partial(resident, "idle"),
                note=f"after recv(timeout={IDLE_WAIT:g}) on the emptied channel timed out",
            ),
        ),
        targets=(
            Target(
                f"idle {IDLE_WAIT:g} s",
                None,
                RESIDENT_BOUND,
                label=f"ProcessChannel store resident {IDLE_WAIT:g} s after emptying",
            ),
        ),
    )


def build(config: Config) -> Sequence[Benchmark]:
    """Every benchmark of this script, sized for ``config``."""
    ping_process, ping_thread = pingpong_benchmarks(config)
    return [
        *small_benchmarks(config),
        *multi_benchmarks(config),
        *medium_benchmarks(config),
        *big_benchmarks(config),
        *batch_benchmarks(config),
        rendezvous_benchmark(config),
        ping_process,
        wait_cpu_benchmark(config),
        *thread_benchmarks(config),
        ping_thread,
        resident_benchmark(config),
    ]


if __name__ == "__main__":
    sys.exit(main(build, description=__doc__ or "", packages=PACKAGES))

"""Fan out over one channel, fan in with ``select``: one loop reads every worker and a thread.

                  ┌─► worker 0 ─► results[0] ─┐
dispatcher ─jobs──┼─► worker 1 ─► results[1] ─┼─► select() in the parent
  thread     │    └─► worker 2 ─► results[2] ─┤
             └────────────────────► progress ─┘  (a ThreadChannel)

A thread of the parent sends numbers to one ``jobs`` channel, which three worker processes
share (fan-out: each number goes to whichever worker is free), and reports its progress on a
``ThreadChannel``. Each worker answers on a channel of its own, so ``select`` tells the parent
which worker an answer came from without tagging it, and the parent waits on channels of both
models in one call. Every sender closes its channel when it is done; ``select`` skips the
channels that are closed and drained, and raises ``ChannelClosed`` once all of them are: that
ends the loop.
"""

from __future__ import annotations

import collections
import contextlib
import threading

from concurrency_kit import ChannelClosed, ProcessChannel, ProcessPool, ThreadChannel, select

NUMBERS = 3_000
BATCH = 500
WORKERS = 3


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


def worker(jobs: ProcessChannel, results: ProcessChannel) -> None:
    """Answer (n, is_prime(n)) for every job; close this worker's channel at the end."""
    with results:
        for n in jobs:
            results.send((n, is_prime(n)))


def dispatch(jobs: ProcessChannel, progress: ThreadChannel) -> None:
    """Send the jobs in batches, say so after each, and close both channels at the end."""
    with jobs, progress:
        for start in range(0, NUMBERS, BATCH):
            jobs.send_many(range(start, start + BATCH))
            progress.send(f"dispatcher: numbers below {start + BATCH} sent")


def main() -> None:
    with contextlib.ExitStack() as stack:
        jobs = stack.enter_context(ProcessChannel(capacity=100, name="jobs"))
        results = [stack.enter_context(ProcessChannel(name=f"worker-{i}")) for i in range(WORKERS)]
        progress = stack.enter_context(ThreadChannel(name="progress"))
        pool = stack.enter_context(ProcessPool(WORKERS))

        workers = [pool.submit(worker, jobs, out) for out in results]
        dispatcher = threading.Thread(target=dispatch, args=(jobs, progress))
        dispatcher.start()

        answers: collections.Counter[str] = collections.Counter()
        primes = []
        while True:
            try:
                source, item = select(progress, *results)
            except ChannelClosed:  # every channel closed and drained: everyone is done
                break
            if source is progress:
                print(item)
            else:
                answers[source.name] += 1
                n, prime = item
                if prime:
                    primes.append(n)

        dispatcher.join()
        for done in workers:
            done.result()  # re-raises a worker's exception, if any
        for name, count in sorted(answers.items()):
            print(f"{name} answered {count} jobs")
        print(f"{len(primes)} primes below {NUMBERS}; the largest is {max(primes)}")
        assert sum(answers.values()) == NUMBERS
        assert len(primes) == sum(is_prime(n) for n in range(NUMBERS))


if __name__ == "__main__":
    main()

"""A pipeline of processes joined by channels, ended by close() and ``for item in channel``.

producer ──words──► 2 counters ──counts──► the parent

The producer process sends words and closes ``words`` when it is done. Each counter process
iterates ``for word in words``, which ends once ``words`` is closed and every word has been
taken, and sends one result per word on ``counts``. The parent closes ``counts`` when both
counters have returned, and its own ``for count in counts`` loop ends after the last result.
No sentinel values, and nobody needs to know how many consumers there are.

The channels are ordinary task arguments of a ``ProcessPool`` (a ``multiprocessing.Queue``
can only be inherited when a process starts), and they are bounded: a producer that runs
ahead waits for the counters, so memory stays flat however long the input.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from typing import Any

from concurrency_kit import ProcessChannel, ProcessPool

TEXT = "the quick brown fox jumps over the lazy dog " * 2_000


def produce(words: ProcessChannel) -> int:
    """Send every word of the text, then close the channel: there will be no more."""
    sent = 0
    with words:  # close() at the end, even if this fails
        for word in TEXT.split():
            words.send(word)
            sent += 1
    return sent


def count_vowels(words: ProcessChannel, counts: ProcessChannel) -> tuple[int, int]:
    """Send (word, vowel count) for each word, until ``words`` is closed and drained."""
    taken = 0
    for word in words:
        counts.send((word, sum(letter in "aeiou" for letter in word)))
        taken += 1
    return os.getpid(), taken


def close_when_done(futures: list[concurrent.futures.Future[Any]], channel: ProcessChannel) -> None:
    """Close ``channel`` once every future is done (Go: wg.Wait(); close(ch))."""
    concurrent.futures.wait(futures)
    channel.close()


def main() -> None:
    with (
        ProcessChannel(capacity=64, name="words") as words,
        ProcessChannel(capacity=64, name="counts") as counts,
        ProcessPool(3) as pool,
    ):
        producer = pool.submit(produce, words)
        counters = [pool.submit(count_vowels, words, counts) for _ in range(2)]
        closer = threading.Thread(target=close_when_done, args=(counters, counts))
        closer.start()

        vowels = 0
        results = 0
        for _word, n in counts:  # ends when counts is closed and drained
            vowels += n
            results += 1
        closer.join()

        print(f"producer sent {producer.result()} words")
        for pid, taken in (c.result() for c in counters):
            print(f"counter process {pid} took {taken} of them")
        print(f"the parent received {results} results: {vowels} vowels in all")
        assert results == producer.result() == len(TEXT.split())
        assert vowels == sum(letter in "aeiou" for letter in TEXT)
        print(f"words: {words.statistics()}")


if __name__ == "__main__":
    main()

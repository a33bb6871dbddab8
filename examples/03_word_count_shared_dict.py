"""Count words across worker processes into one ProcessSharedDict, without a Manager server.

The text is cut into chunks, and a ``ProcessPool`` counts them in parallel. Every worker
receives the same dict as an ordinary task argument (a picklable handle: no inheritance at
fork time, any start method) and adds to it with ``update_item``, an atomic read-modify-write:
two workers that meet the same word at the same moment never lose a count, which
``counts[word] = counts.get(word, 0) + 1`` would. The parent then reads the totals, and checks
them against :class:`collections.Counter` run over the whole text in one process.

A ``multiprocessing.Manager().dict()`` would do the same with a round trip to a server process
for every operation; here each ``update_item`` is a few memory accesses in shared memory under
the dict's lock.
"""

from __future__ import annotations

import os
import random
from collections import Counter

from concurrency_kit import ProcessPool, ProcessSharedDict

COMMON_WORDS = (
    "the of and to in a is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there been one all we their has would when if "
    "so no will more can out up who said what its about into than them only other time new"
)
WORDS = COMMON_WORDS.split()
CHUNKS = 8


def make_text(n_words: int, seed: int = 5) -> str:
    """A reproducible text: common words far more often than rare ones (Zipf-like)."""
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(len(WORDS))]
    lines = []
    for _ in range(n_words // 12):
        line = rng.choices(WORDS, weights, k=12)
        line[0] = line[0].capitalize()
        lines.append(" ".join(line) + ".")
    return "\n".join(lines)


def normalize(word: str) -> str:
    return word.strip(".,;:!?").lower()


def count_chunk(counts: ProcessSharedDict, chunk: str) -> tuple[int, int]:
    """Add every word of ``chunk`` to the shared counts; return (worker pid, words counted)."""
    n = 0
    for word in map(normalize, chunk.split()):
        counts.update_item(word, lambda c: c + 1, default=0)
        n += 1
    return os.getpid(), n


def main() -> None:
    text = make_text(24_000)
    lines = text.splitlines()
    chunks = ["\n".join(lines[k::CHUNKS]) for k in range(CHUNKS)]

    with ProcessSharedDict() as counts, ProcessPool(2) as pool:
        results = list(pool.map(count_chunk, [counts] * CHUNKS, chunks))
        workers = sorted({pid for pid, _ in results})
        total = sum(n for _, n in results)
        print(f"{total} words counted by worker processes {workers} into one shared dict")

        shared = counts.to_dict()  # a plain-dict snapshot of the shared counts
        print(f"{len(shared)} distinct words; the most common:")
        top = sorted(shared.items(), key=lambda item: (-item[1], item[0]))[:10]
        for word, n in top:
            print(f"  {word:<6} {n:>6}")

        expected = Counter(map(normalize, text.split()))
        assert shared == expected, "the shared counts differ from collections.Counter"
        assert sum(shared.values()) == total
        print("same counts as collections.Counter over the whole text: True")
        stats = counts.statistics()
        print(f"dict statistics: {stats.length} keys, {stats.used_bytes} bytes used")


if __name__ == "__main__":
    main()

"""Pool workers move money between accounts held in a Guarded dict; the total never changes.

A ``Guarded`` value can only be reached through its lock: ``with accounts.lock() as book:``
hands the block the dict, and nobody else can read or write it until the block ends. Every
transfer is a debit *and* a credit inside one block, so no worker ever sees (or overwrites)
a book where money has left one account but not yet reached the other. The same function
runs under threads and processes: a ``ProcessGuarded`` keeps the dict in shared memory,
passes to pool workers as an ordinary task argument, and writes a block's changes back when
the block ends.
"""

from __future__ import annotations

import random
from itertools import repeat
from typing import Any

from concurrency_kit import PROCESS, THREAD, Model

ACCOUNTS = ("alice", "bob", "carol", "dave")
OPENING_BALANCE = 1_000
TASKS = 8
TRANSFERS_PER_TASK = 200


def transfer_randomly(accounts: Any, seed: int, count: int) -> int:
    """Make ``count`` random transfers; return how many the balances allowed."""
    rng = random.Random(seed)
    made = 0
    for _ in range(count):
        source, target = rng.sample(ACCOUNTS, 2)
        amount = rng.randint(1, 100)
        with accounts.lock() as book:  # the debit and the credit happen together, or not at all
            if book[source] >= amount:
                book[source] -= amount
                book[target] += amount
                made += 1
    return made


def run(model: Model) -> None:
    accounts = model.Guarded(dict.fromkeys(ACCOUNTS, OPENING_BALANCE))
    try:
        with model.Pool(4) as pool:
            made = sum(
                pool.map(
                    transfer_randomly, repeat(accounts), range(TASKS), repeat(TRANSFERS_PER_TASK)
                )
            )
        book = accounts.get()
        total = sum(book.values())
        print(f"{model.name}: {made} transfers by {TASKS} tasks; balances {book}")
        print(f"{model.name}: total {total} (opening total {OPENING_BALANCE * len(ACCOUNTS)})")
        assert total == OPENING_BALANCE * len(ACCOUNTS), "money was created or destroyed"
        stats = accounts.statistics().lock
        print(f"{model.name}: lock taken {stats.acquisitions} times, {stats.contentions} waited")
    finally:
        accounts.close()


if __name__ == "__main__":
    run(THREAD)
    run(PROCESS)

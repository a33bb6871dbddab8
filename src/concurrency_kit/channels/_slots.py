"""The thread slots of a ProcessChannel: who has sends in flight, who sleeps in a receive.

Each thread of any process that uses the channel claims a :class:`~._layout.ThreadSlot`
(pid, native thread id) on first use. In it, it keeps its *mark* (``in_flight``: what it has
counted in ``sent`` and not yet delivered) and whether it is asleep in a receive; only the
thread itself writes those two, with plain stores. A slot whose thread is dead is *reaped*
under the mutex: its mark is taken off ``sent`` (exactly once) and the room woken, and its
rendezvous acknowledgement word freed. So after ``close`` receivers learn from the marks when
the last send has landed, and a sender killed anywhere is discounted by exactly its mark.

The acknowledgement words (``acks``) let a rendezvous sender wait for its offer to be taken:
a word holds the entry's number, the sender's slot and a state (1 offered, 2 taken; 0 free).
"""

from __future__ import annotations

import os
import weakref
from threading import get_ident, get_native_id
from typing import Any

from concurrency_kit._core.liveness import thread_alive
from concurrency_kit._core.monitor import ProcessMonitor
from concurrency_kit.channels._layout import (
    ACKS_AT,
    Q_ACK,
    Q_ROOM,
    SLOT_ASLEEP,
    SLOT_IN_FLIGHT,
    SLOT_PID,
    SLOT_TID,
    SLOT_WORDS,
    SLOTS,
    SLOTS_AT,
    THREAD_SLOTS,
)
from concurrency_kit.channels._ring import corrupt

__all__ = ["MAX_MARK", "SlotTable"]

MAX_MARK = 256  # the most a send counts in flight at once (a send_many run)

_tables: weakref.WeakSet[SlotTable] = weakref.WeakSet()


def _forget_threads() -> None:
    """In a forked child: its threads are not the parent's (a thread ident may come again)."""
    for table in _tables:
        table.marks.clear()


os.register_at_fork(after_in_child=_forget_threads)


def _ack_word(number: int, owner: int, state: int) -> int:
    """A rendezvous acknowledgement word: entry number, sender's thread slot, state."""
    return number << 10 | owner << 2 | state


class SlotTable:
    """The thread slots and acknowledgement words in the state ``words``.

    Attributes:
        marks: this process's threads (ident) -> the word of their in-flight mark; the send
            fast path reads it directly.
    """

    __slots__ = ("__weakref__", "_m", "_sent", "_w", "marks", "name")

    def __init__(self, words: memoryview, monitor: ProcessMonitor, sent: Any, name: str) -> None:
        self._w = words
        self._m = monitor
        self._sent = sent  # the AtomicWord of ``sent``
        self.name = name
        self.marks: dict[int, int] = {}
        _tables.add(self)

    def mark(self) -> int:
        """The word of this thread's in-flight mark (its slot claimed on first use)."""
        at = self.marks.get(get_ident())
        if at is None:
            at = self._claim() + SLOT_IN_FLIGHT
            self.marks[get_ident()] = at
        return at

    def asleep_word(self) -> int:
        """The word that counts this thread asleep in a receive."""
        return self.mark() - SLOT_IN_FLIGHT + SLOT_ASLEEP

    def _claim(self) -> int:
        """The first word of this thread's slot: its own if it has one, else a free one
        or a dead thread's (reaped first)."""
        pid, tid = os.getpid(), get_native_id()
        w = self._w
        m = self._m
        m.enter()
        try:
            free = -1
            for i in range(THREAD_SLOTS):
                at = SLOTS_AT + SLOT_WORDS * i
                if w[at + SLOT_PID] == pid and w[at + SLOT_TID] == tid:
                    return at
                if free < 0 and (
                    w[at + SLOT_PID] == 0
                    or not thread_alive(int(w[at + SLOT_PID]), int(w[at + SLOT_TID]))
                ):
                    free = at
            if free < 0:
                raise RuntimeError(
                    f"more than {THREAD_SLOTS} threads use channel {self.name!r} at once"
                )
            self._reap(free)
            w[free + SLOT_PID], w[free + SLOT_TID] = pid, tid
            return free
        finally:
            m.exit()

    def _reap(self, at: int) -> None:
        """Under the mutex: forget the dead thread of the slot at ``at`` — what its mark
        covers was counted and never delivered, and it no longer waits."""
        w = self._w
        in_flight = int(w[at + SLOT_IN_FLIGHT])
        if not 0 <= in_flight <= MAX_MARK:  # read from shared memory: checked before use
            raise corrupt(self.name, f"a dead thread has {in_flight} sends in flight")
        if in_flight:
            self._sent.add(-in_flight)
            self._m.wake(in_flight, Q_ROOM)
        owner = (at - SLOTS_AT) // SLOT_WORDS
        for i in range(ACKS_AT, ACKS_AT + SLOTS):  # its offer, if any, waits for nobody
            if w[i] and (w[i] >> 2) & 0xFF == owner:
                w[i] = 0
        w[at + SLOT_IN_FLIGHT] = w[at + SLOT_ASLEEP] = 0
        w[at + SLOT_PID] = w[at + SLOT_TID] = 0

    def scan(self, *, locked: bool = False) -> tuple[int, int]:
        """Sends in flight and receivers asleep, in live threads (dead ones are reaped).

        ``locked``: the caller holds the mutex already (it is not recursive: entering it
        again would wait for ever).
        """
        w = self._w
        in_flight = asleep = 0
        for i in range(THREAD_SLOTS):
            at = SLOTS_AT + SLOT_WORDS * i
            if not w[at + SLOT_PID] or not (w[at + SLOT_IN_FLIGHT] or w[at + SLOT_ASLEEP]):
                continue
            if thread_alive(int(w[at + SLOT_PID]), int(w[at + SLOT_TID])):
                in_flight += int(w[at + SLOT_IN_FLIGHT])
                asleep += int(w[at + SLOT_ASLEEP])
            elif locked:
                self._reap(at)
            else:
                self._m.enter()
                try:
                    if w[at + SLOT_PID] and not thread_alive(
                        int(w[at + SLOT_PID]), int(w[at + SLOT_TID])
                    ):
                        self._reap(at)
                finally:
                    self._m.exit()
        return in_flight, asleep

    # rendezvous acknowledgements ---------------------------------------------------------

    def claim_ack(self, number: int, mark: int) -> int:
        """Under the mutex: an acknowledgement word for the offer entry ``number`` made by
        the thread whose in-flight mark is ``mark``; returns its index.

        A receiver marks it taken only if it still names the entry it took, and frees it
        instead if that sender is dead; reaping a dead thread's slot frees its words too. So
        a sender killed while its offer waits leaks no word, and a word used again is never
        taken for the old offer.
        """
        w = self._w
        owner = (mark - SLOT_IN_FLIGHT - SLOTS_AT) // SLOT_WORDS
        for _ in range(2):
            for i in range(SLOTS):
                if w[ACKS_AT + i] == 0:
                    w[ACKS_AT + i] = _ack_word(number, owner, 1)
                    return i
            self._free_dead_acks()
        raise RuntimeError(f"more than {SLOTS} rendezvous sends wait on {self.name!r}")

    def _free_dead_acks(self) -> None:
        """Under the mutex: free the acknowledgement words of senders that died waiting (an
        offer taken after its sender died leaves its word marked taken, for nobody)."""
        w = self._w
        for i in range(ACKS_AT, ACKS_AT + SLOTS):
            word = int(w[i])
            if word:
                owner = SLOTS_AT + SLOT_WORDS * ((word >> 2) & 0xFF)
                if not thread_alive(int(w[owner + SLOT_PID]), int(w[owner + SLOT_TID])):
                    w[i] = 0

    def acknowledge(self, ack: int, number: int) -> None:
        """Under the mutex: tell the sender of offer ``number`` that it was taken.

        No look at whether the sender lives (a read of ``/proc`` per item): if it died, its
        word is freed when its slot is reaped, or by :meth:`claim_ack` when words run out."""
        w = self._w
        word = int(w[ACKS_AT + ack])
        if word >> 10 != number or word & 3 != 1:
            return  # its sender died and was reaped: the word is free, or someone else's
        w[ACKS_AT + ack] = word + 1  # taken
        self._m.wake_all(Q_ACK)

    def ack_taken(self, ack: int) -> bool:
        """Whether the offer of acknowledgement word ``ack`` was taken."""
        return bool(self._w[ACKS_AT + ack] & 3 == 2)

    def free_ack(self, ack: int) -> None:
        """Under the mutex: free acknowledgement word ``ack``."""
        self._w[ACKS_AT + ack] = 0

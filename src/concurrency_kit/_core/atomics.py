"""Lock-free atomic operations on words in shared memory.

The process counter and value, and the channel's counters, update an aligned word of a
segment with one hardware atomic instruction (``lock xadd`` / ``lock cmpxchg`` on x86_64,
LSE atomics on aarch64), sequentially consistent, the compiler's ``__atomic`` builtins
compiled into ``_native.c``: atomicity comes from the instruction, across processes, never
from the GIL. Words are 1, 2, 4 or 8 bytes wide and handled as unsigned bit patterns; signed
integers and floats are converted by the caller (``state/_base.py``'s codecs). :func:`add` works
on a signed 64-bit word and wraps around as the hardware does.

:class:`AtomicWord` is the handle a container keeps: it holds the mapping while it is open, so
no call can run on unmapped memory, and a call after :meth:`AtomicWord.close` raises
:exc:`ValueError`. :func:`add` and :func:`load` take a bare address, for callers that hold
the mapping themselves for the duration of the call.
"""

from __future__ import annotations

from concurrency_kit._core import _native

__all__ = ["AtomicWord", "add", "fence", "load"]

AtomicWord = _native.AtomicWord

add = _native.atomic_add
"""``add(address, delta) -> previous value`` of the signed 64-bit word at ``address``."""
load = _native.atomic_load
"""``load(address, width) -> bits``."""
fence = _native.fence
"""``fence()``: a full memory barrier. Where a thread writes one shared word and then reads
another that a second thread writes (the Dekker shape), only a full fence keeps the read from
passing the write (x86-64 reorders exactly that: a store, then a load)."""

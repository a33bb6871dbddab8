"""The one timeout rule of the library, and deadline arithmetic on :func:`time.monotonic`.

Every public call that takes a ``timeout`` validates it with :func:`check_timeout`:

============================  ======================================================
``timeout``                   meaning
============================  ======================================================
``None``                      wait forever
``math.inf``                  wait forever (the same as ``None``)
finite, ``>= 0``              wait at most that many seconds (``0``: do not wait)
larger than :data:`MAX_TIMEOUT`  wait forever (no clock or system call can count it)
negative, or NaN              :class:`ValueError` at the call
not a real number, or a bool  :class:`TypeError` at the call
============================  ======================================================

Blocking system calls (``select``, ``poll``, futex waits, ``Lock.acquire``) take bounded
timeouts; a wait longer than :data:`MAX_WAIT_SLICE` is made of several slices, each given by
:func:`wait_slice`, so no caller can pass a value a system call overflows on.
"""

from __future__ import annotations

import math
import numbers
import threading
import time
from typing import Any, cast

__all__ = [
    "MAX_TIMEOUT",
    "MAX_WAIT_SLICE",
    "check_timeout",
    "deadline_after",
    "remaining",
    "wait_slice",
]

MAX_TIMEOUT = float(threading.TIMEOUT_MAX)
"""Finite timeouts above this (about 292 years on Linux) are taken as "wait forever"."""

MAX_WAIT_SLICE = 3600.0
"""The longest single blocking wait handed to a system call; longer waits loop."""


def check_timeout(timeout: object, *, name: str = "timeout") -> float | None:
    """Validate a timeout and return it in seconds, or ``None`` for "wait forever".

    Args:
        timeout: ``None``, or a real number of seconds (``int``, ``float``, or any
            :class:`numbers.Real`, such as a NumPy float).
        name: the argument's name, for the error message.

    Raises:
        TypeError: ``timeout`` is not ``None`` or a real number (``bool`` is refused too).
        ValueError: ``timeout`` is negative or NaN.
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"{name} must be a number of seconds or None, not {type(timeout).__name__}")
    try:
        seconds = float(timeout)
    except OverflowError:  # an int (or Fraction) past float's range: keep only its sign
        seconds = math.inf if cast(Any, timeout) > 0 else -math.inf
    if math.isnan(seconds):
        raise ValueError(f"{name} must be a number of seconds >= 0 or None, got nan")
    if seconds < 0:
        raise ValueError(f"{name} must be >= 0 seconds or None, got {timeout!r}")
    if seconds > MAX_TIMEOUT:  # inf included
        return None
    return seconds


def deadline_after(timeout: float | None) -> float | None:
    """The :func:`time.monotonic` deadline ``timeout`` seconds from now (``None``: never).

    ``timeout`` must already have passed :func:`check_timeout`.
    """
    return None if timeout is None else time.monotonic() + timeout


def remaining(deadline: float | None) -> float | None:
    """Seconds left until ``deadline``: never negative, ``None`` for no deadline."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def wait_slice(seconds: float | None) -> float:
    """How long one blocking system call may wait, for a wait of ``seconds`` (``None``: forever).

    At most :data:`MAX_WAIT_SLICE`: a caller waiting longer loops, checking its deadline.
    """
    if seconds is None:
        return MAX_WAIT_SLICE
    return min(max(seconds, 0.0), MAX_WAIT_SLICE)

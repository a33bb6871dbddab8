"""What a probe returns: one row of the table, measured on this machine.

Each row of :data:`~concurrency_kit.compare.ASPECTS` has a probe (``compare/probes/<key>.py``)
that measures the seed's claim for both models and says whether it holds here::

    probe(mode) -> Measurement(key, process=Figure(...), thread=Figure(...), verdict, holds, ...)

``mode`` is ``"quick"`` (the whole table in well under 20 s on 2 cores) or ``"full"`` (more
samples, steadier numbers).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Literal

import attrs

__all__ = ["Figure", "Measurement", "Mode", "Probe", "median_of", "timed", "verdict_for"]

Mode = Literal["quick", "full"]


@attrs.frozen
class Figure:
    """One model's number for a row.

    Attributes:
        value: the measured value (a median when several samples were taken).
        unit: its unit, such as ``"us"``, ``"MB/s"``, ``"MiB"`` or ``"x"``.
        what: what was measured, in a few words ("start to running, forkserver").
    """

    value: float
    unit: str
    what: str


@attrs.frozen
class Measurement:
    """A row of the table, measured.

    Attributes:
        key: the row's :attr:`~concurrency_kit.compare.Aspect.key`.
        process: the process model's figure.
        thread: the thread model's figure.
        better: ``"lower"`` or ``"higher"``: which way a figure is better.
        holds: whether the seed's claim holds on this machine (``None``: a matter of kind,
            not of degree, shown by :attr:`verdict`).
        verdict: the finding in plain words, such as "holds: a thread starts 180x faster".
        details: further figures, as ``name -> text`` (start methods, sizes, ...).
        seconds: how long the probe took.
    """

    key: str
    process: Figure
    thread: Figure
    better: Literal["lower", "higher"]
    holds: bool | None
    verdict: str
    details: dict[str, str] = attrs.field(factory=dict)
    seconds: float = 0.0

    @property
    def ratio(self) -> float:
        """How many times better the thread figure is than the process one (>1: threads win)."""
        p, t = self.process.value, self.thread.value
        if p <= 0 or t <= 0:
            return float("nan")
        return p / t if self.better == "lower" else t / p


Probe = Callable[[Mode], Measurement]
"""A row's probe: measures both models in the given mode."""


def median_of(samples: list[float]) -> float:
    """The median of ``samples`` (which must not be empty)."""
    return float(statistics.median(samples))


def verdict_for(holds: bool, finding: str) -> str:
    """``"holds: <finding>"`` or ``"does not hold here: <finding>"``."""
    return f"{'holds' if holds else 'does not hold here'}: {finding}"


def timed(probe: Probe, mode: Mode) -> Measurement:
    """Run ``probe`` and record how long it took."""
    start = time.perf_counter()
    measurement = probe(mode)
    return attrs.evolve(measurement, seconds=time.perf_counter() - start)

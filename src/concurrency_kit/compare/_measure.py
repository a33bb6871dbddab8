"""What a probe returns, how it samples, and how a verdict is reached.

Each row of :data:`~concurrency_kit.compare.ASPECTS` has a probe (``compare/probes/<key>.py``)
that measures the seed's claim for both models::

    probe(mode) -> Measurement(key, process=Figure, thread=Figure, comparisons, finding, ...)
    timed(probe, mode) -> the same Measurement, settled: status and verdict filled in from
                          its comparisons and the load the machine carried meanwhile

``mode`` is ``"quick"`` (the whole table in well under a minute on 2 cores) or ``"full"``
(more samples, steadier numbers).

Sampling follows pyperf's method without its process model (pyperf's ``Runner`` re-runs the
whole script in worker processes of its own and parses the command line, which a probe that
starts pools of its own cannot hand over): sizes calibrated to a time budget, a warm-up round
that is thrown away, then repeated samples with the models *interleaved* (round 1: serial,
threads, processes; round 2 in another order, ...) so that a burst of other load lands on
every model rather than on all the samples of one. A figure is the median of its samples and
its spread the interquartile range.

The third column, interpreters (Python 3.14+), is measured by the same probes where the
runtime has them (``Measurement.interpreter``) and placed by :func:`place` (also pure): nearer
the processes' figure, nearer the threads', or clearly between, against the row's
:attr:`~concurrency_kit.compare.Aspect.interpreter_like`.

A :class:`Comparison` is decided by :func:`decide` (a pure function, unit-tested on made-up
figures): *holds* or *does not hold* only when the two spreads are apart and the medians
differ by a margin; *inconclusive* otherwise, or when the machine was too busy for the
difference seen (:func:`machine_busy`), or when a speed-up exceeds what the cores allow (a
measurement error, not a result).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Literal

import attrs

from concurrency_kit.compare._table import Placement

__all__ = [
    "BUSY_MARGIN",
    "MARGIN",
    "Comparison",
    "Figure",
    "Load",
    "LoadMeter",
    "Measurement",
    "Mode",
    "Placement",
    "Probe",
    "Spread",
    "Status",
    "decide",
    "interleave",
    "machine_busy",
    "median_of",
    "place",
    "settle",
    "timed",
    "usable_cores",
]

Mode = Literal["quick", "full"]
Status = Literal["holds", "does not hold", "inconclusive", "as stated"]

MARGIN = 1.1
"""On a quiet machine, the medians must differ by this factor (and the spreads be apart)."""
BUSY_MARGIN = 2.0
"""On a busy machine, a timing verdict needs this factor (unless the model that load slows
more wins despite it)."""
CEILING_TOLERANCE = 1.15
"""A speed-up above ``min(workers, cores) * CEILING_TOLERANCE`` is a measurement error."""
BUSY_OTHER_CORES = 0.25
"""Other processes using more than this share of the usable cores make the machine busy."""
BUSY_STEAL = 0.05
"""So does a hypervisor stealing more than this share of the CPU time."""


@attrs.frozen
class Spread:
    """A figure's samples, summarized.

    Attributes:
        median: the median of the samples.
        low: the first quartile (the lowest sample when fewer than four).
        high: the third quartile (the highest sample when fewer than four).
        least: the lowest sample.
        most: the highest sample.
        n: how many samples.
    """

    median: float
    low: float
    high: float
    least: float
    most: float
    n: int

    @classmethod
    def of(cls, samples: list[float]) -> Spread:
        """Summarize ``samples`` (which must not be empty)."""
        if not samples:
            raise ValueError("no samples")
        ordered = sorted(samples)
        median = float(statistics.median(ordered))
        if len(ordered) >= 4:
            q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
            low, high = float(q1), float(q3)
        else:
            low, high = float(ordered[0]), float(ordered[-1])
        return cls(median, low, high, float(ordered[0]), float(ordered[-1]), len(ordered))

    @classmethod
    def exact(cls, value: float) -> Spread:
        """A figure read once, without noise (a count, a size)."""
        return cls(value, value, value, value, value, 1)

    def scaled(self, factor: float) -> Spread:
        """The same spread in another unit (``factor`` > 0)."""
        return Spread(
            self.median * factor,
            self.low * factor,
            self.high * factor,
            self.least * factor,
            self.most * factor,
            self.n,
        )


@attrs.frozen
class Figure:
    """One model's number for a row.

    Attributes:
        value: the measured value (a median when several samples were taken).
        unit: its unit, such as ``"us"``, ``"MiB/s"``, ``"MiB"`` or ``"x"``.
        what: what was measured, in a few words ("start to running, forkserver").
    """

    value: float
    unit: str
    what: str


@attrs.frozen
class Comparison:
    """One claim put to the test: the process figure against the thread figure.

    Attributes:
        name: what is compared, in a few words ("CPU-bound speed-up").
        unit: the unit of both spreads.
        process: the process model's spread.
        thread: the thread model's spread.
        better: ``"lower"`` or ``"higher"``.
        favoured: the model the table says is better here.
        timing: whether the figures are timings (other load can move them) rather than
            counts or sizes.
        ceiling: the highest figure that is physically possible (a speed-up's worker or core
            count); above it, the figure is a measurement error.
        at_least: the claim is only that the favoured model is *at least as good*: a tie
            holds, and only the other model clearly ahead contradicts it.
        band: the claim is that the favoured model is *clearly* better, by this factor at
            least: it holds when it is (spreads apart), and it does not hold when even the most
            favourable ends of the two interquartile ranges are closer than this (the two cost
            about the same); in between, inconclusive.
        advantage: for a ``band`` claim, the spread of the favoured model's advantage taken
            round by round (the other's sample over the favoured one's, for lower-is-better):
            samples taken side by side share the machine's state of the moment, so their ratio
            is steadier than the ratio of two medians; ``None``: use the two spreads.
        floor: the figure the favoured model must also beat for the claim to hold (a speed-up
            over serial must exceed :data:`MARGIN`: processes that are "faster than threads"
            but slower than no pool at all do not make the claim hold).
        load_hurts: the model that other load on the machine slows more (the one that needs
            a free core for each of its workers, or spins waiting for one), if either. On a
            busy machine, that model losing proves nothing (inconclusive), and it winning
            despite the load is decided as on a quiet machine.
    """

    name: str
    unit: str
    process: Spread
    thread: Spread
    better: Literal["lower", "higher"]
    favoured: Literal["process", "thread"]
    timing: bool = True
    ceiling: float | None = None
    at_least: bool = False
    load_hurts: Literal["process", "thread"] | None = None
    floor: float | None = None
    band: float | None = None
    advantage: Spread | None = None


@attrs.frozen
class Load:
    """How busy the machine was while a row was measured (from ``/proc``, Linux only).

    Attributes:
        seconds: the wall time observed.
        other_cores: CPU time used by processes other than ours and our children, in cores
            (1.0: one core kept busy all along); ``None`` without ``/proc/stat``.
        steal: the share of CPU time a hypervisor gave to other guests; ``None`` without it.
        load_before: the one-minute load average at the start.
        load_after: the one-minute load average at the end.
    """

    seconds: float
    other_cores: float | None
    steal: float | None
    load_before: float | None
    load_after: float | None

    def describe(self) -> str:
        """``"other processes 0.9 cores, steal 0%, load average 2.1 -> 3.0"``."""
        parts = []
        if self.other_cores is not None:
            parts.append(f"other processes {self.other_cores:.1f} cores")
        if self.steal is not None:
            parts.append(f"steal {self.steal:.0%}")
        if self.load_before is not None and self.load_after is not None:
            parts.append(f"load average {self.load_before:.1f} -> {self.load_after:.1f}")
        return ", ".join(parts) or "not observable here"


@attrs.frozen
class Measurement:
    """A row of the table, measured.

    Attributes:
        key: the row's :attr:`~concurrency_kit.compare.Aspect.key`.
        process: the process model's figure.
        thread: the thread model's figure.
        better: ``"lower"`` or ``"higher"``: which way a figure is better (for a fact of
            kind, with no comparisons, neither is "better": it is only shown).
        holds: the probe's reading of the claim (``None``: a matter of kind, not of degree);
            after :func:`settle`, ``None`` also when the verdict is inconclusive.
        finding: what was found, in plain words, with the figures.
        verdict: the status and the finding ("holds: a thread starts 180x faster ..."),
            filled in by :func:`settle`.
        status: holds / does not hold / inconclusive / as stated, filled in by :func:`settle`.
        comparisons: the figures the status is decided on (empty for a matter of kind).
        explanation: one sentence a reader can check, saying why the claim does not hold on
            this machine; printed only when it does not.
        details: further figures, as ``name -> text`` (start methods, sizes, ...).
        load: how busy the machine was meanwhile.
        seconds: how long the probe took.
        interpreter: the interpreter model's figure, in the unit of the other two; ``None``
            when it was not measured (before Python 3.14, or where the row does not apply).
        interpreter_spread: the interpreter's samples of the row's first comparison (same
            quantity and unit as its two spreads), for rows decided on timings; ``None``: the
            interpreter is placed by the three figures.
        interpreter_missing: why there is no interpreter figure ("needs Python 3.14+").
        interpreter_status: where the interpreter claim stands, filled in by :func:`settle`
            (``None`` when there is no interpreter figure).
        interpreter_verdict: the interpreter status and the figures that decided it.
    """

    key: str
    process: Figure
    thread: Figure
    better: Literal["lower", "higher"]
    holds: bool | None
    finding: str = ""
    verdict: str = ""
    status: Status = "as stated"
    comparisons: tuple[Comparison, ...] = ()
    explanation: str = ""
    details: dict[str, str] = attrs.field(factory=dict)
    load: Load | None = None
    seconds: float = 0.0
    interpreter: Figure | None = None
    interpreter_spread: Spread | None = None
    interpreter_missing: str = ""
    interpreter_status: Status | None = None
    interpreter_verdict: str = ""

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


def interleave(
    samplers: Mapping[str, Callable[[], float]], rounds: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Take ``rounds`` samples of every sampler, one of each per round, in a rotating order.

    The first ``warmup`` rounds are run and thrown away (caches, lazy imports, a worker's first
    task). Round ``r`` starts with the sampler ``r mod n`` and alternates direction, so no
    sampler always runs first, last, or right after the same neighbour.
    """
    names = list(samplers)
    found: dict[str, list[float]] = {name: [] for name in names}
    for index in range(warmup + rounds):
        shift = index % len(names)
        order = names[shift:] + names[:shift]
        if index % 2:
            order.reverse()
        for name in order:
            value = samplers[name]()
            if index >= warmup:
                found[name].append(value)
    return found


# --- the machine -----------------------------------------------------------------------------


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            cores = max(1, min(cores, int(int(quota) // int(period)) or 1))
    except (OSError, ValueError):
        pass
    return cores


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - not on Unix
        return None


def _system_ticks() -> tuple[int, int] | None:
    """(busy, steal) clock ticks of all CPUs since boot, from ``/proc/stat``."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal guest guest_nice
    busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6]
    steal = fields[7] if len(fields) > 7 else 0
    return busy, steal


def _tree_ticks() -> int | None:
    """CPU ticks of this process and of its live descendants, with what they reaped.

    A child that has exited and been waited for is counted in its parent's ``cutime``; so a
    pool worker that lived through the whole interval, or only part of it, is counted once.
    """
    me = os.getpid()
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                text = f.read()
        except OSError:
            continue
        rest = text[text.rfind(")") + 2 :].split()
        pid, ppid = int(entry), int(rest[1])
        children.setdefault(ppid, []).append(pid)
        ticks[pid] = sum(int(x) for x in rest[11:15])  # utime stime cutime cstime
    if me not in ticks:
        return None
    total, todo = 0, [me]
    while todo:
        pid = todo.pop()
        total += ticks.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


class LoadMeter:
    """Watch the machine between :meth:`start` and :meth:`stop`."""

    def __init__(self) -> None:
        self._wall = 0.0
        self._system: tuple[int, int] | None = None
        self._ours: int | None = None
        self._load: float | None = None

    def start(self) -> None:
        """Take the first readings."""
        self._load = _loadavg()
        self._system, self._ours = _system_ticks(), _tree_ticks()
        self._wall = time.perf_counter()

    def stop(self) -> Load:
        """Take the second readings; what the machine did in between."""
        seconds = time.perf_counter() - self._wall
        system, ours = _system_ticks(), _tree_ticks()
        hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        other = steal = None
        if self._system is not None and system is not None and seconds > 0:
            busy = system[0] - self._system[0]
            stolen = system[1] - self._system[1]
            if self._ours is not None and ours is not None:
                other = max(0.0, (busy - (ours - self._ours)) / hz / seconds)
            elapsed_ticks = seconds * hz * (os.cpu_count() or 1)
            steal = stolen / elapsed_ticks if elapsed_ticks else 0.0
        return Load(seconds, other, steal, self._load, _loadavg())


def machine_busy(load: Load | None, cores: int) -> str | None:
    """Why the machine was too busy for a fine verdict, or ``None`` if it was quiet enough."""
    if load is None:
        return None
    if load.other_cores is not None and load.other_cores > BUSY_OTHER_CORES * cores:
        return f"other processes kept {load.other_cores:.1f} of {cores} cores busy"
    if load.steal is not None and load.steal > BUSY_STEAL:
        return f"the hypervisor stole {load.steal:.0%} of the CPU time"
    return None


# --- verdicts ----------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _with_unit(value: float, unit: str) -> str:
    return f"{_fmt(value)}x" if unit == "x" else f"{_fmt(value)} {unit}"


def _range(spread: Spread, unit: str) -> str:
    if spread.n == 1:
        return _with_unit(spread.median, unit)
    return (
        f"{_with_unit(spread.median, unit)} "
        f"[IQR {_fmt(spread.low)}-{_fmt(spread.high)}, n={spread.n}]"
    )


_PLURAL = {"process": "processes", "thread": "threads"}


def _ratio_text(ratio: float) -> str:
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:,.0f}x"


def decide(comparison: Comparison, busy: str | None = None) -> tuple[Status, str]:
    """The status of one comparison and the figures that decided it (a pure function).

    Quiet machine: the claim holds (or does not) when the medians differ by :data:`MARGIN` and
    the interquartile ranges do not overlap; anything less is inconclusive (or, for an
    ``at_least`` claim, holds). Busy machine (``busy`` says why), for timings: the model that
    load slows more (``load_hurts``) losing is inconclusive; it winning is decided as on a
    quiet machine; for timings that load moves both ways, the medians must differ by
    :data:`BUSY_MARGIN`. A median above the comparison's ceiling is a measurement error:
    inconclusive, whatever the rest says.
    """
    c = comparison
    p, t = c.process, c.thread
    figures = f"{c.name}: processes {_range(p, c.unit)}, threads {_range(t, c.unit)}"
    if c.ceiling is not None:
        over = [
            (who, s.median) for who, s in (("processes", p), ("threads", t)) if s.median > c.ceiling
        ]
        if over:
            who, value = over[0]
            return "inconclusive", (
                f"{figures}; measurement error: {who} {_with_unit(value, c.unit)} is above the "
                f"{_fmt(c.ceiling / CEILING_TOLERANCE)} that the workers and cores allow"
            )
    if p.median <= 0 or t.median <= 0:
        return "inconclusive", f"{figures}; a figure of zero decides nothing"
    process_better = p.median < t.median if c.better == "lower" else p.median > t.median
    winner = "process" if process_better else "thread"
    loser = "thread" if process_better else "process"
    busy_timing = busy is not None and c.timing
    if busy_timing and c.load_hurts == loser and not c.at_least:
        return "inconclusive", (
            f"{figures}; the machine was busy ({busy}), and load slows "
            f"{_PLURAL[loser]} more, so their loss may be the load's doing"
        )
    strict = busy_timing and c.load_hurts is None
    margin = BUSY_MARGIN if strict else MARGIN
    ratio = max(p.median, t.median) / min(p.median, t.median)
    apart = p.high < t.low or t.high < p.low
    if c.band is not None:
        fav, other = (p, t) if c.favoured == "process" else (t, p)
        if c.advantage is not None:
            a = c.advantage
            figures += f"; {_PLURAL[c.favoured]}' advantage round by round {_range(a, 'x')}"
            if a.low >= max(margin, c.band):
                return "holds", f"{figures}; {_PLURAL[c.favoured]} ahead by {a.median:.2f}x"
            if a.high < 1 / margin:
                loser_name = _PLURAL[c.favoured]
                return "does not hold", f"{figures}; {loser_name} behind by {1 / a.median:.2f}x"
            if a.high < c.band:
                return "does not hold", (
                    f"{figures}; within {c.band:g}x of each other: {_PLURAL[c.favoured]} are at "
                    f"most {a.high:.2f}x ahead"
                )
            return "inconclusive", f"{figures}; neither {c.band:g}x apart nor clearly within it"
        # the most the favoured model can be ahead by, from the ends of the two ranges
        best = other.high / fav.low if c.better == "lower" else fav.high / other.low
        if winner == c.favoured and apart and ratio >= max(margin, c.band):
            return "holds", f"{figures}; {_PLURAL[winner]} ahead by {_ratio_text(ratio)}"
        if winner != c.favoured and apart and ratio >= margin:
            return "does not hold", f"{figures}; {_PLURAL[winner]} ahead by {_ratio_text(ratio)}"
        if best < c.band:
            return "does not hold", (
                f"{figures}; within {c.band:g}x of each other: {_PLURAL[c.favoured]} are at most "
                f"{_ratio_text(best)} ahead"
            )
        return "inconclusive", f"{figures}; neither {c.band:g}x apart nor clearly within it"
    if (not apart or ratio < margin) and c.at_least:
        return "holds", f"{figures}; a tie, and {c.favoured}s need only be as good"
    if not apart or ratio < margin:
        why = "the spreads overlap" if not apart else f"they differ by less than {margin:g}x"
        if strict:
            why += f" (the machine was busy: {busy}; a {margin:g}x gap is needed)"
        return "inconclusive", f"{figures}; {why}"
    status: Status = "holds" if winner == c.favoured else "does not hold"
    favoured = p if c.favoured == "process" else t
    if status == "holds" and c.floor is not None and favoured.median <= c.floor:
        beaten = "above" if c.better == "lower" else "below"
        if busy_timing:
            return "inconclusive", (
                f"{figures}; {_PLURAL[c.favoured]} ahead, but {beaten} "
                f"{_with_unit(c.floor, c.unit)} (the machine was busy: {busy})"
            )
        return "does not hold", (
            f"{figures}; {_PLURAL[c.favoured]} ahead of {_PLURAL[loser]}, but {beaten} "
            f"{_with_unit(c.floor, c.unit)}"
        )
    return status, f"{figures}; {_PLURAL[winner]} ahead by {_ratio_text(ratio)}"


_LIKE = {"process": "like processes", "thread": "like threads", "between": "between the two"}


def _position(value: float, process: float, thread: float, logarithmic: bool) -> float:
    """Where ``value`` lies on the line from the threads' figure (0) to the processes' (1)."""
    if logarithmic:
        return math.log(value / thread) / math.log(process / thread)
    return (value - thread) / (process - thread)


def _placement(position: float, near: float) -> Placement:
    """``"between"`` when a position is more than ``near`` inside both ends, else the nearer."""
    if near < position < 1 - near:
        return "between"
    return "process" if position > 0.5 else "thread"


def place(
    interpreter: Spread,
    process: Spread,
    thread: Spread,
    unit: str,
    like: Placement,
    *,
    timing: bool,
    busy: str | None = None,
) -> tuple[Status, str]:
    """Whether interpreters stand where the row's claim puts them (a pure function).

    The interpreter figure is placed on the line from the threads' median to the processes':
    on a logarithmic scale for timings and other positive figures, linearly for counts that may
    be zero. It is ``"between"`` when it lies inside that line by more than :data:`MARGIN` from
    each end (a tenth of the way, for counts), else like the nearer model. The claim holds or
    does not when the interpreter's median and both ends of its interquartile range place it
    alike; inconclusive when they do not, when processes and threads are too close to tell
    apart (within :data:`MARGIN`), or when a timing contradicts the claim on a busy machine.
    """
    p, t = process.median, thread.median
    figures = (
        f"interpreters {_range(interpreter, unit)}, processes {_range(process, unit)}, "
        f"threads {_range(thread, unit)}"
    )
    logarithmic = min(p, t, interpreter.least) > 0
    if logarithmic:
        gap = max(p, t) / min(p, t)
        if gap < MARGIN:
            return "inconclusive", (
                f"{figures}; processes and threads are within {MARGIN:g}x of each other here, "
                "too close to place interpreters"
            )
        near = math.log(MARGIN) / math.log(gap)
    else:
        if p == t:
            return "inconclusive", f"{figures}; processes and threads show the same figure"
        near = 0.1
    places = {
        _placement(_position(value, p, t, logarithmic), near)
        for value in (interpreter.median, interpreter.low, interpreter.high)
    }
    if len(places) > 1:
        return "inconclusive", f"{figures}; the interpreters' spread reaches more than one place"
    found = places.pop()
    if found == like:
        return "holds", f"{figures}; {_LIKE[found]}"
    if busy is not None and timing:
        return "inconclusive", (
            f"{figures}; {_LIKE[found]}, not {_LIKE[like]} as claimed, but the machine was busy "
            f"({busy})"
        )
    return "does not hold", f"{figures}; {_LIKE[found]}, not {_LIKE[like]} as claimed"


def _settle_interpreter(
    measurement: Measurement, like: Placement | None, busy: str | None
) -> tuple[Status | None, str]:
    """The interpreter status and verdict of a measurement (``None``: nothing to place)."""
    m = measurement
    if m.interpreter is None:
        return None, ""
    if like is None:
        return "as stated", f"as stated: {format_value(m.interpreter)}"
    first = m.comparisons[0] if m.comparisons else None
    if m.interpreter_spread is not None and first is not None:
        status, text = place(
            m.interpreter_spread,
            first.process,
            first.thread,
            first.unit,
            like,
            timing=first.timing,
            busy=busy,
        )
    else:
        status, text = place(
            Spread.exact(m.interpreter.value),
            Spread.exact(m.process.value),
            Spread.exact(m.thread.value),
            m.interpreter.unit,
            like,
            timing=False,
        )
    prefix = {"holds": "holds", "does not hold": "does not hold here"}.get(status, status)
    return status, f"{prefix}: {text}"


def format_value(figure: Figure) -> str:
    """A figure's value with its unit, as the verdicts write it (``"3.2 us"``, ``"1.9x"``)."""
    return _with_unit(figure.value, figure.unit)


def settle(
    measurement: Measurement,
    load: Load | None,
    cores: int | None = None,
    like: Placement | None = None,
) -> Measurement:
    """Fill in the status and verdict of a probe's measurement from its comparisons and load.

    A row without comparisons is a matter of kind (or of counts that load cannot move): its
    status comes from its ``holds`` ("as stated" when ``None``). A row with comparisons is
    decided by the first one (the row's figure); any further one can only make it inconclusive
    or, if it contradicts the claim, "does not hold". The interpreter figure, if any, is placed
    by :func:`place` against ``like``, the row's :attr:`~concurrency_kit.compare.Aspect.
    interpreter_like` (``None``: only shown, "as stated").
    """
    cores = cores or usable_cores()
    busy = machine_busy(load, cores)
    status: Status
    if not measurement.comparisons:
        kinds: dict[bool | None, Status] = {
            True: "holds",
            False: "does not hold",
            None: "as stated",
        }
        status = kinds[measurement.holds]
        decided = ""
    else:
        results = [decide(c, busy) for c in measurement.comparisons]
        statuses = [s for s, _ in results]
        if "inconclusive" in statuses:
            status = "inconclusive"
        elif "does not hold" in statuses:
            status = "does not hold"
        else:
            status = "holds"
        decided = "; ".join(text for _, text in results)
    prefix = {
        "holds": "holds",
        "does not hold": "does not hold here",
        "inconclusive": "inconclusive",
        "as stated": "as stated",
    }[status]
    verdict = f"{prefix}: {measurement.finding}"
    if status == "does not hold" and measurement.explanation:
        verdict += f". Why: {measurement.explanation}"
    details = dict(measurement.details)
    if decided:
        details["decided by"] = decided
    if load is not None:
        details["machine meanwhile"] = load.describe() + (f" (busy: {busy})" if busy else "")
    holds = {"holds": True, "does not hold": False}.get(status, measurement.holds)
    if status == "inconclusive":
        holds = None
    interpreter_status, interpreter_verdict = _settle_interpreter(measurement, like, busy)
    return attrs.evolve(
        measurement,
        status=status,
        verdict=verdict,
        holds=holds,
        details=details,
        load=load,
        interpreter_status=interpreter_status,
        interpreter_verdict=interpreter_verdict,
    )


def timed(probe: Probe, mode: Mode, like: Placement | None = None) -> Measurement:
    """Run ``probe``, watch the machine meanwhile, and settle the verdicts (``like``: where
    the row's claim puts interpreters)."""
    meter = LoadMeter()
    meter.start()
    start = time.perf_counter()
    measurement = probe(mode)
    seconds = time.perf_counter() - start
    load = meter.stop()
    return attrs.evolve(settle(measurement, load, like=like), seconds=seconds)

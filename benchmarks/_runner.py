"""A small runner for side-by-side benchmarks: ours and the baselines, interleaved, in one run.

Vocabulary::

    Benchmark ── one thing measured (say "map 20k tiny tasks"), a *kind* and a *reference*
       │
       ├── Contender ── our class, or a stdlib / peer baseline doing the same work
       │      setup() -> context manager yielding measure()     (untimed: create, warm up)
       │      measure() -> seconds, or a sequence of seconds    (the timed work: one round)
       │
       └── Target ── "ours vs theirs must be >= 2x" (or an absolute bound on ours)

Rounds are interleaved: after ``warmup`` untimed rounds, each of ``rounds`` rounds calls every
contender's ``measure()`` once, starting at a position that rotates by one each round. A burst of
noise from a neighbour on a shared machine then lands on every contender, not on one of them, and
no contender always runs first or last.

Three kinds of benchmark:

* ``throughput``: each sample is ``items / seconds`` (work items per second). A ratio is
  ``this / reference`` of the medians: **higher is better**.
* ``latency``: each sample is the seconds themselves, shown in the benchmark's unit. A ratio is
  ``this / reference`` of the medians: **lower is better**.
* ``size``: each sample is a number of bytes (say, memory still resident), which ``measure()``
  returns in place of seconds, shown in the benchmark's unit (``"B"``, ``"KiB"``, ``"MiB"``).
  A ratio is ``this / reference`` of the medians: **lower is better**.

A contender whose package is missing (``requires``) is skipped with a message, never an error. A
contender whose setup or measurement raises anything else is an error: it is dropped from the
remaining rounds and the run exits with status 1 once everything else has been measured.

A benchmark script builds its benchmarks from a :class:`Config` and hands them to :func:`main`::

    def build(config: Config) -> list[Benchmark]: ...

    if __name__ == "__main__":
        sys.exit(main(build, description="..."))
"""

from __future__ import annotations

import argparse
import fnmatch
import gc
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from itertools import repeat
from typing import Any, Literal

import attrs

Kind = Literal["throughput", "latency", "size"]
Mode = Literal["full", "quick", "smoke"]
Measure = Callable[[], "float | Sequence[float]"]
"""The timed work of one round: returns the elapsed seconds (or one per sample taken); for a
``size`` benchmark, bytes instead of seconds."""
Setup = Callable[[], AbstractContextManager[Measure]]
"""Creates and warms up a contender (untimed) and yields its :data:`Measure`."""


@contextmanager
def loop_only(n: int) -> Iterator[Measure]:
    """The loop of the other rows with an empty body: its cost is in each of them."""

    def measure() -> float:
        start = time.perf_counter()
        for _ in repeat(None, n):
            pass
        return (time.perf_counter() - start) / n

    yield measure


def sample_each(call: Callable[[], object], k: int) -> Measure:
    """A measure timing ``k`` calls of ``call`` one by one: ``k`` samples per round."""

    def measure() -> list[float]:
        samples = []
        clock = time.perf_counter
        for _ in range(k):
            start = clock()
            call()
            samples.append(clock() - start)
        return samples

    return measure


@contextmanager
def pipe_floor(context: Any, k: int, deadline: float = 60.0) -> Iterator[Measure]:
    """A child process (of ``context``) echoing 8 bytes over two pipes, raw ``os.write`` and
    ``os.read``: the cheapest round trip there is, the floor for every ping-pong row."""
    from _tasks import echo  # a module of its own, importable by the child

    to_child_r, to_child_w = context.Pipe(duplex=False)
    from_child_r, from_child_w = context.Pipe(duplex=False)
    child = context.Process(target=echo, args=(to_child_r, from_child_w), name="bench-echo")
    child.start()
    to_child_r.close()
    from_child_w.close()
    wfd, rfd = to_child_w.fileno(), from_child_r.fileno()
    message = b"ping1234"

    def round_trip() -> None:
        os.write(wfd, message)
        if os.read(rfd, 64) != message:
            raise AssertionError("the echo child answered something else")

    try:
        for _ in range(20):
            round_trip()
        yield sample_each(round_trip, k)
    finally:
        to_child_w.close()  # the child reads end-of-file and exits
        child.join(deadline)
        if child.exitcode is None:
            child.kill()
            child.join()
        child.close()
        from_child_r.close()


ROUNDS: dict[Mode, int] = {"full": 10, "quick": 3, "smoke": 2}
WARMUP: dict[Mode, int] = {"full": 1, "quick": 1, "smoke": 0}
LATENCY_UNITS: dict[str, float] = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
SIZE_UNITS: dict[str, float] = {"B": 1.0, "KiB": 1 / 1024, "MiB": 1 / 1024**2}


@attrs.frozen
class Config:
    """How big and how long a run is; benchmark scripts size their work from it.

    Attributes:
        mode: ``"full"`` (the numbers to report), ``"quick"`` (a few rounds, small sizes) or
            ``"smoke"`` (the smallest run that still goes through every code path).
        rounds: measured rounds per benchmark.
        warmup: untimed rounds before them.
    """

    mode: Mode = "full"
    rounds: int = ROUNDS["full"]
    warmup: int = WARMUP["full"]

    def size(self, full: int, quick: int | None = None, smoke: int | None = None) -> int:
        """The size for this mode; by default quick is a tenth of full, smoke a tenth of quick."""
        quick_size = max(1, full // 10) if quick is None else quick
        if self.mode == "full":
            return full
        if self.mode == "quick":
            return quick_size
        return max(1, quick_size // 10) if smoke is None else smoke


@attrs.frozen
class Contender:
    """One way of doing a benchmark's work.

    Attributes:
        name: shown in the table and used by :class:`Target` and :attr:`Benchmark.reference`.
        setup: see :data:`Setup`.
        requires: importable names this contender needs; when one is missing it is skipped.
        items: work items per sample, for ``throughput`` benchmarks (``items / seconds``).
        note: a short remark printed under the table (say, why its size differs).
    """

    name: str
    setup: Setup
    requires: tuple[str, ...] = ()
    items: int = 1
    note: str = ""


@attrs.frozen
class Target:
    """A goal for our contender, checked and printed after the benchmark.

    With ``theirs`` set, the bound is on the ratio ``ours / theirs`` of the medians: at least
    ``bound`` for a throughput benchmark, at most ``bound`` for a latency one. With ``theirs``
    ``None``, the bound is on our median itself, in seconds for a latency benchmark and in
    bytes for a size benchmark (not for throughput).
    """

    ours: str
    theirs: str | None
    bound: float
    label: str = ""


@attrs.frozen
class Benchmark:
    """One measured thing and everything that does it.

    Attributes:
        name: short identifier, matched by ``--only``.
        title: one line saying what is measured.
        kind: ``"throughput"``, ``"latency"`` or ``"size"``.
        contenders: ours and the baselines.
        reference: the contender every ratio in the table is relative to.
        targets: goals to check.
        unit: for latency, the display unit (``"s"``, ``"ms"``, ``"us"``, ``"ns"``); for size,
            ``"B"``, ``"KiB"`` or ``"MiB"``; for throughput, the name of a work item
            (``"tasks"``).
        rounds: measured rounds in ``full`` mode, when this benchmark needs another number.
    """

    name: str
    title: str
    kind: Kind
    contenders: tuple[Contender, ...]
    reference: str
    targets: tuple[Target, ...] = ()
    unit: str = "tasks"
    rounds: int | None = None


@attrs.frozen
class Summary:
    """Order statistics of one contender's samples, in display units (items/s or the unit)."""

    n: int
    median: float
    q1: float
    q3: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        ordered = sorted(values)
        if len(ordered) >= 2:
            q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
        else:
            q1 = q3 = ordered[0]
        return cls(
            n=len(ordered),
            median=statistics.median(ordered),
            q1=q1,
            q3=q3,
            min=ordered[0],
            max=ordered[-1],
        )


@attrs.define
class ContenderResult:
    """What happened to one contender: its raw samples (seconds) or why it has none."""

    name: str
    items: int
    status: Literal["ok", "skipped", "error"] = "ok"
    message: str = ""
    seconds: list[float] = attrs.field(factory=list)

    def values(self, benchmark: Benchmark) -> list[float]:
        """The samples in display units: items/s for throughput, the unit for latency and size."""
        if benchmark.kind == "throughput":
            return [self.items / s if s > 0 else math.inf for s in self.seconds]
        scale = unit_scale(benchmark)
        return [s * scale for s in self.seconds]

    def summary(self, benchmark: Benchmark) -> Summary | None:
        if self.status != "ok" or not self.seconds:
            return None
        return Summary.of(self.values(benchmark))


@attrs.frozen
class TargetResult:
    """A checked :class:`Target`: ``value`` is the ratio (or our median), ``None`` if n/a."""

    target: Target
    label: str
    value: float | None
    met: bool | None
    line: str


def unit_scale(benchmark: Benchmark) -> float:
    """Display units per second (latency) or per byte (size) of a benchmark's samples."""
    units = SIZE_UNITS if benchmark.kind == "size" else LATENCY_UNITS
    return units[benchmark.unit]


# -- measuring helpers for benchmark scripts -------------------------------------------------


def stop_workers(stop: Any, start: Any, workers: Sequence[Any], deadline: float) -> None:
    """End a round-based benchmark's workers: set ``stop``, pass the ``start`` barrier once
    more (a broken barrier means a worker failed, which the measurement reported), then join
    each worker; a process still running after ``deadline`` seconds is killed and closed."""
    stop.set()
    try:
        start.wait(deadline)
    except threading.BrokenBarrierError:
        pass  # a worker failed: the error was reported by the measurement
    for worker in workers:
        worker.join(deadline)
        if hasattr(worker, "exitcode"):  # a process (threads end with the interpreter)
            if worker.exitcode is None:
                worker.kill()
                worker.join()
            worker.close()


def timed(fn: Callable[[], object]) -> float:
    """Call ``fn()`` and return the seconds it took."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def missing_requirements(requires: Sequence[str]) -> list[str]:
    """The names in ``requires`` that cannot be imported here."""
    missing = []
    for name in requires:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


# -- running ---------------------------------------------------------------------------------


class _Live:
    """A contender being measured: its result so far and its measure callable."""

    def __init__(self, contender: Contender, result: ContenderResult, measure: Measure) -> None:
        self.contender = contender
        self.result = result
        self.measure = measure


def _print(text: str = "") -> None:
    print(text, flush=True)


def _error_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def _rotations(items: Sequence[_Live], start: int) -> Iterator[_Live]:
    count = len(items)
    for offset in range(count):
        yield items[(start + offset) % count]


def _one_round(live: list[_Live], start: int, record: bool) -> None:
    for entry in list(_rotations(live, start)):
        if entry.result.status != "ok":
            continue
        gc.collect()
        try:
            sample = entry.measure()
        except Exception as exc:
            entry.result.status = "error"
            entry.result.message = f"measurement failed: {_error_text(exc)}"
            _print(f"  ERROR {entry.contender.name}: {entry.result.message}")
            traceback.print_exc()
            continue
        if record:
            if isinstance(sample, (int, float)):
                entry.result.seconds.append(float(sample))
            else:
                entry.result.seconds.extend(float(s) for s in sample)


def run_benchmark(benchmark: Benchmark, config: Config) -> list[ContenderResult]:
    """Set every contender up, run the interleaved rounds, tear everything down."""
    rounds = config.rounds
    if config.mode == "full" and benchmark.rounds is not None and config.rounds == ROUNDS["full"]:
        rounds = benchmark.rounds
    results: list[ContenderResult] = []
    live: list[_Live] = []
    with ExitStack() as stack:
        for contender in benchmark.contenders:
            result = ContenderResult(contender.name, contender.items)
            results.append(result)
            missing = missing_requirements(contender.requires)
            if missing:
                result.status = "skipped"
                result.message = f"skipped: {', '.join(missing)} not installed"
                _print(f"  {contender.name}: {result.message}")
                continue
            try:
                measure = stack.enter_context(contender.setup())
            except ImportError as exc:
                result.status = "skipped"
                result.message = f"skipped: {_error_text(exc)}"
                _print(f"  {contender.name}: {result.message}")
                continue
            except Exception as exc:
                result.status = "error"
                result.message = f"setup failed: {_error_text(exc)}"
                _print(f"  ERROR {contender.name}: {result.message}")
                traceback.print_exc()
                continue
            live.append(_Live(contender, result, measure))
        for index in range(config.warmup):
            _one_round(live, index, record=False)
        for index in range(rounds):
            _one_round(live, index, record=True)
        try:
            stack.close()
        except Exception as exc:
            _print(f"  ERROR tearing down: {_error_text(exc)}")
            traceback.print_exc()
            for result in results:
                if result.status == "ok":
                    result.status = "error"
                    result.message = f"teardown failed: {_error_text(exc)}"
    return results


# -- reporting -------------------------------------------------------------------------------


def _number(value: float) -> str:
    """Three significant digits, without an exponent below a million."""
    if math.isinf(value) or abs(value) >= 1e6:
        return f"{value:.3g}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def _si(value: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{_number(value / scale)}{suffix}"
    return _number(value)


def format_value(benchmark: Benchmark, value: float) -> str:
    """A display-unit value as text: ``1.31M/s`` or ``172 us``."""
    if benchmark.kind == "throughput":
        return f"{_si(value)}/s"
    return f"{_number(value)} {benchmark.unit}"


def format_ratio(ratio: float) -> str:
    """``1.12x``; two significant digits below 0.1 (``0.0047x``)."""
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.2g}x"


def _bound_text(bound: float) -> str:
    return f"{bound:.1f}" if round(bound, 1) == bound else f"{bound:g}"


def _ratio(ours: Summary | None, theirs: Summary | None) -> float | None:
    if ours is None or theirs is None or theirs.median == 0:
        return None
    return ours.median / theirs.median


def ratio_meaning(kind: Kind) -> str:
    """How to read a ratio of this kind of benchmark."""
    if kind == "throughput":
        return "throughput ratio ours/theirs, higher is better"
    return f"{kind} ratio ours/theirs, lower is better"


def check_target(
    benchmark: Benchmark, target: Target, by_name: dict[str, ContenderResult]
) -> TargetResult:
    """Compute a target's ratio (or value) and whether it is met."""
    op = ">=" if benchmark.kind == "throughput" else "<="
    ours = by_name.get(target.ours)
    ours_summary = ours.summary(benchmark) if ours is not None else None
    if target.theirs is None:
        label = f"[{benchmark.name}] {target.label or target.ours + ' median'}"
        scale = unit_scale(benchmark)
        bound_text = f"{_number(target.bound * scale)} {benchmark.unit}"
        if ours_summary is None:
            why = ours.message if ours is not None else "not run"
            return TargetResult(target, label, None, None, f"{label}: n/a ({target.ours}: {why})")
        value = ours_summary.median / scale
        met = value >= target.bound if op == ">=" else value <= target.bound
        line = (
            f"{label}: {format_value(benchmark, ours_summary.median)} "
            f"(median; target {op} {bound_text}) {'MET' if met else 'MISSED'}"
        )
        return TargetResult(target, label, value, met, line)
    theirs = by_name.get(target.theirs)
    theirs_summary = theirs.summary(benchmark) if theirs is not None else None
    label = f"[{benchmark.name}] {target.label or target.ours + ' vs ' + target.theirs}"
    ratio = _ratio(ours_summary, theirs_summary)
    if ratio is None:
        reasons = [
            f"{name}: {result.message if result is not None else 'not run'}"
            for name, result in ((target.ours, ours), (target.theirs, theirs))
            if result is None or result.summary(benchmark) is None
        ]
        return TargetResult(target, label, None, None, f"{label}: n/a ({'; '.join(reasons)})")
    met = ratio >= target.bound if op == ">=" else ratio <= target.bound
    line = (
        f"{label}: {format_ratio(ratio)} ({ratio_meaning(benchmark.kind)}; "
        f"target {op} {_bound_text(target.bound)}x) {'MET' if met else 'MISSED'}"
    )
    return TargetResult(target, label, ratio, met, line)


def render_table(benchmark: Benchmark, results: Sequence[ContenderResult]) -> str:
    """The table of one benchmark: a row per contender, ratios against the reference."""
    ref = next((r for r in results if r.name == benchmark.reference), None)
    ref_summary = ref.summary(benchmark) if ref is not None else None
    width = max(len("contender"), *(len(r.name) for r in results))
    better = "higher" if benchmark.kind == "throughput" else "lower"
    header = (
        f"{'contender':<{width}}  {'n':>5}  {'median':>11}  {'q1 .. q3':>23}  "
        f"{'min .. max':>23}  {'x ref':>7}"
    )
    lines = [header, "-" * len(header)]
    for result in results:
        summary = result.summary(benchmark)
        if summary is None:
            lines.append(f"{result.name:<{width}}  {result.message}")
            continue
        ratio = _ratio(summary, ref_summary)
        ratio_text = "-" if ratio is None else format_ratio(ratio)
        quartiles = (
            f"{format_value(benchmark, summary.q1)} .. {format_value(benchmark, summary.q3)}"
        )
        extremes = (
            f"{format_value(benchmark, summary.min)} .. {format_value(benchmark, summary.max)}"
        )
        lines.append(
            f"{result.name:<{width}}  {summary.n:>5}  "
            f"{format_value(benchmark, summary.median):>11}  {quartiles:>23}  "
            f"{extremes:>23}  {ratio_text:>7}"
        )
    lines.append(
        f"x ref: median of this row / median of {benchmark.reference!r} ({benchmark.kind}: "
        f"{better} is better)"
    )
    lines.extend(f"note: {c.name}: {c.note}" for c in benchmark.contenders if c.note)
    return "\n".join(lines)


def _versions(names: Sequence[str]) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _metadata(config: Config, argv: Sequence[str], packages: Sequence[str]) -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "argv": list(argv),
        "mode": config.mode,
        "rounds": config.rounds,
        "warmup": config.warmup,
        "python": sys.version,
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "loadavg_at_start": list(load) if load is not None else None,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "packages": _versions(packages),
    }


def _result_json(
    benchmark: Benchmark, results: Sequence[ContenderResult], targets: Sequence[TargetResult]
) -> dict[str, Any]:
    ref = next((r for r in results if r.name == benchmark.reference), None)
    ref_summary = ref.summary(benchmark) if ref is not None else None
    contenders = []
    for result in results:
        summary = result.summary(benchmark)
        contenders.append(
            {
                "name": result.name,
                "status": result.status,
                "message": result.message,
                "items": result.items,
                "samples_seconds": result.seconds,
                "summary": attrs.asdict(summary) if summary is not None else None,
                "ratio_vs_reference": _ratio(summary, ref_summary),
            }
        )
    return {
        "name": benchmark.name,
        "title": benchmark.title,
        "kind": benchmark.kind,
        "unit": f"{benchmark.unit}/s" if benchmark.kind == "throughput" else benchmark.unit,
        "reference": benchmark.reference,
        "contenders": contenders,
        "targets": [
            {
                "label": t.label,
                "ours": t.target.ours,
                "theirs": t.target.theirs,
                "op": ">=" if benchmark.kind == "throughput" else "<=",
                "bound": t.target.bound,
                "value": t.value,
                "met": t.met,
                "text": t.line,
            }
            for t in targets
        ],
    }


# -- command line ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None, description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        action="store_const",
        dest="mode",
        const="quick",
        help="a few rounds with small sizes (numbers are indicative only)",
    )
    size.add_argument(
        "--smoke",
        action="store_const",
        dest="mode",
        const="smoke",
        help="the smallest run that exercises every contender (for tests; numbers mean nothing)",
    )
    parser.set_defaults(mode="full")
    parser.add_argument("--rounds", type=int, help="measured rounds per benchmark")
    parser.add_argument("--warmup", type=int, help="untimed rounds before the measured ones")
    parser.add_argument(
        "--only",
        action="append",
        metavar="PATTERN",
        help="run only the benchmarks whose name matches (shell pattern; repeatable)",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--json", metavar="PATH", help="also write every sample and ratio here")
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be >= 1")
    if args.warmup is not None and args.warmup < 0:
        parser.error("--warmup must be >= 0")
    return args


def main(
    build: Callable[[Config], Sequence[Benchmark]],
    *,
    description: str,
    argv: Sequence[str] | None = None,
    packages: Sequence[str] = (),
) -> int:
    """Run a benchmark script's benchmarks from the command line.

    Args:
        build: makes the benchmarks for a :class:`Config`.
        description: the ``--help`` text.
        argv: the arguments (default ``sys.argv[1:]``).
        packages: distributions whose versions are recorded in the JSON output.

    Returns:
        The exit status: 0, or 1 when a contender failed (a missed target is not a failure).
    """
    args = parse_args(argv, description)
    mode: Mode = args.mode
    config = Config(
        mode=mode,
        rounds=args.rounds if args.rounds is not None else ROUNDS[mode],
        warmup=args.warmup if args.warmup is not None else WARMUP[mode],
    )
    benchmarks = [
        b
        for b in build(config)
        if not args.only or any(fnmatch.fnmatchcase(b.name, p) for p in args.only)
    ]
    if args.list:
        for benchmark in benchmarks:
            _print(f"{benchmark.name}: {benchmark.title}")
            for contender in benchmark.contenders:
                _print(f"    {contender.name}")
        return 0
    if not benchmarks:
        _print(f"no benchmark matches {args.only}")
        return 1
    meta = _metadata(config, sys.argv if argv is None else ["<main>", *argv], packages)
    _print(
        f"mode={config.mode} rounds={config.rounds} warmup={config.warmup} "
        f"python={platform.python_version()} cpus={meta['cpu_count']} "
        f"loadavg={meta['loadavg_at_start']}"
    )
    failed = False
    report: list[dict[str, Any]] = []
    all_targets: list[TargetResult] = []
    for benchmark in benchmarks:
        _print()
        _print(f"== {benchmark.name}: {benchmark.title} ({benchmark.kind}) ==")
        started = time.perf_counter()
        results = run_benchmark(benchmark, config)
        elapsed = time.perf_counter() - started
        failed = failed or any(r.status == "error" for r in results)
        _print(render_table(benchmark, results))
        _print(f"({elapsed:.1f} s)")
        by_name = {r.name: r for r in results}
        checked = [check_target(benchmark, t, by_name) for t in benchmark.targets]
        for target in checked:
            _print(f"  target: {target.line}")
        all_targets.extend(checked)
        report.append(_result_json(benchmark, results, checked))
    if all_targets:
        _print()
        _print("== targets ==")
        for target in all_targets:
            _print(target.line)
    if args.json:
        meta["loadavg_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"meta": meta, "benchmarks": report}, out, indent=2)
            out.write("\n")
        _print(f"\nwrote {args.json}")
    if failed:
        _print("\nsome contenders failed (see ERROR above)")
    return 1 if failed else 0

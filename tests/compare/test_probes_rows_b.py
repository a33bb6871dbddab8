"""The probes of the rows Communication, Overhead, Crash Impact, Synchronization and Use Cases,
run for real in quick mode: what each observes about the two models.

No test compares the models' timings (that is each probe's verdict, not a property of the
code): timings are only checked to be positive and in the stated unit.
"""

from __future__ import annotations

import math
import os

import pytest

from concurrency_kit.compare._measure import Measurement, timed
from concurrency_kit.compare.probes import (
    communication,
    crash_impact,
    overhead,
    probe_for,
    synchronization,
    use_cases,
)


@pytest.mark.parametrize(
    "key", ["communication", "overhead", "crash_impact", "synchronization", "use_cases"]
)
def test_every_row_has_its_probe(key: str) -> None:
    probe = probe_for(key)
    assert probe is not None
    assert probe.__module__ == f"concurrency_kit.compare.probes.{key}"


def check_shape(measurement: Measurement, key: str, unit: str) -> None:
    assert measurement.key == key
    assert measurement.process.unit == measurement.thread.unit == unit
    assert measurement.process.what
    assert measurement.thread.what
    assert all(isinstance(v, str) for v in measurement.details.values())
    assert measurement.finding
    prefix = {
        "holds": "holds: ",
        "does not hold": "does not hold here: ",
        "inconclusive": "inconclusive: ",
    }[measurement.status]  # a timing row is never "as stated"
    assert measurement.verdict.startswith(prefix + measurement.finding)
    assert measurement.holds is {"holds": True, "does not hold": False}.get(measurement.status)


def positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def test_communication_both_channels_carry_small_and_large_messages() -> None:
    found = timed(communication.probe, "quick")
    check_shape(found, "communication", "msgs/s")
    assert found.better == "higher"
    assert positive(found.process.value)
    assert positive(found.thread.value)
    for name in ("1 MiB messages, threads", "1 MiB messages, processes"):
        assert found.details[name].endswith(" MiB/s")
        assert float(found.details[name].split()[0].replace(",", "")) > 0
    for name in ("latency, threads", "latency, processes"):
        assert found.details[name].endswith(" us")
        assert float(found.details[name].split()[0]) > 0


def test_overhead_reads_a_workers_memory_and_times_each_pool() -> None:
    found = timed(overhead.probe, "quick")
    check_shape(found, "overhead", "MiB")
    assert found.better == "lower"
    assert positive(found.process.value)
    assert found.thread.value >= 0  # an idle thread may touch less than a page we can see
    for name in ("per-task overhead, process pool", "per-task overhead, thread pool"):
        assert found.details[name].endswith(" us")
        assert float(found.details[name].split()[0]) > 0


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="Linux /proc only")
def test_overhead_memory_kib_reads_smaps_rollup() -> None:
    mine = overhead.memory_kib(os.getpid())
    assert mine is not None
    assert 0 < mine["uss"] <= mine["pss"] <= mine["rss"]
    assert overhead.memory_kib(-1) is None  # no such process: no figures


def test_crash_impact_the_process_model_survives_and_a_thread_segfault_kills_its_host() -> None:
    found = timed(crash_impact.probe, "quick")
    check_shape(found, "crash_impact", "hosts alive")
    assert found.status == "holds"  # counts, not timings: load cannot make it inconclusive
    assert found.process.value == 1
    assert found.thread.value == 0
    assert found.holds is True
    assert found.details["thread host"] == "killed by SIGSEGV"
    assert found.details["process host"] == "exit code 0"
    assert found.details["process pool recovery"].split()[1] == "ms"


def test_crash_impact_hosts_run_in_a_sandbox() -> None:
    code, out = crash_impact.run_host("print('survived')")
    assert (code, out) == (0, "survived\n")


def test_synchronization_measures_both_locks_contended_and_not() -> None:
    found = timed(synchronization.probe, "quick")
    check_shape(found, "synchronization", "ns")
    assert found.better == "lower"
    assert positive(found.process.value)
    assert positive(found.thread.value)
    for name in ("uncontended, ThreadLock", "uncontended, ProcessLock"):
        assert found.details[name].endswith(" ns per acquire+release")


def test_synchronization_contend_counts_its_cycles() -> None:
    from concurrency_kit import ThreadBarrier, ThreadLock

    lock, barrier = ThreadLock(), ThreadBarrier(1)
    start, end = synchronization.contend(lock, barrier, 10)
    assert end >= start
    assert not lock.locked()


def test_use_cases_speed_ups_for_cpu_and_io_bound_work() -> None:
    found = timed(use_cases.probe, "quick")
    check_shape(found, "use_cases", "x")
    assert found.better == "higher"
    assert positive(found.process.value)
    assert positive(found.thread.value)
    cpu, io = found.comparisons
    assert cpu.ceiling is not None
    assert io.at_least
    assert cpu.process.n == io.thread.n == use_cases.ROUNDS["quick"]
    assert "spin(" in found.details["CPU-bound, serial"]


def test_use_cases_calibration_scales_the_loop() -> None:
    assert use_cases.calibrate(0.02) >= 1
    assert use_cases.spin(10) == sum(i * i % 7 for i in range(10))


def test_use_cases_workloads() -> None:
    assert use_cases.spin(10) == sum(i * i % 7 for i in range(10))
    assert use_cases.nap(0.0) == 0.0

"""The probes of the rows Definition, Memory Space, Resource Sharing, Creation Time and Context
Switching, run for real in quick mode: what each observes about the two models.

No test compares the models' timings (that is each probe's verdict, not a property of the
code): timings are only checked to be positive and in the stated unit.
"""

from __future__ import annotations

import math

import pytest

from concurrency_kit.compare._measure import Measurement, timed
from concurrency_kit.compare.probes import (
    context_switching,
    creation_time,
    definition,
    memory_space,
    probe_for,
    resource_sharing,
)


@pytest.mark.parametrize(
    "key", ["definition", "memory_space", "resource_sharing", "creation_time", "context_switching"]
)
def test_every_row_has_its_probe(key: str) -> None:
    probe = probe_for(key)
    assert probe is not None
    assert probe.__module__ == f"concurrency_kit.compare.probes.{key}"


def check_shape(measurement: Measurement, key: str) -> None:
    assert measurement.key == key
    assert measurement.verdict
    assert measurement.process.what
    assert measurement.thread.what
    assert all(isinstance(v, str) for v in measurement.details.values())


def test_definition_a_process_worker_runs_in_an_interpreter_of_its_own() -> None:
    found = timed(definition.probe, "quick")
    check_shape(found, "definition")
    assert found.holds is None
    assert found.status == "as stated"
    assert found.verdict == f"as stated: {found.finding}"
    assert found.process.unit == found.thread.unit == "interpreters"
    assert found.process.value == definition.WORKERS  # each in its own
    assert found.thread.value == 0  # all in ours
    assert found.details["distinct threads among thread workers"] == str(definition.WORKERS)
    assert found.details["thread worker pids"] == found.details["parent pid"]
    assert found.details["parent pid"] not in found.details["process worker pids"].split(", ")
    assert found.details["trivial task round trip, process pool"].endswith(" us")


def test_memory_space_a_thread_write_is_seen_and_a_process_write_is_not() -> None:
    found = timed(memory_space.probe, "quick")
    check_shape(found, "memory_space")
    assert found.thread.value == memory_space.TASKS
    assert found.process.value == 0
    assert found.holds is True
    assert found.verdict.startswith("holds: ")
    tasks = memory_space.TASKS
    assert found.details["ProcessSharedCounter, seen by parent"] == f"{tasks} of {tasks}"
    assert found.details["ProcessSharedDict entries, seen by parent"].startswith(
        f"{tasks} of {tasks}"
    )
    assert memory_space._hits == 0  # the parent's global is left as found


@pytest.mark.fork  # forks the test process
def test_resource_sharing_threads_use_the_parents_file_processes_must_set_it_up() -> None:
    found = timed(resource_sharing.probe, "quick")
    check_shape(found, "resource_sharing")
    tasks = resource_sharing.TASKS
    assert found.holds is None
    assert found.process.unit == found.thread.unit == "lines"
    assert found.thread.value == tasks
    assert found.process.value == 0
    details = found.details
    assert details["thread workers, parent's list"].startswith(f"{tasks} of {tasks}")
    assert details["process pool, parent's file object"].startswith("SerializationError")
    assert details["forked child, inherited fd"] == "1 line written (exit code 0)"
    assert details["forked child, parent's list"].startswith("0 of 1")
    assert details["process workers, reopened by path"] == f"{tasks} of {tasks} lines"
    assert details["process workers, ProcessGuarded list"].startswith(f"{tasks} of {tasks}")


@pytest.mark.fork  # forks the test process
def test_creation_time_measures_a_thread_and_every_start_method() -> None:
    found = timed(creation_time.probe, "quick")
    check_shape(found, "creation_time")
    assert found.process.unit == found.thread.unit == "us"
    assert found.process.value > 0
    assert found.thread.value > 0
    assert math.isfinite(found.ratio)
    assert "forkserver" in found.process.what
    assert {"thread", "fork", "forkserver", "spawn"} <= found.details.keys()
    assert found.status in ("holds", "does not hold", "inconclusive")
    assert found.comparisons
    assert "decided by" in found.details


def test_context_switching_measures_both_mechanisms_for_both_models() -> None:
    found = timed(context_switching.probe, "quick")
    check_shape(found, "context_switching")
    assert found.better == "lower"
    assert found.process.unit == found.thread.unit == "us"
    assert found.process.value > 0
    assert found.thread.value > 0
    assert "ProcessChannel" in found.process.what
    assert "ThreadChannel" in found.thread.what
    for key in ("channels, threads", "channels, processes", "events, threads", "events, processes"):
        assert " us per hand-off" in found.details[key]
    assert found.status in ("holds", "does not hold", "inconclusive")
    assert found.comparisons
    assert "decided by" in found.details

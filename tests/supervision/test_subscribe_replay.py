"""``subscribe()`` inside the ``with`` block sees every event from the supervisor's start
(issue 21: it used to miss the children's first ``"start"`` events), for both models.

Deterministic: :meth:`start` returns only once every child's ``"start"`` event is recorded,
so a subscriber added after it can only see them through the replay; no timing is involved.
"""

from __future__ import annotations

from collections.abc import Sequence

from concurrency_kit import ChildSpec, Model, SupervisorEvent
from supervision import _log_targets as targets


def pairs(events: Sequence[SupervisorEvent]) -> list[tuple[str, str | None]]:
    return [(e.kind, e.child_id) for e in events]


def test_a_late_subscriber_gets_the_events_so_far_then_every_new_one(model: Model) -> None:
    specs = [ChildSpec(i, targets.run_until_stopped, shutdown=30.0) for i in ("a", "b")]
    supervisor = model.Supervisor(specs)
    seen: list[SupervisorEvent] = []
    late: list[SupervisorEvent] = []
    with supervisor:
        supervisor.subscribe(seen.append)
        assert pairs(seen) == [("start", "a"), ("start", "b")]  # replayed, in this thread
        assert seen == supervisor.events()
        supervisor.subscribe(late.append, replay=False)
        assert late == []
    events = supervisor.events()
    assert seen == events  # none missed, none repeated, in order
    assert pairs(events) == [
        ("start", "a"),
        ("start", "b"),
        ("exit", "b"),
        ("exit", "a"),
        ("stop", None),
    ]
    assert late == events[2:]


def test_a_subscriber_that_raises_during_the_replay_stays_subscribed(model: Model) -> None:
    supervisor = model.Supervisor([ChildSpec("a", targets.run_until_stopped, shutdown=30.0)])
    calls: list[SupervisorEvent] = []

    def broken(event: SupervisorEvent) -> None:
        calls.append(event)
        raise RuntimeError("a broken subscriber does not break supervision")

    with supervisor:
        supervisor.subscribe(broken)
    assert calls == supervisor.events()
    assert pairs(calls) == [("start", "a"), ("exit", "a"), ("stop", None)]

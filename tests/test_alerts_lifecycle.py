"""Alert lifecycle against a real database: grouping, transitions, audit, change log."""

from __future__ import annotations

from typing import Literal

import asyncpg
import pytest

from alerts import (
    AlertNotFoundError,
    Observation,
    TransitionError,
    audit_trail,
    changes_since,
    list_alerts,
    transition,
)
from alerts._repository import observe, record_change
from protocol import EventKind, Severity

pytestmark = pytest.mark.postgres


def _event(phase: Literal["start", "end"], t: float, zone: str = "floor") -> Observation:
    return Observation(
        event_id=f"cam-1:{zone}:{t}",
        kind=EventKind.INTRUSION,
        source_id="cam-1",
        phase=phase,
        at=t + 5 if phase == "end" else t,
        zone_id=zone,
    )


async def _observe(db: asyncpg.Connection, event: Observation) -> str:
    async with db.transaction():
        result = await observe(db, event, "my-tho", Severity.MAJOR)
        assert result is not None
        await record_change(db, result[0])
    return result[0].id


async def test_repeats_update_the_open_alert_and_transitions_are_audited(
    db: asyncpg.Connection,
) -> None:
    first = await _observe(db, _event("start", 1000.0))
    again = await _observe(db, _event("start", 1010.0))
    other_zone = await _observe(db, _event("start", 1010.0, zone="door"))
    assert first == again
    assert other_zone != first
    listed = await list_alerts(db, kinds=["intrusion"], states=["open"], districts=["my-tho"])
    assert {a.id: a.count for a in listed} == {first: 2, other_zone: 1}
    assert await list_alerts(db, districts=["go-cong"]) == []

    acked = await transition(db, first, "acknowledge", actor="op1", note="looking")
    assert (acked.state, acked.acknowledged_by) == ("acknowledged", "op1")
    with pytest.raises(TransitionError, match="cannot acknowledge"):
        await transition(db, first, "acknowledge", actor="op2")
    assigned = await transition(db, first, "assign", actor="op1", assignee="patrol-7")
    assert (assigned.state, assigned.assigned_to) == ("assigned", "patrol-7")
    resolved = await transition(db, first, "resolve", actor="op1", note="false alarm")
    assert resolved.state == "resolved"
    assert resolved.resolved_at is not None
    with pytest.raises(TransitionError):
        await transition(db, first, "resolve", actor="op1")

    trail = await audit_trail(db, first)
    assert [(e.action, e.from_state, e.to_state, e.actor) for e in trail] == [
        ("open", None, "open", "system"),
        ("acknowledge", "open", "acknowledged", "op1"),
        ("assign", "acknowledged", "assigned", "op1"),
        ("resolve", "assigned", "resolved", "op1"),
    ]
    assert trail[3].note == "false alarm"

    # A new start after resolution opens a new alert: one alert per episode while open.
    reopened = await _observe(db, _event("start", 2000.0))
    assert reopened != first

    changes = await changes_since(db, 0)
    seqs = [c.seq for c in changes]
    assert seqs == sorted(seqs)
    assert len(changes) == 7
    assert [c.alert.state for c in changes if c.alert.id == first] == [
        "open",
        "open",
        "acknowledged",
        "assigned",
        "resolved",
    ]


async def test_unknown_alert_is_named(db: asyncpg.Connection) -> None:
    with pytest.raises(AlertNotFoundError, match="not-a-uuid"):
        await transition(db, "not-a-uuid", "resolve", actor="op")
    with pytest.raises(AlertNotFoundError):
        await transition(db, "00000000-0000-0000-0000-000000000000", "resolve", actor="op")

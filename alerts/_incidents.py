"""Incidents as operators see and work them: read from their alerts, acted on as one.

An incident's state, severity, title and place are derived from its alerts (the unresolved
ones while there are any), never stored apart from them. An action on an incident is the
same action on each of its unresolved alerts, in one transaction: each is audited and each
appears on the websocket as its alert's change.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Literal

import msgspec

from protocol import Severity, severity_rank
from store import Connection

from ._lifecycle import add_note, transition
from ._model import ALERT_COLUMNS, AlertState, AlertView
from ._repository import lock_change_log

IncidentState = Literal["open", "acknowledged", "assigned", "resolved"]
IncidentAction = Literal["acknowledge", "assign", "note", "resolve"]
_PROGRESS: dict[str, int] = {"open": 0, "acknowledged": 1, "assigned": 2, "resolved": 3}


class Incident(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    state: IncidentState
    """The least advanced of its unresolved alerts (open < acknowledged < assigned);
    resolved when all are."""
    severity: str
    """The highest of its unresolved alerts (of all, once resolved)."""
    district_id: str
    title_vi: str
    title_en: str
    kinds: list[str]
    alert_ids: list[str]
    """Its unresolved alerts (all of them once it is resolved), oldest first."""
    source_ids: list[str]
    lat: float | None
    lon: float | None
    opened_at: datetime
    updated_at: datetime
    acknowledged_by: str | None
    assigned_to: str | None
    unacknowledged: bool
    """Some unresolved alert is still open (nobody acknowledged it)."""
    alert_count: int


class IncidentNotFoundError(LookupError):
    def __init__(self, incident_id: str) -> None:
        super().__init__(f"incident {incident_id} does not exist")
        self.incident_id = incident_id


class IncidentActionError(ValueError):
    """Nothing in the incident the action applies to (all resolved, none open)."""

    def __init__(self, incident_id: str, action: IncidentAction, state: str) -> None:
        super().__init__(f"cannot {action} incident {incident_id}: it is {state}")
        self.incident_id = incident_id
        self.action = action
        self.state = state


def _rank(severity: str) -> int:
    try:
        return severity_rank(Severity(severity))
    except ValueError:
        return -1


def summarise(incident_id: str, alerts: Sequence[AlertView]) -> Incident:
    """The incident made of ``alerts`` (at least one; those of one incident)."""
    live = [a for a in alerts if a.state != "resolved"]
    basis = sorted(live or alerts, key=lambda a: a.opened_at)
    top = max(basis, key=lambda a: (_rank(a.severity), -a.opened_at.timestamp()))
    state: AlertState = min((a.state for a in basis), key=_PROGRESS.__getitem__)
    recent = sorted(basis, key=lambda a: a.updated_at, reverse=True)
    placed = next((a for a in [top, *basis] if a.lat is not None), top)
    return Incident(
        id=incident_id,
        state=state,
        severity=top.severity,
        district_id=top.district_id,
        title_vi=top.title_vi,
        title_en=top.title_en,
        kinds=sorted({a.kind for a in basis}),
        alert_ids=[a.id for a in basis],
        source_ids=list(dict.fromkeys(a.source_id for a in basis)),
        lat=placed.lat,
        lon=placed.lon,
        opened_at=min(a.opened_at for a in alerts),
        updated_at=max(a.updated_at for a in alerts),
        acknowledged_by=next((a.acknowledged_by for a in recent if a.acknowledged_by), None),
        assigned_to=next((a.assigned_to for a in recent if a.assigned_to), None),
        unacknowledged=any(a.state == "open" for a in live),
        alert_count=len(basis),
    )


def work_order(incident: Incident) -> tuple[bool, int, datetime]:
    """As an operator works: unacknowledged first, then the most severe, then the oldest."""
    return (not incident.unacknowledged, -_rank(incident.severity), incident.opened_at)


def group(alerts: Iterable[AlertView]) -> list[Incident]:
    """The incidents of ``alerts``, in :func:`work_order`."""
    by_incident: dict[str, list[AlertView]] = {}
    for alert in alerts:
        by_incident.setdefault(alert.incident_id, []).append(alert)
    return sorted((summarise(i, a) for i, a in by_incident.items()), key=work_order)


async def incident_alerts(
    conn: Connection, *, active_only: bool = True, since: datetime | None = None
) -> list[AlertView]:
    """The alerts of every incident that has an unresolved alert (all of their alerts), and,
    unless ``active_only``, of incidents opened since ``since`` too."""
    records = await conn.fetch(
        f"""SELECT {ALERT_COLUMNS} FROM alerts WHERE incident_id IN (
                SELECT incident_id FROM alerts WHERE state <> 'resolved'
                UNION
                SELECT id FROM incidents WHERE NOT $1 AND opened_at >= $2)
            ORDER BY opened_at""",
        active_only,
        since,
    )
    return [AlertView.from_record(r) for r in records]


def _incident_uuid(incident_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(incident_id)
    except ValueError as exc:
        raise IncidentNotFoundError(incident_id) from exc


async def alerts_of(conn: Connection, incident_id: str) -> list[AlertView]:
    """Every alert of the incident, oldest first; raises when it does not exist."""
    records = await conn.fetch(
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE incident_id = $1 ORDER BY opened_at",
        _incident_uuid(incident_id),
    )
    if not records:
        raise IncidentNotFoundError(incident_id)
    return [AlertView.from_record(r) for r in records]


async def act_on_incident(
    conn: Connection,
    incident_id: str,
    action: IncidentAction,
    *,
    actor: str,
    note: str | None = None,
    assignee: str | None = None,
) -> list[AlertView]:
    """``action`` on each unresolved alert of the incident (acknowledge: each open one), in
    one transaction; returns the alerts as changed."""
    key = _incident_uuid(incident_id)
    async with conn.transaction():
        await lock_change_log(conn)
        rows = await conn.fetch(
            """SELECT id, state FROM alerts WHERE incident_id = $1 ORDER BY opened_at, id
               FOR UPDATE""",
            key,
        )
        if not rows:
            raise IncidentNotFoundError(incident_id)
        live = [r for r in rows if r["state"] != "resolved"]
        targets = [r for r in live if r["state"] == "open"] if action == "acknowledge" else live
        if not targets:
            state = min((r["state"] for r in rows), key=_PROGRESS.__getitem__)
            raise IncidentActionError(incident_id, action, state)
        changed = []
        for row in targets:
            alert_id = str(row["id"])
            if action == "note":
                changed.append(await add_note(conn, alert_id, actor=actor, note=note or ""))
            else:
                changed.append(
                    await transition(
                        conn, alert_id, action, actor=actor, note=note, assignee=assignee
                    )
                )
    return changed

"""Incidents: alerts that belong together, listed as operators work them and acted on as one;
the operators an incident can be assigned to."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import msgspec
from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.responses import Response

from alerts import (
    AlertView,
    AuditEntry,
    Incident,
    IncidentAction,
    IncidentActionError,
    IncidentNotFoundError,
    act_on_incident,
    alerts_of,
    audit_of,
    group,
    incident_alerts,
    summarise,
)
from protocol import EventKind, Severity

from ._alerts import AssignBody, NoteBody, TransitionBody
from ._auth import Principal
from ._bounds import Ids
from ._deps import AUTH_RESPONSES, Incidents, Live, Pool
from ._openapi import Responses, documented, json_response
from ._scope import admit

router = APIRouter(prefix="/api/v1", responses=AUTH_RESPONSES)

RECENT = timedelta(days=7)
"""``state=all`` adds the resolved incidents opened this recently."""
ListState = Literal["active", "open", "acknowledged", "assigned", "resolved", "all"]
IncidentId = Annotated[uuid.UUID, Path(description="The incident's id")]
NOT_FOUND: Responses = {404: {"description": "No such incident (or not one this role may see)"}}
_CONFLICT: Responses = {409: {"description": "Nothing in the incident this action applies to"}}


class IncidentDetail(msgspec.Struct, frozen=True, kw_only=True):
    incident: Incident
    alerts: list[AlertView]
    """Every alert of the incident (resolved ones included), oldest first."""
    audit: list[AuditEntry]
    """The audit lines of all its alerts, oldest first (each names its alert)."""


class Operator(msgspec.Struct, frozen=True, kw_only=True):
    username: str
    role: str


def _not_found(incident_id: uuid.UUID) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"incident {incident_id} does not exist")


def _admits(
    incident: Incident, state: ListState, district: set[str], kind: set[str], severity: set[str]
) -> bool:
    if state == "active" and incident.state == "resolved":
        return False
    if state not in ("active", "all") and incident.state != state:
        return False
    return (
        (not district or incident.district_id in district)
        and (not kind or bool(kind.intersection(incident.kinds)))
        and (not severity or incident.severity in severity)
    )


@router.get("/incidents", tags=["incidents"], responses=documented(list[Incident]))
async def list_incidents(
    *,
    pool: Pool,
    who: Incidents,
    state: Annotated[
        ListState,
        Query(
            description="active (default): every incident with an unresolved alert; open, "
            "acknowledged, assigned, resolved: incidents in that state; all: active ones and "
            "those resolved that were opened in the last 7 days"
        ),
    ] = "active",
    district: Annotated[Ids, Query(max_length=20, description="District ids (repeat)")] = None,
    kind: Annotated[
        list[EventKind] | None, Query(max_length=20, description="Has an alert of a kind")
    ] = None,
    severity: Annotated[list[Severity] | None, Query(max_length=4)] = None,
) -> Response:
    """Incidents as an operator works them: unacknowledged first, then the most severe,
    then the oldest. Police see only incidents with an alert sent to them, and only those
    alerts."""
    since = None if state in ("active", "open", "acknowledged", "assigned") else RECENT
    async with pool.acquire() as conn:
        alerts = await incident_alerts(
            conn,
            active_only=since is None,
            since=datetime.now(UTC) - since if since else None,
        )
        alerts = await admit(conn, who, alerts)
    incidents = [
        i
        for i in group(alerts)
        if _admits(
            i,
            state,
            set(district or ()),
            {str(k) for k in kind or ()},
            {str(s) for s in severity or ()},
        )
    ]
    return json_response(incidents)


async def _visible_alerts(pool: Pool, who: Principal, incident_id: uuid.UUID) -> list[AlertView]:
    async with pool.acquire() as conn:
        try:
            alerts = await alerts_of(conn, str(incident_id))
        except IncidentNotFoundError as exc:
            raise _not_found(incident_id) from exc
        alerts = await admit(conn, who, alerts)
    if not alerts:
        raise _not_found(incident_id)  # police are not told that other incidents exist
    return alerts


@router.get(
    "/incidents/{incident_id}",
    tags=["incidents"],
    responses={**documented(IncidentDetail), **NOT_FOUND},
)
async def one_incident(pool: Pool, who: Incidents, incident_id: IncidentId) -> Response:
    """The incident, all its alerts and their audit trail."""
    alerts = await _visible_alerts(pool, who, incident_id)
    async with pool.acquire() as conn:
        audit = await audit_of(conn, [a.id for a in alerts])
    return json_response(
        IncidentDetail(incident=summarise(str(incident_id), alerts), alerts=alerts, audit=audit)
    )


async def _act(
    pool: Pool,
    who: Principal,
    incident_id: uuid.UUID,
    action: IncidentAction,
    *,
    note: str | None = None,
    assignee: str | None = None,
) -> Response:
    async with pool.acquire() as conn:
        try:
            await act_on_incident(
                conn, str(incident_id), action, actor=who.username, note=note, assignee=assignee
            )
        except IncidentNotFoundError as exc:
            raise _not_found(incident_id) from exc
        except IncidentActionError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        alerts = await alerts_of(conn, str(incident_id))
    return json_response(summarise(str(incident_id), alerts))


_ACT: Responses = {**documented(Incident), **NOT_FOUND, **_CONFLICT}


@router.post("/incidents/{incident_id}/acknowledge", tags=["incidents"], responses=_ACT)
async def acknowledge(
    pool: Pool, who: Live, incident_id: IncidentId, body: TransitionBody | None = None
) -> Response:
    """Acknowledge each open alert of the incident; answers the incident as it is now."""
    return await _act(pool, who, incident_id, "acknowledge", note=body.note if body else None)


@router.post("/incidents/{incident_id}/assign", tags=["incidents"], responses=_ACT)
async def assign(pool: Pool, who: Live, incident_id: IncidentId, body: AssignBody) -> Response:
    """Assign each unresolved alert of the incident to ``assignee``."""
    return await _act(pool, who, incident_id, "assign", note=body.note, assignee=body.assignee)


@router.post("/incidents/{incident_id}/note", tags=["incidents"], responses=_ACT)
async def note(pool: Pool, who: Live, incident_id: IncidentId, body: NoteBody) -> Response:
    """Add the note to each unresolved alert of the incident (no change of state)."""
    return await _act(pool, who, incident_id, "note", note=body.note)


@router.post("/incidents/{incident_id}/resolve", tags=["incidents"], responses=_ACT)
async def resolve(
    pool: Pool, who: Live, incident_id: IncidentId, body: TransitionBody | None = None
) -> Response:
    """Resolve each unresolved alert of the incident."""
    return await _act(pool, who, incident_id, "resolve", note=body.note if body else None)


@router.get("/operators", tags=["incidents"], responses=documented(list[Operator]))
async def operators(pool: Pool, who: Live) -> Response:
    """Enabled users an incident can be assigned to (operators and administrators)."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT username, role FROM users
               WHERE NOT disabled AND role IN ('operator', 'admin') ORDER BY username"""
        )
    return json_response([Operator(username=r["username"], role=r["role"]) for r in rows])

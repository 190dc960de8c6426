"""Alerts: filtered lists, one alert, its audit trail, and what operators do to it."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from alerts import (
    Action,
    AlertNotFoundError,
    AlertView,
    AuditEntry,
    TransitionError,
    add_note,
    audit_trail,
    get_alert,
    get_evidence,
    open_alerts,
    transition,
)
from protocol import EventKind

from ._auth import Principal
from ._bounds import LINE, TEXT, Ids, time_range
from ._deps import AUTH_RESPONSES, Config, Incidents, Live, Pool
from ._openapi import Responses, documented, json_response
from ._scope import admit, may_see, narrow_kinds, visible_alerts

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"], responses=AUTH_RESPONSES)

DEFAULT_SPAN = timedelta(days=7)
MAX_SPAN = timedelta(days=92)
StateName = Literal["open", "acknowledged", "assigned", "resolved"]
AlertId = Annotated[uuid.UUID, Path(description="The alert's id")]
Districts = Annotated[Ids, Query(max_length=20, description="District ids (repeat for several)")]
Kinds = Annotated[list[EventKind] | None, Query(max_length=20, description="Event kinds (repeat)")]
States = Annotated[list[StateName] | None, Query(max_length=4, description="States (repeat)")]
NOT_FOUND: Responses = {404: {"description": "No such alert (or not one this role may see)"}}


class TransitionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Annotated[
        str | None, Field(max_length=2000, pattern=TEXT, description="Why; kept in the audit")
    ] = None


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Annotated[str, Field(min_length=1, max_length=2000, pattern=TEXT)]


class AssignBody(TransitionBody):
    assignee: Annotated[
        str,
        Field(
            min_length=1, max_length=64, pattern=LINE, description="A unit or person to assign to"
        ),
    ]


def _not_found(alert_id: uuid.UUID) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"alert {alert_id} does not exist")


@router.get("", responses=documented(list[AlertView]))
async def list_filtered(
    *,
    pool: Pool,
    config: Config,
    who: Incidents,
    state: States = None,
    kind: Kinds = None,
    district: Districts = None,
    since: Annotated[
        datetime | None, Query(description="Opened at or after (ISO 8601 with offset)")
    ] = None,
    until: Annotated[datetime | None, Query(description="Opened before; default now")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Response:
    """Alerts opened in ``[since, until)``, newest first (at most 92 days; default the last
    7). Police see only the incidents routed to them."""
    window = time_range(since, until, default_span=DEFAULT_SPAN, max_span=MAX_SPAN)
    kinds = narrow_kinds(who, [str(k) for k in kind or ()])
    if kinds is None:
        return json_response([])
    async with pool.acquire() as conn:
        alerts = await visible_alerts(
            conn,
            who,
            states=state or (),
            kinds=kinds,
            districts=district or (),
            since=window.since,
            until=window.until,
            limit=min(limit, config.alert_list_limit),
        )
    return json_response(alerts)


@router.get("/open", responses=documented(list[AlertView]))
async def list_open(
    pool: Pool,
    who: Incidents,
    kind: Kinds = None,
    district: Districts = None,
) -> Response:
    """Every alert not yet resolved, however old, oldest first: the operators' worklist."""
    kinds = narrow_kinds(who, [str(k) for k in kind or ()])
    if kinds is None:
        return json_response([])
    wanted_kinds, wanted_districts = set(kinds), set(district or ())
    async with pool.acquire() as conn:
        alerts = [
            a
            for a in await open_alerts(conn)
            if (not wanted_kinds or a.kind in wanted_kinds)
            and (not wanted_districts or a.district_id in wanted_districts)
        ]
        return json_response(await admit(conn, who, alerts))


async def visible(pool: Pool, who: Principal, alert_id: uuid.UUID) -> AlertView:
    """The alert, or 404 when it does not exist or the principal may not see it."""
    async with pool.acquire() as conn:
        try:
            alert = await get_alert(conn, str(alert_id))
        except AlertNotFoundError as exc:
            raise _not_found(alert_id) from exc
        if not await may_see(conn, who, alert):
            raise _not_found(alert_id)  # police are not told that other alerts exist
    return alert


@router.get("/{alert_id}", responses={**documented(AlertView), **NOT_FOUND})
async def one(pool: Pool, who: Incidents, alert_id: AlertId) -> Response:
    return json_response(await visible(pool, who, alert_id))


@router.get("/{alert_id}/audit", responses={**documented(list[AuditEntry]), **NOT_FOUND})
async def audit(pool: Pool, who: Incidents, alert_id: AlertId) -> Response:
    """Every transition of the alert, oldest first, with who did it and their note."""
    await visible(pool, who, alert_id)
    async with pool.acquire() as conn:
        return json_response(await audit_trail(conn, str(alert_id)))


_JPEG: Responses = {
    200: {
        "description": "The snapshot the camera's edge sent when the alert opened",
        "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
    },
    404: {"description": "No such alert (or not one this role may see), or no snapshot"},
}


@router.get("/{alert_id}/evidence.jpg", responses=_JPEG, response_class=Response)
async def evidence(pool: Pool, who: Incidents, alert_id: AlertId) -> Response:
    """The evidence snapshot of a camera alert (kept by the alerts service when it opened)."""
    await visible(pool, who, alert_id)
    async with pool.acquire() as conn:
        jpeg = await get_evidence(conn, str(alert_id))
    if jpeg is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"alert {alert_id} has no evidence snapshot (not a camera alert, or its edge "
            "did not answer in time)",
        )
    # Evidence never changes once stored; only its absence may (it can still arrive).
    return Response(
        jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )


_CONFLICT: Responses = {409: {"description": "Not allowed from the alert's current state"}}


async def _act(
    *,
    pool: Pool,
    who: Principal,
    alert_id: uuid.UUID,
    action: Action,
    note: str | None,
    assignee: str | None = None,
) -> Response:
    async with pool.acquire() as conn:
        try:
            alert = await transition(
                conn, str(alert_id), action, actor=who.username, note=note, assignee=assignee
            )
        except AlertNotFoundError as exc:
            raise _not_found(alert_id) from exc
        except TransitionError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return json_response(alert)


_ACT_RESPONSES = {**documented(AlertView), **NOT_FOUND, **_CONFLICT}


@router.post("/{alert_id}/acknowledge", responses=_ACT_RESPONSES)
async def acknowledge(
    pool: Pool, who: Live, alert_id: AlertId, body: TransitionBody | None = None
) -> Response:
    """open -> acknowledged."""
    return await _act(
        pool=pool,
        who=who,
        alert_id=alert_id,
        action="acknowledge",
        note=body.note if body else None,
    )


@router.post("/{alert_id}/assign", responses=_ACT_RESPONSES)
async def assign(pool: Pool, who: Live, alert_id: AlertId, body: AssignBody) -> Response:
    """open, acknowledged or assigned -> assigned to ``assignee``."""
    return await _act(
        pool=pool,
        who=who,
        alert_id=alert_id,
        action="assign",
        note=body.note,
        assignee=body.assignee,
    )


@router.post("/{alert_id}/resolve", responses=_ACT_RESPONSES)
async def resolve(
    pool: Pool, who: Live, alert_id: AlertId, body: TransitionBody | None = None
) -> Response:
    """Any unresolved state -> resolved."""
    return await _act(
        pool=pool, who=who, alert_id=alert_id, action="resolve", note=body.note if body else None
    )


@router.post("/{alert_id}/note", responses={**documented(AlertView), **NOT_FOUND})
async def note(pool: Pool, who: Live, alert_id: AlertId, body: NoteBody) -> Response:
    """Add a note: an audit line (action ``note``) without a change of state; the alert's
    ``note_count`` grows by one and the change reaches the websocket."""
    async with pool.acquire() as conn:
        try:
            alert = await add_note(conn, str(alert_id), actor=who.username, note=body.note)
        except AlertNotFoundError as exc:
            raise _not_found(alert_id) from exc
    return json_response(alert)

"""A citizen's report into the operations room: a new source of alerts.

A report joins an open camera or Wi-Fi alert of a matching kind nearby (operators are
already on it), or the alert of an open report of the same service nearby (a duplicate),
or opens its own ``citizen_report`` alert with the service's severity. Everything happens in
one transaction with the alert's audit row, change-log entry and deliveries (police over
CAP for the police's services, marked citizen-reported).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgspec

from alerts import (
    ALERT_COLUMNS,
    AlertView,
    RouteSpec,
    Routing,
    audit,
    load_routing,
    lock_change_log,
    notify,
)
from protocol import EventKind
from store import Connection

from ._catalogue import Catalogue, Service
from ._join import Place, camera_alert_near, duplicate_of, reports_near_new_alerts

CITIZEN = str(EventKind.CITIZEN_REPORT)
NEVER_CLEARS = 10 * 365 * 86400.0
"""A report's alert has no condition that clears: an operator resolves it."""


@dataclass(frozen=True, slots=True)
class NewReport:
    service: Service
    lat: float
    lon: float
    district_id: str
    description: str | None = None
    address_string: str | None = None
    address_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    media_url: str | None = None
    media_id: uuid.UUID | None = None
    channel: Literal["app", "hotline"] = "app"
    api_key_name: str | None = None
    device_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    caller_number_enc: bytes | None = None


@dataclass(frozen=True, slots=True)
class Accepted:
    request_id: int
    token: uuid.UUID
    alert_id: str
    joined: Literal["own", "duplicate", "camera"]


def _police_routing(routing: Routing, service: Service) -> Routing:
    """The police's services reach them whatever the alert rules list; others only when a
    rule routes ``citizen_report`` to them."""
    if not service.police:
        return routing
    return msgspec.structs.replace(routing, police=RouteSpec(kinds=[CITIZEN]))


async def _open_alert(conn: Connection, report: NewReport, request_id: int) -> AlertView:
    service = report.service
    vi, _, en = service.name.partition(" / ")
    # Its own incident (a camera alert nearby was joined before this), at the report's place
    # so that the map shows it.
    record = await conn.fetchrow(
        f"""WITH created AS (INSERT INTO incidents (opened_at) VALUES (now()) RETURNING id)
            INSERT INTO alerts (source_id, kind, zone_id, district_id, severity, state,
                                title_vi, title_en, opened_at, last_seen_at, first_event_id,
                                auto_resolve_seconds, rule, incident_id, lat, lon)
            VALUES ($1, $2, $3, $4, $5, 'open', $6, $7, now(), now(), $1, $8, $9,
                    (SELECT id FROM created), $10, $11)
            RETURNING {ALERT_COLUMNS}""",
        f"open311-{request_id}",
        CITIZEN,
        service.code,
        report.district_id,
        str(service.severity),
        f"Người dân phản ánh: {vi}",
        f"Citizen report: {en or vi}",
        NEVER_CLEARS,
        f"open311:{service.code}",
        report.lat,
        report.lon,
    )
    if record is None:
        raise RuntimeError("INSERT ... RETURNING returned no row")
    return AlertView.from_record(record)


async def _repeat(conn: Connection, alert_id: str) -> AlertView:
    record = await conn.fetchrow(
        f"""UPDATE alerts SET count = count + 1, last_seen_at = now(), updated_at = now()
            WHERE id = $1 RETURNING {ALERT_COLUMNS}""",
        uuid.UUID(alert_id),
    )
    if record is None:
        raise RuntimeError(f"alert {alert_id} vanished")
    return AlertView.from_record(record)


async def accept_report(conn: Connection, catalogue: Catalogue, report: NewReport) -> Accepted:
    """Store the report and hand it to operators; call outside a transaction."""
    service = report.service
    place = Place(report.lat, report.lon)
    async with conn.transaction():
        await lock_change_log(conn)
        routing = _police_routing(await load_routing(conn), service)
        row = await conn.fetchrow(
            """INSERT INTO open311_requests (service_code, description, lat, lon,
                   address_string, address_id, district_id, attributes, media_url, media_id,
                   channel, api_key_name, device_id, first_name, last_name, email, phone,
                   caller_number_enc, expected_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11, $12, $13, $14,
                       $15, $16, $17, $18, now() + $19)
               RETURNING id, token""",
            service.code,
            report.description,
            report.lat,
            report.lon,
            report.address_string,
            report.address_id,
            report.district_id,
            msgspec.json.encode(report.attributes).decode(),
            report.media_url,
            report.media_id,
            report.channel,
            report.api_key_name,
            report.device_id,
            report.first_name,
            report.last_name,
            report.email,
            report.phone,
            report.caller_number_enc,
            timedelta(minutes=service.target_minutes),
        )
        if row is None:
            raise RuntimeError("INSERT ... RETURNING returned no row")
        request_id: int = row["id"]
        joined: Literal["own", "duplicate", "camera"]
        note = f"Open311 request {request_id} ({service.code}, {report.channel})"
        if alert_id := await camera_alert_near(conn, place, service.joins, catalogue.joining):
            joined = "camera"
            await audit(
                conn,
                alert_id,
                actor="citizen",
                action="citizen_report",
                from_state=None,
                to_state=await conn.fetchval(
                    "SELECT state FROM alerts WHERE id = $1", uuid.UUID(alert_id)
                ),
                note=f"joined by {note}",
            )
        elif alert_id := await duplicate_of(conn, place, service.code, catalogue.joining):
            joined = "duplicate"
            alert = await _repeat(conn, alert_id)
            await audit(
                conn,
                alert_id,
                actor="citizen",
                action="citizen_report",
                from_state=alert.state,
                to_state=alert.state,
                note=f"duplicate: {note}",
            )
            await notify(conn, alert, "repeated", routing)
        else:
            joined = "own"
            alert = await _open_alert(conn, report, request_id)
            alert_id = alert.id
            await audit(
                conn,
                alert_id,
                actor="citizen",
                action="open",
                from_state=None,
                to_state="open",
                note=f"citizen-reported: {note}",
            )
            await notify(conn, alert, "opened", routing, note=f"citizen-reported: {note}")
        await conn.execute(
            "UPDATE open311_requests SET alert_id = $2 WHERE id = $1",
            request_id,
            uuid.UUID(alert_id),
        )
        await conn.execute(
            "INSERT INTO open311_links (request_id, alert_id, reason) VALUES ($1, $2, $3)",
            request_id,
            uuid.UUID(alert_id),
            joined,
        )
    return Accepted(request_id, row["token"], alert_id, joined)


async def escalate_overdue(conn: Connection, now: datetime | None = None) -> list[AlertView]:
    """Reports open past their target (``expected_datetime``) raise their alert one level,
    once per report; the change reaches every channel like any escalation."""
    moment = now or datetime.now(UTC)
    escalated: list[AlertView] = []
    async with conn.transaction():
        await lock_change_log(conn)
        routing = await load_routing(conn)
        records = await conn.fetch(
            f"""WITH due AS (
                    UPDATE open311_requests r SET escalated_at = $1
                    FROM alerts a
                    WHERE a.id = r.alert_id AND a.state <> 'resolved' AND a.kind = $2
                      AND r.expected_at < $1 AND r.escalated_at IS NULL
                    RETURNING r.id, r.alert_id)
                UPDATE alerts SET escalation_level = escalation_level + 1, escalated_at = $1,
                                  updated_at = now()
                WHERE id IN (SELECT alert_id FROM due)
                RETURNING {ALERT_COLUMNS},
                          (SELECT min(id) FROM due WHERE due.alert_id = alerts.id) AS request_id""",
            moment,
            CITIZEN,
        )
        for record in records:
            alert = AlertView.from_record(record)
            note = f"Open311 request {record['request_id']} past its target time"
            await audit(
                conn,
                alert.id,
                actor="system",
                action="escalate",
                from_state=alert.state,
                to_state=alert.state,
                note=note,
            )
            await notify(conn, alert, "escalated", routing, note=note)
            escalated.append(alert)
    return escalated


async def join_new_alerts(conn: Connection, catalogue: Catalogue) -> int:
    """Link camera and Wi-Fi alerts that opened near open reports; returns how many."""
    async with conn.transaction():
        joined = await reports_near_new_alerts(conn, catalogue)
        for link in joined:
            state = await conn.fetchval(
                "SELECT state FROM alerts WHERE id = $1", uuid.UUID(link.alert_id)
            )
            await audit(
                conn,
                link.alert_id,
                actor="citizen",
                action="citizen_report",
                from_state=None,
                to_state=state,
                note=f"joined Open311 request {link.request_id}",
            )
    return len(joined)

"""Alert persistence: every change commits with its audit row and change-log entry."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from protocol import PROFILES, Severity, VisionEvent
from store import Connection

from ._model import ALERT_COLUMNS, AlertChange, AlertView

_json = msgspec.json.Encoder()
_decode_view = msgspec.json.Decoder(AlertView)


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


async def record_change(conn: Connection, alert: AlertView) -> int:
    seq: int = await conn.fetchval(
        "INSERT INTO alert_changes (alert_id, payload) VALUES ($1, $2::jsonb) RETURNING seq",
        alert.id,
        _json.encode(alert).decode(),
    )
    return seq


async def audit(
    conn: Connection,
    alert_id: str,
    *,
    actor: str,
    action: str,
    from_state: str | None,
    to_state: str,
    note: str | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO alert_audit (alert_id, actor, action, from_state, to_state, note)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        alert_id,
        actor,
        action,
        from_state,
        to_state,
        note,
    )


async def observe(
    conn: Connection, event: VisionEvent, district_id: str, severity: Severity
) -> AlertView | None:
    """Open an alert for a starting episode, or update the open one; mark it cleared when the
    episode ends. Returns the changed alert, or None when nothing changed."""
    zone = event.zone_id
    if event.phase == "end":
        record = await conn.fetchrow(
            f"""UPDATE alerts SET cleared_at = $4, updated_at = now()
                WHERE source_id = $1 AND kind = $2 AND coalesce(zone_id, '') = coalesce($3, '')
                  AND state <> 'resolved'
                RETURNING {ALERT_COLUMNS}""",
            event.camera_id,
            str(event.kind),
            zone,
            _ts(event.ended_at or event.started_at),
        )
        return AlertView.from_record(record) if record else None
    profile = PROFILES[event.kind]
    record = await conn.fetchrow(
        f"""INSERT INTO alerts (kind, source_id, zone_id, district_id, severity, state,
                                title_vi, title_en, opened_at, last_seen_at, first_event_id,
                                first_frame_captured_at)
            VALUES ($1, $2, $3, $4, $5, 'open', $6, $7, $8, $8, $9, $10)
            ON CONFLICT (source_id, kind, (coalesce(zone_id, ''))) WHERE state <> 'resolved'
            DO UPDATE SET count = alerts.count + 1, last_seen_at = EXCLUDED.last_seen_at,
                          cleared_at = NULL, updated_at = now()
            RETURNING {ALERT_COLUMNS}, (xmax = 0) AS inserted""",
        str(event.kind),
        event.camera_id,
        zone,
        district_id,
        str(severity),
        profile.title_vi,
        profile.title_en,
        _ts(event.started_at),
        event.event_id,
        _ts(event.frame_captured_at) if event.frame_captured_at else None,
    )
    if record is None:
        raise RuntimeError("INSERT ... RETURNING returned no row")
    alert = AlertView.from_record(record)
    if record["inserted"]:
        await audit(
            conn,
            alert.id,
            actor="system",
            action="open",
            from_state=None,
            to_state="open",
            note=event.event_id,
        )
    return alert


async def resolve_cleared(conn: Connection, cleared_for_seconds: float) -> list[AlertView]:
    """Resolve alerts whose condition has been clear for the given time."""
    records = await conn.fetch(
        f"""UPDATE alerts SET state = 'resolved', resolved_at = now(), resolved_by = 'system',
                              updated_at = now()
            WHERE state <> 'resolved' AND cleared_at IS NOT NULL
              AND cleared_at < now() - make_interval(secs => $1)
            RETURNING {ALERT_COLUMNS},
                      (SELECT state FROM alerts a WHERE a.id = alerts.id) AS was""",
        cleared_for_seconds,
    )
    alerts = [AlertView.from_record(r) for r in records]
    for record, alert in zip(records, alerts, strict=True):
        await audit(
            conn,
            alert.id,
            actor="system",
            action="auto_resolve",
            from_state=record["was"],
            to_state="resolved",
            note="condition cleared",
        )
    return alerts


async def open_alerts(conn: Connection) -> list[AlertView]:
    records = await conn.fetch(
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE state <> 'resolved' ORDER BY opened_at"
    )
    return [AlertView.from_record(r) for r in records]


async def changes_since(conn: Connection, seq: int, limit: int = 1000) -> list[AlertChange]:
    records = await conn.fetch(
        "SELECT seq, at, payload::text AS payload FROM alert_changes WHERE seq > $1 "
        "ORDER BY seq LIMIT $2",
        seq,
        limit,
    )
    return [
        AlertChange(seq=r["seq"], at=r["at"], alert=_decode_view.decode(r["payload"]))
        for r in records
    ]


async def last_change_seq(conn: Connection) -> int:
    value: int = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM alert_changes")
    return value

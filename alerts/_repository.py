"""Alert persistence: every change commits with its audit row and change-log entry."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from protocol import PROFILES, EventKind, Severity
from store import Connection

from ._grouping import DEFAULT_GROUPING, IncidentGrouping, join_incident
from ._model import ALERT_COLUMNS, AlertChange, AlertView, Observation, Reason
from ._speeding import speeding_titles

_json = msgspec.json.Encoder()
_INFRA = [str(EventKind.CAMERA_OFFLINE), str(EventKind.CAMERA_TAMPER)]
_decode_view = msgspec.json.Decoder(AlertView)


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


async def lock_change_log(conn: Connection) -> None:
    """Take the change log's lock (migration 301) before anything else in a transaction
    that changes alerts. Writing a change takes it anyway, and holds it until commit; a
    transaction that took alert rows first and then waited for it, while the holder went on
    to want one of those rows (muting a camera's other alerts, releasing them, escalating),
    deadlocked: PostgreSQL broke it after a second and the event was retried (measured in
    the soak: several a minute under load, each a second or two of alert latency)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('alert_changes')::bigint)")


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
    reason: str | None = None,
    detail: str | None = None,
) -> None:
    """One audit line: ``note`` is a person's text; ``reason`` a code the page translates
    (docs/alerts.md lists them) and ``detail`` the raw data behind it."""
    await conn.execute(
        """INSERT INTO alert_audit (alert_id, actor, action, from_state, to_state, note,
                                    reason, detail)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        alert_id,
        actor,
        action,
        from_state,
        to_state,
        note,
        reason,
        detail,
    )


def _why_muted(suppressed_by: str) -> tuple[str, str]:
    """(reason code, detail) of a ``suppressed_by`` value: ``maintenance:<window>`` or
    ``inhibited:<alert id>``."""
    code, _, detail = suppressed_by.partition(":")
    return code, detail


def _open_alert_row() -> str:
    return """source_id = $1 AND kind = $2 AND coalesce(zone_id, '') = coalesce($3, '')
              AND state <> 'resolved'"""


async def observe(
    conn: Connection,
    obs: Observation,
    district_id: str,
    severity: Severity,
    *,
    auto_resolve_seconds: float = 60.0,
    rule: str | None = None,
    suppressed_by: str | None = None,
    grouping: IncidentGrouping = DEFAULT_GROUPING,
) -> tuple[AlertView, Reason] | None:
    """Open an alert for a starting condition, or repeat the open one (re-deciding whether it
    is muted); mark it cleared when the condition ends. Returns the changed alert and what
    happened to it, or None when nothing changed."""
    if obs.phase == "end":
        record = await conn.fetchrow(
            f"""UPDATE alerts SET cleared_at = $4, updated_at = now()
                WHERE {_open_alert_row()}
                RETURNING {ALERT_COLUMNS}""",
            obs.source_id,
            str(obs.kind),
            obs.zone_id,
            _ts(obs.at),
        )
        return (AlertView.from_record(record), "cleared") if record else None
    profile = PROFILES[obs.kind]
    title_vi, title_en = profile.title_vi, profile.title_en
    if obs.speed_kmh is not None and obs.limit_kmh is not None:
        title_vi, title_en = speeding_titles(profile, obs.speed_kmh, obs.limit_kmh)
    record = await conn.fetchrow(
        f"""WITH before AS (SELECT suppressed_by FROM alerts WHERE {_open_alert_row()})
            INSERT INTO alerts (source_id, kind, zone_id, district_id, severity, state,
                                title_vi, title_en, opened_at, last_seen_at, first_event_id,
                                first_frame_captured_at, auto_resolve_seconds, rule,
                                suppressed_by, speed_kmh, limit_kmh)
            VALUES ($1, $2, $3, $4, $5, 'open', $6, $7, $8, $8, $9, $10, $11, $12, $13,
                    $14, $15)
            ON CONFLICT (source_id, kind, (coalesce(zone_id, ''))) WHERE state <> 'resolved'
            DO UPDATE SET count = alerts.count + 1,
                          last_seen_at = greatest(alerts.last_seen_at, EXCLUDED.last_seen_at),
                          cleared_at = NULL, suppressed_by = EXCLUDED.suppressed_by,
                          updated_at = now()
            RETURNING {ALERT_COLUMNS}, (xmax = 0) AS inserted,
                      (SELECT suppressed_by FROM before) AS was_suppressed_by""",
        obs.source_id,
        str(obs.kind),
        obs.zone_id,
        district_id,
        str(severity),
        title_vi,
        title_en,
        _ts(obs.at),
        obs.event_id,
        _ts(obs.frame_captured_at) if obs.frame_captured_at else None,
        auto_resolve_seconds,
        rule,
        suppressed_by,
        obs.speed_kmh,
        obs.limit_kmh,
    )
    if record is None:
        raise RuntimeError("INSERT ... RETURNING returned no row")
    if record["inserted"]:
        joined, why = await join_incident(
            conn,
            record["id"],
            source_id=obs.source_id,
            kind=str(obs.kind),
            district_id=district_id,
            opened_at=record["opened_at"],
            grouping=grouping,
            columns=ALERT_COLUMNS,
        )
        alert = AlertView.from_record(joined)
        await audit(
            conn,
            alert.id,
            actor="system",
            action="open",
            from_state=None,
            to_state="open",
            reason=why,
            detail=obs.event_id,
        )
        if suppressed_by:
            code, detail = _why_muted(suppressed_by)
            await audit(
                conn,
                alert.id,
                actor="system",
                action="mute",
                from_state="open",
                to_state="open",
                reason=code,
                detail=detail,
            )
        return alert, "opened"
    alert = AlertView.from_record(record)
    was = record["was_suppressed_by"]
    if (was is None) == (suppressed_by is None):
        return alert, "repeated"
    reason: Reason = "muted" if suppressed_by else "unmuted"
    code, detail = _why_muted(suppressed_by or was)
    await audit(
        conn,
        alert.id,
        actor="system",
        action="mute" if suppressed_by else "unmute",
        from_state=alert.state,
        to_state=alert.state,
        reason=code,
        detail=detail,
    )
    return alert, reason


async def inhibitor(conn: Connection, source_id: str) -> str | None:
    """The id of an open camera_offline/camera_tamper alert of this source, if any."""
    value = await conn.fetchval(
        """SELECT id FROM alerts WHERE source_id = $1 AND kind = ANY($2::text[])
             AND state <> 'resolved' LIMIT 1""",
        source_id,
        _INFRA,
    )
    return None if value is None else str(value)


async def mute_others(conn: Connection, inhibiting: AlertView) -> list[AlertView]:
    """An infrastructure alert opened: mute the other open alerts of its camera."""
    why = f"inhibited:{inhibiting.id}"
    records = await conn.fetch(
        f"""UPDATE alerts SET suppressed_by = $2, updated_at = now()
            WHERE source_id = $1 AND state <> 'resolved' AND suppressed_by IS NULL
              AND NOT (kind = ANY($3::text[]))
            RETURNING {ALERT_COLUMNS}""",
        inhibiting.source_id,
        why,
        _INFRA,
    )
    alerts = [AlertView.from_record(r) for r in records]
    for alert in alerts:
        await audit(
            conn,
            alert.id,
            actor="system",
            action="mute",
            from_state=alert.state,
            to_state=alert.state,
            reason="inhibited",
            detail=inhibiting.id,
        )
    return alerts


async def release_inhibited(conn: Connection, inhibiting_id: str) -> list[AlertView]:
    """An infrastructure alert resolved: the alerts it muted speak again."""
    why = f"inhibited:{inhibiting_id}"
    records = await conn.fetch(
        f"""UPDATE alerts SET suppressed_by = NULL, updated_at = now()
            WHERE suppressed_by = $1 AND state <> 'resolved'
            RETURNING {ALERT_COLUMNS}""",
        why,
    )
    alerts = [AlertView.from_record(r) for r in records]
    for alert in alerts:
        await audit(
            conn,
            alert.id,
            actor="system",
            action="unmute",
            from_state=alert.state,
            to_state=alert.state,
            reason="inhibited",
            detail=inhibiting_id,
        )
    return alerts


async def resolve_cleared(conn: Connection) -> list[AlertView]:
    """Resolve alerts whose condition has stayed clear for their rule's auto-resolve time."""
    records = await conn.fetch(
        f"""UPDATE alerts SET state = 'resolved', resolved_at = now(), resolved_by = 'system',
                              updated_at = now()
            WHERE state <> 'resolved' AND cleared_at IS NOT NULL
              AND cleared_at < now() - make_interval(secs => auto_resolve_seconds)
            RETURNING {ALERT_COLUMNS},
                      (SELECT state FROM alerts a WHERE a.id = alerts.id) AS was""",
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
            reason="condition_cleared",
        )
    return alerts


async def escalate_due(
    conn: Connection, severities: Sequence[str], after_minutes: float, max_level: int
) -> list[AlertView]:
    """Raise unacknowledged, unmuted alerts one level each ``after_minutes``."""
    records = await conn.fetch(
        f"""UPDATE alerts SET escalation_level = escalation_level + 1, escalated_at = now(),
                              updated_at = now()
            WHERE state = 'open' AND suppressed_by IS NULL AND severity = ANY($1::text[])
              AND escalation_level < $3
              AND coalesce(escalated_at, opened_at) < now() - make_interval(secs => $2)
            RETURNING {ALERT_COLUMNS}""",
        list(severities),
        after_minutes * 60.0,
        max_level,
    )
    alerts = [AlertView.from_record(r) for r in records]
    for alert in alerts:
        await audit(
            conn,
            alert.id,
            actor="system",
            action="escalate",
            from_state="open",
            to_state="open",
            reason="unacknowledged",
            detail=str(alert.escalation_level),
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

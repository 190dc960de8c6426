"""What people do to alerts: acknowledge, assign, resolve; and what they read back.

Each transition locks the alert, checks it is allowed from the current state, and commits
the new state, its audit row, its change-log entry and the deliveries it stages on the MQTT
and police channels (per the routing the alerts service published) together.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import msgspec

from store import Connection

from ._cap import CapStatus
from ._channels import notify
from ._model import ALERT_COLUMNS, AlertState, AlertView, Reason
from ._repository import audit, lock_change_log, release_inhibited
from ._routing import load_routing
from ._rules import INFRA_KINDS

Action = Literal["acknowledge", "assign", "resolve"]
_RULES: dict[Action, tuple[frozenset[AlertState], AlertState]] = {
    "acknowledge": (frozenset({"open"}), "acknowledged"),
    "assign": (frozenset({"open", "acknowledged", "assigned"}), "assigned"),
    "resolve": (frozenset({"open", "acknowledged", "assigned"}), "resolved"),
}


_REASONS: dict[Action, Reason] = {
    "acknowledge": "acknowledged",
    "assign": "assigned",
    "resolve": "resolved",
}


class AlertNotFoundError(LookupError):
    def __init__(self, alert_id: str) -> None:
        super().__init__(f"alert {alert_id} does not exist")
        self.alert_id = alert_id


class TransitionError(ValueError):
    """The action is not allowed from the alert's current state."""

    def __init__(self, alert_id: str, action: Action, state: str) -> None:
        super().__init__(f"cannot {action} alert {alert_id}: it is {state}")
        self.alert_id = alert_id
        self.action = action
        self.state = state


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    alert_id: str
    at: datetime
    actor: str
    """A username, or a code: ``system`` (the alerts service), ``send-test``."""
    action: str
    """open, acknowledge, assign, note, resolve, auto_resolve, mute, unmute, escalate."""
    from_state: str | None
    to_state: str
    note: str | None
    """What a person wrote."""
    reason: str | None = None
    """A code the page translates (docs/alerts.md lists them); None for people's actions."""
    detail: str | None = None
    """The raw data behind ``reason``: an event id, a maintenance window, an alert id."""

    @classmethod
    def from_record(cls, record: Any) -> AuditEntry:
        return cls(
            **{f: record[f] for f in cls.__struct_fields__ if f != "alert_id"},
            alert_id=str(record["alert_id"]),
        )


AUDIT_COLUMNS = ", ".join(AuditEntry.__struct_fields__)


def _alert_uuid(alert_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(alert_id)
    except ValueError as exc:
        raise AlertNotFoundError(alert_id) from exc


async def transition(
    conn: Connection,
    alert_id: str,
    action: Action,
    *,
    actor: str,
    note: str | None = None,
    assignee: str | None = None,
    cap_status: CapStatus = "Actual",
) -> AlertView:
    """Apply ``action``; ``cap_status="Test"`` marks any police message it stages as a test."""
    allowed_from, to_state = _RULES[action]
    key = _alert_uuid(alert_id)
    async with conn.transaction():
        await lock_change_log(conn)
        current = await conn.fetchval("SELECT state FROM alerts WHERE id = $1 FOR UPDATE", key)
        if current is None:
            raise AlertNotFoundError(alert_id)
        if current not in allowed_from:
            raise TransitionError(alert_id, action, current)
        record = await conn.fetchrow(
            f"""UPDATE alerts SET
                    state = $2,
                    acknowledged_at = CASE WHEN acknowledged_at IS NULL AND $2 <> 'resolved'
                                           THEN now() ELSE acknowledged_at END,
                    acknowledged_by = CASE WHEN acknowledged_by IS NULL AND $2 <> 'resolved'
                                           THEN $3 ELSE acknowledged_by END,
                    assigned_to = CASE WHEN $2 = 'assigned' THEN $4 ELSE assigned_to END,
                    resolved_at = CASE WHEN $2 = 'resolved' THEN now() ELSE resolved_at END,
                    resolved_by = CASE WHEN $2 = 'resolved' THEN $3 ELSE resolved_by END,
                    updated_at = now()
                WHERE id = $1
                RETURNING {ALERT_COLUMNS}""",
            key,
            to_state,
            actor,
            assignee,
        )
        alert = AlertView.from_record(record)
        await audit(
            conn,
            alert.id,
            actor=actor,
            action=action,
            from_state=current,
            to_state=to_state,
            note=note,
        )
        routing = await load_routing(conn)
        await notify(
            conn, alert, _REASONS[action], routing, actor=actor, note=note, status=cap_status
        )
        if to_state == "resolved" and alert.kind in INFRA_KINDS:
            for released in await release_inhibited(conn, alert.id):
                await notify(conn, released, "unmuted", routing)
    return alert


async def get_alert(conn: Connection, alert_id: str) -> AlertView:
    record = await conn.fetchrow(
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1", _alert_uuid(alert_id)
    )
    if record is None:
        raise AlertNotFoundError(alert_id)
    return AlertView.from_record(record)


async def list_alerts(
    conn: Connection,
    *,
    states: Sequence[str] = (),
    kinds: Sequence[str] = (),
    districts: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 200,
    sent_to_police: bool = False,
) -> list[AlertView]:
    """Alerts newest first; an empty filter admits everything. ``sent_to_police`` admits
    only alerts with a CAP message staged for the police (in the query, so ``limit``
    counts those)."""
    records = await conn.fetch(
        f"""SELECT {ALERT_COLUMNS} FROM alerts
            WHERE (cardinality($1::text[]) = 0 OR state = ANY($1))
              AND (cardinality($2::text[]) = 0 OR kind = ANY($2))
              AND (cardinality($3::text[]) = 0 OR district_id = ANY($3))
              AND ($4::timestamptz IS NULL OR opened_at >= $4)
              AND ($5::timestamptz IS NULL OR opened_at < $5)
              AND (NOT $7 OR EXISTS (SELECT 1 FROM cap_messages m WHERE m.alert_id = alerts.id))
            ORDER BY opened_at DESC LIMIT $6""",
        list(states),
        list(kinds),
        list(districts),
        since,
        until,
        limit,
        sent_to_police,
    )
    return [AlertView.from_record(r) for r in records]


async def audit_trail(conn: Connection, alert_id: str) -> list[AuditEntry]:
    await get_alert(conn, alert_id)
    return await audit_of(conn, [alert_id])


async def audit_of(conn: Connection, alert_ids: Sequence[str]) -> list[AuditEntry]:
    """The audit lines of these alerts together, oldest first."""
    records = await conn.fetch(
        f"""SELECT {AUDIT_COLUMNS} FROM alert_audit
            WHERE alert_id = ANY($1::uuid[]) ORDER BY at, id""",
        [_alert_uuid(a) for a in alert_ids],
    )
    return [AuditEntry.from_record(r) for r in records]


async def add_note(conn: Connection, alert_id: str, *, actor: str, note: str) -> AlertView:
    """A note on the alert: an audit line without a change of state, and a change on the
    websocket (``note_count`` + 1). Allowed in every state, resolved included."""
    key = _alert_uuid(alert_id)
    async with conn.transaction():
        await lock_change_log(conn)
        record = await conn.fetchrow(
            f"""UPDATE alerts SET note_count = note_count + 1, updated_at = now()
                WHERE id = $1 RETURNING {ALERT_COLUMNS}""",
            key,
        )
        if record is None:
            raise AlertNotFoundError(alert_id)
        alert = AlertView.from_record(record)
        await audit(
            conn,
            alert.id,
            actor=actor,
            action="note",
            from_state=alert.state,
            to_state=alert.state,
            note=note,
        )
        await notify(conn, alert, "noted", await load_routing(conn), actor=actor, note=note)
    return alert

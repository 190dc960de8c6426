"""Retention of the tables that grow with every message and alert (issue 17): dead letters,
the alert change log, evidence snapshots, CAP messages and their deliveries, the login
audit, and expired API tokens. Run by :func:`store.maintain` (``ioc store maintain`` and
every ingest process hourly).

Nothing police delivery still needs goes: a CAP message stays while any delivery of it is
pending, and while its alert is not resolved (an Update or Cancel refers to it); the change
log and evidence of an alert stay while it is not resolved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ._pool import Connection

MAX_DEAD_LETTER_PAYLOAD = 64 * 1024
"""Bytes of a dead letter's payload that are kept (the start names what it was)."""


@dataclass(frozen=True, slots=True)
class Retention:
    dead_letters: timedelta = timedelta(days=30)
    alert_changes: timedelta = timedelta(days=30)
    """Of resolved alerts; a websocket resuming from further back gets a fresh snapshot."""
    alert_evidence: timedelta = timedelta(days=90)
    """After the alert was resolved."""
    cap_messages: timedelta = timedelta(days=365)
    """After the alert was resolved and every delivery of the message is done."""
    login_audit: timedelta = timedelta(days=90)

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"retention of {name} must be positive")


_STATEMENTS = (
    ("dead_letters", "DELETE FROM dead_letters WHERE received_at < $1"),
    (
        "alert_changes",
        """DELETE FROM alert_changes c USING alerts a
           WHERE c.alert_id = a.id AND c.at < $1 AND a.state = 'resolved'
             AND a.resolved_at < $1""",
    ),
    (
        "alert_evidence",
        """DELETE FROM alert_evidence e USING alerts a
           WHERE e.alert_id = a.id AND a.state = 'resolved' AND a.resolved_at < $1""",
    ),
    (
        "police_deliveries",
        """DELETE FROM police_deliveries d USING alerts a
           WHERE d.alert_id = a.id AND d.status = 'delivered' AND d.created_at < $1
             AND a.state = 'resolved' AND a.resolved_at < $1""",
    ),
    (
        "cap_messages",
        """DELETE FROM cap_messages m USING alerts a
           WHERE m.alert_id = a.id AND m.sent < $1 AND a.state = 'resolved'
             AND a.resolved_at < $1
             AND NOT EXISTS (SELECT 1 FROM police_deliveries d
                             WHERE d.identifier = m.identifier)""",
    ),
    ("login_audit", "DELETE FROM login_audit WHERE at < $1"),
)


async def apply_retention(conn: Connection, when: datetime, retention: Retention) -> dict[str, int]:
    """Delete what is older than its retention as of ``when``; rows deleted per table."""
    ages = {
        "dead_letters": retention.dead_letters,
        "alert_changes": retention.alert_changes,
        "alert_evidence": retention.alert_evidence,
        "police_deliveries": retention.cap_messages,
        "cap_messages": retention.cap_messages,
        "login_audit": retention.login_audit,
    }
    deleted = {}
    present = set(
        await conn.fetchval(
            "SELECT array_agg(relname::text) FROM pg_class WHERE relname = ANY($1::text[])",
            [t for t, _ in _STATEMENTS] + ["alerts", "api_tokens", "login_throttle"],
        )
        or ()
    )
    for table, statement in _STATEMENTS:
        if table not in present or ("alerts" in statement and "alerts" not in present):
            continue  # a store with only some of the areas' migrations
        status = await conn.execute(statement, when - ages[table])
        deleted[table] = int(status.split()[-1])
    if "api_tokens" in present:
        status = await conn.execute("DELETE FROM api_tokens WHERE expires_at <= $1", when)
        deleted["api_tokens"] = int(status.split()[-1])
    if "login_throttle" in present:  # a window is at most a day (console_api.ThrottleLimits)
        status = await conn.execute(
            "DELETE FROM login_throttle WHERE since < $1", when - timedelta(days=1)
        )
        deleted["login_throttle"] = int(status.split()[-1])
    return deleted

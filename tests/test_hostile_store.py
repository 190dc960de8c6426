"""Retention of what grows with every message and alert (issue 17, item 6), against a real
PostgreSQL: old rows go, what police delivery still needs stays; dead letters are bounded."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from store import DeadLetter, maintain, record_dead_letters

pytestmark = pytest.mark.postgres
NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=400)


async def _alert(db: asyncpg.Connection, state: str, delivery: str | None) -> uuid.UUID:
    alert_id = uuid.uuid4()
    resolved = OLD if state == "resolved" else None
    await db.execute(
        """INSERT INTO alerts (id, kind, source_id, district_id, severity, state, title_vi,
                               title_en, opened_at, last_seen_at, resolved_at)
           VALUES ($1, 'intrusion', 'cam-a', 'my-tho', 'major', $2, 't', 't', $3, $3, $4)""",
        alert_id,
        state,
        OLD,
        resolved,
    )
    await db.execute(
        "INSERT INTO alert_changes (alert_id, at, payload) VALUES ($1, $2, '{}')", alert_id, OLD
    )
    await db.execute(
        """INSERT INTO alert_evidence (alert_id, request_id, jpeg, width, height, taken_at)
           VALUES ($1, 'r', '\\xffd8', 1, 1, $2)""",
        alert_id,
        OLD,
    )
    identifier = f"cap-{alert_id}"
    await db.execute(
        """INSERT INTO cap_messages (identifier, alert_id, msg_type, sent, body)
           VALUES ($1, $2, 'Alert', $3, '<alert/>')""",
        identifier,
        alert_id,
        OLD,
    )
    if delivery is not None:
        await db.execute(
            """INSERT INTO police_deliveries (webhook_id, identifier, alert_id, endpoint_id,
                                              status, created_at)
               VALUES ($1, $2, $3, 'dispatch', $4, $5)""",
            f"wh-{alert_id}",
            identifier,
            alert_id,
            delivery,
            OLD,
        )
    return alert_id


async def _count(db: asyncpg.Connection, table: str, alert_id: uuid.UUID) -> int:
    count: int = await db.fetchval(f"SELECT count(*) FROM {table} WHERE alert_id = $1", alert_id)
    return count


async def test_retention_keeps_what_police_delivery_and_open_alerts_need(
    db: asyncpg.Connection,
) -> None:
    done = await _alert(db, "resolved", "delivered")
    pending = await _alert(db, "resolved", "pending")
    still_open = await _alert(db, "open", None)
    await record_dead_letters(db, [DeadLetter("ingest", "t/old", "old", b"x" * 200_000)])
    await db.execute("UPDATE dead_letters SET received_at = $1", OLD)
    await record_dead_letters(db, [DeadLetter("ingest", "t/new", "new", b"y")])
    await db.execute(
        """INSERT INTO users (username, role, password_hash) VALUES ('ops', 'operator', 'x');
           INSERT INTO api_tokens (token_hash, username, expires_at)
           VALUES ('\\x01', 'ops', now() - interval '1 hour'),
                  ('\\x02', 'ops', now() + interval '1 hour');
           INSERT INTO login_audit (at, username, address, outcome)
           VALUES (now() - interval '400 days', 'ops', '10.0.0.1', 'refused'),
                  (now(), 'ops', '10.0.0.1', 'accepted');
           INSERT INTO login_throttle (key, failures, refusals, since)
           VALUES ('address:10.0.0.9', 20, 3, now() - interval '2 days'),
                  ('address:10.0.0.1', 1, 0, now())"""
    )
    report = await maintain(db)
    assert report is not None
    for table in ("alert_changes", "alert_evidence", "cap_messages", "police_deliveries"):
        assert await _count(db, table, done) == 0, table
    # A message still being delivered, and everything of an unresolved alert, stay.
    assert await _count(db, "cap_messages", pending) == 1
    assert await _count(db, "police_deliveries", pending) == 1
    for table in ("alert_changes", "alert_evidence", "cap_messages"):
        assert await _count(db, table, still_open) == 1, table
    assert await db.fetchval("SELECT array_agg(reason) FROM dead_letters") == ["new"]
    assert await db.fetchval("SELECT count(*) FROM api_tokens") == 1
    assert await db.fetchval("SELECT array_agg(outcome) FROM login_audit") == ["accepted"]
    assert await db.fetchval("SELECT array_agg(key) FROM login_throttle") == ["address:10.0.0.1"]
    assert report.retained["dead_letters"] == 1


async def test_a_huge_dead_letter_is_kept_by_its_start(db: asyncpg.Connection) -> None:
    await record_dead_letters(db, [DeadLetter("vision", "t", "big", b"z" * 5_000_000)])
    assert await db.fetchval("SELECT length(payload) FROM dead_letters") == 64 * 1024

"""Alert changes take the change log's lock before any alert row. Taken the other way round
(a row first, the lock when the change is written), an event's transaction and the sweep
or an operator's transition deadlocked: one held a camera's alert and waited for the lock,
the other held the lock and went on to mute, release or resolve that alert. The soak found
them; PostgreSQL broke each after a second and the event was retried."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg
import pytest

from alerts import AlertsEngine, Observation, list_alerts, transition
from protocol import EventKind, MqttEndpoint, Province
from store import StoreConfig

pytestmark = pytest.mark.postgres
CAMERA = "indoor-room"
Change = Callable[[AlertsEngine, asyncpg.Connection, str], Coroutine[Any, Any, None]]


def _start(t: float) -> Observation:
    return Observation(
        event_id=f"{CAMERA}:intrusion:{t}",
        kind=EventKind.INTRUSION,
        source_id=CAMERA,
        zone_id="floor",
        phase="start",
        at=t,
    )


async def _repeat(engine: AlertsEngine, conn: asyncpg.Connection, alert_id: str) -> None:
    async with conn.transaction():
        await engine.apply(conn, _start(time.time()), "my-tho")


async def _acknowledge(engine: AlertsEngine, conn: asyncpg.Connection, alert_id: str) -> None:
    await transition(conn, alert_id, "acknowledge", actor="op")


async def _waiting_for_a_lock(db: asyncpg.Connection, pid: int) -> None:
    """Until the backend ``pid`` waits for a lock (read from the server, with a deadline)."""
    query = "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1"
    async with asyncio.timeout(10):
        while True:
            if await db.fetchval(query, pid) == "Lock":
                return
            await asyncio.sleep(0.02)  # another backend's progress has no event to await


@pytest.mark.parametrize("change", [_repeat, _acknowledge], ids=["event", "transition"])
async def test_a_change_waiting_for_the_change_log_holds_no_alert_row(
    database: StoreConfig, db: asyncpg.Connection, clips_province: Province, change: Change
) -> None:
    engine = AlertsEngine(MqttEndpoint(), database, clips_province)
    async with db.transaction():
        await engine.apply(db, _start(time.time() - 5), "my-tho")
    [alert] = await list_alerts(db)
    holder = await asyncpg.connect(database.url)
    writer = await asyncpg.connect(database.url)
    try:
        held = holder.transaction()
        await held.start()
        await holder.execute("SELECT pg_advisory_xact_lock(hashtext('alert_changes')::bigint)")
        task = asyncio.create_task(change(engine, writer, alert.id))
        await _waiting_for_a_lock(db, writer.get_server_pid())
        # The waiting change holds no row: the alert can be taken at once (the lock holder
        # could go on to mute, resolve or escalate it without a deadlock).
        async with db.transaction():
            await db.execute("SET LOCAL lock_timeout = '200ms'")
            locked = await db.fetchval(
                "SELECT id FROM alerts WHERE id = $1 FOR UPDATE", uuid.UUID(alert.id)
            )
        assert str(locked) == alert.id
        await held.commit()
        await asyncio.wait_for(task, 10)
    finally:
        await holder.close()
        await writer.close()
    [after] = await list_alerts(db)
    assert (after.count, after.state) in ((2, "open"), (1, "acknowledged"))

"""A live ``speeding`` event through the real alerts engine (Mosquitto, PostgreSQL): major,
and so for the police, over the shipped rules' margin; minor under it; the alert's titles
and its fields carry the speed and the limit (alerts from before the fields existed get
them from their titles)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from alerts import AlertsEngine, RuleBook, list_alerts
from protocol import EVENT, EventKind, MqttEndpoint, Province, Topics, VisionEvent
from store import ALL_MIGRATIONS, StoreConfig, migrate

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]
CAMERA = "highway"


def _speeding(gate: str, speed: float, t: float) -> list[VisionEvent]:
    return [
        VisionEvent(
            event_id=f"{CAMERA}:{gate}:speeding:{t:.3f}",
            kind=EventKind.SPEEDING,
            camera_id=CAMERA,
            phase=phase,
            started_at=t,
            ended_at=t + 1.0 if phase == "end" else None,
            gate_id=gate,
            speed_kmh=speed,
            limit_kmh=60.0,
            direction="forward",
        )
        for phase in ("start", "end")
    ]


@contextlib.asynccontextmanager
async def _engine(
    mqtt: MqttEndpoint, topics: Topics, database: StoreConfig, province: Province
) -> AsyncIterator[AlertsEngine]:
    from conftest import ROOT

    book = RuleBook(ROOT / "config" / "alert-rules.yaml", province, environ={})
    async with AlertsEngine(
        mqtt,
        database,
        province,
        topics=topics,
        identifier=f"alerts-speeding-{topics.prefix.split('/')[0]}",
        rules=book,
        sweep_interval=3600.0,
    ) as engine:
        await engine.wait_until_subscribed()
        yield engine


async def test_speeding_alerts_by_margin_with_speed_in_the_title(
    mqtt: MqttEndpoint,
    topics: Topics,
    database: StoreConfig,
    clips_province: Province,
    db: asyncpg.Connection,
) -> None:
    t = time.time() - 5
    async with (
        _engine(mqtt, topics, database, clips_province) as engine,
        mqtt.client(f"test-speeding-{topics.prefix.split('/')[0]}") as client,
    ):
        events = _speeding("gate-a", 87.3, t) + _speeding("gate-b", 64.0, t + 2)
        for event in events:
            await client.publish(topics.events(CAMERA), EVENT.encode(event), qos=1)
        await asyncio.wait_for(engine.wait_for_events(len(events)), 10)
    alerts = {a.zone_id: a for a in await list_alerts(db)}
    fast, near = alerts["gate-a"], alerts["gate-b"]
    assert (fast.kind, fast.severity, near.severity) == ("speeding", "major", "minor")
    assert fast.title_en == "Vehicle over the speed limit: 87.3 km/h (limit 60 km/h)"
    assert "87.3 km/h (giới hạn 60 km/h)" in fast.title_vi
    # The figures are fields of the alert too (the CAP message carries them from there).
    assert (fast.speed_kmh, fast.limit_kmh, near.speed_kmh) == (87.3, 60.0, 64.0)
    rules = {r["zone_id"]: r["rule"] for r in await db.fetch("SELECT zone_id, rule FROM alerts")}
    assert rules == {"gate-a": "speeding-margin", "gate-b": "speeding-margin"}


async def test_alerts_from_before_the_speed_fields_get_them_from_their_titles(
    mqtt: MqttEndpoint,
    topics: Topics,
    database: StoreConfig,
    clips_province: Province,
    db: asyncpg.Connection,
) -> None:
    t = time.time() - 5
    async with (
        _engine(mqtt, topics, database, clips_province) as engine,
        mqtt.client(f"test-speeding-old-{topics.prefix.split('/')[0]}") as client,
    ):
        for event in _speeding("gate-a", 87.3, t):
            await client.publish(topics.events(CAMERA), EVENT.encode(event), qos=1)
        await asyncio.wait_for(engine.wait_for_events(2), 10)
    # The store as it was before migration 240, holding that alert (title only).
    await db.execute(
        """ALTER TABLE alerts DROP COLUMN speed_kmh, DROP COLUMN limit_kmh;
           DELETE FROM schema_migrations WHERE version = 240"""
    )
    assert await migrate(db, ALL_MIGRATIONS) == [240]
    (alert,) = await list_alerts(db)
    assert (alert.speed_kmh, alert.limit_kmh) == (87.3, 60.0)

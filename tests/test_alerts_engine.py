"""The engine against real Mosquitto and PostgreSQL: severity from the rules, MQTT alert
changes, auto-resolve per rule, maintenance, inhibition, escalation, AP alerts from Wi-Fi
telemetry next to ingest, and a rules file reloaded while running."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiomqtt
import asyncpg
import pytest
import yaml

from alerts import (
    AlertsEngine,
    RuleBook,
    audit_trail,
    get_alert,
    list_alerts,
    transition,
)
from ingest import IngestService
from protocol import (
    ALERT,
    EVENT,
    TELEMETRY,
    AlertMessage,
    EventKind,
    MqttEndpoint,
    Province,
    TelemetryBatch,
    Topics,
    VisionEvent,
    WifiSample,
)
from store import StoreConfig, sync_registry

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]
CAMERA = "indoor-room"


def _event(
    phase: Literal["start", "end"],
    kind: EventKind,
    t: float,
    zone: str | None = "floor",
    episode: str = "e1",
) -> VisionEvent:
    return VisionEvent(
        event_id=f"{CAMERA}:{kind}:{episode}",
        kind=kind,
        camera_id=CAMERA,
        phase=phase,
        started_at=t,
        ended_at=t + 1 if phase == "end" else None,
        zone_id=zone,
    )


@pytest.fixture
def province(clips_province: Province) -> Province:
    """The clips' room with a second zone (the door) and one access point."""
    raw = clips_province.model_dump()
    room = raw["cameras"][0]
    room["zones"].append(
        {"id": "door", "kind": "crowd", "polygon": [[0.0, 0.0], [0.3, 0.0], [0.3, 0.5]]}
    )
    raw["access_points"] = [
        {
            "id": "ap-1",
            "name": "Pier AP",
            "site": "pier",
            "district": "my-tho",
            "lat": 10.35,
            "lon": 106.36,
            "capacity": 10,
        }
    ]
    return Province.model_validate(raw)


def _rules_file(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "rules.yaml"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc), encoding="utf-8")
    os.replace(tmp, path)
    return path


class Harness:
    def __init__(self, engine: AlertsEngine, client: aiomqtt.Client, topics: Topics) -> None:
        self.engine = engine
        self.client = client
        self.topics = topics
        self.sent = 0
        self.alerts: asyncio.Queue[tuple[str, AlertMessage]] = asyncio.Queue()

    async def send(self, event: VisionEvent) -> None:
        await self.client.publish(self.topics.events(event.camera_id), EVENT.encode(event), qos=1)
        self.sent += 1
        await asyncio.wait_for(self.engine.wait_for_events(self.sent), 10)

    async def next_alert(self) -> tuple[str, AlertMessage]:
        return await asyncio.wait_for(self.alerts.get(), 10)

    async def _collect(self) -> None:
        async for message in self.client.messages:
            if isinstance(message.payload, bytes):
                await self.alerts.put((message.topic.value, ALERT.decode(message.payload)))


@dataclass(frozen=True)
class Setup:
    """The real servers and files one test works with."""

    mqtt: MqttEndpoint
    topics: Topics
    database: StoreConfig
    province: Province
    tmp_path: Path

    def rules(self, doc: dict[str, Any]) -> Path:
        return _rules_file(self.tmp_path, doc)


@pytest.fixture
def setup(
    mqtt: MqttEndpoint, topics: Topics, database: StoreConfig, province: Province, tmp_path: Path
) -> Setup:
    return Setup(mqtt, topics, database, province, tmp_path)


@contextlib.asynccontextmanager
async def harness(
    setup: Setup, rules: Path, *, sweep_interval: float = 3600.0
) -> AsyncIterator[Harness]:
    mqtt, topics, database, province = setup.mqtt, setup.topics, setup.database, setup.province
    async with contextlib.AsyncExitStack() as stack:
        book = RuleBook(rules, province, environ={})
        engine = await stack.enter_async_context(
            AlertsEngine(
                mqtt,
                database,
                province,
                topics=topics,
                identifier=f"alerts-{topics.prefix.split('/')[0]}",
                rules=book,
                sweep_interval=sweep_interval,
            )
        )
        client = await stack.enter_async_context(mqtt.client(f"test-{topics.prefix.split('/')[0]}"))
        await client.subscribe(topics.all_alerts(), qos=1)
        h = Harness(engine, client, topics)
        collector = asyncio.create_task(h._collect())
        stack.push_async_callback(_cancel, collector)
        await engine.wait_until_subscribed()
        yield h


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_severity_from_rules_mqtt_changes_and_auto_resolve(
    setup: Setup, db: asyncpg.Connection
) -> None:
    rules = setup.rules(
        {
            "rules": [
                {
                    "name": "room",
                    "match": {"kinds": ["intrusion"], "zones": ["floor"]},
                    "severity": "critical",
                    "auto_resolve_seconds": 0,
                }
            ],
            "escalation": {"severities": ["critical"], "after_minutes": 60},
        },
    )
    t = time.time() - 5
    async with harness(setup, rules) as h:
        await h.send(_event("start", EventKind.INTRUSION, t))
        topic, message = await h.next_alert()
        assert topic == setup.topics.alerts("my-tho", "critical")
        assert (message.kind, message.state, message.change, message.severity) == (
            "intrusion",
            "open",
            "opened",
            "critical",
        )
        [alert] = await list_alerts(db)
        assert (alert.severity, alert.id) == ("critical", message.alert_id)
        assert await db.fetchval("SELECT rule FROM alerts") == "room"

        await h.send(_event("end", EventKind.INTRUSION, t))
        _, cleared = await h.next_alert()
        assert (cleared.change, cleared.state) == ("cleared", "open")
        assert await h.engine.sweep() == 1
        _, resolved = await h.next_alert()
        assert (resolved.change, resolved.state) == ("resolved", "resolved")
        assert resolved.change_seq > cleared.change_seq > message.change_seq
        trail = await audit_trail(db, alert.id)
        assert [(e.action, e.to_state) for e in trail] == [
            ("open", "open"),
            ("auto_resolve", "resolved"),
        ]
        assert h.engine.publisher is not None
        await asyncio.wait_for(h.engine.publisher.wait_for_published(3), 10)
        assert await db.fetchval("SELECT count(*) FROM mqtt_outbox") == 0  # sent, then deleted


async def test_maintenance_and_inhibition_mute_alerts(setup: Setup, db: asyncpg.Connection) -> None:
    now = time.time()
    rules = setup.rules(
        {
            "maintenance": [
                {
                    "id": "repaint",
                    "sources": [CAMERA],
                    "zones": ["door"],
                    "starts": "2020-01-01T00:00:00+07:00",
                    "ends": "2099-01-01T00:00:00+07:00",
                }
            ]
        },
    )
    async with harness(setup, rules) as h:
        # A crowd at the door is under maintenance: opened muted, not published.
        await h.send(_event("start", EventKind.CROWD, now, zone="door"))
        [door] = await list_alerts(db)
        assert door.suppressed_by == "maintenance:repaint"
        # An intrusion on the floor is not: it is published.
        await h.send(_event("start", EventKind.INTRUSION, now, zone="floor"))
        _, floor_msg = await h.next_alert()
        assert (floor_msg.kind, floor_msg.change) == ("intrusion", "opened")

        # The camera goes offline: its open alerts are muted, and new ones open muted.
        await h.send(_event("start", EventKind.CAMERA_OFFLINE, now, zone=None))
        _, offline_msg = await h.next_alert()
        assert offline_msg.kind == "camera_offline"
        offline = offline_msg.alert_id
        floor = await get_alert(db, floor_msg.alert_id)
        assert floor.suppressed_by == f"inhibited:{offline}"
        await h.send(_event("start", EventKind.WRONG_WAY, now, zone="floor", episode="e2"))
        wrong_way = next(a for a in await list_alerts(db) if a.kind == "wrong_way")
        assert wrong_way.suppressed_by == f"inhibited:{offline}"
        assert h.alerts.empty()

        # The camera is back and an operator resolves the offline alert: the muted speak.
        await transition(db, offline, "resolve", actor="op1", note="power restored")
        _, resolved = await h.next_alert()
        assert (resolved.alert_id, resolved.change) == (offline, "resolved")
        unmuted = {(await h.next_alert())[1].alert_id for _ in range(2)}
        assert unmuted == {floor.id, wrong_way.id}
        assert (await get_alert(db, floor.id)).suppressed_by is None
        trail = await audit_trail(db, floor.id)
        assert [e.action for e in trail] == ["open", "mute", "unmute"]
        # The maintenance window still holds the door.
        assert (await get_alert(db, door.id)).suppressed_by == "maintenance:repaint"


async def test_unacknowledged_critical_alerts_escalate(
    setup: Setup, db: asyncpg.Connection
) -> None:
    rules = setup.rules(
        {
            "rules": [{"match": {"kinds": ["intrusion", "wrong_way"]}, "severity": "critical"}],
            "escalation": {"severities": ["critical"], "after_minutes": 5, "max_level": 2},
        },
    )
    ten_minutes_ago = time.time() - 600
    async with harness(setup, rules) as h:
        await h.send(_event("start", EventKind.INTRUSION, ten_minutes_ago))
        await h.send(_event("start", EventKind.WRONG_WAY, ten_minutes_ago))
        await h.send(_event("start", EventKind.CROWD, ten_minutes_ago))  # major: never
        opened = {(await h.next_alert())[1].kind: m for m in range(3)}
        assert set(opened) == {"intrusion", "wrong_way", "crowd"}
        ignored = next(a for a in await list_alerts(db) if a.kind == "intrusion")
        seen = next(a for a in await list_alerts(db) if a.kind == "wrong_way")
        await transition(db, seen.id, "acknowledge", actor="op1")
        _, acked = await h.next_alert()
        assert acked.change == "acknowledged"

        assert await h.engine.sweep() == 1
        _, escalated = await h.next_alert()
        assert (escalated.alert_id, escalated.change, escalated.escalation_level) == (
            ignored.id,
            "escalated",
            1,
        )
        # Raised again only after another five minutes; acknowledged alerts never.
        assert await h.engine.sweep() == 0
        await db.execute("UPDATE alerts SET escalated_at = escalated_at - interval '6 minutes'")
        assert await h.engine.sweep() == 1
        assert (await get_alert(db, ignored.id)).escalation_level == 2
        await db.execute("UPDATE alerts SET escalated_at = escalated_at - interval '6 minutes'")
        assert await h.engine.sweep() == 0  # max_level reached
        trail = await audit_trail(db, ignored.id)
        assert [e.action for e in trail] == ["open", "escalate", "escalate"]


async def test_access_point_alerts_from_telemetry_next_to_ingest(
    setup: Setup, db: asyncpg.Connection
) -> None:
    await sync_registry(db, setup.province)
    rules = setup.rules({"access_points": {"overload_ratio": 1.0, "clear_ratio": 0.5}})
    t = time.time() - 60

    def sample(i: int, clients: int, up: bool = True) -> WifiSample:
        return WifiSample(
            ts=t + i, clients=clients, rx_bytes=0, tx_bytes=0, channel_util=0.1, up=up
        )

    batches = [
        [sample(0, 3), sample(1, 12)],  # overloaded
        [sample(2, 8)],  # above the clear ratio: still overloaded
        [sample(3, 0, up=False)],  # down, and no clients: overload clears
        [sample(4, 2), sample(5, 4)],  # up again
    ]
    async with (
        harness(setup, rules) as h,
        IngestService(
            setup.mqtt, setup.database, topics=setup.topics, identifier="ingest-ap"
        ) as ingest,
    ):
        await ingest.wait_until_subscribed()
        for seq, samples in enumerate(batches):
            batch = TelemetryBatch(ap_id="ap-1", seq=seq, samples=samples)
            await h.client.publish(setup.topics.telemetry("ap-1"), TELEMETRY.encode(batch), qos=1)
        await asyncio.wait_for(h.engine.wait_for(lambda s: s.telemetry_batches >= 4), 10)
        await asyncio.wait_for(ingest.wait_for_messages(4), 10)
        assert ingest.stats.samples_written == 6  # ingest got every batch too
        changes = [(m.kind, m.change) for _, m in [await h.next_alert() for _ in range(4)]]
        assert changes == [
            ("ap_overload", "opened"),
            ("ap_down", "opened"),
            ("ap_overload", "cleared"),
            ("ap_down", "cleared"),
        ]
        stored = {a.kind: a for a in await list_alerts(db)}
        assert stored["ap_down"].district_id == "my-tho"
        assert stored["ap_down"].cleared_at is not None


async def test_a_changed_rules_file_takes_effect_while_running(
    setup: Setup, db: asyncpg.Connection
) -> None:
    rules = setup.rules({"rules": [{"match": {"kinds": ["crowd"]}, "severity": "info"}]})
    now = time.time()
    async with harness(setup, rules, sweep_interval=0.05) as h:
        await h.send(_event("start", EventKind.CROWD, now, episode="a"))
        assert (await h.next_alert())[1].severity == "info"
        book = h.engine.book
        setup.rules({"rules": [{"match": {"kinds": ["crowd"]}, "severity": "bogus"}]})
        await asyncio.wait_for(book.wait_for_attempt(2), 10)
        assert book.last_error is not None
        setup.rules(
            {
                "rules": [{"match": {"kinds": ["crowd"]}, "severity": "critical"}],
                "routes": {"mqtt": {"min_severity": "major"}},
            },
        )
        await asyncio.wait_for(book.wait_for_attempt(3), 10)
        assert book.loads == 2
        # One whole sweep after the reload: the new routing is published by then.
        sweeps = h.engine.stats.sweeps
        await asyncio.wait_for(h.engine.wait_for(lambda s: s.sweeps > sweeps), 10)
        await h.send(_event("start", EventKind.CROWD, now, zone="door", episode="b"))
        assert (await h.next_alert())[1].severity == "critical"
        # The console process's transitions follow the published routing: info is below it.
        info = next(a for a in await list_alerts(db) if a.severity == "info")
        assert h.engine.publisher is not None
        await asyncio.wait_for(h.engine.publisher.wait_for_published(2), 10)
        await transition(db, info.id, "acknowledge", actor="op")
        assert await db.fetchval("SELECT count(*) FROM mqtt_outbox") == 0  # nothing staged


async def _until(condition: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_a_burst_of_events_commits_together_with_its_dead_letter(
    setup: Setup, db: asyncpg.Connection, database: StoreConfig
) -> None:
    """Events that arrive while a transaction is busy go into the next one together; a
    repeated event is one row, a malformed payload a dead letter, and all are acknowledged."""
    rules = setup.rules({"rules": []})
    t = time.time() - 5
    burst = [
        _event("start", EventKind.INTRUSION, t, zone="door", episode=f"b{i}") for i in range(8)
    ]
    payloads = [EVENT.encode(e) for e in burst]
    payloads.insert(3, payloads[2])  # an event sent twice
    payloads.insert(5, b'{"event_id": 7}')

    async def engine_waits_for_the_lock() -> bool:
        waiting: int = await db.fetchval(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'events'::regclass"
        )
        return waiting > 0

    async def all_arrived() -> bool:
        return h.engine._inbox.qsize() == len(payloads)

    async with harness(setup, rules) as h:
        blocker = await asyncpg.connect(database.url)
        try:
            hold = blocker.transaction()
            await hold.start()
            await blocker.execute("LOCK TABLE events IN EXCLUSIVE MODE")  # the disk is slow
            first = _event("start", EventKind.INTRUSION, t, episode="first")
            await h.client.publish(h.topics.events(CAMERA), EVENT.encode(first), qos=1)
            await _until(engine_waits_for_the_lock)
            for payload in payloads:
                await h.client.publish(h.topics.events(CAMERA), payload, qos=1)
            await _until(all_arrived)
            await hold.rollback()
        finally:
            await blocker.close()
        await asyncio.wait_for(h.engine.wait_for_events(1 + len(payloads)), 10)

    rows = await db.fetch("SELECT event_id, received_at FROM events ORDER BY received_at")
    assert len(rows) == 1 + len(burst)  # the repeat is one row
    assert rows[0]["event_id"] == first.event_id
    assert len({r["received_at"] for r in rows}) == 2  # two transactions, not ten
    [dead] = await db.fetch("SELECT consumer, reason FROM dead_letters")
    assert dead["consumer"] == "alerts"
    assert "event_id" in dead["reason"]
    zones = await db.fetch("SELECT DISTINCT zone_id FROM alerts")
    assert {z["zone_id"] for z in zones} == {"floor", "door"}

"""The alerts' LISTEN connections come back after the database drops them (a restart does
that to every connection): the console's change feed, the police delivery worker and the
MQTT outbox publisher each wait for notifications, and before this was fixed each waited
forever once its connection was gone (found by ``ioc soak``: after a PostgreSQL restart the
operators got no more changes, police messages and MQTT alert changes stayed pending).

The connections are dropped by terminating their server processes, as a restart does."""

from __future__ import annotations

import asyncio
import base64
import time

import asyncpg
import pytest
from police_receiver import police_receiver

from alerts import (
    AlertFeed,
    AlertsEngine,
    DeliveryWorker,
    Observation,
    RuleBook,
    parse_rules,
    publish_routing,
    routing_from,
)
from alerts._mqtt_publisher import MqttPublisher
from protocol import ALERT, EventKind, MqttEndpoint, Province, Topics
from store import StoreConfig, sync_registry

pytestmark = pytest.mark.postgres
SECRET = "whsec_" + base64.b64encode(b"police-dispatch-shared-secret-32").decode()


def _start(zone: str) -> Observation:
    return Observation(
        event_id=f"indoor-room:intrusion:{zone}",
        kind=EventKind.INTRUSION,
        source_id="indoor-room",
        zone_id=zone,
        phase="start",
        at=time.time(),
    )


async def _drop_other_connections(db: asyncpg.Connection, last_query: str = "") -> int:
    """Terminate this database's other connections (those whose last statement starts with
    ``last_query``)."""
    dropped: int = await db.fetchval(
        """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid()
             AND query LIKE $1 || '%'""",
        last_query,
    )
    return dropped


async def _change(db: asyncpg.Connection, engine: AlertsEngine, zone: str) -> None:
    async with db.transaction():
        await engine.apply(db, _start(zone), "my-tho")


async def test_the_change_feed_goes_on_after_its_connection_is_dropped(
    database: StoreConfig, db: asyncpg.Connection, clips_province: Province
) -> None:
    engine = AlertsEngine(MqttEndpoint(), database, clips_province)
    async with AlertFeed(database) as feed:
        subscription = feed.subscribe()
        await _change(db, engine, "floor")
        first = await asyncio.wait_for(subscription.queue.get(), 10)
        assert await _drop_other_connections(db) >= 1
        await _change(db, engine, "door")
        second = await asyncio.wait_for(subscription.queue.get(), 15)
    assert (first.alert.zone_id, second.alert.zone_id) == ("floor", "door")
    assert second.seq == first.seq + 1


async def test_police_messages_go_out_after_the_listener_is_dropped(
    database: StoreConfig, db: asyncpg.Connection, clips_province: Province
) -> None:
    await sync_registry(db, clips_province)
    async with police_receiver(SECRET) as receiver:
        rules = parse_rules(
            {
                "routes": {"police": {"kinds": ["intrusion"], "min_severity": "info"}},
                "police": {
                    "endpoints": [
                        {
                            "id": "dispatch",
                            "url": receiver.url("/cap"),
                            "allow_plain_http": True,
                            "secret_env": "S",
                            # One slot: with more, a slot that found a sibling's message
                            # taken looks again after 5 s, notification or not.
                            "concurrency": 1,
                        }
                    ]
                },
            },
            clips_province,
            environ={"S": SECRET},
        )
        await publish_routing(db, routing_from(rules))
        engine = AlertsEngine(MqttEndpoint(), database, clips_province, rules=RuleBook.fixed(rules))
        async with DeliveryWorker(database, RuleBook.fixed(rules)) as worker:
            await _change(db, engine, "floor")
            await asyncio.wait_for(worker.wait_for(lambda s: s.delivered == 1), 10)
            # Only the LISTEN connection: the slots, idle now, wait for a notification alone
            # (a slot whose own connection failed would poll again after a backoff).
            assert await _drop_other_connections(db, "LISTEN") == 1
            await _change(db, engine, "door")
            await asyncio.wait_for(worker.wait_for(lambda s: s.delivered == 2), 15)
    assert len(receiver.processed["/cap"]) == 2
    assert await db.fetchval("SELECT count(*) FROM police_deliveries WHERE status = 'pending'") == 0


async def test_mqtt_alert_changes_go_out_after_the_listener_is_dropped(
    mqtt: MqttEndpoint,
    topics: Topics,
    database: StoreConfig,
    db: asyncpg.Connection,
    clips_province: Province,
) -> None:
    engine = AlertsEngine(mqtt, database, clips_province, topics=topics)
    async with (
        mqtt.client(f"watch-{topics.prefix.split('/')[0]}") as watcher,
        MqttPublisher(mqtt, database, identifier=f"pub-{topics.prefix.split('/')[0]}") as pub,
    ):
        await watcher.subscribe(topics.all_alerts(), qos=1)
        messages = watcher.messages
        await _change(db, engine, "floor")
        first = await asyncio.wait_for(anext(messages), 10)
        # Once its row is deleted: dropped before that, the publisher would rightly send it
        # again (at least once), and the next message would be that repeat.
        await asyncio.wait_for(pub.wait_for_published(1), 10)
        assert await _drop_other_connections(db) >= 1
        await _change(db, engine, "door")
        second = await asyncio.wait_for(anext(messages), 15)
        await asyncio.wait_for(pub.wait_for_published(2), 10)
    zones = [
        ALERT.decode(m.payload).zone_id for m in (first, second) if isinstance(m.payload, bytes)
    ]
    assert zones == ["floor", "door"]
    assert await db.fetchval("SELECT count(*) FROM mqtt_outbox") == 0

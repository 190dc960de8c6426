"""Telemetry from MQTT into PostgreSQL through the real broker and database."""

from __future__ import annotations

import asyncio

import aiomqtt
import asyncpg
import pytest

from ingest import IngestService
from protocol import TELEMETRY, UNBOUNDED, MqttEndpoint, TelemetryBatch, Topics, WifiSample
from store import StoreConfig

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]


def _batch(ap: str, seq: int, n: int) -> TelemetryBatch:
    return TelemetryBatch(
        ap_id=ap,
        seq=seq,
        samples=[
            WifiSample(
                ts=1_764_000_000 + seq * 60 + i,
                clients=i,
                rx_bytes=i * 10,
                tx_bytes=i * 20,
                channel_util=0.25,
                up=True,
            )
            for i in range(n)
        ],
    )


async def test_samples_stored_exactly_once_even_when_redelivered(
    mqtt: MqttEndpoint,
    topics: Topics,
    database: StoreConfig,
    db: asyncpg.Connection,
) -> None:
    batches = [_batch(f"ap-{a}", seq, 50) for a in range(4) for seq in range(1, 6)]
    async with IngestService(
        mqtt, database, topics=topics, identifier="ingest-t1", time_window=UNBOUNDED
    ) as ingest:
        async with mqtt.client("publisher-t1") as client:
            await ingest.wait_until_subscribed()
            for batch in batches:
                await client.publish(topics.telemetry(batch.ap_id), TELEMETRY.encode(batch), qos=1)
            # The same batches again, as a broker would redeliver them.
            for batch in batches[:7]:
                await client.publish(topics.telemetry(batch.ap_id), TELEMETRY.encode(batch), qos=1)
        await asyncio.wait_for(ingest.wait_for_messages(len(batches) + 7), 30)
        assert ingest.stats.duplicate_batches == 7
    rows = await db.fetchval("SELECT count(*) FROM wifi_samples")
    assert rows == 20 * 50
    distinct = await db.fetchval("SELECT count(DISTINCT (ap_id, ts)) FROM wifi_samples")
    assert distinct == rows


async def test_malformed_telemetry_becomes_a_dead_letter_and_ingest_goes_on(
    mqtt: MqttEndpoint,
    topics: Topics,
    database: StoreConfig,
    db: asyncpg.Connection,
) -> None:
    good = _batch("ap-good", 1, 10)
    async with IngestService(
        mqtt, database, topics=topics, identifier="ingest-t2", time_window=UNBOUNDED
    ) as ingest:
        async with mqtt.client("publisher-t2") as client:
            await ingest.wait_until_subscribed()
            await client.publish(
                topics.telemetry("ap-bad"), b'{"ap_id": "ap-bad", "seq": "x"}', qos=1
            )
            await client.publish(topics.telemetry("ap-bad"), b"\x00\x01 not json", qos=1)
            await client.publish(topics.telemetry("ap-other"), TELEMETRY.encode(good), qos=1)
            await client.publish(topics.telemetry("ap-good"), TELEMETRY.encode(good), qos=1)
        await asyncio.wait_for(ingest.wait_for_messages(4), 30)
    # Several writers may store them, in any order.
    letters = await db.fetch("SELECT topic, reason, payload FROM dead_letters ORDER BY reason")
    reasons = [r["reason"] for r in letters]
    assert len(letters) == 3
    assert "does not match the topic" in reasons[1]
    assert "$.seq" in reasons[2]
    assert "not valid JSON" in reasons[0]
    assert letters[0]["payload"] == b"\x00\x01 not json"
    assert await db.fetchval("SELECT count(*) FROM wifi_samples WHERE ap_id = 'ap-good'") == 10


async def test_redelivered_after_unacknowledged_crash(
    mqtt: MqttEndpoint,
    topics: Topics,
    database: StoreConfig,
    db: asyncpg.Connection,
) -> None:
    """Messages that reached a consumer which died before storing them come back."""
    batch = _batch("ap-crash", 1, 25)
    # A consumer that takes delivery under manual ack and dies without acknowledging.
    from protocol import enable_manual_ack

    doomed = mqtt.client("ingest-t3", persistent=True)
    enable_manual_ack(doomed)
    async with doomed:
        await doomed.subscribe(topics.all_telemetry(), qos=1)
        async with mqtt.client("publisher-t3") as client:
            await client.publish(topics.telemetry("ap-crash"), TELEMETRY.encode(batch), qos=1)
        async for _message in doomed.messages:
            break  # received, never acknowledged
    async with IngestService(
        mqtt, database, topics=topics, identifier="ingest-t3", time_window=UNBOUNDED
    ) as ingest:
        await asyncio.wait_for(ingest.wait_for_messages(1), 30)
    assert await db.fetchval("SELECT count(*) FROM wifi_samples") == 25


async def test_publish_before_consumer_exists_is_kept_by_persistent_session(
    mqtt: MqttEndpoint,
    topics: Topics,
    database: StoreConfig,
    db: asyncpg.Connection,
) -> None:
    # Register the persistent session, go away, then publish while the consumer is down.
    async with IngestService(
        mqtt, database, topics=topics, identifier="ingest-t4", time_window=UNBOUNDED
    ) as ingest:
        await ingest.wait_until_subscribed()
    async with aiomqtt.Client(mqtt.host, mqtt.port, identifier="publisher-t4") as client:
        await client.publish(
            topics.telemetry("ap-late"), TELEMETRY.encode(_batch("ap-late", 1, 5)), qos=1
        )
    async with IngestService(
        mqtt, database, topics=topics, identifier="ingest-t4", time_window=UNBOUNDED
    ) as ingest:
        await asyncio.wait_for(ingest.wait_for_messages(1), 30)
    assert await db.fetchval("SELECT count(*) FROM wifi_samples") == 5

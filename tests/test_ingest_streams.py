"""Ingest of every stream it consumes, shared between two services, and a batch the
database refuses narrowed down to the one bad message."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import pytest

from ingest import IngestService
from ioc.bench.synthetic import synthetic_province, telemetry_stream, traffic_stream
from protocol import (
    CAMERA_STATE,
    EDGE_STATE,
    TELEMETRY,
    TRAFFIC,
    UNBOUNDED,
    CameraState,
    EdgeState,
    MqttEndpoint,
    TelemetryBatch,
    Topics,
    WifiSample,
)
from store import StoreConfig

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]
START = 1_767_200_400.0


async def wait_for_total(services: list[IngestService], messages: int) -> None:
    """Until the services together have committed ``messages``: each round waits for any
    one of them to commit more."""
    while sum(s.stats.messages_committed for s in services) < messages:
        waits = [
            asyncio.ensure_future(s.wait_for_messages(s.stats.messages_committed + 1))
            for s in services
        ]
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in pending:
            w.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def test_traffic_and_device_states_are_stored(
    mqtt: MqttEndpoint, topics: Topics, database: StoreConfig, db: asyncpg.Connection
) -> None:
    province = synthetic_province(cameras=3, access_points=1)
    metrics = list(traffic_stream(province, START, 10))
    async with IngestService(
        mqtt, database, topics=topics, identifier="ingest-s1", time_window=UNBOUNDED
    ) as ingest:
        await ingest.wait_until_subscribed()
        async with mqtt.client("publisher-s1") as client:
            for m in metrics:
                await client.publish(topics.traffic(m.camera_id), TRAFFIC.encode(m), qos=1)
            state = CameraState(camera_id="cam-000", status="online", fps=4.8, reported_at=START)
            await client.publish(
                topics.camera_state("cam-000"), CAMERA_STATE.encode(state), qos=1, retain=True
            )
            edge = EdgeState(agent_id="edge-a", status="online", reported_at=START)
            await client.publish(
                topics.edge_state("edge-a"), EDGE_STATE.encode(edge), qos=1, retain=True
            )
        await asyncio.wait_for(ingest.wait_for_messages(len(metrics) + 2), 30)
    lines = sum(len(m.line_counts) for m in metrics)
    assert await db.fetchval("SELECT count(*) FROM traffic_counts") == lines
    assert await db.fetchval("SELECT sum(forward + backward) FROM traffic_1h") == sum(
        c.forward + c.backward for m in metrics for c in m.line_counts.values()
    )
    timed = [m for m in metrics if m.speeds]
    assert timed, "the synthetic stream times vehicles in some intervals"
    stored = await db.fetch("SELECT vehicles, mean_kmh, p85_kmh FROM traffic_speeds")
    got = sorted((r["vehicles"], r["mean_kmh"], r["p85_kmh"]) for r in stored)
    sent = sorted((m.speeds, m.speed_mean_kmh or 0.0, m.speed_p85_kmh or 0.0) for m in timed)
    assert [x for row in got for x in row] == pytest.approx([x for row in sent for x in row])
    assert await db.fetchval("SELECT fps FROM camera_status") == pytest.approx(4.8)
    assert await db.fetchval("SELECT status FROM edge_status WHERE agent_id = 'edge-a'") == (
        "online"
    )


async def test_two_services_in_a_shared_group_store_every_sample_once(
    mqtt: MqttEndpoint, topics: Topics, database: StoreConfig, db: asyncpg.Connection
) -> None:
    province = synthetic_province(cameras=1, access_points=20)
    batches = list(telemetry_stream(province, START, 15, samples_per_batch=20))
    async with contextlib.AsyncExitStack() as stack:
        services = [
            await stack.enter_async_context(
                IngestService(
                    mqtt,
                    database,
                    topics=topics,
                    identifier=f"ingest-share-{i}",
                    time_window=UNBOUNDED,
                    shared_group="ingest",
                    max_delay=0.02,
                )
            )
            for i in range(2)
        ]
        for s in services:
            await s.wait_until_subscribed()
        async with mqtt.client("publisher-share") as client:
            for b in batches:
                await client.publish(topics.telemetry(b.ap_id), TELEMETRY.encode(b), qos=1)

        await asyncio.wait_for(wait_for_total(services, len(batches)), 30)
        shares = [s.stats.messages_committed for s in services]
    assert all(shares), f"one service got nothing: {shares}"
    samples = sum(len(b.samples) for b in batches)
    assert sum(s.stats.samples_written for s in services) == samples
    assert await db.fetchval("SELECT count(*) FROM wifi_samples") == samples
    assert await db.fetchval("SELECT sum(samples) FROM wifi_1h") == samples


async def test_a_value_the_database_refuses_becomes_a_dead_letter_alone(
    mqtt: MqttEndpoint, topics: Topics, database: StoreConfig, db: asyncpg.Connection
) -> None:
    def batch(ap: str, clients: int) -> TelemetryBatch:
        sample = WifiSample(
            ts=START, clients=clients, rx_bytes=0, tx_bytes=0, channel_util=0.1, up=True
        )
        return TelemetryBatch(ap_id=ap, seq=1, samples=[sample])

    good = [batch(f"ap-{i}", 5) for i in range(4)]
    bad = batch("ap-huge", 2**40)  # valid JSON and schema, too big for the integer column
    async with IngestService(
        mqtt, database, topics=topics, identifier="ingest-s3", time_window=UNBOUNDED, max_delay=1.0
    ) as ingest:
        await ingest.wait_until_subscribed()
        async with mqtt.client("publisher-s3") as client:
            for b in [*good[:2], bad, *good[2:]]:
                await client.publish(topics.telemetry(b.ap_id), TELEMETRY.encode(b), qos=1)
        await asyncio.wait_for(ingest.wait_for_messages(5), 30)
        assert ingest.stats.dead_letters == 1
    assert await db.fetchval("SELECT count(*) FROM wifi_samples") == 4
    letter = await db.fetchrow("SELECT topic, reason, payload FROM dead_letters")
    assert letter is not None
    assert letter["topic"] == topics.telemetry("ap-huge")
    assert "store refused" in letter["reason"]
    assert TELEMETRY.decode(letter["payload"]) == bad

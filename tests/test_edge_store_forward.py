"""Store-and-forward: the broker goes away, the edge spools, the broker returns, and every
sample reaches the centre's database exactly once (the real IngestService writes it)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from edge_support import Recorder, agent_plan

from edge import EdgeAgent
from ingest import IngestService
from ioc.servers import MosquittoBroker
from protocol import TELEMETRY, MqttEndpoint, Topics
from store import StoreConfig

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]


def _aps(n: int) -> list[dict[str, object]]:
    return [
        {"id": f"ap-{i}", "name": f"AP {i}", "site": "s", "district": "d", "lat": 0, "lon": 0}
        for i in range(n)
    ]


async def _stored(ingest: IngestService, samples: int) -> None:
    """Wait, commit by commit, until ``samples`` rows are in the store."""
    while ingest.stats.samples_written < samples:
        await ingest.wait_for_messages(ingest.stats.messages_committed + 1)


async def test_every_sample_arrives_exactly_once_across_a_broker_outage(
    tmp_path: Path, topics: Topics, database: StoreConfig, db: asyncpg.Connection
) -> None:
    broker = MosquittoBroker(tmp_path / "broker")
    broker.start()
    try:
        endpoint = MqttEndpoint.from_url(broker.url)
        plan = agent_plan(
            tmp_path,
            endpoint,
            topics,
            {
                "access_points": _aps(5),
                "wifi": {
                    "collectors": [{"kind": "simulated"}],
                    "poll_period": 0.02,
                    "batch_period": 0.1,
                },
                "mqtt": {"topic_prefix": topics.prefix, "reconnect_max": 0.5},
            },
        )
        async with asyncio.timeout(120):
            async with IngestService(
                endpoint, database, topics=topics, identifier="ingest-sf"
            ) as ingest:
                await ingest.wait_until_subscribed()
                async with EdgeAgent(plan) as agent:
                    spool, forwarder = agent.spool, agent.forwarder
                    await forwarder.wait_for(lambda: forwarder.stats.published >= 10)
                    await asyncio.to_thread(broker.stop)
                    # The agent keeps collecting: batches pile up on disk, in order.
                    await agent.pipeline.wait_for(lambda: len(spool) >= 25)
                    assert not agent.connected.is_set()
                    outage_peak = len(spool)
                    await asyncio.to_thread(broker.start)
                    await agent.connected.wait()
                    await forwarder.wait_for(
                        lambda: len(spool) == 0 and forwarder.stats.published > outage_peak + 10
                    )
                # A clean stop spooled the last samples and forwarded them before going. A
                # batch leaves the spool on ingest's receipt, never on the broker's word
                # alone: the last ones, whose receipts came after the stop, are still there.
                assert spool.stats.appended == agent.pipeline.stats.batches
                assert spool.stats.confirmed + len(spool) == spool.stats.appended
                assert spool.stats.removed == 0
                assert spool.stats.dropped == 0
                samples = agent.pipeline.stats.samples
                batches = agent.pipeline.stats.batches
                await _stored(ingest, samples)
        assert outage_peak >= 25
        assert await db.fetchval("SELECT count(*) FROM wifi_samples") == samples
        assert await db.fetchval("SELECT count(DISTINCT (ap_id, ts)) FROM wifi_samples") == samples
        assert (
            await db.fetchval("SELECT count(*) FROM ingest_batches WHERE source LIKE 'wifi:ap-%'")
            == batches
        )
        per_ap = await db.fetch(
            "SELECT ap_id, count(*) AS n FROM wifi_samples GROUP BY ap_id ORDER BY ap_id"
        )
        assert [r["ap_id"] for r in per_ap] == [f"ap-{i}" for i in range(5)]
    finally:
        broker.stop()


async def test_sequence_numbers_grow_across_agent_restarts(
    tmp_path: Path, mqtt: MqttEndpoint, topics: Topics
) -> None:
    raw = {
        "access_points": _aps(2),
        "wifi": {"collectors": [{"kind": "simulated"}], "poll_period": 0.02, "batch_period": 0.05},
    }
    runs: list[list[int]] = []
    async with Recorder(mqtt, [topics.telemetry("ap-0")]) as seen:
        for _ in range(2):
            before = len(seen.messages)
            async with EdgeAgent(agent_plan(tmp_path, mqtt, topics, raw)):
                await _more_messages(seen, before + 3)
            runs.append([TELEMETRY.decode(m.payload).seq for m in seen.messages[before:]])
    # With no ingest to send receipts, the second run first sends the first run's batches
    # again; every batch it made itself carries a higher number.
    new = [seq for seq in runs[1] if seq not in runs[0]]
    assert new
    assert max(runs[0]) < min(new)
    assert runs[0] == sorted(runs[0])


async def _more_messages(seen: Recorder, count: int) -> None:
    await seen.wait_for(lambda: len(seen.messages) >= count)

"""Two independent Mosquittos: every client moves to the second when the first dies, and the
edge's receipts close the loss that move would cost (batches the dead broker had
acknowledged but not yet delivered). ``ioc bench broker`` measures that loss without them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import asyncpg
import pytest
from edge_support import agent_plan

from edge import EdgeAgent
from ingest import IngestService
from ioc.servers import MosquittoBroker, free_port
from protocol import FailoverClient, MqttEndpoint, NoBrokerError, Topics, run_subscriber
from store import StoreConfig

pytestmark = [pytest.mark.mosquitto]


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[MosquittoBroker, MosquittoBroker]]:
    first, second = MosquittoBroker(tmp_path / "a"), MosquittoBroker(tmp_path / "b")
    first.start()
    second.start()
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


def _both(first: MosquittoBroker, second: MosquittoBroker) -> MqttEndpoint:
    return MqttEndpoint.from_url(f"{first.url},{second.url}")


def test_a_broker_list_parses_and_refuses_mixed_schemes() -> None:
    endpoint = MqttEndpoint.from_url("mqtt://u:p@a:1883, mqtt://b:1884,mqtt://u:p@c")
    assert endpoint.brokers == (("a", 1883), ("b", 1884), ("c", 1883))
    assert (endpoint.username, endpoint.password) == ("u", "p")
    assert endpoint.redacted() == "mqtt://u:***@a:1883,mqtt://u:***@b:1884,mqtt://u:***@c:1883"
    with pytest.raises(ValueError, match="mix"):
        MqttEndpoint.from_url("mqtt://a,mqtts://b")
    with pytest.raises(ValueError, match="other credentials"):
        MqttEndpoint.from_url("mqtt://u:p@a,mqtt://v:q@b")


async def test_a_client_moves_to_the_next_broker_and_says_why_when_none_answers(
    pair: tuple[MosquittoBroker, MosquittoBroker], topics: Topics
) -> None:
    first, second = pair
    endpoint = _both(first, second)
    async with endpoint.client("fo-1") as client:
        assert client.broker == ("127.0.0.1", first.port)
    first.kill()
    async with endpoint.client("fo-2") as client:
        assert client.broker == ("127.0.0.1", second.port)
        await client.publish(topics.telemetry("ap-x"), b"x", qos=1)  # a live connection
    nowhere = MqttEndpoint.from_url(f"mqtt://127.0.0.1:{free_port()},{first.url}")
    with pytest.raises(NoBrokerError) as refused:
        async with nowhere.client("fo-3"):
            pass
    assert len(refused.value.failures) == 2
    assert isinstance(refused.value, aiomqtt.MqttError)  # callers' reconnect loops catch it


async def test_a_persistent_subscriber_has_its_session_waiting_on_the_next_broker(
    pair: tuple[MosquittoBroker, MosquittoBroker], topics: Topics
) -> None:
    """What is published to the second broker after the first died, before the subscriber
    has moved there, is queued for it there, not dropped."""
    first, second = pair
    endpoint = _both(first, second)
    topic = topics.telemetry("ap-x")
    received: list[bytes] = []
    changed = asyncio.Condition()

    async def handle(client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        async with changed:
            received.append(message.payload if isinstance(message.payload, bytes) else b"")
            changed.notify_all()

    async def on_connect(client: FailoverClient) -> None:
        async with changed:
            brokers.append(client.broker)
            changed.notify_all()

    brokers: list[tuple[str, int]] = []
    subscriber = asyncio.create_task(
        run_subscriber(endpoint, "fo-sub", [(topic, 1)], handle, on_connect=on_connect)
    )
    try:
        async with asyncio.timeout(30):
            async with changed:
                await changed.wait_for(lambda: len(brokers) == 1)
            await asyncio.to_thread(first.kill)
            # Published before the subscriber is back: the second broker keeps it for it.
            async with MqttEndpoint.from_url(second.url).client("fo-pub") as publisher:
                await publisher.publish(topic, b"early", qos=1)
            async with changed:
                await changed.wait_for(lambda: b"early" in received)
        assert brokers == [("127.0.0.1", first.port), ("127.0.0.1", second.port)]
    finally:
        subscriber.cancel()
        with pytest.raises(asyncio.CancelledError):
            await subscriber


@pytest.mark.postgres
async def test_batches_the_dead_broker_acknowledged_come_again_and_are_stored_once(
    pair: tuple[MosquittoBroker, MosquittoBroker],
    tmp_path: Path,
    topics: Topics,
    database: StoreConfig,
    db: asyncpg.Connection,
) -> None:
    """Ingest is away while the first broker acknowledges (and queues for it) a run of
    batches; then that broker dies with them. Without receipts they are lost; with them the
    edge sends them again through the second broker and each is stored once."""
    first, second = pair
    endpoint = _both(first, second)
    aps = [
        {"id": f"ap-{i}", "name": f"AP {i}", "site": "s", "district": "d", "lat": 0, "lon": 0}
        for i in range(3)
    ]
    plan = agent_plan(
        tmp_path,
        endpoint,
        topics,
        {
            "access_points": aps,
            "wifi": {
                "collectors": [{"kind": "simulated"}],
                "poll_period": 0.02,
                "batch_period": 0.1,
            },
            "mqtt": {"topic_prefix": topics.prefix, "reconnect_max": 0.5},
            "spool": {"path": str(tmp_path / "spool.sqlite"), "resend_after": 1.0},
        },
    )

    def ingest() -> IngestService:
        return IngestService(
            endpoint, database, topics=topics, identifier="ingest-fo", maintenance_interval=None
        )

    async with asyncio.timeout(60), EdgeAgent(plan) as agent:
        spool, forwarder = agent.spool, agent.forwarder
        async with ingest() as before:
            await before.wait_until_subscribed()
            await forwarder.wait_for(lambda: spool.stats.confirmed >= 5)
        # Ingest is away: the first broker acknowledges batches and queues them for it.
        published = forwarder.stats.published
        await forwarder.wait_for(lambda: forwarder.stats.published >= published + 5)
        await asyncio.to_thread(first.kill)
        at_risk = spool.db.execute(
            "SELECT key, seq FROM spool WHERE sent_at IS NOT NULL ORDER BY id"
        ).fetchall()
        cutoff = spool.db.execute("SELECT max(id) FROM spool").fetchone()[0]
        async with ingest() as after:
            await after.wait_until_subscribed()

            def settled() -> bool:
                query = "SELECT count(*) FROM spool WHERE id <= ?"
                return int(spool.db.execute(query, (cutoff,)).fetchone()[0]) == 0

            await forwarder.wait_for(settled)
    assert len(at_risk) >= 5
    assert forwarder.stats.resent >= len(at_risk)
    stored = {
        (r["source"], r["seq"]) for r in await db.fetch("SELECT source, seq FROM ingest_batches")
    }
    assert {(f"wifi:{key}", seq) for key, seq in at_risk} <= stored
    # Sent twice (or more), stored once.
    rows = await db.fetchval("SELECT count(*) FROM wifi_samples")
    assert rows == await db.fetchval("SELECT count(DISTINCT (ap_id, ts)) FROM wifi_samples")
    assert rows == await db.fetchval("SELECT sum(rows) FROM ingest_batches")

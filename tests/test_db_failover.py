"""Every writer against a real Patroni cluster (etcd, a primary, a synchronous streaming
replica, HAProxy) while the primary's postmaster is killed (SIGKILL) and Patroni promotes the
replica: ingest (through the multi-host URL with target_session_attrs=read-write), and the
alerts engine, its police and MQTT outboxes, the change log's NOTIFY listener and the console
API (through HAProxy). Nothing acknowledged is lost, nothing is done twice."""

from __future__ import annotations

import asyncio
import base64
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
import pytest
from console_support import PASSWORD, serve
from police_receiver import police_receiver
from test_ingest_faults import _assert_exactly_once, _publish, _stream

from alerts import (
    AlertFeed,
    AlertsEngine,
    DeliveryWorker,
    RuleBook,
    parse_rules,
    publish_routing,
    routing_from,
)
from alerts._mqtt_publisher import MqttPublisher
from console_api import Role, add_user, create_app
from ingest import IngestService
from ioc.cluster import PatroniCluster
from protocol import (
    ALERT,
    EVENT,
    UNBOUNDED,
    AlertMessage,
    EventKind,
    MqttEndpoint,
    Province,
    Topics,
    VisionEvent,
)
from store import ALL_MIGRATIONS, StoreConfig, migrate, sync_registry

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres, pytest.mark.slow]
SECRET = "whsec_" + base64.b64encode(b"police-dispatch-shared-secret-32").decode()
CAMERA = "indoor-room"


def _intrusion(zone: str) -> VisionEvent:
    return VisionEvent(
        event_id=f"{CAMERA}:intrusion:{zone}",
        kind=EventKind.INTRUSION,
        camera_id=CAMERA,
        phase="start",
        started_at=time.time(),
        zone_id=zone,
    )


async def _until_served(
    request: Callable[[], Awaitable[httpx.Response]], attempts: int = 20
) -> httpx.Response:
    """What an operator's page does with a 503 (the API's answer while its pool has only
    connections to the dead primary): it asks again, after the Retry-After."""
    for _ in range(attempts):
        response = await request()
        if response.status_code != 503:
            return response
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")) / 4)
    return response


async def test_every_writer_survives_a_promotion(
    server_root: Path, mqtt: MqttEndpoint, topics: Topics, clips_province: Province
) -> None:
    root = Path(tempfile.mkdtemp(dir=server_root)) / "patroni"
    async with PatroniCluster(root, durable=False) as cluster, police_receiver(SECRET) as police:
        conn = await asyncpg.connect(cluster.url)
        try:
            await migrate(conn, ALL_MIGRATIONS)
            await sync_registry(conn, clips_province)
            await add_user(conn, "op", Role.OPERATOR, PASSWORD)
            rules = parse_rules(
                {
                    "routes": {"police": {"kinds": ["intrusion"], "min_severity": "info"}},
                    "police": {
                        "endpoints": [
                            {
                                "id": "dispatch",
                                "url": police.url("/cap"),
                                "allow_plain_http": True,
                                "secret_env": "S",
                            }
                        ]
                    },
                },
                clips_province,
                environ={"S": SECRET},
            )
            await publish_routing(conn, routing_from(rules))
        finally:
            await conn.close()
        via_proxy = StoreConfig(url=cluster.url, max_size=4)
        via_hosts = StoreConfig(url=cluster.multi_host_url, max_size=4)
        book = RuleBook.fixed(rules)
        batches = _stream(60)
        tag = topics.prefix.split("/")[0]
        async with (
            IngestService(
                mqtt, via_hosts, topics=topics, identifier=f"ingest-{tag}", time_window=UNBOUNDED
            ) as ingest,
            AlertsEngine(
                mqtt,
                via_proxy,
                clips_province,
                topics=topics,
                rules=book,
                time_window=UNBOUNDED,
                # Only the test's alerts (no auto-resolve, no Wi-Fi alerts from the samples),
                # and the MQTT outbox drained by the publisher below alone.
                sweep_interval=3600,
                watch_wifi=False,
                publish_mqtt=False,
            ) as engine,
            DeliveryWorker(via_proxy, book) as delivery,
            MqttPublisher(mqtt, via_proxy, identifier=f"pub-{tag}") as publisher,
            AlertFeed(via_proxy) as feed,
            serve(create_app(via_proxy, read_store=StoreConfig(cluster.read_url))) as api_host,
            mqtt.client(f"watch-{tag}") as watcher,
            mqtt.client(f"vision-{tag}") as vision,
            httpx.AsyncClient(base_url=f"http://{api_host}", timeout=30) as http,
        ):
            await watcher.subscribe(topics.all_alerts(), qos=1)
            await ingest.wait_until_subscribed()
            await engine.wait_until_subscribed()
            changes = feed.subscribe()
            login = await http.post(
                "/api/v1/auth/token", data={"username": "op", "password": PASSWORD}
            )
            token = login.raise_for_status().json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}

            # Before: half the telemetry, one alert, delivered everywhere.
            await _publish(mqtt, topics, batches[:30])
            await vision.publish(topics.events(CAMERA), EVENT.encode(_intrusion("floor")), qos=1)
            await asyncio.wait_for(engine.wait_for_events(1), 20)
            await asyncio.wait_for(delivery.wait_for(lambda s: s.delivered == 1), 20)
            await asyncio.wait_for(publisher.wait_for_published(1), 20)
            first = await asyncio.wait_for(changes.queue.get(), 20)
            await asyncio.wait_for(ingest.wait_for_messages(30), 30)

            # Planners' reads go to the replica (IOC_DATABASE_READ_URL).
            replica = await asyncpg.connect(cluster.read_url)
            try:
                assert await replica.fetchval("SELECT pg_is_in_recovery()")
            finally:
                await replica.close()

            # The primary dies; the rest arrives while Patroni promotes the replica.
            old = await cluster.kill_primary()
            await _publish(mqtt, topics, batches[30:])
            await vision.publish(topics.events(CAMERA), EVENT.encode(_intrusion("door")), qos=1)
            failover_s = await cluster.wait_promoted(old)
            assert cluster.primary() is not old

            await asyncio.wait_for(ingest.wait_for_messages(len(batches)), 60)
            await asyncio.wait_for(engine.wait_for_events(2), 60)
            await asyncio.wait_for(delivery.wait_for(lambda s: s.delivered == 2), 60)
            await asyncio.wait_for(publisher.wait_for_published(2), 60)
            second = await asyncio.wait_for(changes.queue.get(), 60)

            # The API: the session made before the failover is valid after it (it lives in
            # the database, which the replica had), and a transition commits once.
            acked = await _until_served(
                lambda: http.post(f"/api/v1/alerts/{second.alert.id}/acknowledge", headers=auth)
            )
            assert acked.status_code == 200, acked.text
            third = await asyncio.wait_for(changes.queue.get(), 20)

            outside: list[AlertMessage] = []
            async with asyncio.timeout(20):
                async for message in watcher.messages:
                    if isinstance(message.payload, bytes):
                        outside.append(ALERT.decode(message.payload))
                    if len(outside) == 3:
                        break

        conn = await asyncpg.connect(cluster.url)
        try:
            await _assert_exactly_once(conn, batches)
            assert await conn.fetchval("SELECT count(*) FROM events") == 2
            logged = [
                r["seq"] for r in await conn.fetch("SELECT seq FROM alert_changes ORDER BY 1")
            ]
            assert await conn.fetchval("SELECT count(*) FROM mqtt_outbox") == 0
            pending = "SELECT count(*) FROM police_deliveries WHERE status = 'pending'"
            assert await conn.fetchval(pending) == 0
        finally:
            await conn.close()
        assert failover_s < 60
        # Every change of the log once, in order. A promotion may skip sequence numbers (the
        # replica's sequence resumes past the primary's WAL-logged cache), so not first + 1.
        assert [first.seq, second.seq, third.seq] == logged
        assert third.alert.state == "acknowledged"
        assert [m.change_seq for m in outside] == logged
        assert len(police.processed["/cap"]) == len(set(police.processed["/cap"])) == 3

"""Faults against real servers, mid-stream: Mosquitto stopped and restarted, PostgreSQL
stopped and restarted, the ingest process killed and started again. Each counts the
samples sent against the rows stored: none lost, none twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import asyncpg
import pytest

from ingest import IngestService
from ioc.bench.synthetic import synthetic_province, telemetry_stream
from ioc.servers import MosquittoBroker, PostgresCluster
from protocol import TELEMETRY, UNBOUNDED, MqttEndpoint, TelemetryBatch, Topics, backoff_delay
from store import ALL_MIGRATIONS, StoreConfig, migrate

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres, pytest.mark.slow]
START = time.time() // 3600 * 3600 - 3600  # recent: older data would meet the retention
ROOT = Path(__file__).resolve().parent.parent


def _stream(batches: int, aps: int = 10) -> list[TelemetryBatch]:
    province = synthetic_province(cameras=1, access_points=aps)
    return list(telemetry_stream(province, START, batches, samples_per_batch=50))


async def _publish(endpoint: MqttEndpoint, topics: Topics, batches: list[TelemetryBatch]) -> None:
    """Publish every batch at QoS 1, reconnecting and sending again what was not
    acknowledged when the broker went away (as an edge's spool does)."""
    sent, attempt = 0, 0
    while sent < len(batches):
        try:
            async with endpoint.client("fault-publisher") as client:
                while sent < len(batches):
                    b = batches[sent]
                    await client.publish(topics.telemetry(b.ap_id), TELEMETRY.encode(b), qos=1)
                    sent += 1
        except aiomqtt.MqttError:
            attempt += 1
            await asyncio.sleep(backoff_delay(attempt) / 4)


async def _assert_exactly_once(db: asyncpg.Connection, batches: list[TelemetryBatch]) -> None:
    expected = sum(len(b.samples) for b in batches)
    assert await db.fetchval("SELECT count(*) FROM wifi_samples") == expected
    assert await db.fetchval("SELECT count(DISTINCT (ap_id, ts)) FROM wifi_samples") == expected
    assert await db.fetchval("SELECT sum(samples)::bigint FROM wifi_1h") == expected


# Server folders live under the suite's own temporary root, not pytest's tmp_path: pytest
# resets its base folder to mode 0700 (concurrent runs too), which locks out the service
# users these servers run as.
@pytest.fixture
def own_broker(server_root: Path) -> Iterator[MosquittoBroker]:
    """A broker of this test's own, which it may stop (same port and data on restart)."""
    broker = MosquittoBroker(Path(tempfile.mkdtemp(dir=server_root)) / "mosquitto")
    broker.start()
    yield broker
    broker.stop()


async def test_broker_restart_mid_stream(
    own_broker: MosquittoBroker, topics: Topics, database: StoreConfig, db: asyncpg.Connection
) -> None:
    endpoint = MqttEndpoint.from_url(own_broker.url)
    first, second = _stream(60)[:30], _stream(60)[30:]
    async with IngestService(
        endpoint, database, topics=topics, identifier="ingest-f1", time_window=UNBOUNDED
    ) as ingest:
        await ingest.wait_until_subscribed()
        await _publish(endpoint, topics, first)
        await asyncio.wait_for(ingest.wait_until(lambda s: s.flushes >= 1), 30)
        own_broker.stop()  # queued and unacknowledged messages are in its persistence file
        own_broker.start()
        await _publish(endpoint, topics, second)
        total = sum(len(b.samples) for b in first + second)
        await asyncio.wait_for(ingest.wait_until(lambda s: s.samples_written >= total), 60)
    await _assert_exactly_once(db, first + second)


@pytest.fixture(scope="module")
def own_postgres(server_root: Path) -> Iterator[PostgresCluster]:
    cluster = PostgresCluster(Path(tempfile.mkdtemp(dir=server_root)) / "postgres", durable=False)
    cluster.start()
    yield cluster
    cluster.stop("immediate")


@pytest.fixture
async def own_database(own_postgres: PostgresCluster) -> StoreConfig:
    conn = await asyncpg.connect(own_postgres.url)
    try:
        await migrate(conn, ALL_MIGRATIONS)
    finally:
        await conn.close()
    return StoreConfig(url=own_postgres.url, max_size=4)


async def test_database_restart_mid_stream(
    mqtt: MqttEndpoint,
    topics: Topics,
    own_postgres: PostgresCluster,
    own_database: StoreConfig,
) -> None:
    batches = _stream(60)
    async with IngestService(
        mqtt, own_database, topics=topics, identifier="ingest-f2", time_window=UNBOUNDED
    ) as ingest:
        await ingest.wait_until_subscribed()
        await _publish(mqtt, topics, batches[:20])
        await asyncio.wait_for(ingest.wait_until(lambda s: s.flushes >= 1), 30)
        await asyncio.to_thread(own_postgres.stop)
        await _publish(mqtt, topics, batches[20:])
        await asyncio.wait_for(ingest.wait_until(lambda s: s.write_errors >= 1), 30)
        await asyncio.to_thread(own_postgres.start)
        # Every message stored, by this attempt or one whose commit went through before the
        # server went down but whose answer was lost (the retry finds the batch stored and
        # writes nothing): so count messages, not samples newly written.
        await asyncio.wait_for(ingest.wait_for_messages(len(batches)), 90)
    conn = await asyncpg.connect(own_database.url)
    try:
        await _assert_exactly_once(conn, batches)
    finally:
        await conn.close()


def _start_ingest(
    mqtt: MqttEndpoint, topics: Topics, database: StoreConfig
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "IOC_MQTT_URL": f"mqtt://{mqtt.host}:{mqtt.port}",
        "IOC_DATABASE_URL": database.url,
        "IOC_PROVINCE": str(ROOT / "tests" / "data" / "clips.yaml"),
        "IOC_TOPIC_PREFIX": topics.prefix,
        "IOC_LOG_LEVEL": "WARNING",
        "IOC_EDGE_TIME_FUTURE": "1e6",  # the stream runs hours ahead of the clock
    }
    return subprocess.Popen(
        [sys.executable, "-m", "ioc", "ingest", "--identifier", "ingest-proc"],
        env=env,
        stdout=subprocess.DEVNULL,
    )


async def test_ingest_process_killed_and_restarted(
    mqtt: MqttEndpoint, topics: Topics, database: StoreConfig, db: asyncpg.Connection
) -> None:
    batches = _stream(80)
    # Commits announce themselves, so the test waits on them rather than on time.
    await db.execute(
        """CREATE FUNCTION announce_batch() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN PERFORM pg_notify('batches', NEW.seq::text); RETURN NULL; END $$;
           CREATE TRIGGER announce AFTER INSERT ON ingest_batches
               FOR EACH ROW EXECUTE FUNCTION announce_batch()"""
    )
    committed: asyncio.Queue[str] = asyncio.Queue()
    await db.add_listener("batches", lambda *args: committed.put_nowait(args[3]))
    # The process's persistent session exists before it runs: the broker keeps what comes.
    async with IngestService(
        mqtt, database, topics=topics, identifier="ingest-proc", time_window=UNBOUNDED
    ) as probe:
        await probe.wait_until_subscribed()
    await _publish(mqtt, topics, batches[:40])
    process = _start_ingest(mqtt, topics, database)
    try:
        await asyncio.wait_for(committed.get(), 60)
        process.send_signal(signal.SIGKILL)  # mid-stream: most of the batches are in flight
        process.wait()
        await _publish(mqtt, topics, batches[40:])
        process = _start_ingest(mqtt, topics, database)
        expected = sum(len(b.samples) for b in batches)

        async def all_stored() -> None:
            while await db.fetchval("SELECT count(*) FROM wifi_samples") < expected:
                await committed.get()

        await asyncio.wait_for(all_stored(), 90)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait()
    await _assert_exactly_once(db, batches)

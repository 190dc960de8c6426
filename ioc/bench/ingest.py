"""``ioc bench ingest``: Wi-Fi telemetry through Mosquitto into PostgreSQL.

Ours: the ingest service (batched COPY, idempotent, acknowledged after commit) takes a
fleet publishing at ``rate`` samples/s for ``seconds``; then every sample is counted in the
store (lost, duplicates). Baseline: a consumer inserting row by row, one statement per
sample, fed the same stream for ``baseline_seconds``. Both run against a fresh durable
PostgreSQL cluster and Mosquitto started here; the publisher is a separate process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from ingest import IngestService
from protocol import TELEMETRY, MqttEndpoint, Topics
from store import ALL_MIGRATIONS, StoreConfig, migrate

from ..servers import MosquittoBroker, PostgresCluster
from ..services import tune_gc_for_throughput
from ._publisher import Fleet

logger = logging.getLogger(__name__)


def _progress(message: str) -> None:
    sys.stderr.write(f"[bench ingest] {message}\n")
    sys.stderr.flush()


def _start_publisher(endpoint: MqttEndpoint, prefix: str, fleet: Fleet) -> subprocess.Popen[bytes]:
    args = fleet.argv(f"mqtt://{endpoint.host}:{endpoint.port}", prefix)
    return subprocess.Popen(  # noqa: S603 (our own module, our own arguments)
        [sys.executable, "-m", "ioc.bench._publisher", *args], stdout=subprocess.PIPE
    )


def _publisher_result(process: subprocess.Popen[bytes]) -> dict[str, float]:
    out, _ = process.communicate(timeout=120)
    if process.returncode != 0:
        raise RuntimeError(f"publisher failed with {process.returncode}")
    result: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
    return result


class _Databases(Protocol):
    """A server that hands out a URL per database (a private cluster, a Patroni cluster)."""

    def url_for(self, database: str) -> str: ...


async def _database(cluster: _Databases, name: str) -> StoreConfig:
    admin = await asyncpg.connect(cluster.url_for("postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    config = StoreConfig(url=cluster.url_for(name))
    conn = await asyncpg.connect(config.url)
    try:
        await migrate(conn, ALL_MIGRATIONS)
    finally:
        await conn.close()
    return config


async def _stored_samples(url: str) -> tuple[int, int]:
    """Rows in ``wifi_samples`` and how many distinct (AP, time) samples they hold."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM wifi_samples")
        distinct = await conn.fetchval("SELECT count(DISTINCT (ap_id, ts)) FROM wifi_samples")
    finally:
        await conn.close()
    return int(rows), int(distinct)


async def _ours(endpoint: MqttEndpoint, store: StoreConfig, fleet: Fleet) -> dict[str, Any]:
    topics = Topics("bench-ours/v1")
    async with IngestService(
        endpoint, store, topics=topics, identifier="bench-ingest", maintenance_interval=None
    ) as ingest:
        await ingest.wait_until_subscribed()
        _progress(f"ours: publishing {fleet.rate:,.0f} samples/s for {fleet.seconds:.0f} s")
        publisher = _start_publisher(endpoint, topics.prefix, fleet)
        while publisher.poll() is None:
            await asyncio.sleep(5)  # progress report cadence only
            _progress(f"ours: {ingest.stats.samples_written:,} samples stored")
        sent = await asyncio.to_thread(_publisher_result, publisher)
        await asyncio.wait_for(ingest.wait_for_messages(int(sent["messages"])), 300)
        # From the first sample published to the last one committed.
        took = time.time() - sent["started_at"]
        stats = ingest.stats
        ages = sorted(stats.data_age)
    conn = await asyncpg.connect(store.url)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM wifi_samples")
        distinct = await conn.fetchval("SELECT count(DISTINCT (ap_id, ts)) FROM wifi_samples")
        rolled = await conn.fetchval("SELECT coalesce(sum(samples), 0)::bigint FROM wifi_1h")
    finally:
        await conn.close()
    p99 = ages[min(len(ages) - 1, int(len(ages) * 0.99))] if ages else float("nan")
    return {
        "samples_per_s": round(rows / took),
        "published": int(sent["samples"]),
        "stored": rows,
        "lost": int(sent["samples"]) - distinct,
        "duplicates": rows - distinct,
        "rollup_samples": rolled,
        "p99_latency_ms": round(p99 * 1000, 1),
        "seconds": round(took, 1),
        "flushes": stats.flushes,
    }


async def _baseline(endpoint: MqttEndpoint, store: StoreConfig, fleet: Fleet) -> dict[str, Any]:
    """One INSERT per sample as each message arrives: what a naive consumer does."""
    topics = Topics("bench-base/v1")
    conn = await asyncpg.connect(store.url)
    inserted = 0
    try:
        async with endpoint.client("bench-baseline") as client:
            await client.subscribe(topics.all_telemetry(), qos=1)
            _progress(f"baseline: same stream, row-by-row INSERT, {fleet.seconds:.0f} s")
            publisher = _start_publisher(endpoint, topics.prefix, fleet)
            started: float | None = None
            async for message in client.messages:
                # The clock starts with the first message, not the publisher's start-up.
                started = started or time.monotonic()
                payload = message.payload if isinstance(message.payload, bytes) else b""
                decoded = TELEMETRY.decode(payload)
                for s in decoded.samples:
                    await conn.execute(
                        "INSERT INTO wifi_samples VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        decoded.ap_id,
                        datetime.fromtimestamp(s.ts, UTC),
                        s.clients,
                        s.rx_bytes,
                        s.tx_bytes,
                        s.channel_util,
                        s.up,
                        len(s.visitors),
                    )
                    inserted += 1
                if time.monotonic() - started >= fleet.seconds:
                    break
            took = time.monotonic() - (started or time.monotonic())
            publisher.kill()
            publisher.wait()
    finally:
        await conn.close()
    return {"samples_per_s": round(inserted / took), "stored": inserted, "seconds": round(took, 1)}


async def run(fleet: Fleet, baseline_seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ioc-bench-ingest-") as tmp:
        root = Path(tmp)
        cluster = PostgresCluster(root / "postgres")  # durable: fsync on, as in production
        broker = MosquittoBroker(root / "mosquitto")
        _progress("starting PostgreSQL and Mosquitto")
        await asyncio.to_thread(cluster.start)
        try:
            broker.start()
            try:
                endpoint = MqttEndpoint.from_url(broker.url)
                ours_db = await _database(cluster, "bench_ours")
                base_db = await _database(cluster, "bench_base")
                ours = await _ours(endpoint, ours_db, fleet)
                _progress(f"ours: {ours}")
                base_fleet = Fleet(fleet.rate, baseline_seconds, fleet.batch, fleet.aps)
                base = await _baseline(endpoint, base_db, base_fleet)
                _progress(f"baseline: {base}")
            finally:
                broker.stop()
        finally:
            await asyncio.to_thread(cluster.stop)
    return {
        "samples_per_s": ours["samples_per_s"],
        "baseline_samples_per_s": base["samples_per_s"],
        "ratio": round(ours["samples_per_s"] / max(1, base["samples_per_s"]), 1),
        "p99_latency_ms": ours["p99_latency_ms"],
        "lost": ours["lost"],
        "duplicates": ours["duplicates"],
        "seconds": ours["seconds"],
        "published": ours["published"],
        "rollup_samples": ours["rollup_samples"],
        "samples_per_message": fleet.batch,
        "access_points": fleet.aps,
        "target_rate": fleet.rate,
    }


def main(fleet: Fleet, baseline_seconds: float) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    tune_gc_for_throughput()  # as `ioc ingest` runs
    with contextlib.suppress(KeyboardInterrupt):
        result = asyncio.run(run(fleet, baseline_seconds))
        sys.stdout.write(json.dumps(result) + "\n")

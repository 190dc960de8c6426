"""``ioc bench failover-db``: what Patroni's synchronous replication costs ingest, and what a
promotion costs in time and rows.

For each mode, synchronous (``synchronous_mode: true``, the setting we ship) and
asynchronous, side by side on the same machine: a fresh durable Patroni cluster (etcd, a
primary, a streaming replica, HAProxy) and Mosquitto; the ingest service writes through
HAProxy. First the fleet publishes at ``rate`` for ``seconds`` and the throughput is measured
as ``ioc bench ingest`` does; then the fleet publishes again and the primary's postmaster is
killed (SIGKILL) a third of the way in: ``db_failover_s`` is the time until a write through
HAProxy commits on the promoted replica, ``lost_rows`` the samples ingest had acknowledged
(to the broker, after its commit) that the new primary does not have, ``duplicates`` the
samples stored twice. The last line of stdout is the JSON summary.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from ingest import IngestService
from protocol import MqttEndpoint, Topics
from store import ALL_MIGRATIONS, StoreConfig, migrate

from ..cluster import PatroniCluster
from ..servers import MosquittoBroker
from ..services import tune_gc_for_throughput
from ._publisher import Fleet
from .ingest import _ours, _publisher_result, _start_publisher


def _progress(message: str) -> None:
    sys.stderr.write(f"[bench failover-db] {message}\n")
    sys.stderr.flush()


async def _database(cluster: PatroniCluster, name: str) -> StoreConfig:
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


async def _failover(
    cluster: PatroniCluster, endpoint: MqttEndpoint, store: StoreConfig, fleet: Fleet
) -> dict[str, Any]:
    topics = Topics("bench-failover/v1")
    async with IngestService(
        endpoint, store, topics=topics, identifier="bench-failover", maintenance_interval=None
    ) as ingest:
        await ingest.wait_until_subscribed()
        publisher = _start_publisher(endpoint, topics.prefix, fleet)
        await asyncio.sleep(fleet.seconds / 3)  # the fault's moment in the run, not a wait
        old = await cluster.kill_primary()
        failover_s = await cluster.wait_promoted(old)
        _progress(f"promoted in {failover_s:.2f} s")
        sent = await asyncio.to_thread(_publisher_result, publisher)
        await asyncio.wait_for(ingest.wait_for_messages(int(sent["messages"])), 300)
    conn = await asyncpg.connect(store.url)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM wifi_samples")
        distinct = await conn.fetchval("SELECT count(DISTINCT (ap_id, ts)) FROM wifi_samples")
    finally:
        await conn.close()
    return {
        "db_failover_s": round(failover_s, 2),
        "published": int(sent["samples"]),
        "lost_rows": int(sent["samples"]) - distinct,
        "duplicates": rows - distinct,
    }


async def _mode(
    root: Path, endpoint: MqttEndpoint, synchronous: bool, fleet: Fleet, fault_fleet: Fleet
) -> dict[str, Any]:
    name = "sync" if synchronous else "async"
    _progress(f"{name}: starting etcd, two Patroni nodes and HAProxy")
    async with PatroniCluster(root / name, synchronous=synchronous) as cluster:
        throughput = await _ours(endpoint, await _database(cluster, "bench_ours"), fleet)
        _progress(f"{name}: {throughput}")
        fault = await _failover(
            cluster, endpoint, await _database(cluster, "bench_failover"), fault_fleet
        )
        _progress(f"{name}: {fault}")
    return {
        "samples_per_s": throughput["samples_per_s"],
        "p99_latency_ms": throughput["p99_latency_ms"],
        **fault,
    }


async def run(fleet: Fleet, fault_fleet: Fleet) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ioc-bench-failover-") as tmp:
        root = Path(tmp)
        broker = MosquittoBroker(root / "mosquitto")
        broker.start()
        try:
            endpoint = MqttEndpoint.from_url(broker.url)
            sync = await _mode(root, endpoint, True, fleet, fault_fleet)
            asynchronous = await _mode(root, endpoint, False, fleet, fault_fleet)
        finally:
            broker.stop()
    cost = 1 - sync["samples_per_s"] / max(1, asynchronous["samples_per_s"])
    return {
        "db_failover_s": sync["db_failover_s"],
        "lost_rows": sync["lost_rows"],
        "duplicates": sync["duplicates"],
        "sync_samples_per_s": sync["samples_per_s"],
        "async_samples_per_s": asynchronous["samples_per_s"],
        "sync_cost": round(cost, 3),
        "sync": sync,
        "async": asynchronous,
        "target_rate": fleet.rate,
        "seconds": fleet.seconds,
        "samples_per_message": fleet.batch,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(fleet: Fleet, fault_fleet: Fleet) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    tune_gc_for_throughput()  # as `ioc ingest` runs
    sys.stdout.write(json.dumps(asyncio.run(run(fleet, fault_fleet))) + "\n")

"""``ioc bench failover-db``: what Patroni's synchronous replication costs ingest, and what a
promotion costs in time and rows.

Two durable Patroni clusters (etcd, a primary, a streaming replica, HAProxy each), one
synchronous (``synchronous_mode: true``, the setting we ship) and one asynchronous, side by
side on the same machine with one Mosquitto; the ingest service writes through HAProxy. In
``rounds`` alternating turns the fleet publishes at ``rate`` for ``seconds`` into each, and
the throughput is measured as ``ioc bench ingest`` does (the median is reported, every run
listed). Then, in each cluster, the fleet publishes again and the primary's postmaster is
killed (SIGKILL) a third of the way in: ``db_failover_s`` is the time until a write through
HAProxy commits on the promoted replica, ``lost_rows`` the samples ingest had acknowledged
(to the broker, after its commit) that the new primary does not have, ``duplicates`` the
samples stored twice. The last line of stdout is the JSON summary.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ingest import IngestService
from protocol import MqttEndpoint, Topics
from store import StoreConfig

from ..cluster import PatroniCluster
from ..servers import MosquittoBroker
from ..services import tune_gc_for_throughput
from ._publisher import Fleet
from .ingest import _database, _ours, _publisher_result, _start_publisher, _stored_samples


def _progress(message: str) -> None:
    sys.stderr.write(f"[bench failover-db] {message}\n")
    sys.stderr.flush()


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
    rows, distinct = await _stored_samples(store.url)
    return {
        "db_failover_s": round(failover_s, 2),
        "published": int(sent["samples"]),
        "lost_rows": int(sent["samples"]) - distinct,
        "duplicates": rows - distinct,
    }


async def run(fleet: Fleet, fault_fleet: Fleet, rounds: int) -> dict[str, Any]:
    """Both clusters up at once and idle between turns; the throughput runs alternate
    (sync, async, then async, sync ...) so that a change in the machine's load meets both."""
    with tempfile.TemporaryDirectory(prefix="ioc-bench-failover-") as tmp:
        root = Path(tmp)
        broker = MosquittoBroker(root / "mosquitto")
        broker.start()
        try:
            endpoint = MqttEndpoint.from_url(broker.url)
            _progress("starting two clusters (etcd, two Patroni nodes, HAProxy each)")
            async with (
                PatroniCluster(root / "sync", synchronous=True) as sync_cluster,
                PatroniCluster(root / "async", synchronous=False) as async_cluster,
            ):
                clusters = {"sync": sync_cluster, "async": async_cluster}
                throughput: dict[str, list[dict[str, Any]]] = {"sync": [], "async": []}
                for r in range(rounds):
                    for name in ("sync", "async") if r % 2 == 0 else ("async", "sync"):
                        store = await _database(clusters[name], f"bench_round{r}")
                        result = await _ours(endpoint, store, fleet)
                        _progress(f"round {r + 1}, {name}: {result}")
                        throughput[name].append(result)
                faults = {}
                for name, cluster in clusters.items():
                    store = await _database(cluster, "bench_failover")
                    faults[name] = await _failover(cluster, endpoint, store, fault_fleet)
                    _progress(f"{name}, primary killed: {faults[name]}")
        finally:
            broker.stop()
    rates = {n: [t["samples_per_s"] for t in runs] for n, runs in throughput.items()}
    sync_rate, async_rate = statistics.median(rates["sync"]), statistics.median(rates["async"])
    return {
        "db_failover_s": faults["sync"]["db_failover_s"],
        "lost_rows": faults["sync"]["lost_rows"],
        "duplicates": faults["sync"]["duplicates"],
        "sync_samples_per_s": round(sync_rate),
        "async_samples_per_s": round(async_rate),
        "sync_cost": round(1 - sync_rate / max(1, async_rate), 3),
        "sync_runs": rates["sync"],
        "async_runs": rates["async"],
        "sync_p99_latency_ms": [t["p99_latency_ms"] for t in throughput["sync"]],
        "async_p99_latency_ms": [t["p99_latency_ms"] for t in throughput["async"]],
        "async_failover": faults["async"],
        "target_rate": fleet.rate,
        "seconds": fleet.seconds,
        "samples_per_message": fleet.batch,
        "load_average": round(os.getloadavg()[0], 2),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(fleet: Fleet, fault_fleet: Fleet, rounds: int) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    tune_gc_for_throughput()  # as `ioc ingest` runs
    sys.stdout.write(json.dumps(asyncio.run(run(fleet, fault_fleet, rounds))) + "\n")

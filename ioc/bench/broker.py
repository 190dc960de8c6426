"""``ioc bench broker``: what the death of the first of two independent Mosquittos costs.

Two Mosquittos (persistence on, as in production) and a durable PostgreSQL start here;
ingest and a fleet of edges are given both brokers (``mqtt://a,mqtt://b``). The edges use
the real spool, pipeline and forwarder of ``edge`` (the spool on disk), with a steady
collector. Mid-run the first broker is killed (SIGKILL: its machine died) and every client
moves to the second. At the end every sample an edge collected is looked for in the store.

The run is made twice, on fresh servers: without receipts (an edge forgets a batch once the
broker acknowledged it, as a plain QoS 1 publisher does) and with them (it keeps the batch
until ingest's receipt names it). The first measures the loss -- batches the dead broker had
acknowledged but not yet delivered -- and the second shows that receipts close it.
``broker_failover_s`` is from the kill until ingest and every edge are connected to the
second broker. The kill comes right after the edges spooled a round of batches, while those
are on their way: between rounds the first broker holds nothing to lose.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from edge import ApReading, Spool, SpoolForwarder, WifiPipeline
from ingest import IngestService
from protocol import MqttEndpoint, Topics, WifiSample, backoff_delay, stop_tasks
from store import StoreConfig

from ..servers import MosquittoBroker, PostgresCluster
from ._province import progress
from .ingest import _database, _stored_samples

say = progress("bench broker")
FAILOVER_DEADLINE_S = 60.0
SETTLE_S = 3.0
"""The store is final once ingest has written nothing for this long (after the edges
emptied their spools)."""


@dataclass(frozen=True, slots=True)
class BrokerLoad:
    edges: int = 10
    aps_per_edge: int = 50
    poll_period: float = 0.1
    """Each AP gives one sample per poll."""
    batch_period: float = 0.5
    seconds: float = 8.0
    kill_at: float = 4.0
    resend_after: float = 5.0

    @property
    def rate(self) -> float:
        return self.edges * self.aps_per_edge / self.poll_period


class SteadyCollector:
    """One sample per access point per poll, each with its own time (distinct rows)."""

    def __init__(self, name: str, access_points: Sequence[str]) -> None:
        self._name = name
        self._aps = list(access_points)
        self._last = 0.0

    @property
    def name(self) -> str:
        return self._name

    @property
    def access_points(self) -> Sequence[str]:
        return self._aps

    async def collect(self, now: float) -> list[ApReading]:
        ts = max(now, self._last + 0.001)  # times stay distinct per AP
        self._last = ts
        sample = WifiSample(ts=ts, clients=3, rx_bytes=1, tx_bytes=1, channel_util=0.1, up=True)
        return [ApReading(ap, sample) for ap in self._aps]

    async def aclose(self) -> None:
        return None


class BenchEdge:
    """An edge's telemetry path (spool on disk, pipeline, forwarder, receipts) over a
    failover endpoint; ``connects`` counts broker connections."""

    def __init__(
        self,
        agent_id: str,
        endpoint: MqttEndpoint,
        topics: Topics,
        folder: Path,
        load: BrokerLoad,
        *,
        receipts: bool,
    ) -> None:
        self.agent_id = agent_id
        self.endpoint = endpoint
        self.topics = topics
        self.spool = Spool(folder / f"{agent_id}.sqlite")
        self.forwarder = SpoolForwarder(
            self.spool, resend_after=load.resend_after, receipts=receipts
        )
        aps = [f"{agent_id}-ap-{i}" for i in range(load.aps_per_edge)]
        self.pipeline = WifiPipeline(
            [SteadyCollector(agent_id, aps)],
            self.spool,
            topics,
            agent_id,
            poll_period=load.poll_period,
            batch_period=load.batch_period,
            on_spooled=self.forwarder.wake,
        )
        self.connects = 0
        self.changed = asyncio.Condition()

    async def session(self) -> None:
        attempt = 0
        while True:
            try:
                async with self.endpoint.client(
                    f"edge-{self.agent_id}", max_inflight=200
                ) as client:
                    attempt = 0
                    await client.subscribe(self.topics.edge_stored(self.agent_id), qos=1)
                    async with self.changed:
                        self.connects += 1
                        self.changed.notify_all()
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self.forwarder.run(client))
                        group.create_task(self._receipts(client))
            except* aiomqtt.MqttError:
                attempt += 1
                await asyncio.sleep(min(backoff_delay(attempt), 2.0))

    async def _receipts(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            if isinstance(message.payload, bytes):
                await self.forwarder.receive(message.payload)

    async def wait_connected(self, times: int) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: self.connects >= times)


async def _settled(ingest: IngestService) -> None:
    """Until ingest has written nothing for ``SETTLE_S``."""
    while await _wrote_more(ingest, ingest.stats.samples_written):
        pass


async def _wrote_more(ingest: IngestService, written: int) -> bool:
    try:
        async with asyncio.timeout(SETTLE_S):
            await ingest.wait_until(lambda s: s.samples_written > written)
    except TimeoutError:
        return False
    return True


async def one_run(
    root: Path, cluster: PostgresCluster, load: BrokerLoad, *, receipts: bool
) -> dict[str, Any]:
    name = "with_receipts" if receipts else "without_receipts"
    first, second = MosquittoBroker(root / f"{name}-a"), MosquittoBroker(root / f"{name}-b")
    first.start()
    second.start()
    try:
        store: StoreConfig = await _database(cluster, f"bench_{name}")
        endpoint = MqttEndpoint.from_url(f"{first.url},{second.url}")
        topics = Topics("bench-broker/v1")
        edges = [
            BenchEdge(f"edge-{i}", endpoint, topics, root / name, load, receipts=receipts)
            for i in range(load.edges)
        ]
        async with IngestService(
            endpoint, store, topics=topics, identifier="bench-ingest", maintenance_interval=None
        ) as ingest:
            await ingest.wait_until_subscribed()
            result = await _drive(first, ingest, edges, load)
            say(f"{name}: waiting for the store to settle")
            await _settled(ingest)
            result["receipts_sent"] = ingest.stats.receipts_sent
        rows, distinct = await _stored_samples(store.url)
    finally:
        first.stop()
        second.stop()
    collected = sum(e.pipeline.stats.samples for e in edges)
    return {
        **result,
        "samples": collected,
        "stored": distinct,
        "lost_samples": collected - distinct,
        "duplicates": rows - distinct,
        "resent_batches": sum(e.forwarder.stats.resent for e in edges),
    }


async def _drive(
    first: MosquittoBroker, ingest: IngestService, edges: list[BenchEdge], load: BrokerLoad
) -> dict[str, Any]:
    """Run the edges for ``load.seconds``, killing the first broker at ``kill_at``; return
    once every edge has handed over everything it collected."""
    for edge in edges:
        edge.spool.open()
    pipelines = [asyncio.create_task(e.pipeline.run(), name="pipeline") for e in edges]
    sessions = [asyncio.create_task(e.session(), name="session") for e in edges]
    try:
        started = time.monotonic()
        await asyncio.gather(*(e.wait_connected(1) for e in edges))
        await asyncio.sleep(max(0.0, started + load.kill_at - time.monotonic()))  # schedule
        # Mid-burst: right after the edges spooled their next batches, while they are on
        # their way through the first broker (between bursts it holds nothing).
        burst = edges[0].pipeline
        batches = burst.stats.batches
        await burst.wait_for(lambda: burst.stats.batches > batches)
        backlog = sum(len(e.spool) for e in edges)
        say(f"killing the first broker (SIGKILL) at {time.monotonic() - started:.1f} s")
        killed = time.monotonic()
        await asyncio.to_thread(first.kill)
        try:
            async with asyncio.timeout(FAILOVER_DEADLINE_S):
                await asyncio.gather(
                    ingest.wait_until(lambda s: s.connects >= 2),
                    *(e.wait_connected(2) for e in edges),
                )
        except TimeoutError:
            behind = [e.agent_id for e in edges if e.connects < 2]
            if ingest.stats.connects < 2:
                behind.append("ingest")
            raise RuntimeError(
                f"not on the second broker {FAILOVER_DEADLINE_S:.0f} s after the kill: "
                + ", ".join(behind)
            ) from None
        failover = time.monotonic() - killed
        say(f"every client is on the second broker after {failover:.2f} s")
        await asyncio.sleep(max(0.0, started + load.seconds - time.monotonic()))  # schedule
        await stop_tasks(pipelines)
        for edge in edges:
            await edge.pipeline.flush()
        async with asyncio.timeout(60 + 2 * load.resend_after):
            for edge in edges:
                await _emptied(edge)
        return {
            "broker_failover_s": round(failover, 2),
            "spooled_at_kill": backlog,
            "ingest_connects": ingest.stats.connects,
        }
    finally:
        await stop_tasks(sessions + pipelines)
        for edge in edges:
            edge.spool.close()


async def _emptied(edge: BenchEdge) -> None:
    await edge.forwarder.wait_for(lambda: len(edge.spool) == 0)


async def run(load: BrokerLoad) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ioc-bench-broker-") as tmp:
        root = Path(tmp)
        cluster = PostgresCluster(root / "postgres")
        say("starting PostgreSQL")
        await asyncio.to_thread(cluster.start)
        try:
            results = {}
            for receipts in (False, True):
                name = "with_receipts" if receipts else "without_receipts"
                say(f"{name}: {load.rate:,.0f} samples/s from {load.edges} edges")
                results[name] = await one_run(root, cluster, load, receipts=receipts)
                say(f"{name}: {results[name]}")
        finally:
            await asyncio.to_thread(cluster.stop)
    return {
        **results,
        "edges": load.edges,
        "access_points": load.edges * load.aps_per_edge,
        "samples_per_s": load.rate,
        "seconds": load.seconds,
        "kill_at_s": load.kill_at,
    }


def main(load: BrokerLoad) -> None:
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        result = asyncio.run(run(load))
        sys.stdout.write(json.dumps(result) + "\n")

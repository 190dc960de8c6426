"""``ioc bench alerts``: vision events through the alerts service to the console and police.

Both runs publish the same paced stream of events (200 cameras, episodes of five kinds)
through Mosquitto into a fresh durable PostgreSQL database, with a local police receiver
that takes ``police_latency`` seconds per request. Measured: from an event's publication to
its new alert on the console feed (the websocket's source), and to the police receiver.

Ours: one transaction per event stages the police message in the outbox; the delivery
worker sends it apart from the event path. Baseline: the same engine, but each event's
police messages are POSTed from the event handler before it takes the next event (what one
writes without an outbox).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import aiomqtt
import asyncpg
import httpx
import msgspec
import yaml
from standardwebhooks import Webhook

from alerts import AlertFeed, AlertsEngine, DeliveryWorker, RuleBook, parse_rules
from protocol import EVENT, EventKind, MqttEndpoint, Province, Topics, VisionEvent, load_province
from store import StoreConfig

from ..runtime import prepare_store
from ..servers import MosquittoBroker, PostgresCluster
from ..settings import DEFAULT_PROVINCE, PROJECT_ROOT

logger = logging.getLogger(__name__)
SECRET = "whsec_" + base64.b64encode(b"bench-only-secret-0123456789abcd").decode()
KINDS = [
    EventKind.INTRUSION,
    EventKind.CROWD,
    EventKind.CONGESTION,
    EventKind.WRONG_WAY,
    EventKind.STOPPED_VEHICLE,
]
_INCIDENT = re.compile(rb"<incidents>([^<]+)</incidents>")


def _progress(message: str) -> None:
    sys.stderr.write(f"[bench alerts] {message}\n")
    sys.stderr.flush()


class SlowPolice:
    """A police receiver taking ``latency`` seconds per request; notes when each incident's
    first message arrived."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.first_seen: dict[str, float] = {}
        self._changed = asyncio.Event()

    async def wait_for_incidents(self, count: int) -> None:
        while len(self.first_seen) < count:
            await self._changed.wait()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            body = await reader.readexactly(length)
            await asyncio.sleep(self.latency)  # the dispatch system at work
            match = _INCIDENT.search(body)
            if match:
                self.first_seen.setdefault(match.group(1).decode(), time.time())
                changed, self._changed = self._changed, asyncio.Event()
                changed.set()
            writer.write(
                b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            await writer.drain()
        writer.close()


class InlinePoliceEngine(AlertsEngine):
    """The baseline: police messages POSTed from the event handler, before it takes more."""

    http: httpx.AsyncClient
    url: str

    async def _handle_events(self, batch: list[tuple[aiomqtt.Client, aiomqtt.Message]]) -> None:
        await super()._handle_events(batch)
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT d.seq, d.webhook_id, m.body FROM police_deliveries d
                   JOIN cap_messages m USING (identifier) WHERE d.status = 'pending'
                   ORDER BY d.seq"""
            )
            signer = Webhook(SECRET)
            for row in rows:
                now = int(time.time())
                headers = {
                    "webhook-id": row["webhook_id"],
                    "webhook-timestamp": str(now),
                    "webhook-signature": signer.sign(
                        row["webhook_id"], datetime.fromtimestamp(now, UTC), row["body"]
                    ),
                }
                await self.http.post(self.url, content=row["body"].encode(), headers=headers)
                await conn.execute(
                    "UPDATE police_deliveries SET status = 'delivered' WHERE seq = $1", row["seq"]
                )


def make_events(province: Province, count: int) -> list[VisionEvent]:
    cameras = [c.id for c in province.cameras[:200]]
    events = []
    for i in range(count):
        j = i % len(cameras)
        episode = i // len(cameras)
        events.append(
            VisionEvent(
                event_id=f"{cameras[j]}:{episode // 2}",
                kind=KINDS[j % len(KINDS)],
                camera_id=cameras[j],
                phase="start" if episode % 2 == 0 else "end",
                started_at=time.time(),
                ended_at=time.time() if episode % 2 else None,
            )
        )
    return events


def _ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered) * 1000, 1),
        "p99": round(p99 * 1000, 1),
        "max": round(ordered[-1] * 1000, 1),
    }


async def _database(cluster: PostgresCluster, name: str, province: Province) -> StoreConfig:
    admin = await asyncpg.connect(cluster.url_for("postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    store = StoreConfig(url=cluster.url_for(name))
    await prepare_store(store, province)
    return store


class Load(NamedTuple):
    events: int
    rate: float
    police_latency: float
    drain: float


def _shipped_rules_to(url: str, province: Province) -> RuleBook:
    """The shipped rules file, with one police endpoint: the bench's receiver."""
    raw = yaml.safe_load((PROJECT_ROOT / "config" / "alert-rules.yaml").read_text())
    raw["police"]["endpoints"] = [
        {"id": "bench", "url": url, "allow_plain_http": True, "secret_env": "BENCH_SECRET"}
    ]
    return RuleBook.fixed(parse_rules(raw, province, "bench", environ={"BENCH_SECRET": SECRET}))


async def run_variant(
    variant: str,
    mqtt: MqttEndpoint,
    cluster: PostgresCluster,
    province: Province,
    load: Load,
) -> dict[str, Any]:
    events, rate, police_latency, drain = load
    store = await _database(cluster, f"bench_{variant}", province)
    topics = Topics(f"bench-{variant}/v1")
    police = SlowPolice(police_latency)
    server = await asyncio.start_server(police.handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/cap"
    rules = _shipped_rules_to(url, province)
    opened: dict[str, float] = {}
    console: list[float] = []
    stream = make_events(province, events)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(server.wait_closed)
        stack.callback(server.close)
        feed = await stack.enter_async_context(AlertFeed(store, subscriber_capacity=100_000))
        sub = feed.subscribe()
        engine_type = AlertsEngine if variant == "ours" else InlinePoliceEngine
        engine = engine_type(
            mqtt,
            store,
            province,
            topics=topics,
            identifier=f"bench-{variant}",
            rules=rules,
            watch_wifi=False,
        )
        if isinstance(engine, InlinePoliceEngine):
            engine.http = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
            engine.url = url
        await stack.enter_async_context(engine)
        if variant == "ours":
            await stack.enter_async_context(DeliveryWorker(store, rules))

        async def watch() -> None:
            while True:
                change = await sub.queue.get()
                alert = change.alert
                if alert.id not in opened and alert.first_frame_captured_at is not None:
                    captured = alert.first_frame_captured_at.timestamp()
                    opened[alert.id] = captured
                    console.append(time.time() - captured)

        watcher = asyncio.create_task(watch())
        stack.push_async_callback(_cancel, watcher)
        client = await stack.enter_async_context(mqtt.client(f"bench-edge-{variant}"))
        await engine.wait_until_subscribed()
        _progress(f"{variant}: {events} events at {rate:g}/s, police takes {police_latency:g} s")
        started = time.time()
        await _offer(client, topics, stream, rate)
        try:
            await asyncio.wait_for(engine.wait_for_events(events), drain)
        except TimeoutError:
            _progress(f"{variant}: {engine.stats.events} of {events} events handled in time")
        handled_in = time.time() - started
        expected = await _police_expected(store)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(police.wait_for_incidents(expected), drain)
        police_ms = [police.first_seen[a] - opened[a] for a in police.first_seen if a in opened]
    result = {
        "events_handled": engine.stats.events,
        "handled_per_s": round(engine.stats.events / handled_in, 1),
        "console_open_ms": _ms(console),
        "police_first_message_ms": _ms(police_ms),
        "police_incidents": expected,
    }
    _progress(f"{variant}: {json.dumps(result)}")
    return result


async def _offer(
    client: aiomqtt.Client, topics: Topics, stream: list[VisionEvent], rate: float
) -> None:
    started = time.time()
    for i, event in enumerate(stream):
        delay = started + i / rate - time.time()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the offered load, not synchronisation
        stamped = msgspec.structs.replace(event, frame_captured_at=time.time())
        await client.publish(topics.events(event.camera_id), EVENT.encode(stamped), qos=1)


async def _police_expected(store: StoreConfig) -> int:
    conn = await asyncpg.connect(store.url)
    try:
        value: int = await conn.fetchval(
            "SELECT count(*) FROM cap_messages WHERE msg_type = 'Alert'"
        )
        return value
    finally:
        await conn.close()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def bench(events: int, rate: float, police_latency: float, drain: float) -> dict[str, Any]:
    province = load_province(DEFAULT_PROVINCE)
    with tempfile.TemporaryDirectory(prefix="ioc-bench-alerts-") as root:
        cluster = PostgresCluster(Path(root) / "postgres", durable=True)
        broker = MosquittoBroker(Path(root) / "mosquitto")
        _progress("starting PostgreSQL (durable) and Mosquitto")
        await asyncio.to_thread(cluster.start)
        try:
            await asyncio.to_thread(broker.start)
            try:
                mqtt = MqttEndpoint.from_url(broker.url)
                load = Load(events, rate, police_latency, drain)
                ours = await run_variant("ours", mqtt, cluster, province, load)
                baseline = await run_variant("inline", mqtt, cluster, province, load)
            finally:
                await asyncio.to_thread(broker.stop)
        finally:
            await asyncio.to_thread(cluster.stop)
    ratio = None
    if ours["console_open_ms"].get("p99") and baseline["console_open_ms"].get("p99"):
        ratio = round(baseline["console_open_ms"]["p99"] / ours["console_open_ms"]["p99"], 1)
    return {
        "bench": "alerts",
        "events": events,
        "offered_per_s": rate,
        "police_latency_ms": police_latency * 1000,
        "ours_outbox": ours,
        "baseline_inline_police": baseline,
        "console_p99_baseline_over_ours": ratio,
    }


def main(events: int, rate: float, police_latency: float, drain: float) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    result = asyncio.run(bench(events, rate, police_latency, drain))
    sys.stdout.write(json.dumps(result) + "\n")

"""Factories for the console tests: a real uvicorn server on a free port, users with tokens,
alerts made through the alerts package's own repository and channels (police routing
included), the latest-state tables, traffic and Wi-Fi written through the store's writers,
and an edge that answers snapshot requests over MQTT."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import aiomqtt
import asyncpg
import cv2
import httpx
import numpy as np
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from alerts import Observation, Routing, notify, publish_routing
from alerts._repository import observe, record_change
from alerts._routing import PoliceTarget, RouteSpec
from console_api import ConsoleConfig, Role, add_user, create_app
from protocol import (
    SNAPSHOT_REQUEST,
    EventKind,
    FrameHeader,
    MqttEndpoint,
    Severity,
    Topics,
    encode_frame,
    stop_tasks,
)
from store import StoreConfig

PASSWORD = "correct horse battery"


@dataclass
class Console:
    """A console API served by uvicorn on 127.0.0.1, with helpers to call it as someone."""

    app: FastAPI
    host: str
    db: asyncpg.Connection
    tokens: dict[Role, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}/ws"

    def http(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)

    async def user(self, role: Role, username: str | None = None) -> str:
        """Create a user of ``role`` and log it in over HTTP; returns its token."""
        name = username or f"{role.value}-1"
        await add_user(self.db, name, role, PASSWORD)
        token = await self.login(name)
        if username is None:
            self.tokens[role] = token
        return token

    async def login(self, username: str) -> str:
        """A new token for an existing user (another session)."""
        async with self.http() as http:
            response = await http.post(
                "/api/v1/auth/token", data={"username": username, "password": PASSWORD}
            )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    async def as_role(self, role: Role) -> httpx.AsyncClient:
        token = self.tokens.get(role) or await self.user(role)
        return self.http(token)

    @contextlib.asynccontextmanager
    async def live(
        self, token: str, **subscribe: Any
    ) -> AsyncIterator[tuple[ClientConnection, dict[str, Any]]]:
        """An authenticated, subscribed websocket and its first message after subscribing."""
        async with ws_connect(self.ws_url, max_queue=None) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert welcome["type"] == "authenticated", welcome
            await ws.send(json.dumps({"type": "subscribe", **subscribe}))
            first = json.loads(await asyncio.wait_for(ws.recv(), 10))
            yield ws, first


@contextlib.asynccontextmanager
async def serve(app: FastAPI, send_buffer: int | None = None) -> AsyncIterator[str]:
    """Serve ``app`` (lifespan included) on a free port; yields host:port. ``send_buffer``
    fixes the kernel's send buffer of every connection (accepted sockets inherit it), so a
    client that stops reading pushes back after kilobytes rather than megabytes."""
    # The socket listens before uvicorn starts: clients wait in its backlog, no polling.
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say they are
    # TCP, and without it every keep-alive response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    if send_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def console(
    database: StoreConfig,
    db: asyncpg.Connection,
    config: ConsoleConfig | None = None,
    send_buffer: int | None = None,
    *,
    mqtt: MqttEndpoint | None = None,
    topics: Topics | None = None,
) -> AsyncIterator[Console]:
    app = create_app(database, config=config, mqtt=mqtt, topics=topics)
    async with serve(app, send_buffer) as host:
        # The lifespan has run once the first request is answered.
        async with httpx.AsyncClient(base_url=f"http://{host}") as http:
            (await http.get("/healthz")).raise_for_status()
        yield Console(app, host, db)


async def seed_registry(db: asyncpg.Connection) -> None:
    """Two districts, two cameras (one with a counting line), one site with two APs."""
    await db.execute(
        """INSERT INTO districts (id, name, kind, lat, lon) VALUES
               ('my-tho', 'TP. Mỹ Tho', 'city', 10.36, 106.36),
               ('go-cong', 'TX. Gò Công', 'town', 10.36, 106.67);
           INSERT INTO sites (id, name, district_id, lat, lon) VALUES
               ('vinh-trang', 'Chùa Vĩnh Tràng', 'my-tho', 10.3640, 106.3780);
           INSERT INTO cameras (id, name, kind, district_id, road, lat, lon, fps, zones, lines)
           VALUES ('cam-a', 'QL1A bridge', 'traffic', 'my-tho', 'QL1A', 10.3571, 106.3712, 5,
                   '[{"id": "shoulder", "kind": "restricted"}]',
                   '[{"id": "count-nb", "points": [[0.1, 0.7], [0.9, 0.7]]}]'),
                  ('cam-b', 'Market square', 'security', 'go-cong', NULL, 10.3601, 106.6712, 5,
                   '[]', '[]');
           INSERT INTO access_points (id, name, site_id, district_id, lat, lon, capacity)
           VALUES ('ap-1', 'Gate', 'vinh-trang', 'my-tho', 10.3641, 106.3781, 100),
                  ('ap-2', 'Hall', 'vinh-trang', 'my-tho', 10.3642, 106.3782, 50);"""
    )


async def create_latest_state_tables(db: asyncpg.Connection) -> None:
    """The store area's latest-state tables, by the names and columns the console reads.
    IF NOT EXISTS: once the store's migrations create them, this is a no-op."""
    await db.execute(
        """CREATE TABLE IF NOT EXISTS camera_status (
               camera_id text PRIMARY KEY, status text NOT NULL, fps real NOT NULL,
               last_frame_at timestamptz, reported_at timestamptz NOT NULL,
               dropped_frames bigint NOT NULL DEFAULT 0, detail text);
           CREATE TABLE IF NOT EXISTS ap_status (
               ap_id text PRIMARY KEY, up boolean NOT NULL, clients integer NOT NULL,
               channel_util real NOT NULL, reported_at timestamptz NOT NULL);"""
    )


_event_counter = iter(range(1, 1_000_000))


async def raise_alert(
    db: asyncpg.Connection,
    *,
    camera: str = "cam-a",
    kind: EventKind = EventKind.INTRUSION,
    district: str = "my-tho",
    zone: str | None = "shoulder",
    phase: Literal["start", "end"] = "start",
    routing: Routing | None = None,
) -> tuple[str, int]:
    """An alert opened (or updated) the way the engine does it; returns (alert id, seq).
    With ``routing`` every channel stages it as the engine would (CAP for the police
    included); without, only the console's change log has it."""
    n = next(_event_counter)
    observation = Observation(
        event_id=f"{camera}:{kind}:{n}",
        kind=kind,
        source_id=camera,
        zone_id=zone,
        phase=phase,
        at=time.time(),
    )
    async with db.transaction():
        changed = await observe(db, observation, district, Severity.MAJOR)
        assert changed is not None
        alert, reason = changed
        if routing is None:
            seq = await record_change(db, alert)
        else:
            seq = (await notify(db, alert, reason, routing)).seq
    return alert.id, seq


POLICE_ROUTING = Routing(
    police=RouteSpec(kinds=["intrusion", "wrong_way", "crowd"], min_severity="major"),
    endpoints=[PoliceTarget(id="dispatch")],
    sender="ioc.test.invalid",
)
"""Intrusion, wrong way and crowd go to the police's one endpoint; nothing else does."""


async def route_to_police(db: asyncpg.Connection) -> Routing:
    """Publish :data:`POLICE_ROUTING` as the alerts service would, so the console's own
    transitions stage CAP updates too; returns it for :func:`raise_alert`."""
    await publish_routing(db, POLICE_ROUTING)
    return POLICE_ROUTING


async def store_evidence(db: asyncpg.Connection, alert_id: str, jpeg: bytes) -> None:
    """An evidence snapshot stored the way ``alerts.EvidenceCollector`` stores one."""
    await db.execute(
        """INSERT INTO alert_evidence (alert_id, request_id, jpeg, width, height, taken_at)
           VALUES ($1, 'ev-test', $2, 64, 48, now()) ON CONFLICT (alert_id) DO NOTHING""",
        alert_id,
        jpeg,
    )


def tiny_jpeg(width: int = 64, height: int = 48, shade: int = 200) -> bytes:
    image = np.zeros((height, width, 3), np.uint8)
    cv2.rectangle(image, (width // 8, height // 6), (width // 2, height // 2), (0, shade, 255), -1)
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return encoded.tobytes()


class SnapshotEdge:
    """An edge on a real broker that answers every camera's snapshot requests under a topic
    prefix (with a small JPEG of the requested width), or stays silent for the cameras in
    ``silent``; it counts the requests it saw per camera."""

    def __init__(self, mqtt: MqttEndpoint, topics: Topics, silent: set[str] | None = None):
        self.mqtt = mqtt
        self.topics = topics
        self.silent = silent or set()
        self.requests: dict[str, int] = {}
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> SnapshotEdge:
        client = await self._stack.enter_async_context(
            self.mqtt.client(f"edge-{self.topics.prefix.replace('/', '-')}")
        )
        await client.subscribe(f"{self.topics.prefix}/cameras/+/snapshot/request", qos=1)
        task = asyncio.create_task(self._answer(client))
        self._stack.push_async_callback(stop_tasks, [task])
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(aiomqtt.MqttError):  # its broker may be gone by now
            await self._stack.aclose()

    async def _answer(self, client: Any) -> None:
        async for message in client.messages:
            request = SNAPSHOT_REQUEST.decode(message.payload)
            camera = request.camera_id
            self.requests[camera] = self.requests.get(camera, 0) + 1
            if camera in self.silent:
                continue
            width = min(request.max_width, 64)
            header = FrameHeader(camera, self.requests[camera], time.time(), width, width * 3 // 4)
            await client.publish(
                self.topics.snapshot(camera, request.request_id),
                encode_frame(header, tiny_jpeg(width, width * 3 // 4)),
                qos=1,
            )

"""Camera snapshots for the operators' grid, asked of an edge over a real Mosquitto: shared
and cached per camera, 504 for a silent edge, 503 without a broker while everything else
keeps working, and back by themselves after the broker restarts."""

from __future__ import annotations

import asyncio
import socket
import tempfile
from pathlib import Path

import asyncpg
import cv2
import numpy as np
import pytest
from console_support import SnapshotEdge, console, seed_registry

from console_api import CameraSnapshots, ConsoleConfig, Role
from ioc.servers import MosquittoBroker
from protocol import MqttEndpoint, Topics
from store import StoreConfig

pytestmark = [pytest.mark.postgres, pytest.mark.mosquitto]


async def test_many_asks_for_a_camera_reach_its_edge_once_per_period(
    database: StoreConfig, db: asyncpg.Connection, mqtt: MqttEndpoint, topics: Topics
) -> None:
    await seed_registry(db)
    config = ConsoleConfig(snapshot_ttl=60, snapshot_timeout=1.0, snapshot_width=320)
    async with (
        SnapshotEdge(mqtt, topics, silent={"cam-b"}) as edge,
        console(database, db, config, mqtt=mqtt, topics=topics) as c,
    ):
        snapshots: CameraSnapshots = c.app.state.snapshots
        await asyncio.wait_for(snapshots.wait_connected(), 10)
        http = await c.as_role(Role.OPERATOR)
        async with http:
            # A grid of operators asking at once: one request reaches the edge.
            path = "/api/v1/cameras/cam-a/snapshot.jpg"
            answers = await asyncio.gather(*(http.get(path) for _ in range(20)))
            assert {a.status_code for a in answers} == {200}
            assert {a.headers["content-type"] for a in answers} == {"image/jpeg"}
            assert len({a.content for a in answers}) == 1
            image = cv2.imdecode(np.frombuffer(answers[0].content, np.uint8), cv2.IMREAD_COLOR)
            assert image is not None
            assert image.shape[:2] == (48, 64)  # what the edge sent
            assert answers[0].headers["cache-control"] == "private, max-age=60"
            assert answers[0].headers["x-captured-at"].endswith("Z")
            assert edge.requests == {"cam-a": 1}
            assert (await http.get(path)).content == answers[0].content
            assert edge.requests == {"cam-a": 1}

            # A silent edge: 504 naming the camera, and remembered for the period too.
            silent = await http.get("/api/v1/cameras/cam-b/snapshot.jpg")
            assert silent.status_code == 504
            assert "cam-b" in silent.json()["detail"]
            assert "no answer" in silent.json()["detail"]
            assert (await http.get("/api/v1/cameras/cam-b/snapshot.jpg")).status_code == 504
            assert edge.requests == {"cam-a": 1, "cam-b": 1}

            # A camera the registry does not know is never asked for.
            assert (await http.get("/api/v1/cameras/cam-x/snapshot.jpg")).status_code == 404
            assert (await http.get("/api/v1/cameras/BAD/snapshot.jpg")).status_code == 422
            assert "cam-x" not in edge.requests
            assert snapshots.requests_sent == 2


async def test_after_the_period_the_edge_is_asked_again(
    database: StoreConfig, db: asyncpg.Connection, mqtt: MqttEndpoint, topics: Topics
) -> None:
    await seed_registry(db)
    config = ConsoleConfig(snapshot_ttl=0, snapshot_timeout=5.0)
    async with (
        SnapshotEdge(mqtt, topics) as edge,
        console(database, db, config, mqtt=mqtt, topics=topics) as c,
    ):
        await asyncio.wait_for(c.app.state.snapshots.wait_connected(), 10)
        http = await c.as_role(Role.ADMIN)
        async with http:
            first = await http.get("/api/v1/cameras/cam-a/snapshot.jpg")
            second = await http.get("/api/v1/cameras/cam-a/snapshot.jpg")
            assert (first.status_code, second.status_code) == (200, 200)
            assert edge.requests == {"cam-a": 2}


def _closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("broker", ["none", "unreachable"])
async def test_without_a_broker_only_snapshots_are_unavailable(
    database: StoreConfig, db: asyncpg.Connection, broker: str
) -> None:
    await seed_registry(db)
    mqtt = None if broker == "none" else MqttEndpoint(port=_closed_port())
    config = ConsoleConfig(snapshot_timeout=0.2)
    async with console(database, db, config, mqtt=mqtt) as c:
        http = await c.as_role(Role.OPERATOR)
        async with http:
            response = await http.get("/api/v1/cameras/cam-a/snapshot.jpg")
            assert response.status_code == 503
            expected = "IOC_MQTT_URL" if broker == "none" else "not reachable"
            assert expected in response.json()["detail"]
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/api/v1/cameras/cam-a")).status_code == 200


async def test_snapshots_come_back_after_the_broker_restarts(
    server_root: Path, database: StoreConfig, db: asyncpg.Connection, topics: Topics
) -> None:
    await seed_registry(db)
    # A broker of this test's own, which it may stop (same port on restart).
    broker = MosquittoBroker(Path(tempfile.mkdtemp(dir=server_root)) / "mosquitto")
    broker.start()
    try:
        mqtt = MqttEndpoint.from_url(broker.url)
        config = ConsoleConfig(snapshot_ttl=0, snapshot_timeout=2.0)
        async with console(database, db, config, mqtt=mqtt, topics=topics) as c:
            snapshots: CameraSnapshots = c.app.state.snapshots
            await asyncio.wait_for(snapshots.wait_connected(), 10)
            http = await c.as_role(Role.OPERATOR)
            async with http:
                path = "/api/v1/cameras/cam-a/snapshot.jpg"
                async with SnapshotEdge(mqtt, topics):
                    assert (await http.get(path)).status_code == 200
                broker.stop()
                # While it is down: unavailable, not an error of ours.
                assert (await http.get(path)).status_code == 503
                broker.start()
                async with SnapshotEdge(mqtt, topics) as edge:
                    # The API reconnects by itself (the 503 above noticed the loss).
                    await asyncio.wait_for(snapshots.wait_connected(2), 30)
                    assert (await http.get(path)).status_code == 200
                    assert edge.requests == {"cam-a": 1}
    finally:
        broker.stop()

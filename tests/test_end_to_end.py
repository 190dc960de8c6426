"""The spine, every hop real: clip frames on Mosquitto -> vision worker -> events -> alerts
engine -> PostgreSQL -> console websocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import uvicorn
from conftest import VIDEO
from websockets.asyncio.client import connect as ws_connect

from alerts import AlertsEngine
from console_api import Role, add_user, create_app
from edge import encode_clip
from ingest import IngestService
from protocol import UNBOUNDED, FrameHeader, MqttEndpoint, Province, Topics, encode_frame
from store import StoreConfig, sync_registry
from vision import VisionWorker

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]
T0 = 1_764_000_000.0


@contextlib.asynccontextmanager
async def console_server(store: StoreConfig) -> AsyncIterator[str]:
    # The socket listens before uvicorn starts: clients wait in its backlog, no polling.
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(store), log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _token(base: str, db: asyncpg.Connection) -> str:
    await add_user(db, "op", Role.OPERATOR, "correct horse battery")
    async with httpx.AsyncClient(base_url=f"http://{base}") as http:
        response = await http.post(
            "/api/v1/auth/token", data={"username": "op", "password": "correct horse battery"}
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token


async def test_person_walking_in_raises_one_alert_on_the_websocket(
    mqtt: MqttEndpoint,
    topics: Topics,
    database: StoreConfig,
    db: asyncpg.Connection,
    clips_province: Province,
) -> None:
    await sync_registry(db, clips_province)
    camera = clips_province.camera("indoor-room")
    clip = encode_clip(VIDEO / "indoor_people_walkby_768x432.mp4", (320, 180))
    async with contextlib.AsyncExitStack() as stack:
        engine = await stack.enter_async_context(
            AlertsEngine(
                mqtt,
                database,
                clips_province,
                topics=topics,
                identifier="alerts-e2e",
                time_window=UNBOUNDED,
            )
        )
        worker = await stack.enter_async_context(
            VisionWorker(
                [camera], mqtt, topics=topics, identifier="vision-e2e", time_window=UNBOUNDED
            )
        )
        base = await stack.enter_async_context(console_server(database))
        publisher = await stack.enter_async_context(mqtt.client("edge-e2e"))
        token = await _token(base, db)
        websocket = await stack.enter_async_context(ws_connect(f"ws://{base}/ws"))
        await websocket.send(json.dumps({"type": "auth", "token": token}))
        assert json.loads(await websocket.recv())["type"] == "authenticated"
        await websocket.send(json.dumps({"type": "subscribe"}))
        snapshot = json.loads(await websocket.recv())
        assert snapshot["type"] == "snapshot"
        assert snapshot["alerts"] == []
        await engine.wait_until_subscribed()
        await worker.wait_until_subscribed()

        async def play(first: int, last: int) -> None:
            for i in range(first, last):
                header = FrameHeader(camera.id, i + 1, T0 + i / clip.fps, clip.width, clip.height)
                await publisher.publish(
                    topics.frames(camera.id), encode_frame(header, clip.frames[i])
                )
                await asyncio.wait_for(worker.wait_for_frames(i + 1), 10)

        # The empty room (the first person steps in after about six seconds): no alert.
        await play(0, 55)
        assert worker.stats.frames_processed == 55
        assert worker.stats.events_published == 0
        # The first person walks in and stands at the table.
        await play(55, 120)
        message = json.loads(await asyncio.wait_for(websocket.recv(), 15))
        assert message["type"] == "change"
        alert = message["alert"]
        assert (alert["kind"], alert["source_id"], alert["zone_id"], alert["state"]) == (
            "intrusion",
            "indoor-room",
            "floor",
            "open",
        )
        assert alert["district_id"] == "my-tho"
        assert message["seq"] > snapshot["seq"]
        await asyncio.wait_for(engine.wait_for_events(worker.stats.events_published), 10)
        stored = await db.fetch("SELECT kind, source_id, zone_id, state FROM alerts")
        assert [tuple(r) for r in stored] == [("intrusion", "indoor-room", "floor", "open")]
        audit = await db.fetch("SELECT action, to_state FROM alert_audit")
        assert [tuple(r) for r in audit] == [("open", "open")]


async def test_malformed_frame_becomes_a_dead_letter_and_the_camera_goes_on(
    mqtt: MqttEndpoint,
    topics: Topics,
    database: StoreConfig,
    db: asyncpg.Connection,
    clips_province: Province,
) -> None:
    camera = clips_province.camera("indoor-room")
    clip = encode_clip(VIDEO / "indoor_people_walkby_768x432.mp4", (320, 180))
    async with contextlib.AsyncExitStack() as stack:
        ingest = await stack.enter_async_context(
            IngestService(
                mqtt, database, topics=topics, identifier="ingest-dl", time_window=UNBOUNDED
            )
        )
        worker = await stack.enter_async_context(
            VisionWorker(
                [camera], mqtt, topics=topics, identifier="vision-dl", time_window=UNBOUNDED
            )
        )
        publisher = await stack.enter_async_context(mqtt.client("edge-dl"))
        await ingest.wait_until_subscribed()
        await worker.wait_until_subscribed()
        bad_header = b"garbage that is not a frame"
        corrupt_jpeg = encode_frame(
            FrameHeader(camera.id, 2, T0, 320, 180), b"\xff\xd8" + b"\x13" * 500
        )
        good = encode_frame(FrameHeader(camera.id, 3, T0, 320, 180), clip.frames[0])
        await publisher.publish(topics.frames(camera.id), bad_header)
        await asyncio.wait_for(worker.wait_for_frames(1), 10)
        await publisher.publish(topics.frames(camera.id), corrupt_jpeg)
        await asyncio.wait_for(worker.wait_for_frames(2), 10)
        await publisher.publish(topics.frames(camera.id), good)
        await asyncio.wait_for(worker.wait_for_frames(3), 10)
        assert worker.stats.frames_rejected == 2
        assert worker.stats.frames_processed == 1
        await asyncio.wait_for(ingest.wait_for_messages(2), 10)
    letters = await db.fetch(
        "SELECT consumer, topic, reason, payload FROM dead_letters ORDER BY id"
    )
    assert [r["consumer"] for r in letters] == ["vision", "vision"]
    assert "shorter than the header" in letters[0]["reason"] or "magic" in letters[0]["reason"]
    assert letters[0]["payload"] == bad_header
    assert "corrupt JPEG" in letters[1]["reason"]
    assert letters[1]["topic"] == topics.frames(camera.id)

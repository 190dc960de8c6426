"""``ioc users add`` and ``ioc api`` as production runs them: separate processes, configured
by the environment, needing only the database (and the broker for camera snapshots). The
websocket token never reaches the log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from conftest import DATA
from console_support import SnapshotEdge
from websockets.asyncio.client import connect as ws_connect

from console_api import Role, add_user
from ioc.servers import MosquittoBroker, free_port, wait_for_port
from protocol import MqttEndpoint, Topics
from store import StoreConfig

pytestmark = pytest.mark.postgres


def _env(database: StoreConfig, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    env.update(
        IOC_DATABASE_URL=database.url,
        IOC_API_PORT=str(port),
        IOC_PROVINCE=str(DATA / "clips.yaml"),
        IOC_LOG_LEVEL="INFO",
    )
    return env


@contextlib.asynccontextmanager
async def _api(env: dict[str, str], log: Path) -> AsyncIterator[str]:
    """``ioc api`` as its own process, its output in ``log``; yields its base URL and stops
    it with SIGINT as an operator's Ctrl-C (or systemd) would."""
    with log.open("wb") as sink:
        api = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-m", "ioc", "api"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        port = int(env["IOC_API_PORT"])
        await asyncio.to_thread(wait_for_port, port, api, 60, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        api.send_signal(signal.SIGINT)
        await asyncio.to_thread(api.wait, 30)


async def test_the_api_runs_as_its_own_process(database: StoreConfig, tmp_path: Path) -> None:
    port = free_port()
    env = _env(database, port)  # the database alone: no broker
    added = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "ioc", "users", "add", "duty-officer", "--role", "operator"],
        env={**env, "IOC_NEW_PASSWORD": "a long passphrase"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    log = tmp_path / "api.log"
    async with _api(env, log) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            assert (await http.get("/healthz")).status_code == 200
            page = await http.get("/console/")
            assert "Trung tâm điều hành" in page.text
            assert "default-src 'self'" in page.headers["content-security-policy"]
            token = (
                await http.post(
                    "/api/v1/auth/token",
                    data={"username": "duty-officer", "password": "a long passphrase"},
                )
            ).json()["access_token"]
            # Without a broker only the cameras' pictures are unavailable.
            picture = await http.get(
                "/api/v1/cameras/indoor-room/snapshot.jpg",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert picture.status_code == 503
            assert "IOC_MQTT_URL" in picture.json()["detail"]
        async with ws_connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            assert json.loads(await ws.recv())["username"] == "duty-officer"
            await ws.send(json.dumps({"type": "subscribe"}))
            assert json.loads(await ws.recv())["type"] == "snapshot"
        revoked = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "ioc", "users", "revoke", "duty-officer"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert "1 session(s) of duty-officer ended" in revoked.stdout, revoked.stderr
    text = log.read_text()
    assert '"WebSocket /ws" [accepted]' in text  # the access log is on ...
    assert token not in text  # ... and the token is not in it


@pytest.mark.mosquitto
async def test_the_api_asks_the_edges_through_the_configured_broker(
    database: StoreConfig,
    db: asyncpg.Connection,
    tmp_path: Path,
    mosquitto: MosquittoBroker,
    topics: Topics,
) -> None:
    env = _env(database, free_port())
    env.update(IOC_MQTT_URL=mosquitto.url, IOC_TOPIC_PREFIX=topics.prefix)
    await add_user(db, "duty-officer", Role.OPERATOR, "a long passphrase")
    async with (
        _api(env, tmp_path / "api.log") as base,
        httpx.AsyncClient(base_url=base) as http,
        SnapshotEdge(MqttEndpoint.from_url(mosquitto.url), topics) as edge,
    ):
        login = {"username": "duty-officer", "password": "a long passphrase"}
        token = (await http.post("/api/v1/auth/token", data=login)).json()["access_token"]
        picture = await http.get(
            "/api/v1/cameras/indoor-room/snapshot.jpg",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert (picture.status_code, picture.headers["content-type"]) == (200, "image/jpeg")
        assert edge.requests == {"indoor-room": 1}

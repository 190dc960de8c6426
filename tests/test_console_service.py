"""``ioc users add`` and ``ioc api`` as production runs them: separate processes, configured
by the environment, needing only the database (and the broker for camera snapshots). The
websocket token never reaches the log."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import DATA
from console_support import SnapshotEdge
from websockets.asyncio.client import connect as ws_connect

from ioc.servers import MosquittoBroker, free_port, wait_for_port
from protocol import MqttEndpoint, Topics
from store import StoreConfig

pytestmark = [pytest.mark.postgres, pytest.mark.mosquitto]


def _env(database: StoreConfig, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    env.update(
        IOC_DATABASE_URL=database.url,
        IOC_API_PORT=str(port),
        IOC_PROVINCE=str(DATA / "clips.yaml"),
        IOC_LOG_LEVEL="INFO",
    )
    return env


async def test_the_api_runs_as_its_own_process(
    database: StoreConfig,
    tmp_path: Path,
    mosquitto: MosquittoBroker,
    mqtt: MqttEndpoint,
    topics: Topics,
) -> None:
    port = free_port()
    env = _env(database, port)
    # The broker is optional (snapshots only); given, the API asks the edges through it.
    env.update(IOC_MQTT_URL=mosquitto.url, IOC_TOPIC_PREFIX=topics.prefix)
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
    with log.open("wb") as sink:
        api = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-m", "ioc", "api"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        await asyncio.to_thread(wait_for_port, port, api, 60, log)
        base = f"http://127.0.0.1:{port}"
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
            async with SnapshotEdge(mqtt, topics) as edge:
                picture = await http.get(
                    "/api/v1/cameras/indoor-room/snapshot.jpg",
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert (picture.status_code, edge.requests) == (200, {"indoor-room": 1})
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
    finally:
        api.send_signal(signal.SIGINT)
        await asyncio.to_thread(api.wait, 30)
    text = log.read_text()
    assert '"WebSocket /ws" [accepted]' in text  # the access log is on ...
    assert token not in text  # ... and the token is not in it

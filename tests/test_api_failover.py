"""Two ``ioc api`` processes behind HAProxy (health checks on /healthz, websockets tunnelled,
the client's address forwarded): one is killed (SIGKILL). Its websocket client reconnects
through the proxy with the same token (sessions live in the database, so every process
knows them) and resumes by sequence on the other process; every client sees every change of
the log once, in order."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from console_support import PASSWORD, raise_alert
from typer.testing import CliRunner
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from console_api import Role, add_user
from ioc.cli import app
from ioc.haproxy import Backend, HAProxy, Server, haproxy_binary
from ioc.servers import free_port, wait_for_port
from protocol import Province
from store import StoreConfig, sync_registry

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def api_processes(
    database: StoreConfig, count: int, logs: Path
) -> Iterator[list[tuple[subprocess.Popen[bytes], int]]]:
    """``count`` ``ioc api`` processes on free ports, as production starts them; yields
    each with its port."""
    processes: list[subprocess.Popen[bytes]] = []
    ports = [free_port() for _ in range(count)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    env |= {
        "IOC_DATABASE_URL": database.url,
        "IOC_PROVINCE": str(ROOT / "tests" / "data" / "clips.yaml"),
        "IOC_LOG_LEVEL": "WARNING",
    }
    try:
        for i, port in enumerate(ports):
            with (logs / f"api-{i}.log").open("wb") as log:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "ioc", "api"],
                        env={**env, "IOC_API_PORT": str(port)},
                        cwd=ROOT,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        for i, (port, process) in enumerate(zip(ports, processes, strict=True)):
            wait_for_port(port, process, 60, logs / f"api-{i}.log")
        yield list(zip(processes, ports, strict=True))
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(20)


class Operator:
    """A websocket client that follows the change log through the proxy and, when its
    connection drops, connects again with ``after_seq`` (what the operations-room page does)."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.seqs: list[int] = []
        self.reconnected_at: float | None = None
        self.dropped = asyncio.Event()
        self._progress = asyncio.Condition()

    async def _connect(self) -> AsyncIterator[dict[str, Any]]:
        async with ws_connect(self.url) as ws:
            await ws.send(json.dumps({"type": "auth", "token": self.token}))
            welcome = json.loads(await ws.recv())
            assert welcome["type"] == "authenticated", welcome
            after = self.seqs[-1] if self.seqs else None
            await ws.send(json.dumps({"type": "subscribe", "after_seq": after}))
            async for raw in ws:
                yield json.loads(raw)

    async def follow(self, subscribed: asyncio.Event) -> None:
        while True:
            try:
                async for message in self._connect():
                    if message["type"] in ("snapshot", "resumed"):
                        if self.dropped.is_set() and self.reconnected_at is None:
                            self.reconnected_at = time.monotonic()
                        subscribed.set()
                    elif message["type"] == "change":
                        async with self._progress:
                            self.seqs.append(message["seq"])
                            self._progress.notify_all()
            except (ConnectionClosed, InvalidStatus, OSError):
                self.dropped.set()
                await asyncio.sleep(0.2)  # a browser's reconnect delay, not a wait for state

    async def wait_for(self, seqs: list[int]) -> None:
        async with self._progress:
            await self._progress.wait_for(lambda: self.seqs[-len(seqs) :] == seqs)


async def test_a_killed_api_process_loses_no_change_for_its_clients(
    server_root: Path, database: StoreConfig, db: asyncpg.Connection, clips_province: Province
) -> None:
    await sync_registry(db, clips_province)
    await add_user(db, "op", Role.OPERATOR, PASSWORD)
    logs = Path(tempfile.mkdtemp(dir=server_root))
    with api_processes(database, 2, logs) as apis:
        servers = tuple(Server(f"api{i}", "127.0.0.1", port) for i, (_, port) in enumerate(apis))
        proxy = HAProxy(logs / "haproxy", [Backend("console_api", servers, "http-api")])
        await asyncio.to_thread(proxy.start)
        host = f"127.0.0.1:{proxy.port('console_api')}"
        try:
            # The client's address as HAProxy forwards it (a documentation address stands
            # for a client elsewhere: here every peer is the loopback).
            forwarded = {"X-Forwarded-For": "203.0.113.7"}
            async with httpx.AsyncClient(base_url=f"http://{host}", headers=forwarded) as http:
                login = await http.post(
                    "/api/v1/auth/token", data={"username": "op", "password": PASSWORD}
                )
            token = login.raise_for_status().json()["access_token"]
            operators = [Operator(f"ws://{host}/ws", token) for _ in range(2)]
            async with asyncio.TaskGroup() as group:
                tasks = []
                for operator in operators:
                    subscribed = asyncio.Event()
                    tasks.append(group.create_task(operator.follow(subscribed)))
                    await asyncio.wait_for(subscribed.wait(), 20)
                before = [(await raise_alert(db, camera="indoor-room", zone="floor"))[1]]
                for operator in operators:
                    await asyncio.wait_for(operator.wait_for(before), 20)

                killed_at = time.monotonic()
                os.kill(apis[0][0].pid, signal.SIGKILL)
                during = [
                    (await raise_alert(db, camera="indoor-room", zone=f"z{i}"))[1] for i in range(3)
                ]
                await asyncio.wait_for(
                    asyncio.wait(
                        [asyncio.create_task(o.dropped.wait()) for o in operators],
                        return_when=asyncio.FIRST_COMPLETED,
                    ),
                    20,
                )
                after = [(await raise_alert(db, camera="indoor-room", zone="late"))[1]]
                for operator in operators:
                    await asyncio.wait_for(operator.wait_for(during + after), 30)
                for task in tasks:
                    task.cancel()
        finally:
            await asyncio.to_thread(proxy.stop)
    # The login limits and the audit see the client, not the proxy.
    assert await db.fetchval("SELECT address FROM login_audit") == "203.0.113.7"
    logged = [r["seq"] for r in await db.fetch("SELECT seq FROM alert_changes ORDER BY seq")]
    assert logged == before + during + after
    for operator in operators:
        assert operator.seqs == logged  # nothing missed, nothing repeated
    moved = [o for o in operators if o.dropped.is_set()]
    assert len(moved) == 1  # leastconn put one client on each process
    assert moved[0].reconnected_at is not None
    print(f"api_failover_s={moved[0].reconnected_at - killed_at:.2f}")


def test_the_printed_proxy_config_is_one_haproxy_accepts(tmp_path: Path) -> None:
    nodes = ("10.0.0.11:5432:8008", "10.0.0.12:5432:8008")
    cli = CliRunner()
    result = cli.invoke(
        app,
        [
            *("api-proxy-config", "--api", "10.0.0.21:8081", "--api", "10.0.0.22:8081"),
            *(arg for node in nodes for arg in ("--postgres", node)),
        ],
    )
    assert result.exit_code == 0, result.output
    config = tmp_path / "haproxy.cfg"
    config.write_text(result.stdout)
    binary = haproxy_binary()
    assert binary is not None
    check = subprocess.run(  # the system's haproxy on our own file
        [binary, "-c", "-f", str(config)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "option httpchk OPTIONS /primary" in result.stdout
    assert "server pg1 10.0.0.12:5432 check port 8008" in result.stdout
    refused = cli.invoke(app, ["api-proxy-config", "--api", "10.0.0.21"])
    assert refused.exit_code != 0
    assert "expected HOST:PORT" in refused.output

"""Clients that try to starve the console API (issue 17, items 2 and 3): websockets that never
read hold no pooled connection and are dropped with a resumable close code; a login flood
is throttled and does not stall the live feed. Real uvicorn and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import msgspec
import pytest
from console_support import console, raise_alert, seed_registry
from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.uri import parse_uri

from alerts import changes_since
from alerts._repository import record_change
from console_api import WS_TOO_SLOW, ConsoleConfig, Role
from store import StoreConfig

pytestmark = pytest.mark.postgres


class StalledClient:
    """A websocket client that authenticates, subscribes and then reads nothing at all (a
    raw socket with a tiny receive buffer, driven by websockets' sans-I/O protocol), until
    :meth:`close_code` reads what the server sent."""

    def __init__(self, host: str) -> None:
        address, port = host.split(":")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((address, int(port)))
        self.sock.setblocking(False)
        self.protocol = ClientProtocol(parse_uri(f"ws://{host}/ws"), max_size=None)

    async def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def subscribe(self, token: str, **subscribe: Any) -> None:
        loop = asyncio.get_running_loop()
        self.protocol.send_request(self.protocol.connect())
        await self._flush()
        while self.protocol.state is State.CONNECTING:
            self.protocol.receive_data(await loop.sock_recv(self.sock, 4096))
        assert self.protocol.state is State.OPEN, self.protocol.handshake_exc
        self.protocol.send_text(json.dumps({"type": "auth", "token": token}).encode())
        self.protocol.send_text(json.dumps({"type": "subscribe", **subscribe}).encode())
        await self._flush()

    async def close_code(self) -> tuple[int | None, str]:
        """Read everything until the server closes; its close code and reason."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(30):
            while self.protocol.close_rcvd is None:
                data = await loop.sock_recv(self.sock, 1 << 20)
                if not data:
                    break
                self.protocol.receive_data(data)
                self.protocol.events_received()
        closing = self.protocol.close_rcvd
        return (closing.code, closing.reason) if closing else (None, "")

    def close(self) -> None:
        self.sock.close()


async def _until(predicate: Callable[[], bool], deadline: float = 10.0) -> None:
    """Wait for a condition of the server's state that has no event of its own."""
    async with asyncio.timeout(deadline):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_websockets_that_never_read_hold_no_connection_and_are_dropped(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    await raise_alert(db)
    big = msgspec.structs.replace(
        (await changes_since(db, 0))[0].alert, title_en="congestion " * 2000
    )
    async with db.transaction():
        for _ in range(40):  # 800 kB of replay, far more than the socket buffers hold
            await record_change(db, big)
    clients = 12  # more than the pool's connections
    config = ConsoleConfig(ws_send_timeout=2.0)
    async with console(database, db, config, send_buffer=8192) as c:
        hub = c.app.state.hub
        operator = await c.user(Role.OPERATOR)
        stuck = [StalledClient(c.host) for _ in range(clients)]
        try:
            for client in stuck:
                await client.subscribe(operator, after_seq=0)
            await _until(lambda: len(hub._clients) == clients)
            # Every one of them is in its replay, stuck on a full socket; the API answers.
            started = time.perf_counter()
            async with c.http() as http:
                response = await asyncio.wait_for(http.get("/healthz"), 1.5)
            assert response.status_code == 200
            assert time.perf_counter() - started < 1.5
            # Too slow for the send timeout: each is dropped and told where to resume.
            await _until(lambda: not hub._clients)
            for client in stuck:
                code, reason = await client.close_code()
                assert code == WS_TOO_SLOW
                assert "resume with after_seq" in reason
        finally:
            for client in stuck:
                client.close()

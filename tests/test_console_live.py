"""The live websocket against a real server and database: authentication by first message,
filters, snapshot then ordered changes, resume without gap or repeat, slow clients closed."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
from console_support import console, raise_alert, route_to_police, seed_registry
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from alerts import changes_since
from alerts._repository import record_change
from console_api import (
    WS_BAD_MESSAGE,
    WS_FORBIDDEN,
    WS_TOO_SLOW,
    WS_UNAUTHENTICATED,
    ConsoleConfig,
    Role,
    issue_token,
)
from protocol import EventKind
from store import StoreConfig

pytestmark = pytest.mark.postgres


async def _read_until_closed(ws: ClientConnection) -> tuple[list[dict[str, Any]], int | None]:
    """Every message until the server closes, and its close code."""
    messages = []
    try:
        while True:
            messages.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
    except ConnectionClosed as closed:
        return messages, closed.rcvd.code if closed.rcvd else None


async def _closed_with(ws: ClientConnection) -> int | None:
    return (await _read_until_closed(ws))[1]


async def _next(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return message


async def test_refusals_name_their_reason_with_a_close_code(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    config = ConsoleConfig(ws_auth_timeout=0.5)
    async with console(database, db, config) as c:
        planner = await c.user(Role.PLANNER)
        police = await c.user(Role.POLICE)
        async with ws_connect(c.ws_url) as ws:  # says nothing
            assert await _closed_with(ws) == WS_UNAUTHENTICATED
        async with ws_connect(c.ws_url) as ws:
            await ws.send(json.dumps({"type": "auth", "token": "guessed"}))
            assert await _closed_with(ws) == WS_UNAUTHENTICATED
        async with ws_connect(c.ws_url) as ws:
            await ws.send(json.dumps({"type": "subscribe"}))  # before auth
            assert await _closed_with(ws) == WS_UNAUTHENTICATED
        async with ws_connect(c.ws_url) as ws:
            await ws.send("{not json")
            assert await _closed_with(ws) == WS_BAD_MESSAGE
        async with ws_connect(c.ws_url) as ws:
            await ws.send(json.dumps({"type": "auth", "token": planner}))
            assert await _closed_with(ws) == WS_FORBIDDEN
        async with ws_connect(c.ws_url) as ws:  # police may not follow Wi-Fi alerts
            await ws.send(json.dumps({"type": "auth", "token": police}))
            assert (await _next(ws))["role"] == "police"
            await ws.send(json.dumps({"type": "subscribe", "kinds": ["ap_down"]}))
            assert await _closed_with(ws) == WS_FORBIDDEN
        async with ws_connect(c.ws_url) as ws:
            await ws.send(json.dumps({"type": "auth", "token": police}))
            await _next(ws)
            await ws.send(json.dumps({"type": "subscribe", "districts": ["Not An Id"]}))
            assert await _closed_with(ws) == WS_BAD_MESSAGE


async def test_a_session_ends_when_its_token_expires(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    async with console(database, db) as c:
        await c.user(Role.OPERATOR)
        short = await issue_token(db, "operator-1", timedelta(seconds=1))
        async with c.live(short.token) as (ws, snapshot):
            assert snapshot["type"] == "snapshot"
            messages, code = await _read_until_closed(ws)
        assert (messages, code) == ([], WS_UNAUTHENTICATED)


async def test_a_session_ended_early_closes_its_websocket(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    """Revoking a user's sessions closes every websocket of theirs, and a changed role closes
    the user's, at the next session check rather than at the tokens' expiry; other users'
    websockets stay open."""
    async with console(database, db, ConsoleConfig(ws_session_check=0.1)) as c:
        admin = await c.as_role(Role.ADMIN)
        first = await c.user(Role.OPERATOR)
        second = await c.login("operator-1")
        other = await c.user(Role.OPERATOR, "operator-2")
        async with (
            admin,
            c.live(first) as (ws1, _),
            c.live(second) as (ws2, _),
            c.live(other) as (ws3, _),
        ):
            assert (await admin.delete("/api/v1/users/operator-1/tokens")).status_code == 200
            assert await _closed_with(ws1) == WS_UNAUTHENTICATED
            assert await _closed_with(ws2) == WS_UNAUTHENTICATED
            assert ws1.close_reason == "session ended; log in again"
            await ws3.send(json.dumps({"type": "ping"}))
            assert (await _next(ws3))["type"] == "pong"  # still open
            changed = await admin.patch("/api/v1/users/operator-2", json={"role": "planner"})
            assert changed.status_code == 200
            assert await _closed_with(ws3) == WS_UNAUTHENTICATED


async def test_snapshot_then_filtered_changes_in_order(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    mine, _ = await raise_alert(db, camera="cam-a", district="my-tho")
    await raise_alert(db, camera="cam-b", district="go-cong", zone=None)
    async with console(database, db) as c:
        operator = await c.user(Role.OPERATOR)
        async with c.live(operator, districts=["my-tho"]) as (ws, snapshot):
            assert snapshot["type"] == "snapshot"
            assert [a["id"] for a in snapshot["alerts"]] == [mine]
            assert snapshot["seq"] == await db.fetchval("SELECT max(seq) FROM alert_changes")
            # A change elsewhere is filtered out; the next one here arrives, then an
            # acknowledgement made through the REST API.
            await raise_alert(db, camera="cam-b", district="go-cong", zone=None)
            other, _ = await raise_alert(db, camera="cam-a", district="my-tho", zone="lane")
            async with c.http(operator) as http:
                response = await http.post(f"/api/v1/alerts/{mine}/acknowledge", json={})
                assert response.status_code == 200
            first, second = await _next(ws), await _next(ws)
            assert (first["alert"]["id"], first["alert"]["state"]) == (other, "open")
            assert (second["alert"]["id"], second["alert"]["state"]) == (mine, "acknowledged")
            assert snapshot["seq"] < first["seq"] < second["seq"]
            await ws.send(json.dumps({"type": "ping"}))
            assert await _next(ws) == {"type": "pong", "seq": second["seq"]}


async def test_police_follow_what_was_routed_to_them(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    routing = await route_to_police(db)
    incident, _ = await raise_alert(db, kind=EventKind.WRONG_WAY, zone=None, routing=routing)
    await raise_alert(db, kind=EventKind.CAMERA_OFFLINE, zone=None, routing=routing)
    async with console(database, db) as c:
        police = await c.user(Role.POLICE)
        operator = await c.user(Role.OPERATOR)
        async with c.live(police) as (ws, snapshot):
            assert [a["id"] for a in snapshot["alerts"]] == [incident]
            start = snapshot["seq"]
            # Not for the police: a Wi-Fi alert, a kind their route does not take, and an
            # intrusion raised without any channel staging it.
            await raise_alert(db, kind=EventKind.AP_DOWN, camera="ap-1", zone=None)
            await raise_alert(db, kind=EventKind.STOPPED_VEHICLE, zone=None, routing=routing)
            await raise_alert(db, kind=EventKind.INTRUSION, routing=None)
            crowd, _ = await raise_alert(db, kind=EventKind.CROWD, zone=None, routing=routing)
            async with c.http(operator) as http:
                acked = await http.post(f"/api/v1/alerts/{incident}/acknowledge", json={})
                assert acked.status_code == 200
            first, second = await _next(ws), await _next(ws)
            assert (first["alert"]["id"], second["alert"]["id"]) == (crowd, incident)
            assert second["alert"]["state"] == "acknowledged"
        # Resuming replays the same two from the change log, and nothing else.
        async with c.live(police, after_seq=start) as (ws, resumed):
            assert resumed == {"type": "resumed", "after_seq": start}
            replayed = [await _next(ws), await _next(ws)]
            assert [m["seq"] for m in replayed] == [first["seq"], second["seq"]]
            await ws.send(json.dumps({"type": "ping"}))
            pong = await _next(ws)
            assert pong["type"] == "pong"


async def _changes_after(
    db: asyncpg.Connection, seq: int, district: str
) -> list[tuple[int, str, str]]:
    return [
        (ch.seq, ch.alert.id, ch.alert.state)
        for ch in await changes_since(db, seq)
        if ch.alert.district_id == district
    ]


async def test_resume_after_a_gap_misses_and_repeats_nothing(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    config = ConsoleConfig(ws_replay_limit=50)
    async with console(database, db, config) as c:
        operator = await c.user(Role.OPERATOR)
        async with c.live(operator, districts=["my-tho"]) as (ws, _):
            await raise_alert(db)
            last = (await _next(ws))["seq"]
        # Offline: changes in and out of the filter, a transition through the API.
        opened = [await raise_alert(db, zone=f"z{i}") for i in range(5)]
        for i in range(3):
            await raise_alert(db, camera="cam-b", district="go-cong", zone=f"z{i}")
        async with c.http(operator) as http:
            await http.post(f"/api/v1/alerts/{opened[0][0]}/resolve", json={"note": "seen"})
        expected = await _changes_after(db, last, "my-tho")
        assert len(expected) == 6
        async with c.live(operator, districts=["my-tho"], after_seq=last) as (ws, first):
            assert first == {"type": "resumed", "after_seq": last}
            got = [await _next(ws) for _ in expected]
            assert [(m["seq"], m["alert"]["id"], m["alert"]["state"]) for m in got] == expected
            # And live from there, nothing repeated.
            live_id, live_seq = await raise_alert(db, zone="after")
            message = await _next(ws)
            assert (message["seq"], message["alert"]["id"]) == (live_seq, live_id)
        # Too far behind for a replay (limit 50 changes): a fresh snapshot instead.
        async with db.transaction():
            alert_id = opened[1][0]
            alert = next(ch.alert for ch in await changes_since(db, 0) if ch.alert.id == alert_id)
            for _ in range(60):
                await record_change(db, alert)
        async with c.live(operator, after_seq=last) as (ws, first):
            assert first["type"] == "snapshot"
            assert first["seq"] == await db.fetchval("SELECT max(seq) FROM alert_changes")


def _slow_socket(host: str) -> socket.socket:
    """A client socket with a tiny receive buffer, so a client that stops reading pushes
    back on the server after a few messages instead of after megabytes."""
    address, port = host.split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((address, int(port)))
    sock.setblocking(False)
    return sock


async def test_slow_client_is_closed_and_the_others_get_everything(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    await raise_alert(db)
    # Big changes (20 kB each) fill the socket buffers between server and client sooner.
    alert = msgspec.structs.replace(
        (await changes_since(db, 0))[0].alert, title_en="congestion " * 2000
    )
    config = ConsoleConfig(ws_queue=32)
    async with console(database, db, config, send_buffer=8192) as c:
        hub = c.app.state.hub
        operator = await c.user(Role.OPERATOR)
        slow = await ws_connect(
            c.ws_url, sock=_slow_socket(c.host), max_queue=1, max_size=None
        ).__aenter__()
        try:
            await slow.send(json.dumps({"type": "auth", "token": operator}))
            await slow.send(json.dumps({"type": "subscribe"}))
            assert (await _next(slow))["type"] == "authenticated"
            snapshot = await _next(slow)
            assert snapshot["type"] == "snapshot"
            seqs: list[int] = []
            async with c.live(operator) as (fast, _):
                # Batches until the server gives up on the client that stopped reading;
                # the fast client reads each batch whole, so the hub has dispatched it.
                for _ in range(200):
                    async with db.transaction():
                        for _ in range(50):
                            await record_change(db, alert)
                    seqs += [(await _next(fast))["seq"] for _ in range(50)]
                    if hub.slow_dropped:
                        break
                assert hub.slow_dropped == 1
                assert seqs == sorted(set(seqs))
            # The slow client gets what was already on its way, in order, then 4429.
            messages, code = await _read_until_closed(slow)
            received = [snapshot["seq"]] + [m["seq"] for m in messages]
            assert code == WS_TOO_SLOW
            assert received[1:] == seqs[: len(received) - 1]
            assert len(received) - 1 < len(seqs)
        finally:
            await slow.close()
        # It resumes from the last change it saw and gets exactly the rest.
        async with c.live(operator, after_seq=received[-1]) as (ws, first):
            assert first["type"] == "resumed"
            rest = [(await _next(ws))["seq"] for _ in range(len(seqs) - len(received) + 1)]
            assert received[1:] + rest == seqs

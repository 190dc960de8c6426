"""The live websocket ``/ws``: authenticate, subscribe, then every change in order.

Protocol (JSON text frames; docs/console.md has the full description):

1. client ``{"type": "auth", "token": T}`` - the token never appears in a URL, so it never
   reaches an access log; server ``{"type": "authenticated", "username", "role", "expires_at"}``
2. client ``{"type": "subscribe", "districts": [...], "kinds": [...], "after_seq": N | null}``
   server ``{"type": "snapshot", "seq": S, "alerts": [...]}`` (open alerts as of change S), or,
   when ``after_seq`` is still in the change log, ``{"type": "resumed", "after_seq": N}``
3. server ``{"type": "change", "seq": N, "alert": {...}}`` for every later change the filter
   admits, in sequence order, none repeated; client ``{"type": "ping"}`` gets
   ``{"type": "pong", "seq": last sent}``.

Close codes: 4400 bad message, 4401 not authenticated (or the session expired or ended),
4403 role not allowed, 4429 too slow (resume with ``after_seq``), 1011 server error.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from alerts import changes_since, open_alerts
from protocol import EventKind, stop_tasks
from store import DB_ERRORS

from ._auth import Principal, Role, authenticate
from ._bounds import IDENTIFIER
from ._config import ConsoleConfig
from ._hub import ChangeHub, LiveClient, change_message
from ._metrics import ConsoleMetrics
from ._scope import admit, is_police, narrow_kinds, routed_to_police

router = APIRouter()

WS_BAD_MESSAGE = 4400
WS_UNAUTHENTICATED = 4401
WS_FORBIDDEN = 4403
WS_TOO_SLOW = 4429
WS_SERVER_ERROR = 1011
LIVE_ROLES = frozenset({Role.OPERATOR, Role.POLICE, Role.ADMIN})
MAX_MESSAGE = 4096
_REPLAY_PAGE = 500
_json = msgspec.json.Encoder()
Ident = Annotated[str, msgspec.Meta(pattern=IDENTIFIER)]


class Auth(msgspec.Struct, tag_field="type", tag="auth", forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class Subscribe(msgspec.Struct, tag_field="type", tag="subscribe", forbid_unknown_fields=True):
    districts: Annotated[list[Ident], msgspec.Meta(max_length=50)] = []
    kinds: Annotated[list[EventKind], msgspec.Meta(max_length=20)] = []
    after_seq: Annotated[int, msgspec.Meta(ge=0)] | None = None


class Ping(msgspec.Struct, tag_field="type", tag="ping", forbid_unknown_fields=True):
    pass


_decode: msgspec.json.Decoder[Auth | Subscribe | Ping] = msgspec.json.Decoder(
    Auth | Subscribe | Ping
)


class Refused(Exception):
    """End the session with this close code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        # RFC 6455: a close reason is at most 123 bytes of UTF-8.
        self.reason = reason.encode()[:123].decode(errors="ignore")


async def _receive(websocket: WebSocket) -> Auth | Subscribe | Ping:
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    data = message.get("text") or message.get("bytes") or b""
    if len(data) > MAX_MESSAGE:
        raise Refused(WS_BAD_MESSAGE, f"messages may have at most {MAX_MESSAGE} bytes")
    try:
        return _decode.decode(data)
    except msgspec.DecodeError as exc:
        raise Refused(WS_BAD_MESSAGE, f"bad message: {exc}") from exc


async def _send(websocket: WebSocket, message: dict[str, Any], last: int = 0) -> None:
    await _send_text(websocket, _json.encode(message).decode(), last)


async def _send_text(websocket: WebSocket, text: str, last: int) -> None:
    """Send, or give up on a client that takes longer than ``ws_send_timeout`` to take it
    (one that stopped reading): it is closed with 4429 and may resume after ``last``."""
    config: ConsoleConfig = websocket.app.state.config
    try:
        async with asyncio.timeout(config.ws_send_timeout):
            await websocket.send_text(text)
    except TimeoutError as exc:
        raise Refused(WS_TOO_SLOW, f"too slow; resume with after_seq {last}") from exc


async def _authenticate(websocket: WebSocket, config: ConsoleConfig) -> tuple[Principal, str]:
    try:
        first = await asyncio.wait_for(_receive(websocket), config.ws_auth_timeout)
    except TimeoutError as exc:
        raise Refused(WS_UNAUTHENTICATED, "no auth message in time") from exc
    if not isinstance(first, Auth):
        raise Refused(WS_UNAUTHENTICATED, "the first message must be {type: auth, token}")
    async with websocket.app.state.pool.acquire() as conn:
        who = await authenticate(conn, first.token)
    if who is None:
        raise Refused(WS_UNAUTHENTICATED, "the token is unknown or expired")
    if who.role not in LIVE_ROLES:
        raise Refused(WS_FORBIDDEN, f"role {who.role} may not follow live alerts")
    await _send(
        websocket,
        {
            "type": "authenticated",
            "username": who.username,
            "role": who.role,
            "expires_at": who.expires_at,
        },
    )
    return who, first.token


async def _catch_up(
    websocket: WebSocket, client: LiveClient, who: Principal, request: Subscribe, position: int
) -> int:
    """Send the snapshot (or the resume notice), then the changes up to ``position`` from the
    change log; returns the last sequence number the client is up to date with. Each read
    returns its pooled connection before anything is sent: a client that does not read
    holds a socket, never a connection everyone else needs."""
    config: ConsoleConfig = websocket.app.state.config
    pool = websocket.app.state.pool
    resume: int | None = None
    last: int
    async with pool.acquire() as conn:
        newest: int = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM alert_changes")
        after = request.after_seq
        if after is not None and after <= newest and newest - after <= config.ws_replay_limit:
            resume = after
        else:
            # One snapshot of the database: the open alerts are exactly the result of the
            # changes up to `last`, so the stream continues from there without a gap.
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                last = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM alert_changes")
                wanted = [a for a in await open_alerts(conn) if client.wants(a)]
                alerts = await admit(conn, who, wanted)
    if resume is not None:
        last = resume
        await _send(websocket, {"type": "resumed", "after_seq": resume}, last)
    else:
        await _send(websocket, {"type": "snapshot", "seq": last, "alerts": alerts}, last)
    while last < position:
        async with pool.acquire() as conn:
            page = await changes_since(conn, last, limit=_REPLAY_PAGE)
            wanted = [c.alert for c in page if c.seq <= position and client.wants(c.alert)]
            shown = {a.id for a in await admit(conn, who, wanted)}
        for change in page:
            if change.seq > position:
                return last
            if change.alert.id in shown:
                await _send_text(websocket, change_message(change.seq, change.alert), last)
            last = change.seq
        if len(page) < _REPLAY_PAGE:
            break
    return last


async def _session_holds(websocket: WebSocket, who: Principal, token: str) -> None:
    """Return only by raising: at the session's expiry, or at the first check (every
    ``ws_session_check`` seconds) that finds it ended or its user's role changed. A check
    that cannot reach the store keeps the socket; the next one tries again."""
    every = websocket.app.state.config.ws_session_check
    while True:
        wait = every
        if who.expires_at is not None:
            wait = min(every, max((who.expires_at - datetime.now(UTC)).total_seconds(), 0))
        await asyncio.sleep(wait)
        if who.expires_at is not None and datetime.now(UTC) >= who.expires_at:
            raise Refused(WS_UNAUTHENTICATED, "session expired; log in again")
        try:
            async with websocket.app.state.pool.acquire() as conn:
                now = await authenticate(conn, token)
        except DB_ERRORS:
            continue
        if now is None or now.role != who.role:
            raise Refused(WS_UNAUTHENTICATED, "session ended; log in again")


async def _stream(
    websocket: WebSocket, client: LiveClient, who: Principal, token: str, last: int
) -> None:
    police = is_police(who)

    async def forward() -> None:
        nonlocal last
        while True:
            batch = [await client.queue.get()]
            while not client.queue.empty() and len(batch) < _REPLAY_PAGE:
                batch.append(client.queue.get_nowait())
            routed: set[str] | None = None
            if police:
                # One look per batch at what was staged for the police (it commits with
                # the change, so it is there by the time the change arrives).
                async with websocket.app.state.pool.acquire() as conn:
                    routed = await routed_to_police(conn, {q.alert_id for q in batch})
            for queued in batch:
                if queued.seq <= last:
                    continue  # already in the snapshot or the replay
                if routed is None or queued.alert_id in routed:
                    await _send_text(websocket, queued.text, last)
                last = queued.seq

    async def listen() -> None:
        while True:
            message = await _receive(websocket)
            if not isinstance(message, Ping):
                raise Refused(WS_BAD_MESSAGE, "already subscribed; reconnect to change")
            await _send(websocket, {"type": "pong", "seq": last}, last)

    async def too_slow() -> None:
        await client.too_slow.wait()
        raise Refused(WS_TOO_SLOW, f"too slow; resume with after_seq {last}")

    tasks = [
        asyncio.ensure_future(forward()),
        asyncio.ensure_future(listen()),
        asyncio.ensure_future(_session_holds(websocket, who, token)),
        asyncio.ensure_future(too_slow()),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await stop_tasks(tasks)
    for task in done:
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            raise failure


@router.websocket("/ws")
async def live(websocket: WebSocket) -> None:
    config: ConsoleConfig = websocket.app.state.config
    hub: ChangeHub = websocket.app.state.hub
    metrics: ConsoleMetrics = websocket.app.state.metrics
    await websocket.accept()
    try:
        who, token = await _authenticate(websocket, config)
        try:
            request = await asyncio.wait_for(_receive(websocket), config.ws_auth_timeout)
        except TimeoutError as exc:
            raise Refused(WS_BAD_MESSAGE, "no subscribe message in time") from exc
        if not isinstance(request, Subscribe):
            raise Refused(WS_BAD_MESSAGE, "expected {type: subscribe, ...}")
        kinds = narrow_kinds(who, [str(k) for k in request.kinds])
        if kinds is None:
            raise Refused(WS_FORBIDDEN, "none of the requested kinds is visible to this role")
        client = LiveClient(request.districts, kinds, config.ws_queue)
        position = hub.register(client)
        try:
            last = await _catch_up(websocket, client, who, request, position)
            await _stream(websocket, client, who, token, last)
        finally:
            hub.unregister(client)
    except Refused as refusal:
        metrics.ws_closed.labels(str(refusal.code)).inc()
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await asyncio.wait_for(
                websocket.close(refusal.code, refusal.reason), config.ws_send_timeout
            )
    except WebSocketDisconnect:
        pass
    except Exception:
        metrics.ws_closed.labels(str(WS_SERVER_ERROR)).inc()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(websocket.close(WS_SERVER_ERROR, "server error"), 10)
        raise

"""The operators' websocket: a snapshot of open alerts, then every change in order."""

from __future__ import annotations

import asyncio

import msgspec
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from alerts import AlertFeed, Subscription, open_alerts
from protocol import stop_tasks

from ._auth import Role, authenticate

router = APIRouter()
_json = msgspec.json.Encoder()
WS_POLICY_VIOLATION = 1008
WS_TRY_AGAIN_LATER = 1013  # the client fell behind; reconnect and resume


async def _forward(websocket: WebSocket, subscription: Subscription, after_seq: int) -> None:
    while True:
        change = await subscription.queue.get()
        if change.seq <= after_seq:
            continue
        await websocket.send_bytes(
            _json.encode({"type": "change", "seq": change.seq, "alert": change.alert})
        )
        if subscription.lagging and subscription.queue.empty():
            await websocket.close(WS_TRY_AGAIN_LATER, "client too slow; resume")
            return


async def _until_disconnect(websocket: WebSocket) -> None:
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


@router.websocket("/ws")
async def live(websocket: WebSocket) -> None:
    token = websocket.query_params.get("token", "")
    feed: AlertFeed = websocket.app.state.feed
    async with websocket.app.state.pool.acquire() as conn:
        who = await authenticate(conn, token) if token else None
        if who is None or who.role not in (Role.OPERATOR, Role.ADMIN):
            await websocket.close(WS_POLICY_VIOLATION, "authentication required")
            return
        subscription = feed.subscribe()
        snapshot_seq = feed.last_seq
        snapshot = await open_alerts(conn)
    await websocket.accept()
    try:
        await websocket.send_bytes(
            _json.encode({"type": "snapshot", "seq": snapshot_seq, "alerts": snapshot})
        )
        tasks = [
            asyncio.ensure_future(_forward(websocket, subscription, snapshot_seq)),
            asyncio.ensure_future(_until_disconnect(websocket)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await stop_tasks(tasks)
        for task in tasks:
            exc = None if task.cancelled() else task.exception()
            if exc is not None and not isinstance(exc, WebSocketDisconnect):
                raise exc
    except WebSocketDisconnect:
        pass
    finally:
        feed.unsubscribe(subscription)

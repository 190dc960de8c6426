"""Operators on the console websocket, as the operations-room page behaves: authenticate,
subscribe to everything, and after any disconnect resume from the last sequence number.

Each client notes when every new alert reached it; with the alert's
``first_frame_captured_at`` (stamped by the edge when it published the frame that decided
the alert) that is the end-to-end latency, both times on this machine's one wall clock. The
clients also keep every change sequence number they received, so a run can check against
the change log that no change was missed or repeated across API and database restarts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from protocol import Background, Work, backoff_delay

logger = logging.getLogger(__name__)
NOT_FROM_A_FRAME = frozenset({"camera_offline", "ap_down", "ap_overload", "delivery_failed"})
"""Kinds raised by a clock or by telemetry, not by an analysed frame: no frame latency."""


@dataclass
class NewAlert:
    alert_id: str
    kind: str
    latency_ms: float
    captured_at: float


@dataclass
class OperatorView:
    """What one operator's client saw."""

    name: str
    seqs: set[int] = field(default_factory=set)
    repeated: int = 0
    """Changes received twice (the protocol promises none, across resumes too)."""
    out_of_order: int = 0
    connects: int = 0
    resumed: int = 0
    restarts: int = 0
    """A snapshot instead of a resumption after a reconnect (start over)."""
    sessions: int = 0
    """Subscriptions answered (a snapshot or a resumption)."""
    start_seq: int | None = None
    last_seq: int | None = None
    known: set[str] = field(default_factory=set)
    new_alerts: list[NewAlert] = field(default_factory=list)


class Operators(Background):
    """``count`` operator clients of ``ws://{host}/ws`` with ``token``, until the exit."""

    def __init__(self, host: str, token: str, count: int) -> None:
        self.url = f"ws://{host}/ws"
        self.token = token
        self.views = [OperatorView(f"operator-{i + 1}") for i in range(count)]
        self._changed = asyncio.Condition()

    async def _start(self, stack: contextlib.AsyncExitStack) -> Work:
        return {v.name: self._follow(v) for v in self.views}

    def sessions(self) -> list[int]:
        return [v.sessions for v in self.views]

    async def wait_until_subscribed(self, beyond: list[int] | None = None) -> None:
        """Return once every client has a subscription answered (more than ``beyond``
        of them: after an API restart, a new one)."""
        floor = beyond or [0] * len(self.views)
        async with self._changed:
            await self._changed.wait_for(
                lambda: all(v.sessions > n for v, n in zip(self.views, floor, strict=True))
            )

    async def wait_until_any_resubscribed(self, beyond: list[int]) -> None:
        """Return once some client has a new subscription answered (after the API process
        it was on died, through the proxy to another)."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: any(v.sessions > n for v, n in zip(self.views, beyond, strict=True))
            )

    def new_alerts(self, since: float, until: float) -> list[NewAlert]:
        """Alerts decided by frames captured in [since, until), as each client saw them."""
        return [
            a
            for v in self.views
            for a in v.new_alerts
            if since <= a.captured_at < until and a.kind not in NOT_FROM_A_FRAME
        ]

    async def _follow(self, view: OperatorView) -> None:
        attempt = 0
        while not self._stopping:
            try:
                async with connect(self.url, open_timeout=10, max_size=2**26) as ws:
                    attempt = 0
                    view.connects += 1
                    await self._session(ws, view)
            except (OSError, WebSocketException, TimeoutError) as exc:
                attempt += 1
                delay = min(backoff_delay(attempt), 2.0)
                logger.info("%s: websocket lost (%s); again in %.2f s", view.name, exc, delay)
                await asyncio.sleep(delay)

    async def _session(self, ws: Any, view: OperatorView) -> None:
        await ws.send(json.dumps({"type": "auth", "token": self.token}))
        answer = json.loads(await ws.recv())
        if answer.get("type") != "authenticated":
            raise RuntimeError(f"{view.name}: not authenticated: {answer}")
        await ws.send(json.dumps({"type": "subscribe", "after_seq": view.last_seq}))
        async for raw in ws:
            at = time.time()
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "snapshot":
                self._snapshot(view, message)
                await self._subscribed(view)
            elif kind == "resumed":
                view.resumed += 1
                await self._subscribed(view)
            elif kind == "change":
                self._change(view, message, at)

    async def _subscribed(self, view: OperatorView) -> None:
        async with self._changed:
            view.sessions += 1
            self._changed.notify_all()

    def _snapshot(self, view: OperatorView, message: dict[str, Any]) -> None:
        if view.start_seq is None:
            view.start_seq = message["seq"]
        else:
            view.restarts += 1
        view.last_seq = message["seq"]
        view.known.update(a["id"] for a in message["alerts"])

    def _change(self, view: OperatorView, message: dict[str, Any], at: float) -> None:
        seq: int = message["seq"]
        if seq in view.seqs:
            view.repeated += 1
            return
        if view.last_seq is not None and seq < view.last_seq:
            view.out_of_order += 1
        view.seqs.add(seq)
        view.last_seq = seq
        alert = message["alert"]
        if alert["id"] in view.known:
            return
        view.known.add(alert["id"])
        captured = alert.get("first_frame_captured_at")
        if alert["state"] == "open" and captured:
            stamp = datetime.fromisoformat(captured).timestamp()
            view.new_alerts.append(NewAlert(alert["id"], alert["kind"], (at - stamp) * 1000, stamp))

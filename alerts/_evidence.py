"""Evidence snapshots: when a camera alert opens, ask the camera's edge for a full-resolution
frame over MQTT and keep it with the alert.

Requests leave through a queue, so the per-event path never waits on the broker. An edge
that does not answer within ``timeout`` seconds is forgotten (the alert simply has no
evidence); an answer that comes later, or twice, is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import aiomqtt
import msgspec

from protocol import (
    SNAPSHOT_REQUEST,
    Background,
    ClipOrder,
    FrameDecodeError,
    MqttEndpoint,
    PayloadError,
    SnapshotRequest,
    TimeWindow,
    TopicError,
    Topics,
    Work,
    backoff_delay,
    decode_frame,
)
from store import DB_ERRORS, Connection, StoreConfig, create_pool

logger = logging.getLogger(__name__)
CLIP_ORDER_RESENDS = 2
"""Times a clip order is sent again when its snapshot request went unanswered."""


@dataclass
class EvidenceStats:
    requested: int = 0
    stored: int = 0
    timed_out: int = 0
    rejected: int = 0


async def get_evidence(conn: Connection, alert_id: str) -> bytes | None:
    """The alert's snapshot (JPEG), or None when there is none (yet)."""
    try:
        key = uuid.UUID(alert_id)
    except ValueError:
        return None
    value: bytes | None = await conn.fetchval(
        "SELECT jpeg FROM alert_evidence WHERE alert_id = $1", key
    )
    return value


class EvidenceCollector(Background):
    def __init__(
        self,
        endpoint: MqttEndpoint,
        store: StoreConfig,
        *,
        topics: Topics | None = None,
        identifier: str = "alerts-evidence",
        timeout: float = 5.0,
        max_width: int = 1920,
        clip_pre: float | None = 10.0,
        clip_post: float = 10.0,
    ) -> None:
        self.endpoint = endpoint
        self.store = store
        self.topics = topics or Topics()
        self.identifier = identifier
        self.timeout = timeout
        self.max_width = max_width
        self.clip_pre = clip_pre
        """Seconds of clip before the event (None: ask for no clip)."""
        self.clip_post = clip_post
        self.stats = EvidenceStats()
        self._outgoing: asyncio.Queue[SnapshotRequest] = asyncio.Queue(1000)
        self._pending: dict[str, str] = {}
        """request id -> alert id, while we wait for the answer."""
        self._changed = asyncio.Event()
        self._ready = asyncio.Event()
        self._resends: dict[str, SnapshotRequest] = {}
        """Clip orders sent again, until answered or given up."""

    async def _start(self, stack: contextlib.AsyncExitStack) -> Work:
        self._pool = await create_pool(self.store)
        stack.push_async_callback(self._pool.close)
        return {"alerts-evidence": self._run()}

    async def wait_until_ready(self) -> None:
        await self._ready.wait()

    async def wait_for(self, done: int) -> None:
        """Return once ``done`` requests were answered, refused or timed out."""
        while self.stats.stored + self.stats.timed_out + self.stats.rejected < done:
            await self._changed.wait()

    def request(
        self,
        camera_id: str,
        alert_id: str,
        *,
        pre: float | None = None,
        post: float | None = None,
    ) -> None:
        """Ask for a snapshot for this alert, and a clip of ``pre`` seconds before and
        ``post`` after now (the alert's rule; None: the collector's own); returns at once."""
        request_id = f"ev-{secrets.token_hex(8)}"
        now = time.time()
        clip = None
        if self.clip_pre is not None:
            # The edge cuts the clip and uploads it to the API (evidence package).
            clip = ClipOrder(
                clip_id=f"clip-{secrets.token_hex(10)}",
                alert_id=alert_id,
                event_at=now,
                pre=self.clip_pre if pre is None else pre,
                post=self.clip_post if post is None else post,
            )
        message = SnapshotRequest(
            request_id=request_id,
            camera_id=camera_id,
            requested_at=now,
            max_width=self.max_width,
            clip=clip,
        )
        try:
            self._outgoing.put_nowait(message)
        except asyncio.QueueFull:
            logger.warning("evidence queue full: no snapshot for alert %s", alert_id)
            return
        self._pending[request_id] = alert_id
        self.stats.requested += 1
        asyncio.get_running_loop().call_later(self.timeout, self._expire, request_id, message, 0)

    def _expire(self, request_id: str, message: SnapshotRequest, resent: int) -> None:
        if self._pending.pop(request_id, None) is not None:
            self._count("timed_out")
            self._order_again(message, resent)

    def _order_again(self, message: SnapshotRequest, resent: int) -> None:
        """No answer: the request (and its clip order) may have been lost with a broker or
        edge connection. Order the clip again; an edge cuts each clip id once."""
        if message.clip is None or resent >= CLIP_ORDER_RESENDS:
            return
        again = msgspec.structs.replace(message, request_id=f"ev-{secrets.token_hex(8)}")
        try:
            self._outgoing.put_nowait(again)
        except asyncio.QueueFull:
            return
        self._resends[again.request_id] = again
        asyncio.get_running_loop().call_later(
            self.timeout, self._resent, again.request_id, resent + 1
        )

    def _resent(self, request_id: str, resent: int) -> None:
        message = self._resends.pop(request_id, None)
        if message is not None:  # still unanswered
            self._order_again(message, resent)

    def _count(self, name: str) -> None:
        setattr(self.stats, name, getattr(self.stats, name) + 1)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _run(self) -> None:
        attempt = 0
        while not self._stopping:
            try:
                async with self.endpoint.client(self.identifier) as client:
                    attempt = 0
                    await client.subscribe(f"{self.topics.prefix}/cameras/+/snapshot/+", qos=1)
                    self._ready.set()
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self._send(client))
                        group.create_task(self._receive(client))
            except* aiomqtt.MqttError as errors:
                # except*: the sender's or receiver's error comes wrapped by the TaskGroup; a
                # plain except let a broker restart end the whole alerts service.
                attempt += 1
                delay = backoff_delay(attempt)
                logger.warning(
                    "evidence: broker lost (%s); reconnecting in %.2f s",
                    errors.exceptions[0],
                    delay,
                )
                await asyncio.sleep(delay)

    async def _send(self, client: aiomqtt.Client) -> None:
        while not self._stopping:
            message = await self._outgoing.get()
            try:
                await client.publish(
                    self.topics.snapshot_request(message.camera_id),
                    SNAPSHOT_REQUEST.encode(message),
                    qos=1,
                )
            except aiomqtt.MqttError:
                self._outgoing.put_nowait(message)  # sent again on the next connection
                raise

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                parsed = self.topics.parse(message.topic.value)
            except TopicError:
                continue
            if parsed.extra is not None:
                self._resends.pop(parsed.extra, None)
            if parsed.extra is None or parsed.extra not in self._pending:
                continue  # a request of ours (same filter), a late or a repeated answer
            alert_id = self._pending.pop(parsed.extra)
            payload = message.payload if isinstance(message.payload, bytes) else b""
            try:
                header, jpeg = decode_frame(payload)
                TimeWindow().check(header)
            except (FrameDecodeError, PayloadError) as exc:
                logger.warning("evidence for alert %s unreadable: %s", alert_id, exc)
                self._count("rejected")
                continue
            try:
                await self._pool.execute(
                    """INSERT INTO alert_evidence (alert_id, request_id, jpeg, width, height,
                                                   taken_at)
                       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (alert_id) DO NOTHING""",
                    uuid.UUID(alert_id),
                    parsed.extra,
                    bytes(jpeg),
                    header.width,
                    header.height,
                    datetime.fromtimestamp(header.captured_at, UTC),
                )
            except DB_ERRORS as exc:
                logger.warning("evidence for alert %s not stored: %s", alert_id, exc)
                self._count("rejected")
                continue
            self._count("stored")

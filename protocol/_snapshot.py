"""Evidence snapshots, the centre's side: ask an edge for a camera's current picture at up to
``max_width`` and wait for the answer.

The request goes to ``Topics.snapshot_request(camera)`` (JSON :class:`SnapshotRequest`); the
edge answers on ``Topics.snapshot(camera, request_id)`` with a binary frame. The client
subscribes to the answer's topic before it asks, so an answer cannot slip past it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time

import aiomqtt

from ._background import Background, Work
from ._endpoint import MqttEndpoint
from ._frames import FrameDecodeError, FrameHeader, decode_frame
from ._messages import SNAPSHOT_REQUEST, SnapshotRequest
from ._times import TimeOutOfWindow, TimeWindow
from ._topics import Topics

logger = logging.getLogger(__name__)


class SnapshotError(RuntimeError):
    """No usable answer: ``reason`` says whether the edge was silent or answered garbage."""

    def __init__(self, camera_id: str, reason: str) -> None:
        super().__init__(f"snapshot of camera {camera_id!r}: {reason}")
        self.camera_id = camera_id
        self.reason = reason


class SnapshotClient(Background):
    """One MQTT connection over which many snapshot requests may be in flight at once.

    ``async with SnapshotClient(endpoint, topics) as snapshots:
    header, jpeg = await snapshots.request("mt-ql1a-01")``
    """

    def __init__(
        self, endpoint: MqttEndpoint, topics: Topics | None = None, *, identifier: str = ""
    ) -> None:
        self.endpoint = endpoint
        self.topics = topics or Topics()
        self.identifier = identifier or f"snapshot-{secrets.token_hex(4)}"
        self._waiting: dict[str, asyncio.Future[bytes]] = {}
        self._client: aiomqtt.Client | None = None

    async def _start(self, stack: contextlib.AsyncExitStack) -> Work:
        self._client = await stack.enter_async_context(self.endpoint.client(self.identifier))
        return {self.identifier: self._receive(self._client)}

    async def _receive(self, client: aiomqtt.Client) -> None:
        try:
            async for message in client.messages:
                waiter = self._waiting.get(message.topic.value)
                if waiter is not None and not waiter.done():
                    payload = message.payload
                    waiter.set_result(payload if isinstance(payload, bytes) else b"")
        except aiomqtt.MqttError as exc:
            # Everyone waiting learns it now rather than at their timeout.
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_exception(exc)

    async def request(
        self, camera_id: str, *, within: float = 5.0, max_width: int = 1920
    ) -> tuple[FrameHeader, bytes]:
        """The camera's current picture as (header, JPEG bytes); :class:`SnapshotError` when
        the edge does not answer within ``within`` seconds or answers something unreadable."""
        if self._client is None:
            raise RuntimeError("SnapshotClient is used outside its 'async with'")
        request_id = secrets.token_hex(8)
        answer_topic = self.topics.snapshot(camera_id, request_id)
        waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[answer_topic] = waiter
        try:
            await self._client.subscribe(answer_topic, qos=1)
            request = SnapshotRequest(
                request_id=request_id,
                camera_id=camera_id,
                requested_at=time.time(),
                max_width=max_width,
            )
            await self._client.publish(
                self.topics.snapshot_request(camera_id), SNAPSHOT_REQUEST.encode(request), qos=1
            )
            try:
                payload = await asyncio.wait_for(waiter, within)
            except TimeoutError as exc:
                raise SnapshotError(
                    camera_id, f"no answer within {within:.1f} s (is its edge online?)"
                ) from exc
            except aiomqtt.MqttError as exc:
                raise SnapshotError(camera_id, f"lost the broker while waiting: {exc}") from exc
        finally:
            del self._waiting[answer_topic]
            with contextlib.suppress(aiomqtt.MqttError):
                await self._client.unsubscribe(answer_topic)
        try:
            header, jpeg = decode_frame(payload)
            TimeWindow().check(header)
        except (FrameDecodeError, TimeOutOfWindow) as exc:
            raise SnapshotError(camera_id, f"unreadable answer: {exc}") from exc
        if header.camera_id != camera_id:
            raise SnapshotError(camera_id, f"answer is for camera {header.camera_id!r}")
        return header, bytes(jpeg)


async def request_snapshot(
    endpoint: MqttEndpoint,
    topics: Topics,
    camera_id: str,
    *,
    within: float = 5.0,
    max_width: int = 1920,
) -> tuple[FrameHeader, bytes]:
    """One snapshot over a connection of its own (for occasional callers and tools)."""
    async with SnapshotClient(endpoint, topics) as client:
        return await client.request(camera_id, within=within, max_width=max_width)

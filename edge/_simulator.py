"""The simulated province: every configured camera replays a real clip from its own offset,
and a fleet of access points reports telemetry, all through one MQTT connection."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import aiomqtt

from protocol import (
    EDGE_STATE,
    TELEMETRY,
    EdgeState,
    FrameHeader,
    MqttEndpoint,
    Province,
    Topics,
    backoff_delay,
    encode_frame,
    stop_tasks,
)

from ._clips import ClipLibrary, EncodedClip
from ._wifi import WifiFleet

logger = logging.getLogger(__name__)


@dataclass
class SimulatorStats:
    frames_published: int = 0
    batches_published: int = 0
    samples_published: int = 0
    publish_errors: int = 0


@dataclass
class _SimCamera:
    camera_id: str
    clip: EncodedClip
    period: float
    offset: float
    next_due: float
    seq: int = 0


def _offset(camera_id: str, length: float) -> float:
    digest = hashlib.sha256(camera_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 * length


class CitySimulator:
    def __init__(
        self,
        province: Province,
        endpoint: MqttEndpoint,
        clips: ClipLibrary,
        *,
        topics: Topics | None = None,
        agent_id: str = "sim-1",
        secret: bytes = b"simulated-edge",
        sample_period: float = 1.0,
        batch_period: float = 5.0,
    ) -> None:
        self.province = province
        self.endpoint = endpoint
        self.topics = topics or Topics()
        self.agent_id = agent_id
        self.sample_period = sample_period
        self.batch_period = batch_period
        self.stats = SimulatorStats()
        now = time.monotonic()
        self.cameras = []
        for camera in province.cameras:
            clip = clips.get(camera.resolved_source())
            self.cameras.append(
                _SimCamera(
                    camera.id,
                    clip,
                    1.0 / camera.fps,
                    _offset(camera.id, len(clip.frames) / clip.fps),
                    now,
                )
            )
        self.fleet = WifiFleet(
            province.access_points,
            secret=secret,
            timezone=province.timezone,
            first_seq=int(time.time() * 1000),
        )
        self._stack = contextlib.AsyncExitStack()
        self._started = now
        self._stopping = False

    async def __aenter__(self) -> Self:
        group = await self._stack.enter_async_context(asyncio.TaskGroup())
        self._tasks = [group.create_task(self._run(), name="simulator")]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping = True  # loops check it: a cancellation can be lost in a publish
        await stop_tasks(self._tasks)
        await self._stack.__aexit__(exc_type, exc, tb)

    def _state(self, status: str) -> bytes:
        return EDGE_STATE.encode(
            EdgeState(
                agent_id=self.agent_id,
                status="online" if status == "online" else "offline",
                reported_at=time.time(),
                cameras=[c.camera_id for c in self.cameras],
                access_points=[a.id for a in self.province.access_points],
                version="sim",
            )
        )

    async def _run(self) -> None:
        attempt = 0
        will = aiomqtt.Will(
            self.topics.edge_state(self.agent_id), self._state("offline"), qos=1, retain=True
        )
        while not self._stopping:
            try:
                async with self.endpoint.client(
                    f"edge-{self.agent_id}", will=will, max_inflight=1000
                ) as client:
                    attempt = 0
                    await client.publish(
                        self.topics.edge_state(self.agent_id),
                        self._state("online"),
                        qos=1,
                        retain=True,
                    )
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self._frames(client))
                        group.create_task(self._wifi(client))
            except* aiomqtt.MqttError as errors:
                attempt += 1
                delay = backoff_delay(attempt)
                logger.warning(
                    "simulator lost the broker (%s); reconnecting in %.2f seconds",
                    errors.exceptions[0],
                    delay,
                )
                await asyncio.sleep(delay)

    async def _frames(self, client: aiomqtt.Client) -> None:
        if not self.cameras:
            return
        while not self._stopping:
            now = time.monotonic()
            wall = time.time()
            due = [c for c in self.cameras if c.next_due <= now]
            for cam in due:
                position = cam.offset + (now - self._started)
                index = int(position * cam.clip.fps) % len(cam.clip.frames)
                cam.seq += 1
                header = FrameHeader(cam.camera_id, cam.seq, wall, cam.clip.width, cam.clip.height)
                await client.publish(
                    self.topics.frames(cam.camera_id),
                    encode_frame(header, cam.clip.frames[index]),
                    qos=0,
                )
                # Keep the cadence without drift; skip ticks we are too late for.
                cam.next_due = max(cam.next_due + cam.period, now)
            self.stats.frames_published += len(due)
            next_due = min(c.next_due for c in self.cameras)
            await asyncio.sleep(max(0.0, next_due - time.monotonic()))

    async def _wifi(self, client: aiomqtt.Client) -> None:
        if not self.province.access_points:
            return
        last_batch = time.monotonic()
        while not self._stopping:
            self.fleet.sample(time.time(), self.sample_period)
            if time.monotonic() - last_batch >= self.batch_period:
                last_batch = time.monotonic()
                for batch in self.fleet.drain(self.agent_id):
                    await client.publish(
                        self.topics.telemetry(batch.ap_id), TELEMETRY.encode(batch), qos=1
                    )
                    self.stats.batches_published += 1
                    self.stats.samples_published += len(batch.samples)
            await asyncio.sleep(self.sample_period)

"""The live vision worker: latest frame per camera in; events and traffic metrics out.

Frames are the one stream where the newest matters more than completeness: the receiver
keeps only the latest undecoded frame per camera and counts the ones it replaced. The
analysis runs in a worker thread over whatever frames are waiting, as one batch, while the
event loop keeps receiving. Once a second, frames or not, the worker also looks for cameras
that went silent (camera_offline) and closes their traffic intervals.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from dataclasses import dataclass

import aiomqtt

from protocol import (
    DEAD_LETTER,
    EVENT,
    TRAFFIC,
    Background,
    Camera,
    DeadLetterMessage,
    FrameDecodeError,
    MqttEndpoint,
    TimeWindow,
    Topics,
    Work,
    backoff_delay,
    decode_frame,
    encode_frame,
    unsolicited,
)

from ._decode import EncodedFrame, FrameDecoder
from ._pipeline import ANALYSIS_SIZE, BatchResult, VisionPipeline

logger = logging.getLogger(__name__)
CONSUMER = "vision"
MAX_FRAME_BYTES = 1024 * 1024
"""Largest frame payload analysed; analysis frames are tens of kilobytes."""


@dataclass
class VisionStats:
    frames_received: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0
    """Replaced by a newer frame of the same camera before analysis."""
    frames_rejected: int = 0
    """Unreadable: bad header, corrupt JPEG, size not as announced, unknown camera."""
    events_published: int = 0
    metrics_published: int = 0
    checks: int = 0
    """Periodic checks for silent cameras done."""
    batches: int = 0


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (1-based i) as (i, n)."""
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError as exc:
        raise ValueError(f"shard {text!r} must look like 2/4") from exc
    if not 1 <= i <= n:
        raise ValueError(f"shard {text!r}: i must be between 1 and n")
    return i, n


def shard_cameras(cameras: list[Camera], shard: tuple[int, int]) -> list[Camera]:
    i, n = shard
    return [c for k, c in enumerate(sorted(cameras, key=lambda c: c.id)) if k % n == i - 1]


class VisionWorker(Background):
    def __init__(
        self,
        cameras: list[Camera],
        endpoint: MqttEndpoint,
        *,
        topics: Topics | None = None,
        timezone: str = "Asia/Ho_Chi_Minh",
        identifier: str = "vision-1",
        size: tuple[int, int] = ANALYSIS_SIZE,
        check_every: float = 1.0,
        time_window: TimeWindow | None = None,
        max_frame_bytes: int = MAX_FRAME_BYTES,
    ) -> None:
        self.endpoint = endpoint
        self.topics = topics or Topics()
        self.identifier = identifier
        self.pipeline = VisionPipeline(cameras, timezone=timezone, size=size)
        self.decoder = FrameDecoder(size, len(cameras))
        self.check_every = check_every
        self.time_window = time_window or TimeWindow()
        """A frame captured outside it is refused (a dead letter)."""
        self.max_frame_bytes = max_frame_bytes
        self.stats = VisionStats()
        self._latest: dict[int, EncodedFrame] = {}
        self._unsent: collections.deque[tuple[str, bytes, bool]] = collections.deque()
        """(topic, payload, is an event) not yet acknowledged by the broker."""
        self._ready = asyncio.Event()
        self._progress = asyncio.Condition()
        self._subscribed = asyncio.Event()

    async def _start(self, stack: contextlib.AsyncExitStack) -> Work:
        return {"vision-worker": self._run()}

    async def _run(self) -> None:
        attempt = 0
        while not self._stopping:
            try:
                async with self.endpoint.client(self.identifier) as client:
                    attempt = 0
                    # Only our cameras: with shards, other workers take the rest.
                    await client.subscribe(
                        [(self.topics.frames(c.id), 0) for c in self.pipeline.cameras]
                    )
                    self._subscribed.set()
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self._receive(client))
                        group.create_task(self._analyse(client))
            except* aiomqtt.MqttError as errors:
                attempt += 1
                delay = backoff_delay(attempt)
                logger.warning(
                    "vision lost the broker (%s); reconnecting in %.2f seconds",
                    errors.exceptions[0],
                    delay,
                )
                await asyncio.sleep(delay)

    async def _receive(self, client: aiomqtt.Client) -> None:
        frames = aiomqtt.Wildcard(self.topics.all_frames())
        async for message in client.messages:
            if not message.topic.matches(frames):
                unsolicited(self.identifier, message)
                continue
            self.stats.frames_received += 1
            payload = message.payload if isinstance(message.payload, bytes) else b""
            try:
                if len(payload) > self.max_frame_bytes:
                    raise FrameDecodeError(
                        f"frame payload of {len(payload)} bytes is larger than the "
                        f"{self.max_frame_bytes} accepted"
                    )
                header, jpeg = decode_frame(payload)
                self.time_window.check(header)
                index = self.pipeline.index.get(header.camera_id)
                if index is None:
                    raise FrameDecodeError(f"camera {header.camera_id!r} is not configured here")
                if self.topics.parse(message.topic.value).source_id != header.camera_id:
                    raise FrameDecodeError("frame camera id does not match its topic")
            except (FrameDecodeError, ValueError) as exc:
                await self._reject(client, message.topic.value, str(exc), payload)
                continue
            if index in self._latest:
                self.stats.frames_dropped += 1
            self._latest[index] = EncodedFrame(index, header, bytes(jpeg))
            self._ready.set()

    async def _reject(
        self, client: aiomqtt.Client, topic: str, reason: str, payload: bytes
    ) -> None:
        async with self._progress:
            self.stats.frames_rejected += 1
            self._progress.notify_all()
        logger.warning("rejected frame on %s: %s", topic, reason)
        letter = DeadLetterMessage(
            consumer=CONSUMER,
            topic=topic,
            reason=reason,
            payload=payload[:65536],
            received_at=time.time(),
        )
        await client.publish(self.topics.dead_letters(CONSUMER), DEAD_LETTER.encode(letter), qos=1)

    async def _analyse(self, client: aiomqtt.Client) -> None:
        await self._send_unsent(client)  # what the last connection could not send
        next_check = time.monotonic() + self.check_every
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(next_check - time.monotonic(), 0.0)):
                    await self._ready.wait()
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + self.check_every
                result = await asyncio.to_thread(self.pipeline.silence, time.time())
                await self._publish(client, result)
                async with self._progress:
                    self.stats.checks += 1
                    self._progress.notify_all()
            if not self._ready.is_set():
                continue
            self._ready.clear()
            frames, self._latest = self._latest, {}
            await self._analyse_batch(client, list(frames.values()))

    async def _analyse_batch(self, client: aiomqtt.Client, frames: list[EncodedFrame]) -> None:
        batch, refused = await asyncio.to_thread(self.decoder.decode, frames)
        by_camera = {f.camera: f for f in frames}
        for bad in refused:
            camera_id = self.pipeline.cameras[bad.camera].id
            await self._reject(
                client,
                self.topics.frames(camera_id),
                f"camera {camera_id}: {bad.reason}",
                encode_frame(by_camera[bad.camera].header, bytes(by_camera[bad.camera].jpeg)),
            )
        if batch is None:
            return
        try:
            result = await asyncio.to_thread(self.pipeline.process, batch, time.time())
        except Exception as exc:
            # A bug meeting a frame nobody foresaw: these frames are lost (dead letters with
            # the reason), the worker goes on with the next ones.
            logger.exception("vision could not analyse a batch of %d frames", len(batch.cameras))
            for frame in (by_camera[int(c)] for c in batch.cameras):
                await self._reject(
                    client,
                    self.topics.frames(self.pipeline.cameras[frame.camera].id),
                    f"analysis failed: {type(exc).__name__}: {exc}",
                    encode_frame(frame.header, bytes(frame.jpeg)),
                )
            return
        self.stats.batches += 1
        await self._publish(client, result)
        async with self._progress:
            self.stats.frames_processed += len(batch.cameras)
            self._progress.notify_all()

    async def _publish(self, client: aiomqtt.Client, result: BatchResult) -> None:
        # Line crossings are counted into the metrics, not sent one by one.
        for event in result.events:
            self._unsent.append((self.topics.events(event.camera_id), EVENT.encode(event), True))
        for metrics in result.metrics:
            topic = self.topics.traffic(metrics.camera_id)
            self._unsent.append((topic, TRAFFIC.encode(metrics), False))
        await self._send_unsent(client)

    async def _send_unsent(self, client: aiomqtt.Client) -> None:
        """Publish what waits, oldest first, each forgotten only once the broker has it: a
        broker restart in the middle of a batch's events must not lose the rest of them (an
        intrusion whose end is lost stays open; a lost interval is lost traffic counts).
        What a lost connection leaves unsent goes first on the next one."""
        while self._unsent:
            if self._stopping:  # aiomqtt's publish may swallow a cancellation (3.11)
                return
            topic, payload, is_event = self._unsent[0]
            await client.publish(topic, payload, qos=1)
            self._unsent.popleft()
            if is_event:
                self.stats.events_published += 1
            else:
                self.stats.metrics_published += 1

    async def wait_until_subscribed(self) -> None:
        await self._subscribed.wait()

    async def wait_for_frames(self, settled: int) -> None:
        """Return once ``settled`` frames have been analysed or dropped (tests, benchmarks)."""
        async with self._progress:
            await self._progress.wait_for(
                lambda: (
                    self.stats.frames_processed
                    + self.stats.frames_dropped
                    + self.stats.frames_rejected
                    >= settled
                )
            )

    async def wait_for_checks(self, count: int) -> None:
        """Return once ``count`` periodic checks for silent cameras have run (tests)."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.stats.checks >= count)

"""The simulated province: every configured camera replays a real clip from its own offset,
and a fleet of access points reports telemetry, all through one MQTT connection.

Each clip frame is decoded, resized and JPEG-encoded once (:class:`ClipLibrary`); a camera
publishes the bytes of the frame its clock points at, so the province costs little CPU.
Telemetry goes through the same spool and forwarder as a real agent's (in memory here), so
a broker restart loses nothing. Incidents (:mod:`._incidents`) cover cameras, take them
offline, bring APs down and crowd sites; snapshot requests are answered from the clips at
source resolution.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass

import aiomqtt
import cv2
import numpy as np

from protocol import (
    CAMERA_STATE,
    EDGE_STATE,
    SNAPSHOT_REQUEST,
    Background,
    CameraState,
    ClipManifest,
    ClipOrder,
    EdgeState,
    FrameHeader,
    MqttEndpoint,
    PayloadError,
    Province,
    TopicError,
    Topics,
    Work,
    backoff_delay,
    encode_frame,
    stop_tasks,
)

from ._clip_upload import ClipUploader
from ._clips import ClipLibrary, EncodedClip
from ._collectors import SimulatedCollector
from ._incidents import Incident, IncidentBoard, IncidentKind
from ._ring import RingSettings
from ._sim_clips import cut_replayed
from ._spool import Spool
from ._telemetry import SpoolForwarder, WifiPipeline
from ._wifi import WifiFleet

logger = logging.getLogger(__name__)


@dataclass
class SimulatorStats:
    frames_published: int = 0
    dark_frames: int = 0
    batches_published: int = 0
    samples_published: int = 0
    snapshots_answered: int = 0
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


def dark_jpeg(width: int, height: int, level: int = 8) -> bytes:
    """What a covered lens sends: an almost black picture."""
    ok, jpeg = cv2.imencode(".jpg", np.full((height, width), level, np.uint8))
    if not ok:
        raise RuntimeError("cannot encode a dark frame")
    return jpeg.tobytes()


def painted(jpeg: bytes, incidents: list[Incident], elapsed: float) -> bytes:
    """An analysis frame with the objects of a camera's video incidents drawn in."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    if image is None:
        return jpeg
    for incident in incidents:
        incident.paint(image, elapsed)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return encoded.tobytes() if ok else jpeg


class CitySimulator(Background):
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
        state_period: float = 30.0,
        incidents: list[Incident] | None = None,
        uploader: ClipUploader | None = None,
        evidence: RingSettings | None = None,
    ) -> None:
        self.province = province
        self.endpoint = endpoint
        self.topics = topics or Topics()
        self.agent_id = agent_id
        self.state_period = state_period
        self.stats = SimulatorStats()
        """Live counters (status reporters read the same object again and again)."""
        now = time.monotonic()
        self.cameras = []
        clips.prefetch(c.resolved_source() for c in province.cameras)
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
        self._by_id = {c.camera_id: c for c in self.cameras}
        self._dark = {
            size: dark_jpeg(*size) for size in {(c.clip.width, c.clip.height) for c in self.cameras}
        }
        self.incidents = IncidentBoard(incidents)
        self._site_aps: dict[str, list[str]] = {}
        for ap in province.access_points:
            self._site_aps.setdefault(ap.site, []).append(ap.id)
        self.fleet = WifiFleet(province.access_points, secret=secret, timezone=province.timezone)
        self.spool = Spool(None)
        self.forwarder = SpoolForwarder(self.spool, window=500)
        self.pipeline = WifiPipeline(
            [SimulatedCollector(self.fleet, period=sample_period)]
            if province.access_points
            else [],
            self.spool,
            self.topics,
            agent_id,
            poll_period=sample_period,
            batch_period=batch_period,
            on_spooled=self.forwarder.wake,
        )
        self.uploader = uploader
        """Evidence clips ordered by alerts are cut from the clips and uploaded (optional)."""
        self.evidence = evidence or RingSettings()
        self._clip_tasks: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()
        self._states_changed = asyncio.Event()
        self._started = now

    async def _start(self, stack: contextlib.AsyncExitStack) -> Work:
        self.spool.open()
        stack.callback(self.spool.close)
        return {
            "simulator": self._run(),
            "simulated wifi": self.pipeline.run(),
            **({"clip uploads": self._upload_clips()} if self.uploader else {}),
            "incidents": self._follow_incidents(),
            "snapshots": self._snapshot_session(),
        }

    # Incidents --------------------------------------------------------------------------
    def _offline(self) -> set[str]:
        return self.incidents.targets(IncidentKind.CAMERA_OFFLINE)

    async def _follow_incidents(self, tick: float = 0.1) -> None:
        """Apply the incident board to the fleet and the camera states, every ``tick``."""
        offline = self._offline()
        while not self._stopping:
            self.incidents.advance(time.monotonic() - self._started)
            self.fleet.down = self.incidents.targets(IncidentKind.AP_DOWN)
            self.fleet.crowds = self.incidents.crowds(self._site_aps)
            if self._offline() != offline:
                offline = self._offline()
                self._states_changed.set()
            self.stats.batches_published = self.forwarder.stats.published
            self.stats.samples_published = self.pipeline.stats.samples
            await asyncio.sleep(tick)

    # The connection ---------------------------------------------------------------------
    def _edge_state(self, status: str) -> bytes:
        return EDGE_STATE.encode(
            EdgeState(
                agent_id=self.agent_id,
                status="online" if status == "online" else "offline",
                reported_at=time.time(),
                cameras=[c.camera_id for c in self.cameras],
                access_points=[a.id for a in self.province.access_points],
                version="sim",
                collectors=self.pipeline.collector_states,
                spooled_batches=len(self.spool),
            )
        )

    async def _run(self) -> None:
        attempt = 0
        will = aiomqtt.Will(
            self.topics.edge_state(self.agent_id), self._edge_state("offline"), qos=1, retain=True
        )
        while not self._stopping:
            try:
                async with self.endpoint.client(
                    f"edge-{self.agent_id}", will=will, max_inflight=1000
                ) as client:
                    attempt = 0
                    await client.publish(
                        self.topics.edge_state(self.agent_id),
                        self._edge_state("online"),
                        qos=1,
                        retain=True,
                    )
                    await client.subscribe(self.topics.edge_stored(self.agent_id), qos=1)
                    self.connected.set()
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self._frames(client))
                        group.create_task(self.forwarder.run(client))
                        group.create_task(self._camera_states(client))
                        group.create_task(self._receipts(client))
            except* aiomqtt.MqttError as errors:
                self.connected.clear()
                self.stats.publish_errors += 1
                attempt += 1
                delay = min(backoff_delay(attempt), 10.0)
                logger.warning(
                    "simulator lost the broker (%s); reconnecting in %.2f seconds",
                    errors.exceptions[0],
                    delay,
                )
                await asyncio.sleep(delay)

    async def _receipts(self, client: aiomqtt.Client) -> None:
        """Ingest's receipts: the spool forgets what the centre stored. (Anything else is a
        message the broker should not have sent: amqtt replays retained ones.)"""
        receipts = self.topics.edge_stored(self.agent_id)
        async for message in client.messages:
            if message.topic.value == receipts and isinstance(message.payload, bytes):
                await self.forwarder.receive(message.payload)

    def _clock(self, painters: list[Incident], now: float) -> float:
        """The clip's clock: held at its start while a congestion incident is on (a queue:
        nothing moves), else ``now``."""
        for incident in painters:
            if incident.kind is IncidentKind.CONGESTION:
                return self._started + incident.at
        return now

    def _frame_index(self, cam: _SimCamera, now: float) -> int:
        position = cam.offset + (now - self._started)
        return int(position * cam.clip.fps) % len(cam.clip.frames)

    async def _frames(self, client: aiomqtt.Client) -> None:
        if not self.cameras:
            return
        while not self._stopping:
            now = time.monotonic()
            wall = time.time()
            offline = self._offline()
            covered = self.incidents.targets(IncidentKind.CAMERA_COVERED)
            due = [c for c in self.cameras if c.next_due <= now]
            for cam in due:
                # Keep the cadence without drift; skip ticks we are too late for.
                cam.next_due = max(cam.next_due + cam.period, now)
                if cam.camera_id in offline:
                    continue
                if cam.camera_id in covered:
                    jpeg = self._dark[(cam.clip.width, cam.clip.height)]
                    self.stats.dark_frames += 1
                else:
                    painters = self.incidents.painters(cam.camera_id)
                    jpeg = cam.clip.frames[self._frame_index(cam, self._clock(painters, now))]
                    if painters:
                        jpeg = painted(jpeg, painters, now - self._started)
                cam.seq += 1
                header = FrameHeader(cam.camera_id, cam.seq, wall, cam.clip.width, cam.clip.height)
                await client.publish(
                    self.topics.frames(cam.camera_id), encode_frame(header, jpeg), qos=0
                )
                self.stats.frames_published += 1
            next_due = min(c.next_due for c in self.cameras)
            await asyncio.sleep(max(0.0, next_due - time.monotonic()))

    def camera_state(self, camera_id: str) -> CameraState:
        cam = self._by_id[camera_id]
        if camera_id in self._offline():
            return CameraState(
                camera_id=camera_id,
                status="offline",
                fps=0.0,
                reported_at=time.time(),
                detail="simulated: camera offline",
            )
        return CameraState(
            camera_id=camera_id,
            status="online",
            fps=round(1.0 / cam.period, 2),
            reported_at=time.time(),
            last_frame_at=time.time(),
        )

    async def _camera_states(self, client: aiomqtt.Client) -> None:
        """Every camera's state now, on every change and every ``state_period``."""
        while not self._stopping:
            self._states_changed.clear()
            for cam in self.cameras:
                await client.publish(
                    self.topics.camera_state(cam.camera_id),
                    CAMERA_STATE.encode(self.camera_state(cam.camera_id)),
                    qos=1,
                    retain=True,
                )
            await client.publish(
                self.topics.edge_state(self.agent_id),
                self._edge_state("online"),
                qos=1,
                retain=True,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._states_changed.wait(), self.state_period)

    async def _snapshot_session(self) -> None:
        """Snapshot requests on a connection of their own: amqtt (the embedded demo broker)
        can kill a session that subscribes while the broker still replays retained messages
        to it; frames and telemetry must not depend on that."""
        attempt = 0
        while not self._stopping and self.cameras:
            try:
                async with self.endpoint.client(f"edge-{self.agent_id}-snapshots") as client:
                    await client.subscribe(f"{self.topics.prefix}/cameras/+/snapshot/request", 1)
                    attempt = 0
                    await self._snapshots(client)
            except aiomqtt.MqttError as exc:
                attempt += 1
                delay = min(backoff_delay(attempt), 10.0)
                logger.warning(
                    "simulator snapshots lost the broker (%s); reconnecting in %.2f seconds",
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _snapshots(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            try:
                camera_id = self.topics.parse(message.topic.value).source_id
                request = SNAPSHOT_REQUEST.decode(payload)
                cam = self._by_id[camera_id]
            except (TopicError, PayloadError, KeyError) as exc:
                logger.warning("simulator: bad snapshot request on %s: %s", message.topic, exc)
                continue
            if camera_id in self._offline():
                continue  # an offline camera cannot answer
            painters = self.incidents.painters(camera_id)
            index = self._frame_index(cam, self._clock(painters, time.monotonic()))
            covered = camera_id in self.incidents.targets(IncidentKind.CAMERA_COVERED)
            answer = await asyncio.to_thread(self._snapshot, cam, index, request.max_width, covered)
            if answer is None:
                continue
            await client.publish(
                self.topics.snapshot(camera_id, request.request_id),
                encode_frame(*answer),
                qos=1,
            )
            self.stats.snapshots_answered += 1
            if (
                request.clip is not None
                and self.uploader is not None
                and self.uploader.first_order(request.clip.clip_id)
            ):
                task = asyncio.create_task(self._cut(cam, request.clip, self.uploader))
                self._clip_tasks.add(task)
                task.add_done_callback(self._clip_tasks.discard)

    async def _upload_clips(self) -> None:
        if self.uploader is None:
            return
        try:
            await self.uploader.run()
        finally:
            await stop_tasks(list(self._clip_tasks))

    async def _cut(self, cam: _SimCamera, order: ClipOrder, uploader: ClipUploader) -> None:
        """The frames the camera showed from ``pre`` before to ``post`` after the event."""
        start = order.event_at - order.pre
        wall_to_monotonic = time.monotonic() - time.time()
        first = self._frame_index(cam, start + wall_to_monotonic)
        wait = order.event_at + order.post - time.time()
        await asyncio.sleep(max(0.0, wait))  # a clip's end lies in the future: a schedule
        clip = await asyncio.to_thread(
            cut_replayed,
            cam.clip.path,
            cam.camera_id,
            first_frame=first,
            frames=round((order.pre + order.post) * cam.clip.fps),
            file_fps=cam.clip.fps,
            started_at=start,
            settings=self.evidence,
        )
        manifest = ClipManifest(
            clip_id=order.clip_id,
            alert_id=order.alert_id,
            camera_id=cam.camera_id,
            agent_id=self.agent_id,
            event_at=order.event_at,
            started_at=clip.started_at,
            ended_at=clip.ended_at,
            frames=clip.frames,
            size=len(clip.mp4),
            sha256=clip.sha256,
            cut_at=time.time(),
        )
        await asyncio.to_thread(uploader.outbox.put, manifest, clip.mp4)
        uploader.stats.queued += 1

    def _snapshot(
        self, cam: _SimCamera, index: int, max_width: int, covered: bool
    ) -> tuple[FrameHeader, bytes] | None:
        """The clip's frame at source resolution (narrowed to ``max_width``)."""
        capture = cv2.VideoCapture(str(cam.clip.path))
        try:
            capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, image = capture.read()
        finally:
            capture.release()
        if not ok:
            logger.warning("simulator: cannot read frame %d of %s", index, cam.clip.path)
            return None
        height, width = image.shape[:2]
        if width > max_width:
            height, width = max(1, round(height * max_width / width)), max_width
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        for incident in self.incidents.painters(cam.camera_id):
            incident.paint(image, time.monotonic() - self._started)
        if covered:
            image = np.full_like(image, 8)
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            return None
        header = FrameHeader(cam.camera_id, cam.seq, time.time(), width, height)
        return header, jpeg.tobytes()

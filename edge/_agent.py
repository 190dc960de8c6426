"""The edge agent: a group of cameras and access points, one broker connection.

Camera readers (threads) and Wi-Fi collectors run whether or not the broker is there; the
connection, when it is up, carries the latest frames (QoS 0), the spool (QoS 1, in order),
the retained camera and edge states, and the answers to snapshot requests. The broker's last
will marks the agent offline if the connection dies; a clean stop says so itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import aiomqtt
import msgspec

from protocol import (
    CAMERA_STATE,
    EDGE_STATE,
    SNAPSHOT_REQUEST,
    ClipManifest,
    ClipOrder,
    EdgeState,
    PayloadError,
    TopicError,
    backoff_delay,
    encode_frame,
    stop_tasks,
)

from ._camera import CameraReader
from ._clip_upload import ClipOutbox, ClipUploader
from ._collectors import ControllerCollector, NewVisitors, SimulatedCollector, WifiCollector
from ._config import AgentPlan, ControllerSource
from ._ring import ClipRing, CutError, RingSettings
from ._spool import Spool
from ._telemetry import SpoolForwarder, WifiPipeline
from ._wifi import WifiFleet

logger = logging.getLogger(__name__)


def _version() -> str:
    try:
        return importlib.metadata.version("ioc-province")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


@dataclass
class AgentStats:
    connects: int = 0
    frames_published: int = 0
    snapshots_answered: int = 0
    bad_requests: int = 0


def build_collectors(plan: AgentPlan) -> list[WifiCollector]:
    """The collectors an agent configuration asks for."""
    wifi = plan.config.wifi
    if wifi is None:
        return []
    collectors: list[WifiCollector] = []
    for source in wifi.collectors:
        wanted = set(source.access_points or [ap.id for ap in plan.access_points])
        aps = [ap for ap in plan.access_points if ap.id in wanted]
        if isinstance(source, ControllerSource):
            collectors.append(
                ControllerCollector(
                    plan.controller_urls[source.url],
                    [ap.id for ap in aps],
                    NewVisitors(plan.hash_secret, plan.timezone),
                    token=plan.controller_tokens.get(source.url),
                    id_map=source.id_map,
                    timeout=source.timeout,
                    verify=str(plan.base_dir / source.ca_file) if source.ca_file else True,
                )
            )
        else:
            fleet = WifiFleet(
                aps, secret=plan.hash_secret, timezone=plan.timezone, seed=source.seed
            )
            collectors.append(SimulatedCollector(fleet, period=wifi.poll_period))
    return collectors


class EdgeAgent:
    """``async with EdgeAgent(plan) as agent:`` runs the agent until the block ends."""

    def __init__(
        self,
        plan: AgentPlan,
        *,
        collectors: Sequence[WifiCollector] | None = None,
        drain_timeout: float = 5.0,
    ) -> None:
        self.plan = plan
        self.agent_id = plan.config.agent_id
        self.topics = plan.topics
        self.drain_timeout = drain_timeout
        settings = plan.config.camera_options.settings()
        media = plan.base_dir / plan.config.camera_options.media_dir
        self.readers = [
            CameraReader(camera, settings, base_dir=media, on_frame=self._frame_ready)
            for camera in plan.cameras
        ]
        self._by_id = {r.camera.id: r for r in self.readers}
        spool_options = plan.config.spool
        self.spool = Spool(
            plan.base_dir / spool_options.path,
            max_bytes=int(spool_options.max_megabytes * 1024 * 1024),
            when_full=spool_options.when_full,
        )
        self.forwarder = SpoolForwarder(self.spool, resend_after=spool_options.resend_after)
        wifi = plan.config.wifi
        self.pipeline = WifiPipeline(
            build_collectors(plan) if collectors is None else collectors,
            self.spool,
            self.topics,
            self.agent_id,
            poll_period=wifi.poll_period if wifi else 5.0,
            batch_period=wifi.batch_period if wifi else 30.0,
            on_spooled=self.forwarder.wake,
        )
        self.uploader: ClipUploader | None = None
        self._clip_tasks: set[asyncio.Task[None]] = set()
        evidence = plan.config.evidence
        if evidence is not None:
            ring = RingSettings(
                evidence.width, evidence.height, evidence.fps, evidence.seconds, evidence.crf
            )
            for reader in self.readers:
                reader.ring = ClipRing(reader.camera.id, ring)
            self.uploader = ClipUploader(
                ClipOutbox(plan.base_dir / evidence.dir),
                evidence.api_url,
                plan.evidence_credential or "",
                verify=str(plan.base_dir / evidence.ca_file) if evidence.ca_file else True,
            )
        self.stats = AgentStats()
        self.connected = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._frames = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._said_goodbye = False
        self._stack = contextlib.AsyncExitStack()
        self._pipeline_task: asyncio.Task[None] | None = None
        self._session_task: asyncio.Task[None] | None = None

    # Lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        try:
            return await self._start()
        except BaseException:
            await self._stack.aclose()
            raise

    async def _start(self) -> Self:
        self._loop = asyncio.get_running_loop()
        self.spool.open()
        self._stack.callback(self.spool.close)
        for collector in self.pipeline.collectors:
            self._stack.push_async_callback(collector.aclose)
        for reader in self.readers:
            reader.start()
        self._stack.push_async_callback(self._stop_readers)
        self._pipeline_task = asyncio.create_task(self.pipeline.run(), name="wifi pipeline")
        self._session_task = asyncio.create_task(self._session(), name=f"edge {self.agent_id}")
        if self.uploader is not None:
            uploads = asyncio.create_task(self.uploader.run(), name="clip uploads")

            async def stop_clip_work() -> None:
                # Clips still being cut are lost with the agent; cut ones wait on disk.
                await stop_tasks([uploads, *self._clip_tasks])

            self._stack.push_async_callback(stop_clip_work)
        logger.info(
            "edge %s: %d cameras, %d access points, spool %s, broker %s",
            self.agent_id,
            len(self.readers),
            len(self.plan.access_points),
            self.spool.path,
            self.plan.endpoint.redacted(),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._shut_down()
        finally:
            await self._stack.__aexit__(exc_type, exc, tb)

    async def _shut_down(self) -> None:
        """Stop gathering, spool what was gathered, give the broker a moment to take the
        spool (the rest waits on disk for the next start), say goodbye, disconnect."""
        if self._pipeline_task is not None:
            await stop_tasks([self._pipeline_task])
        await self.pipeline.flush()
        client = self._client
        if client is not None:
            with contextlib.suppress(TimeoutError, aiomqtt.MqttError):
                async with asyncio.timeout(self.drain_timeout):
                    # The broker has it all; what has no receipt yet stays on disk and goes
                    # again at the next start (the centre ignores a repeat).
                    await self.forwarder.wait_for(lambda: self.spool.unsent() == 0)
                    self._said_goodbye = True  # no state report may follow the goodbye
                    await self._publish_goodbye(client)
        self._stopping = True  # loops check it: a cancellation can be lost in a publish
        if self._session_task is not None:
            await stop_tasks([self._session_task])
        for task in (self._pipeline_task, self._session_task):
            if task is not None and not task.cancelled() and task.exception() is not None:
                raise RuntimeError(f"edge {self.agent_id}: {task.get_name()} failed") from (
                    task.exception()
                )

    async def run_until_failure(self) -> None:
        """Wait as long as the agent runs; raise if one of its loops failed (a bug: sources
        and broker failures are retried inside). Cancelling this wait stops nothing."""
        tasks = [t for t in (self._pipeline_task, self._session_task) if t is not None]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise RuntimeError(f"edge {self.agent_id}: {task.get_name()} failed") from (
                    task.exception()
                )

    async def _stop_readers(self) -> None:
        for reader in self.readers:
            reader.request_stop()  # all at once, then wait for each
        await asyncio.gather(*(asyncio.to_thread(r.stop) for r in self.readers))

    def _frame_ready(self) -> None:
        """Called from reader threads."""
        loop = self._loop
        if loop is not None and not self._frames.is_set():
            with contextlib.suppress(RuntimeError):  # the loop closed while a reader ran
                loop.call_soon_threadsafe(self._frames.set)

    # The connection --------------------------------------------------------------------
    def edge_state(self, status: str) -> bytes:
        return EDGE_STATE.encode(
            EdgeState(
                agent_id=self.agent_id,
                status="online" if status == "online" else "offline",
                reported_at=time.time(),
                cameras=[r.camera.id for r in self.readers],
                access_points=[ap.id for ap in self.plan.access_points],
                version=_version(),
                collectors=self.pipeline.collector_states,
                spooled_batches=len(self.spool),
                spool_dropped_batches=self.spool.stats.dropped,
            )
        )

    async def _session(self) -> None:
        attempt = 0
        delay = 0.0
        will = aiomqtt.Will(
            self.topics.edge_state(self.agent_id), self.edge_state("offline"), qos=1, retain=True
        )
        while not self._stopping:
            try:
                async with self.plan.endpoint.client(
                    f"edge-{self.agent_id}", will=will, max_inflight=200
                ) as client:
                    attempt = 0
                    self.stats.connects += 1
                    await self._on_connect(client)
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self._publish_frames(client), name="frames")
                        group.create_task(self.forwarder.run(client), name="spool")
                        group.create_task(self._report_states(client), name="states")
                        group.create_task(self._receive(client), name="receive")
            except* aiomqtt.MqttError as errors:
                attempt += 1
                delay = min(backoff_delay(attempt), self.plan.config.mqtt.reconnect_max)
                logger.warning(
                    "edge %s: no broker at %s (%s); reconnecting in %.2f seconds",
                    self.agent_id,
                    self.plan.endpoint.redacted(),
                    errors.exceptions[0],
                    delay,
                )
            finally:
                self._client = None
                self.connected.clear()
            if not self._stopping:
                await asyncio.sleep(delay)

    async def _on_connect(self, client: aiomqtt.Client) -> None:
        await client.publish(
            self.topics.edge_state(self.agent_id), self.edge_state("online"), qos=1, retain=True
        )
        await client.subscribe(
            [(self.topics.edge_stored(self.agent_id), 1)]
            + [(self.topics.snapshot_request(r.camera.id), 1) for r in self.readers]
        )
        self._client = client
        self.connected.set()
        logger.info("edge %s connected to %s", self.agent_id, self.plan.endpoint.redacted())

    async def _publish_goodbye(self, client: aiomqtt.Client) -> None:
        for reader in self.readers:
            final = msgspec.structs.replace(
                reader.state(),
                status="offline",
                fps=0.0,
                reported_at=time.time(),
                detail="edge agent stopped",
            )
            await client.publish(
                self.topics.camera_state(reader.camera.id),
                CAMERA_STATE.encode(final),
                qos=1,
                retain=True,
            )
        await client.publish(
            self.topics.edge_state(self.agent_id), self.edge_state("offline"), qos=1, retain=True
        )

    async def _publish_frames(self, client: aiomqtt.Client) -> None:
        while not self._stopping:
            await self._frames.wait()
            self._frames.clear()
            for reader in self.readers:
                frame = reader.slot.take()
                if frame is not None:
                    # Awaiting each publish keeps at most one frame per camera in flight:
                    # a slow broker backs up into the slots, where frames are replaced.
                    await client.publish(
                        self.topics.frames(reader.camera.id),
                        encode_frame(frame.header, frame.jpeg),
                        qos=0,
                    )
                    self.stats.frames_published += 1

    async def _report_states(self, client: aiomqtt.Client) -> None:
        """Camera states when they change (checked every second) and all of them, with the
        edge's own, every ``state_period``."""
        period = self.plan.config.state_period
        published: dict[str, str] = {}
        last_full = 0.0
        while not self._stopping:
            full = time.monotonic() - last_full >= period
            for reader in self.readers:
                state = reader.state()
                if self._said_goodbye:
                    return
                if full or published.get(state.camera_id) != state.status:
                    if published.get(state.camera_id) not in (None, state.status):
                        logger.info(
                            "camera %s is %s (%s)", state.camera_id, state.status, state.detail
                        )
                    await client.publish(
                        self.topics.camera_state(state.camera_id),
                        CAMERA_STATE.encode(state),
                        qos=1,
                        retain=True,
                    )
                    published[state.camera_id] = state.status
            if full and not self._said_goodbye:
                last_full = time.monotonic()
                await client.publish(
                    self.topics.edge_state(self.agent_id),
                    self.edge_state("online"),
                    qos=1,
                    retain=True,
                )
            await asyncio.sleep(min(1.0, period))

    async def _receive(self, client: aiomqtt.Client) -> None:
        """Receipts of stored telemetry and snapshot requests, as they come."""
        receipts = self.topics.edge_stored(self.agent_id)
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if message.topic.value == receipts:
                await self.forwarder.receive(payload)
            else:
                await self._answer_snapshot(client, message.topic.value, payload)

    async def _answer_snapshot(self, client: aiomqtt.Client, topic: str, payload: bytes) -> None:
        """Answer one snapshot request (a bad one is counted and logged)."""
        try:
            parsed = self.topics.parse(topic)
            request = SNAPSHOT_REQUEST.decode(payload)
            if request.camera_id != parsed.source_id:
                raise PayloadError(f"request names camera {request.camera_id!r}")
            reader = self._by_id[parsed.source_id]
        except (TopicError, PayloadError, KeyError) as exc:
            self.stats.bad_requests += 1
            logger.warning(
                "edge %s: bad snapshot request on %s: %s",
                self.agent_id,
                topic,
                exc,
            )
            return
        answer = await asyncio.to_thread(reader.snapshot, request.max_width)
        if answer is None:
            logger.warning(
                "camera %s: no frame yet for snapshot %s", reader.camera.id, request.request_id
            )
            return
        await client.publish(
            self.topics.snapshot(reader.camera.id, request.request_id),
            encode_frame(*answer),
            qos=1,
        )
        self.stats.snapshots_answered += 1
        if (
            request.clip is not None
            and self.uploader is not None
            and reader.ring
            and self.uploader.first_order(request.clip.clip_id)
        ):
            task = asyncio.create_task(
                self._cut(reader.ring, request.clip, self.uploader), name="clip"
            )
            self._clip_tasks.add(task)
            task.add_done_callback(self._clip_tasks.discard)

    async def _cut(self, ring: ClipRing, order: ClipOrder, uploader: ClipUploader) -> None:
        """Cut the clip once its last second has been captured, and put it in the outbox."""
        wait = order.event_at + order.post + 1.0 / ring.settings.fps - time.time()
        await asyncio.sleep(max(0.0, wait))  # the clip's end is in the future: a schedule
        try:
            clip = await asyncio.to_thread(
                ring.cut, order.event_at - order.pre, order.event_at + order.post
            )
        except CutError:
            logger.exception("edge %s: no clip for alert %s", self.agent_id, order.alert_id)
            return
        manifest = ClipManifest(
            clip_id=order.clip_id,
            alert_id=order.alert_id,
            camera_id=ring.camera_id,
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

"""The vision worker over a real Mosquitto: traffic metrics, silent cameras, bad frames."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import cv2
import pytest
from conftest import VIDEO
from scenes import camera, empty_room

from edge import encode_clip
from ioc.servers import MosquittoBroker
from protocol import (
    DEAD_LETTER,
    EVENT,
    TRAFFIC,
    UNBOUNDED,
    EventKind,
    FrameHeader,
    MqttEndpoint,
    Province,
    Topics,
    TrafficMetrics,
    VisionEvent,
    encode_frame,
)
from vision import VisionWorker, parse_shard, shard_cameras
from vision._pipeline import BatchResult

pytestmark = pytest.mark.mosquitto
T0 = 1_764_000_000.0


@contextlib.asynccontextmanager
async def listening(mqtt: MqttEndpoint, name: str, *topics: str) -> AsyncIterator[aiomqtt.Client]:
    async with mqtt.client(name) as client:
        for topic in topics:
            await client.subscribe(topic, qos=1)
        yield client


async def next_message(client: aiomqtt.Client) -> aiomqtt.Message:
    async with asyncio.timeout(10):
        return await anext(aiter(client.messages))


async def test_traffic_metrics_per_interval_carry_the_crossings(
    mqtt: MqttEndpoint, topics: Topics, clips_province: Province
) -> None:
    highway = clips_province.camera("highway")
    highway = highway.model_copy(
        update={"analytics": highway.analytics.model_copy(update={"metrics_seconds": 5.0})}
    )
    clip = encode_clip(VIDEO / "highway_cctv_osd_320x240.avi", (320, 180))
    frames = 300  # 12 s at 25 fps: two whole 5 s intervals and a part
    async with (
        listening(mqtt, "listener-traffic", topics.traffic(highway.id), topics.all_events()) as sub,
        VisionWorker(
            [highway], mqtt, topics=topics, identifier="vision-traffic", time_window=UNBOUNDED
        ) as worker,
        mqtt.client("edge-traffic") as edge,
    ):
        await worker.wait_until_subscribed()
        for i in range(frames):
            header = FrameHeader(highway.id, i, T0 + i / clip.fps, clip.width, clip.height)
            await edge.publish(topics.frames(highway.id), encode_frame(header, clip.frames[i]))
            await asyncio.wait_for(worker.wait_for_frames(i + 1), 10)
        assert worker.stats.frames_processed == frames
        metrics: list[TrafficMetrics] = []
        events: list[VisionEvent] = []
        while len(metrics) < 2:
            message = await next_message(sub)
            if topics.parse(message.topic.value).stream == "traffic":
                metrics.append(TRAFFIC.decode(message.payload))
            else:
                events.append(EVENT.decode(message.payload))
    assert [(m.seq, m.interval_start, m.interval_end) for m in metrics] == [
        (352_800_000, T0, T0 + 5),
        (352_800_001, T0 + 5, T0 + 10),
    ]
    assert [m.frames for m in metrics] == [125, 125]
    assert set(metrics[0].zone_occupancy) == {"shoulder", "away", "toward"}
    assert 0 < metrics[1].zone_occupancy["away"] < 0.5
    # The crossings are in the metrics, counted per line and direction; none was sent as
    # an event of its own (the alerts engine does not want a message per car).
    totals = worker.pipeline.line_totals()["highway"]
    in_metrics = sum(m.line_counts["count-away"].forward for m in metrics)
    assert 0 < in_metrics <= totals["count-away"]["forward"]
    assert [e.kind for e in events] == ["intrusion"]  # the cyclist on the shoulder


async def test_silent_camera_goes_offline_and_comes_back(
    mqtt: MqttEndpoint, topics: Topics
) -> None:
    cam = camera([], offline_seconds=1.0)
    room = empty_room()
    ok, jpeg = cv2.imencode(".jpg", room)
    assert ok
    async with (
        listening(mqtt, "listener-offline", topics.events(cam.id)) as sub,
        VisionWorker(
            [cam],
            mqtt,
            topics=topics,
            identifier="vision-offline",
            time_window=UNBOUNDED,
            check_every=0.1,
        ) as worker,
        mqtt.client("edge-offline") as edge,
    ):
        await worker.wait_until_subscribed()

        async def send(seq: int) -> None:
            header = FrameHeader(cam.id, seq, T0 + seq, 320, 180)
            await edge.publish(topics.frames(cam.id), encode_frame(header, jpeg.tobytes()))
            await asyncio.wait_for(worker.wait_for_frames(seq + 1), 10)

        for seq in range(3):
            await send(seq)
        # No frame comes; the periodic check (not a frame) notices.
        went: VisionEvent = EVENT.decode((await next_message(sub)).payload)
        assert (went.kind, went.phase, went.camera_id) == ("camera_offline", "start", cam.id)
        await send(3)
        back = EVENT.decode((await next_message(sub)).payload)
        assert (back.kind, back.phase, back.event_id) == ("camera_offline", "end", went.event_id)


async def test_frame_of_another_size_is_a_dead_letter_and_the_camera_goes_on(
    mqtt: MqttEndpoint, topics: Topics
) -> None:
    cam = camera([])
    ok, jpeg = cv2.imencode(".jpg", empty_room())
    assert ok
    async with (
        listening(mqtt, "listener-dl", topics.dead_letters("vision")) as sub,
        VisionWorker(
            [cam], mqtt, topics=topics, identifier="vision-size", time_window=UNBOUNDED
        ) as worker,
        mqtt.client("edge-size") as edge,
    ):
        await worker.wait_until_subscribed()
        wrong = FrameHeader(cam.id, 1, T0, 640, 360)  # the JPEG is 320x180
        await edge.publish(topics.frames(cam.id), encode_frame(wrong, jpeg.tobytes()))
        await asyncio.wait_for(worker.wait_for_frames(1), 10)
        good = FrameHeader(cam.id, 2, T0 + 0.2, 320, 180)
        await edge.publish(topics.frames(cam.id), encode_frame(good, jpeg.tobytes()))
        await asyncio.wait_for(worker.wait_for_frames(2), 10)
        letter = DEAD_LETTER.decode((await next_message(sub)).payload)
    assert (worker.stats.frames_rejected, worker.stats.frames_processed) == (1, 1)
    assert letter.topic == topics.frames(cam.id)
    assert letter.reason.startswith(f"camera {cam.id}: frame size:")
    assert "640x360" in letter.reason


def test_shards_split_the_province_without_overlap(clips_province: Province) -> None:
    cameras = clips_province.cameras
    parts = [shard_cameras(cameras, parse_shard(f"{i}/2")) for i in (1, 2)]
    assert sorted(c.id for part in parts for c in part) == sorted(c.id for c in cameras)
    assert not {c.id for c in parts[0]} & {c.id for c in parts[1]}
    with pytest.raises(ValueError, match="3/2"):
        parse_shard("3/2")


async def test_events_the_broker_did_not_take_go_out_first_on_the_next_connection(
    tmp_path: Path, clips_province: Province
) -> None:
    """A broker restart in the middle of a batch's events lost the rest of them (found by
    ``ioc soak``): an intrusion whose end is lost stays open. They now wait for the next
    connection, in order."""
    broker = MosquittoBroker(tmp_path / "mosquitto")
    await asyncio.to_thread(broker.start)
    try:
        endpoint = MqttEndpoint.from_url(broker.url)
        unsent = Topics("unsent/v1")
        worker = VisionWorker([clips_province.camera("highway")], endpoint, topics=unsent)
        events = [
            VisionEvent(
                event_id=f"highway:shoulder:intrusion:{i}",
                kind=EventKind.INTRUSION,
                camera_id="highway",
                phase="start",
                started_at=T0 + i,
                zone_id="shoulder",
            )
            for i in range(3)
        ]
        with contextlib.suppress(aiomqtt.MqttError):  # leaving a dead connection
            async with endpoint.client("vision-unsent") as client:
                client.timeout = 0.5  # no acknowledgement comes from a dead broker
                await asyncio.to_thread(broker.kill)
                with pytest.raises(aiomqtt.MqttError):
                    await worker._publish(client, BatchResult(events, [], []))
        assert worker.stats.events_published == 0
        await asyncio.to_thread(broker.start)
        async with (
            listening(endpoint, "watch-unsent", unsent.all_events()) as watch,
            endpoint.client("vision-unsent-2") as client,
        ):
            await worker._send_unsent(client)
            got = [EVENT.decode((await next_message(watch)).payload) for _ in events]
    finally:
        await asyncio.to_thread(broker.stop)
    assert [e.event_id for e in got] == [e.event_id for e in events]
    assert worker.stats.events_published == 3

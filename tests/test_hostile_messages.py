"""One bad message from an edge must not stop a consumer (issue 17, items 1 and 5): times out
of the window, image bombs and oversized frames become dead letters with their reason, and
the message after them is handled. Real Mosquitto and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import asyncpg
import cv2
import numpy as np
import pytest
from scenes import camera, empty_room

from alerts import AlertsEngine
from protocol import (
    DEAD_LETTER,
    EVENT,
    TELEMETRY,
    EventKind,
    FrameHeader,
    MqttEndpoint,
    Province,
    TelemetryBatch,
    TimeOutOfWindow,
    TimeWindow,
    Topics,
    VisionEvent,
    WifiSample,
    encode_frame,
    jpeg_size,
    run_subscriber,
)
from store import StoreConfig, sync_registry
from vision import VisionWorker

CAMERA = "indoor-room"


@pytest.fixture
def province(clips_province: Province) -> Province:
    raw = clips_province.model_dump()
    raw["access_points"] = [
        {
            "id": "ap-1",
            "name": "Pier AP",
            "site": "pier",
            "district": "my-tho",
            "lat": 10.35,
            "lon": 106.36,
            "capacity": 10,
        }
    ]
    return Province.model_validate(raw)


def _event(started_at: float, episode: str) -> VisionEvent:
    return VisionEvent(
        event_id=f"{CAMERA}:intrusion:{episode}",
        kind=EventKind.INTRUSION,
        camera_id=CAMERA,
        phase="start",
        started_at=started_at,
        zone_id="floor",
    )


def test_the_window_names_the_field_and_refuses_milliseconds() -> None:
    window = TimeWindow(past=86_400, future=300)
    now = 1_800_000_000.0
    window.check(_event(now - 3600, "ok"), now)
    with pytest.raises(TimeOutOfWindow, match=r"started_at = 1000000000000\.0") as caught:
        window.check(_event(1e12, "ms"), now)
    assert caught.value.field == "started_at"
    sample = WifiSample(
        ts=now - 2 * 86_400, clients=1, rx_bytes=0, tx_bytes=0, channel_util=0, up=True
    )
    with pytest.raises(TimeOutOfWindow, match=r"samples\[0\]\.ts"):
        window.check(TelemetryBatch(ap_id="ap-1", seq=1, samples=[sample]), now)
    with pytest.raises(TimeOutOfWindow, match="captured_at"):
        window.check(FrameHeader("cam-1", 1, now + 600, 320, 180), now)


@pytest.mark.mosquitto
@pytest.mark.postgres
async def test_an_event_from_the_year_33658_is_a_dead_letter_and_the_engine_goes_on(
    mqtt: MqttEndpoint,
    topics: Topics,
    database: StoreConfig,
    db: asyncpg.Connection,
    province: Province,
) -> None:
    await sync_registry(db, province)
    async with (
        AlertsEngine(
            mqtt, database, province, topics=topics, identifier="alerts-hostile"
        ) as engine,
        mqtt.client("edge-hostile") as edge,
    ):
        await engine.wait_until_subscribed()
        bad, good = _event(1e12, "ms"), _event(time.time(), "good")
        await edge.publish(topics.events(CAMERA), EVENT.encode(bad), qos=1)
        await edge.publish(topics.events(CAMERA), EVENT.encode(good), qos=1)
        await asyncio.wait_for(engine.wait_for_events(2), 10)
        # Wi-Fi telemetry of an AP gone down, stamped in milliseconds: refused; the next
        # batch (a good one) is still handled.
        down = WifiSample(ts=1e12, clients=0, rx_bytes=0, tx_bytes=0, channel_util=0, up=False)
        up = WifiSample(ts=time.time(), clients=1, rx_bytes=0, tx_bytes=0, channel_util=0, up=True)
        for seq, sample in enumerate([down, up]):
            batch = TelemetryBatch(ap_id="ap-1", seq=seq, samples=[sample])
            await edge.publish(topics.telemetry("ap-1"), TELEMETRY.encode(batch), qos=1)
        await asyncio.wait_for(engine.wait_for(lambda s: s.telemetry_batches >= 1), 10)
    assert (engine.stats.events, engine.stats.dead_letters) == (1, 1)
    letter = await db.fetchrow("SELECT consumer, topic, reason FROM dead_letters")
    assert letter is not None
    assert (letter["consumer"], letter["topic"]) == ("alerts", topics.events(CAMERA))
    assert "started_at = 1000000000000.0 is outside the accepted window" in letter["reason"]
    alerts = await db.fetch("SELECT source_id, kind FROM alerts")
    assert [(a["source_id"], a["kind"]) for a in alerts] == [(CAMERA, "intrusion")]


@pytest.mark.mosquitto
async def test_a_handler_that_raises_drops_the_message_not_the_consumer(
    mqtt: MqttEndpoint, topics: Topics
) -> None:
    handled: asyncio.Queue[bytes] = asyncio.Queue()
    subscribed = asyncio.Event()

    async def handle(client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        assert isinstance(message.payload, bytes)
        if message.payload == b"poison":
            raise ValueError("a payload nobody foresaw")
        await handled.put(message.payload)

    async def on_connect(client: aiomqtt.Client) -> None:
        subscribed.set()

    topic = topics.telemetry("ap-poison")
    consumer = asyncio.create_task(
        run_subscriber(mqtt, "consumer-poison", [(topic, 1)], handle, on_connect=on_connect)
    )
    try:
        await asyncio.wait_for(subscribed.wait(), 10)
        async with mqtt.client("edge-poison") as edge:
            await edge.publish(topic, b"poison", qos=1)
            await edge.publish(topic, b"fine", qos=1)
        assert await asyncio.wait_for(handled.get(), 10) == b"fine"
        assert not consumer.done()
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer


@contextlib.asynccontextmanager
async def _dead_letters(mqtt: MqttEndpoint, topics: Topics) -> AsyncIterator[aiomqtt.Client]:
    async with mqtt.client("listener-hostile") as client:
        await client.subscribe(topics.dead_letters("vision"), qos=1)
        yield client


async def _next_reason(client: aiomqtt.Client) -> str:
    async with asyncio.timeout(10):
        message = await anext(aiter(client.messages))
    assert isinstance(message.payload, bytes)
    return DEAD_LETTER.decode(message.payload).reason


def _jpeg(width: int, height: int) -> bytes:
    ok, encoded = cv2.imencode(".jpg", np.zeros((height, width), np.uint8))
    assert ok
    return encoded.tobytes()


def test_the_jpeg_size_is_read_from_its_header() -> None:
    assert jpeg_size(_jpeg(320, 180)) == (320, 180)
    ok, progressive = cv2.imencode(
        ".jpg", np.zeros((90, 160, 3), np.uint8), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]
    )
    assert ok
    assert jpeg_size(progressive.tobytes()) == (160, 90)


@pytest.mark.mosquitto
async def test_bad_frames_are_dead_letters_and_the_camera_goes_on(
    mqtt: MqttEndpoint, topics: Topics
) -> None:
    cam = camera([])
    ok, room = cv2.imencode(".jpg", empty_room())
    assert ok
    now = time.time()
    bomb = _jpeg(4000, 4000)  # 16 Mpx of black in a few hundred kilobytes
    bad = [
        (FrameHeader(cam.id, 1, 1e12, 320, 180), room.tobytes(), "captured_at = 1000000000000.0"),
        (FrameHeader(cam.id, 2, now, 4000, 4000), bomb, "the JPEG is 4000x4000, more than"),
        (FrameHeader(cam.id, 3, now, 320, 180), bomb, "the JPEG is 4000x4000, more than"),
        (FrameHeader(cam.id, 4, now, 320, 180), room.tobytes() + bytes(2**20), "larger than"),
        (FrameHeader(cam.id, 5, now, 320, 180), room.tobytes()[:40], "corrupt JPEG"),
    ]
    async with (
        _dead_letters(mqtt, topics) as letters,
        VisionWorker([cam], mqtt, topics=topics, identifier="vision-hostile") as worker,
        mqtt.client("edge-bombs") as edge,
    ):
        await worker.wait_until_subscribed()
        for i, (header, jpeg, reason) in enumerate(bad, start=1):
            await edge.publish(topics.frames(cam.id), encode_frame(header, jpeg))
            assert reason in await _next_reason(letters)
            await asyncio.wait_for(worker.wait_for_frames(i), 10)
        good = FrameHeader(cam.id, 9, time.time(), 320, 180)
        await edge.publish(topics.frames(cam.id), encode_frame(good, room.tobytes()))
        await asyncio.wait_for(worker.wait_for_frames(len(bad) + 1), 10)
    assert (worker.stats.frames_rejected, worker.stats.frames_processed) == (len(bad), 1)


def test_csv_cells_that_look_like_formulas_stay_text() -> None:
    from datetime import UTC, datetime

    from console_api._planner import Point, Ranked, Series
    from console_api._render import ranking_csv, to_csv

    at = datetime(2026, 1, 1, tzinfo=UTC)
    series = [Series(key={"road": '=HYPERLINK("http://evil")'}, points=[Point(at, -3.0)])]
    rows = to_csv(series, "vehicles").splitlines()
    assert rows[1].endswith(""",\"'=HYPERLINK(\"\"http://evil\"\")\",-3""")
    ranking = ranking_csv([Ranked(rank=1, id="cam-1", name="@SUM(A1)", total=5)], "vehicles")
    assert ranking.splitlines()[1] == "1,cam-1,'@SUM(A1),5"


def test_police_webhooks_must_be_https_unless_a_test_endpoint_says_so(
    clips_province: Province,
) -> None:
    from alerts import parse_rules
    from protocol import ConfigError

    def rules(**endpoint: object) -> dict[str, object]:
        entry = {"id": "dispatch", "secret_env": "IOC_S", **endpoint}
        return {"police": {"endpoints": [entry]}}

    secret = {"IOC_S": "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
    with pytest.raises(ConfigError, match="must be https://"):
        parse_rules(rules(url="http://dispatch.example/cap"), clips_province, environ=secret)
    parse_rules(rules(url="https://dispatch.example/cap"), clips_province, environ=secret)
    parse_rules(
        rules(url="http://127.0.0.1:9/cap", allow_plain_http=True), clips_province, environ=secret
    )


def test_urls_lose_their_passwords_and_query_secrets() -> None:
    from protocol import redact_url

    assert (
        redact_url("https://ctl.example/api/aps?site=1&apikey=s3cr3t&x=2")
        == "https://ctl.example/api/aps?site=1&apikey=***&x=2"
    )
    assert (
        redact_url("https://u:pw@h/p?access_token=abc#f") == "https://u:***@h/p?access_token=***#f"
    )
    assert redact_url("https://h/p?page=2") == "https://h/p?page=2"


def test_the_demo_board_names_restarted_services(tmp_path: Path) -> None:
    from ioc.demo import restarts
    from ioc.supervisor import ServiceProcess, Supervisor

    supervisor = Supervisor({}, tmp_path)
    for name, starts in (("ingest", 1), ("alerts", 3), ("vision-1", 2)):
        service = ServiceProcess(name, (), {}, tmp_path)
        service.starts = starts
        supervisor.services[name] = service
    assert restarts(supervisor) == "alerts 2, vision-1 1"
    supervisor.services = {"ingest": supervisor.services["ingest"]}
    assert restarts(supervisor) == "none"

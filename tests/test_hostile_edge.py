"""An edge gone bad, through the real Mosquitto with the generated ACL, while a good edge
runs (issue 17): wrong times, huge and truncated payloads, a JPEG bomb, a flood at ten times
the normal rate, and data under another agent's identity. Every service stays up, nothing
good is lost, and each bad message is a dead letter with its reason."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import asyncpg
import cv2
import numpy as np
import pytest
from test_edge_identity import _login, _province

from alerts import AlertsEngine
from edge import write_mosquitto_config
from ingest import IngestService
from ioc.servers import MosquittoBroker
from protocol import TELEMETRY, FrameHeader, TelemetryBatch, Topics, WifiSample, encode_frame
from store import StoreConfig, sync_registry
from vision import VisionWorker

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]
PREFIX = "hostile/v1"


def _batch(ap_id: str, seq: int, ts: float, samples: int = 3) -> TelemetryBatch:
    return TelemetryBatch(
        ap_id=ap_id,
        seq=seq,
        samples=[
            WifiSample(ts=ts + i, clients=i, rx_bytes=0, tx_bytes=0, channel_util=0.1, up=True)
            for i in range(samples)
        ],
    )


def _jpeg(width: int, height: int) -> bytes:
    ok, encoded = cv2.imencode(".jpg", np.zeros((height, width), np.uint8))
    assert ok
    return encoded.tobytes()


async def test_a_hostile_edge_next_to_a_good_one(
    tmp_path: Path, database: StoreConfig, db: asyncpg.Connection
) -> None:
    province = _province()
    await sync_registry(db, province)
    auth = tmp_path / "auth"
    write_mosquitto_config(province, auth, prefix=PREFIX, environ={})
    # The generated configuration as production includes it: ACL, passwords, size limit.
    broker = MosquittoBroker(tmp_path / "broker", auth_config=auth / "mosquitto-auth.conf")
    broker.start()
    topics = Topics(PREFIX)
    now = time.time()
    good_batches = [_batch("ap-a", seq, now - 60 + seq) for seq in range(1, 11)]
    flood = [_batch("ap-b", seq, now - 30) for seq in range(100, 200)]  # 10x the good rate
    try:
        async with contextlib.AsyncExitStack() as stack:
            ingest = await stack.enter_async_context(
                IngestService(
                    _login(broker, auth, "ingest"), database, topics=topics, identifier="ingest"
                )
            )
            engine = await stack.enter_async_context(
                AlertsEngine(
                    _login(broker, auth, "alerts"),
                    database,
                    province,
                    topics=topics,
                    identifier="alerts",
                )
            )
            vision = await stack.enter_async_context(
                VisionWorker(
                    province.cameras,
                    _login(broker, auth, "vision"),
                    topics=topics,
                    identifier="vision",
                )
            )
            await ingest.wait_until_subscribed()
            await engine.wait_until_subscribed()
            await vision.wait_until_subscribed()
            good = await stack.enter_async_context(_login(broker, auth, "edge-a").client("edge-a"))
            bad = await stack.enter_async_context(_login(broker, auth, "edge-b").client("edge-b"))
            ap_b = topics.telemetry("ap-b")
            hostile: list[tuple[bytes, str]] = [
                (TELEMETRY.encode(_batch("ap-b", 1, 1e12)), "samples[0].ts = 1000000000000.0"),
                (TELEMETRY.encode(_batch("ap-b", 2, now - 3 * 86_400)), "samples[0].ts"),
                (TELEMETRY.encode(_batch("ap-b", 3, now))[:-7], "is not valid JSON"),
                (b"{" + b" " * 3_000_000, "is not valid JSON"),
                (TELEMETRY.encode(_batch("ap-a", 4, now)), "does not match the topic"),
            ]
            for seq, batch in enumerate(good_batches):
                await good.publish(topics.telemetry("ap-a"), TELEMETRY.encode(batch), qos=1)
                if seq < len(hostile):
                    await bad.publish(ap_b, hostile[seq][0], qos=1)
                for flooded in flood[seq * 10 : seq * 10 + 10]:
                    await bad.publish(ap_b, TELEMETRY.encode(flooded), qos=1)
            # Another agent's topic: the ACL drops it at the broker.
            stolen = _batch("ap-a", 999, now)
            await bad.publish(topics.telemetry("ap-a"), TELEMETRY.encode(stolen), qos=1)
            # A JPEG bomb on the bad edge's camera, a good frame on the good one's.
            bomb = FrameHeader("cam-b", 1, now, 4000, 4000)
            await bad.publish(topics.frames("cam-b"), encode_frame(bomb, _jpeg(4000, 4000)))
            fine = FrameHeader("cam-a", 1, time.time(), 320, 180)
            await good.publish(topics.frames("cam-a"), encode_frame(fine, _jpeg(320, 180)))
            expected_samples = 3 * (len(good_batches) + len(flood))
            await ingest.wait_until(
                lambda s: s.samples_written >= expected_samples and s.dead_letters >= 6
            )
            await vision.wait_for_frames(2)
            await engine.wait_for(lambda s: s.telemetry_batches >= len(good_batches))
            # Every service still takes work after all that.
            last = _batch("ap-a", 50, time.time())
            await good.publish(topics.telemetry("ap-a"), TELEMETRY.encode(last), qos=1)
            await ingest.wait_until(lambda s: s.samples_written >= expected_samples + 3)
            await engine.wait_for(lambda s: s.telemetry_batches >= len(good_batches) + 1)
            assert vision.stats.frames_processed == 1
    finally:
        broker.stop()
    stored = await db.fetch(
        "SELECT ap_id, count(*) AS n FROM wifi_samples GROUP BY ap_id ORDER BY ap_id"
    )
    assert [(r["ap_id"], r["n"]) for r in stored] == [("ap-a", 33), ("ap-b", 300)]
    letters = await db.fetch("SELECT consumer, topic, reason FROM dead_letters ORDER BY id")
    reasons = [(r["consumer"], r["reason"]) for r in letters]
    assert len(reasons) == 6, reasons
    for _, expected in hostile:
        assert any(expected in reason for consumer, reason in reasons if consumer == "ingest")
    assert any(consumer == "vision" and "4000x4000" in reason for consumer, reason in reasons), (
        reasons
    )

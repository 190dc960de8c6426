"""Evidence snapshots: a camera alert opens, the engine asks the edge over MQTT (with the clip
its rule orders), the edge's answer is kept with the alert; an edge that stays silent leaves
the alert without one."""

from __future__ import annotations

import asyncio
import contextlib
import time

import asyncpg
import cv2
import numpy as np
import pytest

from alerts import (
    AlertsEngine,
    EvidenceCollector,
    RuleBook,
    get_evidence,
    list_alerts,
    parse_rules,
)
from protocol import (
    EVENT,
    SNAPSHOT_REQUEST,
    ClipOrder,
    EventKind,
    FrameHeader,
    MqttEndpoint,
    Province,
    Topics,
    VisionEvent,
    encode_frame,
    stop_tasks,
)
from store import StoreConfig

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]


def _jpeg() -> bytes:
    image = np.zeros((48, 64, 3), np.uint8)
    cv2.rectangle(image, (8, 8), (40, 30), (0, 200, 255), -1)
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return encoded.tobytes()


async def test_a_camera_alert_gets_the_edges_snapshot(
    mqtt: MqttEndpoint,
    topics: Topics,
    database: StoreConfig,
    db: asyncpg.Connection,
    clips_province: Province,
) -> None:
    jpeg = _jpeg()
    answering = asyncio.Event()
    answering.set()
    orders: dict[str, ClipOrder | None] = {}
    # Intrusions order a longer clip before the event; other kinds the file's default.
    rules = {"rules": [{"match": {"kinds": ["intrusion"]}, "clip": {"pre": 25, "post": 4}}]}
    async with contextlib.AsyncExitStack() as stack:
        edge = await stack.enter_async_context(mqtt.client("edge-evidence"))
        await edge.subscribe(topics.snapshot_request("indoor-room"), qos=1)

        async def respond() -> None:
            async for message in edge.messages:
                assert isinstance(message.payload, bytes)
                request = SNAPSHOT_REQUEST.decode(message.payload)
                if request.clip is not None:
                    orders[request.clip.alert_id] = request.clip
                if answering.is_set():
                    header = FrameHeader(request.camera_id, 1, time.time(), 64, 48)
                    await edge.publish(
                        topics.snapshot(request.camera_id, request.request_id),
                        encode_frame(header, jpeg),
                        qos=1,
                    )

        responder = asyncio.create_task(respond())
        stack.push_async_callback(stop_tasks, [responder])
        evidence = await stack.enter_async_context(
            EvidenceCollector(mqtt, database, topics=topics, identifier="ev-test", timeout=2.0)
        )
        engine = await stack.enter_async_context(
            AlertsEngine(
                mqtt,
                database,
                clips_province,
                topics=topics,
                identifier="alerts-ev",
                rules=RuleBook.fixed(parse_rules(rules, clips_province)),
                evidence=evidence,
                watch_wifi=False,
            )
        )
        await evidence.wait_until_ready()
        await engine.wait_until_subscribed()

        async def raise_alert(kind: EventKind, n: int) -> str:
            event = VisionEvent(
                event_id=f"ev-{n}",
                kind=kind,
                camera_id="indoor-room",
                phase="start",
                started_at=time.time(),
                zone_id="floor",
            )
            await edge.publish(topics.events("indoor-room"), EVENT.encode(event), qos=1)
            await asyncio.wait_for(engine.wait_for_events(n), 10)
            return next(a.id for a in await list_alerts(db, kinds=[kind]))

        first = await raise_alert(EventKind.INTRUSION, 1)
        await asyncio.wait_for(evidence.wait_for(1), 10)
        assert await get_evidence(db, first) == jpeg
        size = await db.fetchrow("SELECT width, height FROM alert_evidence")
        assert size is not None
        assert (size["width"], size["height"]) == (64, 48)

        answering.clear()  # the edge goes quiet
        second = await raise_alert(EventKind.CROWD, 2)
        await asyncio.wait_for(evidence.wait_for(2), 10)
        assert (evidence.stats.stored, evidence.stats.timed_out) == (1, 1)
        assert await get_evidence(db, second) is None
        assert await get_evidence(db, "not-an-id") is None
        # Each order went out with its alert's clip window, the rule's or the default.
        windows = {k: (o.pre, o.post) for k, o in orders.items() if o is not None}
        assert windows == {first: (25.0, 4.0), second: (10.0, 10.0)}

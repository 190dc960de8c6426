"""The edge agent against a real Mosquitto: birth and goodbye, frames, camera states,
telemetry batches, evidence snapshots, and a bad source next to a good one."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import cv2
import numpy as np
import pytest
from edge_support import Recorder, agent_plan

from edge import EdgeAgent
from protocol import (
    CAMERA_STATE,
    EDGE_STATE,
    TELEMETRY,
    MqttEndpoint,
    SnapshotClient,
    SnapshotError,
    Topics,
    decode_frame,
    request_snapshot,
)

pytestmark = pytest.mark.mosquitto
ROOT = Path(__file__).resolve().parent.parent
PARKING = "data/video/parking_lot_overhead_768x432.mp4"


def _camera(camera_id: str, source: str, fps: float = 5.0) -> dict[str, object]:
    return {
        "id": camera_id,
        "name": camera_id,
        "kind": "security",
        "district": "d",
        "lat": 0,
        "lon": 0,
        "source": source,
        "fps": fps,
    }


def _ap(ap_id: str) -> dict[str, object]:
    return {"id": ap_id, "name": ap_id, "site": "s", "district": "d", "lat": 0, "lon": 0}


async def test_agent_publishes_frames_states_and_telemetry(
    tmp_path: Path, mqtt: MqttEndpoint, topics: Topics
) -> None:
    plan = agent_plan(
        tmp_path,
        mqtt,
        topics,
        {
            "cameras": [_camera("cam-good", PARKING), _camera("cam-bad", "README.md")],
            "access_points": [_ap("ap-1"), _ap("ap-2")],
            "wifi": {
                "collectors": [{"kind": "simulated"}],
                "poll_period": 0.02,
                "batch_period": 0.1,
            },
            "camera_options": {
                "media_dir": str(ROOT),
                "max_backoff": 0.1,
            },
            "state_period": 0.2,
        },
    )
    edge_topic = topics.edge_state("edge-test")
    good_state = topics.camera_state("cam-good")
    bad_state = topics.camera_state("cam-bad")
    frames = topics.frames("cam-good")
    async with Recorder(mqtt, [f"{topics.prefix}/#"]) as seen:
        async with EdgeAgent(plan) as agent:

            def ready() -> bool:
                states = [CAMERA_STATE.decode(p) for p in seen.on(good_state)]
                return (
                    len(seen.on(frames)) >= 5
                    and any(s.status != "offline" for s in states)
                    and len(seen.on(topics.telemetry("ap-2"))) >= 3
                    and any(
                        CAMERA_STATE.decode(p).detail == "cannot open as video"
                        for p in seen.on(bad_state)
                    )
                )

            await seen.wait_for(ready)
            assert agent.stats.frames_published >= 5
        birth = EDGE_STATE.decode(seen.on(edge_topic)[0])
        assert (birth.status, birth.cameras, birth.access_points) == (
            "online",
            ["cam-good", "cam-bad"],
            ["ap-1", "ap-2"],
        )
        assert birth.collectors[0].name == "simulated fleet"
        # Frames: analysis size, increasing sequence, the camera's own id.
        decoded = [decode_frame(p) for p in seen.on(frames)]
        assert all(
            h.camera_id == "cam-good" and (h.width, h.height) == (320, 180) for h, _ in decoded
        )
        sequences = [h.sequence for h, _ in decoded]
        assert sequences == sorted(sequences)
        image = cv2.imdecode(np.frombuffer(bytes(decoded[0][1]), np.uint8), cv2.IMREAD_UNCHANGED)
        assert image is not None
        assert image.shape == (180, 320)  # gray
        # The bad source is reported, not fatal.
        bad = [CAMERA_STATE.decode(p) for p in seen.on(bad_state)]
        assert all(s.status == "offline" for s in bad)
        # Telemetry: one batch per AP per period, numbers growing, from this agent.
        batches = [TELEMETRY.decode(p) for p in seen.on(topics.telemetry("ap-2"))]
        assert all(b.agent_id == "edge-test" for b in batches)
        assert [b.seq for b in batches] == sorted({b.seq for b in batches})

        # A clean stop says goodbye itself, retained: the broker had it (QoS 1) before the
        # agent left, and passes it to this subscriber a moment later.
        def last_words() -> bool:
            agent_said = EDGE_STATE.decode(seen.on(edge_topic)[-1]).status != "online"
            camera_said = CAMERA_STATE.decode(seen.on(good_state)[-1]).status == "offline"
            return agent_said and camera_said

        await seen.wait_for(last_words)
        goodbye = EDGE_STATE.decode(seen.on(edge_topic)[-1])
        assert goodbye.status == "offline"
        final = CAMERA_STATE.decode(seen.on(good_state)[-1])
        assert (final.status, final.detail) == ("offline", "edge agent stopped")
    # Retained: a newcomer learns the last word at once.
    async with Recorder(mqtt, [edge_topic], "late") as late:
        await late.wait_for(lambda: len(late.messages) == 1)
        assert late.messages[0].retain
        assert EDGE_STATE.decode(late.messages[0].payload).status == "offline"


async def test_snapshot_request_is_answered_at_source_resolution(
    tmp_path: Path, mqtt: MqttEndpoint, topics: Topics
) -> None:
    plan = agent_plan(tmp_path, mqtt, topics, {"cameras": [_camera("cam-snap", PARKING)]})
    async with EdgeAgent(plan) as agent:
        await agent.connected.wait()
        header_seen = await _wait_first_frame(agent)
        async with SnapshotClient(mqtt, topics) as snapshots:
            header, jpeg = await snapshots.request("cam-snap", max_width=640)
            full, _ = await snapshots.request("cam-snap")
            with pytest.raises(SnapshotError, match="no answer within"):
                await snapshots.request("cam-nobody-has", within=0.3)
        assert (header.camera_id, header.width, header.height) == ("cam-snap", 640, 360)
        assert (full.width, full.height) == (768, 432)
        assert header.sequence >= header_seen
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None
        assert image.shape == (360, 640, 3)
        # The one-shot helper opens its own connection.
        one, _ = await request_snapshot(mqtt, topics, "cam-snap", max_width=320)
        assert one.width == 320
        assert agent.stats.snapshots_answered == 3


async def _wait_first_frame(agent: EdgeAgent) -> int:
    reader = agent.readers[0]
    ok = await asyncio.to_thread(reader.wait_for, lambda r: r.frames >= 1, 60.0)
    assert ok
    return reader.frames


async def test_bad_snapshot_requests_are_counted_and_survived(
    tmp_path: Path, mqtt: MqttEndpoint, topics: Topics
) -> None:
    plan = agent_plan(tmp_path, mqtt, topics, {"cameras": [_camera("cam-x", PARKING)]})
    async with EdgeAgent(plan) as agent:
        await agent.connected.wait()
        await _wait_first_frame(agent)
        async with mqtt.client(f"poker-{secrets.token_hex(3)}") as poker:
            await poker.publish(topics.snapshot_request("cam-x"), b"{not json", qos=1)
            await poker.publish(
                topics.snapshot_request("cam-x"),
                b'{"v":1,"request_id":"r1","camera_id":"cam-other","requested_at":1}',
                qos=1,
            )
        header, _ = await request_snapshot(mqtt, topics, "cam-x", max_width=320)
        assert header.camera_id == "cam-x"
        assert agent.stats.bad_requests == 2

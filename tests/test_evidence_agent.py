"""An edge agent with evidence rings, against a real Mosquitto, PostgreSQL and the API: a
clip order in a snapshot request becomes a clip of the right seconds, uploaded and kept with
its custody chain; a repeated order is cut once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import msgspec
import pytest
from console_support import raise_alert, seed_registry
from edge_support import Recorder, agent_plan
from test_evidence_centre import SECRET
from test_evidence_upload import centre_on, free_port

from edge import EdgeAgent
from evidence import agent_token, probe_mp4
from protocol import (
    CAMERA_STATE,
    SNAPSHOT_REQUEST,
    ClipOrder,
    MqttEndpoint,
    SnapshotRequest,
    Topics,
)
from store import StoreConfig

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]
PARKING = "data/video/parking_lot_overhead_768x432.mp4"


async def test_an_ordered_clip_is_cut_uploaded_and_kept(
    tmp_path: Path,
    mqtt: MqttEndpoint,
    topics: Topics,
    database: StoreConfig,
    db: asyncpg.Connection,
) -> None:
    await seed_registry(db)
    alert_id, _ = await raise_alert(db)
    port = free_port()
    camera = {
        "id": "cam-a",
        "name": "cam-a",
        "kind": "security",
        "district": "d",
        "lat": 0,
        "lon": 0,
        "source": PARKING,
        "fps": 10,
    }
    plan = agent_plan(
        tmp_path,
        mqtt,
        topics,
        {
            "agent_id": "edge-a",
            "cameras": [camera],
            "evidence": {"api_url": f"http://127.0.0.1:{port}", "fps": 10, "seconds": 10},
            "state_period": 0.5,
        },
        environ={"IOC_EVIDENCE_TOKEN": f"edge-a:{agent_token(SECRET.encode(), 'edge-a')}"},
    )
    state = topics.camera_state("cam-a")
    async with (
        centre_on(database, tmp_path / "centre", port),
        Recorder(mqtt, [state]) as seen,
        EdgeAgent(plan) as agent,
        mqtt.client("centre-test") as centre,
    ):
        await seen.wait_for(
            lambda: any(CAMERA_STATE.decode(p).status == "online" for p in seen.on(state))
        )
        ring = agent.readers[0].ring
        assert ring is not None
        first = ring.newest or 0.0
        await seen.wait_for(lambda: (ring.newest or 0.0) - first >= 2.0)
        event_at = time.time()
        order = ClipOrder(
            clip_id="clip-agent", alert_id=alert_id, event_at=event_at, pre=2.0, post=1.0
        )
        request = SnapshotRequest("ev-1", "cam-a", event_at, clip=order)
        await centre.publish(topics.snapshot_request("cam-a"), SNAPSHOT_REQUEST.encode(request), 1)
        again = msgspec.structs.replace(request, request_id="ev-2")  # a resent order
        await centre.publish(topics.snapshot_request("cam-a"), SNAPSHOT_REQUEST.encode(again), 1)
        assert agent.uploader is not None
        await asyncio.wait_for(agent.uploader.wait_for(1), 60)
        assert agent.uploader.stats.queued == 1

    row = await db.fetchrow(
        "SELECT started_at, ended_at, frames, storage_key FROM evidence_clips"
        " WHERE clip_id = 'clip-agent'"
    )
    assert row is not None
    started, ended = row["started_at"].timestamp(), row["ended_at"].timestamp()
    assert event_at - 3.05 <= started <= event_at - 1.95  # from the key frame before -pre
    assert event_at + 0.5 <= ended <= event_at + 1.0  # the last frame kept before +post
    facts = probe_mp4((tmp_path / "centre" / "clips" / row["storage_key"]).read_bytes())
    assert (facts.width, facts.height) == (640, 360)
    assert facts.frames == row["frames"] >= 10  # the file's rate, as the reader kept it
    actors = await db.fetch(
        "SELECT action, actor FROM evidence_custody WHERE clip_id = 'clip-agent' ORDER BY seq"
    )
    assert [(r["action"], r["actor"]) for r in actors] == [
        ("cut", "edge-a"),
        ("received", "centre"),
        ("verified", "centre"),
    ]

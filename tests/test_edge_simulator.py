"""The simulated province: clips from per-camera offsets, camera states, Wi-Fi through the
spool, scripted incidents, and snapshots answered from the clips."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest
from edge_support import Recorder

from edge import (
    CitySimulator,
    ClipLibrary,
    IncidentBoard,
    IncidentKind,
    WifiFleet,
    load_incidents,
)
from protocol import (
    CAMERA_STATE,
    TELEMETRY,
    AccessPoint,
    ConfigError,
    MqttEndpoint,
    Province,
    SnapshotClient,
    SnapshotError,
    Topics,
    decode_frame,
    parse_province,
)

ROOT = Path(__file__).resolve().parent.parent
CLIPS = {
    "cam-road": "data/video/highway_cctv_osd_320x240.avi",
    "cam-lot": "data/video/parking_lot_overhead_768x432.mp4",
    "cam-hall": "data/video/parking_lot_overhead_768x432.mp4",  # same clip, another offset
}


@pytest.fixture(scope="module")
def clips() -> ClipLibrary:
    return ClipLibrary(base=ROOT)


def _province() -> Province:
    return parse_province(
        {
            "cameras": [
                {
                    "id": camera_id,
                    "name": camera_id,
                    "kind": "traffic",
                    "district": "d",
                    "lat": 0,
                    "lon": 0,
                    "source": source,
                    "fps": 10,
                }
                for camera_id, source in CLIPS.items()
            ],
            "access_points": [
                {
                    "id": f"ap-{i}",
                    "name": "x",
                    "site": "pagoda",
                    "district": "d",
                    "lat": 0,
                    "lon": 0,
                }
                for i in range(3)
            ],
        }
    )


def _mean(payload: bytes) -> float:
    _, jpeg = decode_frame(payload)
    image = cv2.imdecode(np.frombuffer(bytes(jpeg), np.uint8), cv2.IMREAD_GRAYSCALE)
    assert image is not None
    return float(image.mean())


@pytest.mark.mosquitto
async def test_simulator_publishes_and_follows_incidents(
    mqtt: MqttEndpoint, topics: Topics, clips: ClipLibrary
) -> None:
    simulator = CitySimulator(
        _province(), mqtt, clips, topics=topics, sample_period=0.02, batch_period=0.1
    )
    road, lot = topics.frames("cam-road"), topics.frames("cam-lot")
    async with Recorder(mqtt, [f"{topics.prefix}/#"]) as seen, simulator:
        await seen.wait_for(
            lambda: (
                all(len(seen.on(topics.frames(c))) >= 3 for c in CLIPS)
                and len(seen.on(topics.telemetry("ap-1"))) >= 2
                and all(seen.on(topics.camera_state(c)) for c in CLIPS)
            )
        )
        header, _ = decode_frame(seen.on(lot)[0])
        assert (header.width, header.height) == (320, 180)
        assert CAMERA_STATE.decode(seen.on(topics.camera_state("cam-lot"))[0]).status == "online"
        assert _mean(seen.on(lot)[-1]) > 40

        # A covered lens: dark frames from now on.
        covered = simulator.incidents.start(IncidentKind.CAMERA_COVERED, "cam-lot")
        start = len(seen.on(lot))
        await seen.wait_for(lambda: len(seen.on(lot)) >= start + 3)
        assert _mean(seen.on(lot)[-1]) < 15
        simulator.incidents.clear(covered)

        # An offline camera: its state says so, and no frame follows.
        simulator.incidents.start(IncidentKind.CAMERA_OFFLINE, "cam-road")
        state_topic = topics.camera_state("cam-road")

        def road_offline() -> bool:
            return CAMERA_STATE.decode(seen.on(state_topic)[-1]).status == "offline"

        await seen.wait_for(road_offline)
        frames_then = len(seen.on(road))
        hall = len(seen.on(topics.frames("cam-hall")))
        await seen.wait_for(lambda: len(seen.on(topics.frames("cam-hall"))) >= hall + 5)
        assert len(seen.on(road)) == frames_then

        # An AP down reports itself down, with nobody on it.
        simulator.incidents.start(IncidentKind.AP_DOWN, "ap-2")
        ap2 = topics.telemetry("ap-2")

        def ap2_down() -> bool:
            batch = TELEMETRY.decode(seen.on(ap2)[-1])
            return not batch.samples[-1].up

        await seen.wait_for(ap2_down)
        assert TELEMETRY.decode(seen.on(ap2)[-1]).samples[-1].clients == 0

        # Snapshots come from the clip at source resolution; an offline camera is silent.
        async with SnapshotClient(mqtt, topics) as snapshots:
            big, jpeg = await snapshots.request("cam-lot", max_width=1920)
            assert (big.width, big.height) == (768, 432)
            image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert image is not None
            assert image.shape == (432, 768, 3)
            small, _ = await snapshots.request("cam-hall", max_width=384)
            assert (small.width, small.height) == (384, 216)
            with pytest.raises(SnapshotError):
                await snapshots.request("cam-road", within=0.5)
    stats = simulator.stats
    assert stats.dark_frames >= 1
    assert stats.snapshots_answered == 2
    assert stats.batches_published > 0


def test_incident_script_is_validated_and_follows_the_clock(tmp_path: Path) -> None:
    script = tmp_path / "incidents.yaml"
    script.write_text(
        "incidents:\n"
        "  - {kind: camera_covered, target: cam-lot, at: 10, duration: 5}\n"
        "  - {kind: crowd, target: pagoda, at: 12, factor: 4}\n"
    )
    known = {
        IncidentKind.CAMERA_COVERED: {"cam-lot"},
        IncidentKind.CROWD: {"pagoda"},
    }
    board = IncidentBoard(load_incidents(script, known))
    board.advance(9.9)
    assert board.active == []
    board.advance(12.5)
    assert board.targets(IncidentKind.CAMERA_COVERED) == {"cam-lot"}
    assert board.crowds() == {"pagoda": 4.0}
    board.advance(15.0)
    assert board.targets(IncidentKind.CAMERA_COVERED) == set()
    assert board.crowds() == {"pagoda": 4.0}  # no duration: until cleared
    with pytest.raises(ConfigError, match="not in the province"):
        load_incidents(script, {IncidentKind.CAMERA_COVERED: set()})
    script.write_text("incidents:\n  - {kind: meteor, target: x}\n")
    with pytest.raises(ConfigError, match="kind"):
        load_incidents(script)


def test_fleet_follows_the_day_and_crowds() -> None:
    tz = ZoneInfo("Asia/Ho_Chi_Minh")
    aps = [
        AccessPoint(
            id=f"ap-{site}-{i}", name="x", site=site, district="d", lat=0, lon=0, capacity=100
        )
        for site in ("quiet", "crowded")
        for i in range(5)
    ]

    def clients(when: datetime, crowd: float | None = None) -> dict[str, float]:
        fleet = WifiFleet(aps, secret=b"s", timezone="Asia/Ho_Chi_Minh", seed=1)
        if crowd:
            fleet.crowds = {"crowded": crowd}
        for k in range(60):  # an hour of minutes: clients settle on their target
            fleet.sample(when.timestamp() + 60 * k, 60.0)
        last = {ap_id: samples[-1].clients for ap_id, samples in fleet.take().items()}
        return {
            site: sum(v for k, v in last.items() if f"-{site}-" in k) / 5
            for site in ("quiet", "crowded")
        }

    saturday_evening = clients(datetime(2025, 11, 22, 19, 0, tzinfo=tz))
    tuesday_evening = clients(datetime(2025, 11, 18, 19, 0, tzinfo=tz))
    tuesday_night = clients(datetime(2025, 11, 18, 3, 0, tzinfo=tz))
    assert saturday_evening["quiet"] > tuesday_evening["quiet"] > 3 * tuesday_night["quiet"]
    crowded = clients(datetime(2025, 11, 18, 19, 0, tzinfo=tz), crowd=3.0)
    assert crowded["crowded"] > 2 * crowded["quiet"]
    assert crowded["crowded"] > 100  # above capacity: an overloaded AP

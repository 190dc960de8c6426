"""``ioc vision replay`` on the shipped clips, through the real command, against counts and
times taken by eye from the footage (contact sheets and slit-scans of the counting lines)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import DATA, VIDEO, run_ioc

from protocol import Province
from vision import VisionPipeline
from vision._batch import FrameBatch
from vision._pipeline import ANALYSIS_SIZE, to_analysis_gray

# When a person stands in the room (by eye, frames 60-203, 227-453, 502-705, 745-874,
# 921-1207, 1235-1367 at 10 fps), in seconds.
PEOPLE = [(6.0, 20.3), (22.7, 45.3), (50.2, 70.5), (74.5, 87.4), (92.1, 120.7), (123.5, 136.7)]
# Car passages through the car park (by eye, 12.5 fps: frames 56-106, 182-228 down the left
# while 189-238 comes up the middle, 316-348), in seconds.
CARS = [(4.5, 8.5), (14.6, 18.2), (15.1, 19.0), (25.3, 27.8)]
# Vehicles crossing the counting lines of the highway clip (by eye, frame by frame): 22 going
# away (21 cars and vans, 1 lorry) and 21 coming toward the camera, none the wrong way.
AWAY, TOWARD = 22, 21


def _replay(video: Path, camera: str, *options: str) -> list[dict[str, object]]:
    result = run_ioc(
        *("vision", "replay", str(video), "--config", str(DATA / "clips.yaml")),
        *("--camera", camera, "--start-time", "1764000000", *options),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.splitlines()]


def _seconds(event: dict[str, object], key: str) -> float:
    return float(str(event[key]))


def _matches(events: list[dict[str, object]], truth: list[tuple[float, float]]) -> None:
    """One event per true episode, starting within 1.5 s of it and ending within 2 s."""
    assert len(events) == len(truth)
    spans = sorted((_seconds(e, "started_at"), _seconds(e, "ended_at")) for e in events)
    for (start, end), (true_start, true_end) in zip(spans, truth, strict=True):
        assert abs(start - true_start) <= 1.5, (start, true_start)
        assert abs(end - true_end) <= 2.0, (end, true_end)


def test_indoor_walkby_one_intrusion_per_person() -> None:
    *events, summary = _replay(VIDEO / "indoor_people_walkby_768x432.mp4", "indoor-room")
    assert summary == {"kind": "summary", "frames": 1394, "line_counts": {}}
    intrusions = [e for e in events if e["kind"] == "intrusion"]
    assert all(e["zone_id"] == "floor" and e["camera_id"] == "indoor-room" for e in intrusions)
    # None while the room is empty, one per person however long she stands at the table.
    _matches(intrusions, PEOPLE)
    assert [e for e in events if e["kind"] != "intrusion"] == []


def test_parking_one_intrusion_per_car_passage() -> None:
    *events, summary = _replay(VIDEO / "parking_lot_overhead_768x432.mp4", "parking")
    assert summary["frames"] == 377
    # Two cars pass each other at 15-18 s: two intrusions, not one. The auto exposure
    # darkens the image by half as each car comes in; that raises nothing.
    _matches([e for e in events if e["kind"] == "intrusion"], CARS)
    assert {e["kind"] for e in events} == {"intrusion"}


@pytest.mark.parametrize(("fps", "frames"), [(None, 748), (5.0, 150)])
def test_highway_counts_and_the_cyclist_on_the_shoulder(fps: float | None, frames: int) -> None:
    # The clip's 25 fps, and the province cameras' 5 fps (every 5th frame: --fps 5).
    options = ["--fps", str(fps)] if fps else []
    *events, summary = _replay(VIDEO / "highway_cctv_osd_320x240.avi", "highway", *options)
    assert summary["frames"] == frames
    counts = summary["line_counts"]
    assert isinstance(counts, dict)
    # Within 10% of the count by eye; nobody drives the wrong way.
    assert abs(counts["count-away"]["forward"] - AWAY) <= 0.1 * AWAY
    assert abs(counts["count-toward"]["forward"] - TOWARD) <= 0.1 * TOWARD
    assert counts["count-away"]["backward"] == 0
    assert counts["count-toward"]["backward"] == 0
    crossings = [e for e in events if e["kind"] == "line_crossing"]
    assert len(crossings) == sum(c["forward"] + c["backward"] for c in counts.values())
    assert all(e["direction"] in ("forward", "backward") and e["line_id"] for e in crossings)
    # The cyclist on the hard shoulder (in view from 2.5 s, riding away slowly): one intrusion.
    intrusions = [e for e in events if e["kind"] == "intrusion"]
    assert [e["zone_id"] for e in intrusions] == ["shoulder"]
    assert 2.0 <= _seconds(intrusions[0], "started_at") <= 3.5
    assert _seconds(intrusions[0], "ended_at") >= 15.0
    assert {e["kind"] for e in events} == {"intrusion", "line_crossing"}


@pytest.fixture(scope="module")
def highway_frames() -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(VIDEO / "highway_cctv_osd_320x240.avi"))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(to_analysis_gray(frame, ANALYSIS_SIZE))
    capture.release()
    return frames


@pytest.mark.parametrize("phase", range(5))
def test_highway_counts_at_5_fps_whichever_frame_comes_first(
    phase: int, highway_frames: list[np.ndarray], clips_province: Province
) -> None:
    """At 0.2 s a frame, pairs of cars that overlap on the image (one close behind the other
    in the next lane) cross the toward line as one blob more often than at 25 fps, and come
    apart only past it; which pairs depends on where the 5 fps sampling falls."""
    camera = clips_province.camera("highway")
    pipeline = VisionPipeline([camera], fps={camera.id: 5.0})
    t0 = 1_764_000_000.0
    for n, i in enumerate(range(phase, len(highway_frames), 5)):
        batch = FrameBatch(
            highway_frames[i][None],
            np.zeros(1, np.intp),
            np.array([t0 + i / 25]),
            np.array([n], np.int64),
        )
        pipeline.process(batch)
    counts = pipeline.line_totals()["highway"]
    assert abs(counts["count-away"]["forward"] - AWAY) <= 0.1 * AWAY
    assert abs(counts["count-toward"]["forward"] - TOWARD) <= 0.1 * TOWARD
    assert counts["count-away"]["backward"] == counts["count-toward"]["backward"] == 0


def test_replay_refuses_unknown_camera() -> None:
    result = run_ioc(
        *("vision", "replay", str(VIDEO / "indoor_people_walkby_768x432.mp4")),
        *("--config", str(DATA / "clips.yaml"), "--camera", "no-such-camera"),
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "no-such-camera" in result.stderr

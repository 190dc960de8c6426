"""The three clips as three cameras of one batched pipeline, fed 320x180 JPEG frames as edges
send them (the benchmark's path): the accuracy of the replay holds when cameras share
batches, decoding included."""

from __future__ import annotations

import pytest
from conftest import VIDEO
from test_vision_replay import AWAY, CARS, PEOPLE, TOWARD

from edge import EncodedClip, encode_clip
from protocol import FrameHeader, Province, VisionEvent
from vision import EncodedFrame, FrameDecoder, VisionPipeline

T0 = 1_764_000_000.0
CLIPS = {
    "indoor-room": "indoor_people_walkby_768x432.mp4",
    "highway": "highway_cctv_osd_320x240.avi",
    "parking": "parking_lot_overhead_768x432.mp4",
}


@pytest.fixture(scope="module")
def clips() -> dict[str, EncodedClip]:
    return {camera: encode_clip(VIDEO / name, (320, 180)) for camera, name in CLIPS.items()}


def _batches(clips: dict[str, EncodedClip], index: dict[str, int]) -> list[list[EncodedFrame]]:
    """Every frame in time order, in batches where each camera appears at most once."""
    timeline = sorted(
        (i / clip.fps, camera, i) for camera, clip in clips.items() for i in range(len(clip.frames))
    )
    batches: list[list[EncodedFrame]] = [[]]
    for t, camera, i in timeline:
        if any(f.header.camera_id == camera for f in batches[-1]):
            batches.append([])
        clip = clips[camera]
        header = FrameHeader(camera, i, T0 + t, clip.width, clip.height)
        batches[-1].append(EncodedFrame(index[camera], header, clip.frames[i]))
    return batches


def _spans(events: list[VisionEvent], camera: str) -> list[tuple[float, float]]:
    ends = [e for e in events if e.camera_id == camera and e.kind == "intrusion"]
    assert all(e.phase == "end" and e.ended_at is not None for e in ends)
    return sorted((e.started_at - T0, (e.ended_at or 0.0) - T0) for e in ends)


def _close(spans: list[tuple[float, float]], truth: list[tuple[float, float]]) -> None:
    assert len(spans) == len(truth)
    for (start, end), (true_start, true_end) in zip(spans, truth, strict=True):
        assert abs(start - true_start) <= 1.5
        assert abs(end - true_end) <= 2.0


def test_three_cameras_in_shared_batches_from_jpeg(
    clips: dict[str, EncodedClip], clips_province: Province
) -> None:
    cameras = [clips_province.camera(c) for c in CLIPS]
    pipeline = VisionPipeline(cameras, fps={c: clip.fps for c, clip in clips.items()})
    decoder = FrameDecoder((320, 180), len(cameras))
    events: list[VisionEvent] = []
    sizes = []
    for frames in _batches(clips, pipeline.index):
        batch, refused = decoder.decode(frames)
        assert refused == []
        assert batch is not None
        sizes.append(len(batch.cameras))
        result = pipeline.process(batch)
        events += [e for e in result.events if e.phase == "end"]
    events += pipeline.finish(T0 + 60).events
    assert max(sizes) == 3  # cameras shared batches (and some batches were partial)
    assert min(sizes) < 3
    _close(_spans(events, "indoor-room"), PEOPLE)
    _close(_spans(events, "parking"), CARS)
    shoulder = _spans(events, "highway")
    assert len(shoulder) == 1
    assert 2.0 <= shoulder[0][0] <= 3.5
    counts = pipeline.line_totals()["highway"]
    assert abs(counts["count-away"]["forward"] - AWAY) <= 0.1 * AWAY
    assert abs(counts["count-toward"]["forward"] - TOWARD) <= 0.1 * TOWARD
    assert {e.kind for e in events} == {"intrusion"}

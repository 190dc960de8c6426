"""One intrusion per episode when the object is small and slow: the shipped clips shrunk
into a corner of a static textured scene (as if far from the camera), and the cyclist far up
the highway's hard shoulder. Before the fix these gave back-to-back fragments and a long
intrusion overlapping them (docs/vision.md has the table)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import VIDEO

from protocol import Camera, EventKind, parse_province
from vision import ANALYSIS_SIZE, FrameBatch, VisionPipeline, to_analysis_gray

# When a person stands in the room (tests/test_vision_replay.py), in seconds.
PEOPLE = [(6.0, 20.3), (22.7, 45.3), (50.2, 70.5), (74.5, 87.4), (92.1, 120.7), (123.5, 136.7)]
CORNER = 0.6
"""The shrunk clip's top-left corner, as a fraction of the frame."""


def _camera(polygon: list[list[float]]) -> Camera:
    raw = {
        "cameras": [
            {
                "id": "far",
                "name": "far",
                "kind": "security",
                "district": "my-tho",
                "lat": 10.36,
                "lon": 106.36,
                "source": "clip",
                "zones": [{"id": "zone", "kind": "restricted", "polygon": polygon}],
            }
        ]
    }
    return parse_province(raw).cameras[0]


def _intrusions(
    camera: Camera, frames: list[np.ndarray], fps: float, stride: int
) -> list[tuple[float, float]]:
    pipeline = VisionPipeline([camera], fps={camera.id: fps / stride})
    t0 = 1_764_000_000.0
    spans = []
    for n, i in enumerate(range(0, len(frames), stride)):
        batch = FrameBatch(
            frames[i][None], np.zeros(1, np.intp), np.array([t0 + i / fps]), np.array([n])
        )
        for event in pipeline.process(batch).events:
            if event.kind is EventKind.INTRUSION and event.phase == "end":
                spans.append((event.started_at - t0, (event.ended_at or 0.0) - t0))
    for event in pipeline.finish(t0 + len(frames) / fps).events:
        if event.kind is EventKind.INTRUSION:
            spans.append((event.started_at - t0, (event.ended_at or 0.0) - t0))
    return sorted(spans)


def _read(video: Path) -> tuple[list[np.ndarray], float]:
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames, fps


@pytest.fixture(scope="module")
def room() -> tuple[list[np.ndarray], float]:
    return _read(VIDEO / "indoor_people_walkby_768x432.mp4")


@pytest.mark.parametrize(("scale", "stride"), [(0.25, 1), (0.3, 2)])
def test_far_small_people_are_one_intrusion_each(
    room: tuple[list[np.ndarray], float], scale: float, stride: int
) -> None:
    width, height = ANALYSIS_SIZE
    texture = np.random.default_rng(1).integers(60, 200, (height, width)).astype(np.uint8)
    scene = cv2.GaussianBlur(texture, (5, 5), 0)
    w, h = int(width * scale), int(height * scale)
    x0, y0 = int(width * CORNER), int(height * CORNER)
    frames = []
    for frame in room[0]:
        image = scene.copy()
        image[y0 : y0 + h, x0 : x0 + w] = to_analysis_gray(frame, (w, h))
        frames.append(image)
    floor = [
        [CORNER + x * scale, CORNER + y * scale] for x, y in [(0, 0.6), (1, 0.6), (1, 1), (0, 1)]
    ]
    spans = _intrusions(_camera(floor), frames, room[1], stride)
    assert len(spans) == len(PEOPLE), spans
    for (start, end), (true_start, true_end) in zip(spans, PEOPLE, strict=True):
        assert abs(start - true_start) <= 1.5, (start, true_start)
        assert abs(end - true_end) <= 2.0, (end, true_end)


def test_the_far_cyclist_on_the_shoulder_is_one_intrusion_at_5_fps() -> None:
    """Far up the shoulder the cyclist is ~10 px of 320x180, near ``min_object_area``, and
    at 5 fps its track is lost and found again (two intrusions before the fix)."""
    frames, fps = _read(VIDEO / "highway_cctv_osd_320x240.avi")
    gray = [to_analysis_gray(f, ANALYSIS_SIZE) for f in frames]
    shoulder = [[0.935, 0.10], [0.985, 0.10], [0.985, 0.45], [0.93, 0.45]]
    spans = _intrusions(_camera(shoulder), gray, fps, 5)
    assert len(spans) == 1, spans
    (start, end) = spans[0]
    assert 13.5 <= start <= 15.0
    assert end >= 28.0

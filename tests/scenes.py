"""Real frames with controlled changes, for the vision detector tests.

The backgrounds are real frames of the shipped clips (the empty room, the empty car park);
the object is a real person cut from the room clip. A scene pastes, darkens, blurs or
covers them frame by frame and feeds a one-camera pipeline, as a camera at 5 fps would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from protocol import Camera, VisionEvent, parse_province
from vision import FrameBatch, VisionPipeline, to_analysis_gray

VIDEO = Path(__file__).resolve().parent.parent / "data" / "video"
T0 = 1_764_000_000.0
"""2025-11-24 23:00 in Asia/Ho_Chi_Minh (16:00 UTC)."""
SIZE = (320, 180)
Gray = npt.NDArray[np.uint8]
Draw = Callable[[Gray, float], Gray]


@cache
def clip_frame(name: str, index: int) -> Gray:
    capture = cv2.VideoCapture(str(VIDEO / name))
    try:
        for _ in range(index + 1):
            ok, frame = capture.read()
            assert ok, f"{name} has no frame {index}"
    finally:
        capture.release()
    return to_analysis_gray(frame, SIZE)


def empty_room() -> Gray:
    return clip_frame("indoor_people_walkby_768x432.mp4", 10).copy()


def empty_lot() -> Gray:
    return clip_frame("parking_lot_overhead_768x432.mp4", 20).copy()


def person() -> Gray:
    """A person standing at the table (frame 120 of the room clip), as a patch."""
    return clip_frame("indoor_people_walkby_768x432.mp4", 120)[9:166, 160:214].copy()


def paste(frame: Gray, patch: Gray, x: float, y: float) -> Gray:
    """``patch`` with its top-left corner at frame fractions (x, y), clipped to the frame."""
    out = frame.copy()
    h, w = patch.shape
    top, left = round(y * SIZE[1]), round(x * SIZE[0])
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + h, SIZE[1]), min(left + w, SIZE[0])
    if y1 > y0 and x1 > x0:
        out[y0:y1, x0:x1] = patch[y0 - top : y1 - top, x0 - left : x1 - left]
    return out


def darken(frame: Gray, factor: float) -> Gray:
    return np.asarray(cv2.convertScaleAbs(frame, alpha=factor), np.uint8)


def blur(frame: Gray, sigma: float) -> Gray:
    return np.asarray(cv2.GaussianBlur(frame, (0, 0), sigma), np.uint8)


def pan(frame: Gray, pixels: int) -> Gray:
    """The view of a camera turned ``pixels`` to the right."""
    shift = np.array([[1, 0, -pixels], [0, 1, 0]], np.float32)
    return np.asarray(cv2.warpAffine(frame, shift, SIZE, borderMode=cv2.BORDER_REFLECT), np.uint8)


def camera(
    zones: Sequence[Mapping[str, object]],
    lines: Sequence[Mapping[str, object]] = (),
    **analytics: float,
) -> Camera:
    raw = {
        "cameras": [
            {
                "id": "test-cam",
                "name": "test camera",
                "kind": "security",
                "district": "my-tho",
                "lat": 10.36,
                "lon": 106.36,
                "source": "data/video/indoor_people_walkby_768x432.mp4",
                "fps": 5,
                "zones": list(zones),
                "lines": list(lines),
                "analytics": analytics,
            }
        ]
    }
    return parse_province(raw).cameras[0]


class Scene:
    """One camera at ``fps`` whose frames are ``draw(background, t)``."""

    def __init__(self, cam: Camera, background: Gray, *, fps: float = 5.0) -> None:
        self.pipeline = VisionPipeline([cam], fps={cam.id: fps})
        self.background = background
        self.fps = fps
        self.frames = 0
        self.events: list[VisionEvent] = []

    @property
    def now(self) -> float:
        return T0 + self.frames / self.fps

    def run(self, seconds: float, draw: Draw | None = None) -> list[VisionEvent]:
        """Play ``seconds`` of frames; return the events (and crossings) they raised."""
        out: list[VisionEvent] = []
        for _ in range(round(seconds * self.fps)):
            t = self.frames / self.fps
            frame = draw(self.background, t) if draw else self.background
            batch = FrameBatch(
                frame[None],
                np.zeros(1, np.intp),
                np.array([self.now]),
                np.array([self.frames], np.int64),
            )
            result = self.pipeline.process(batch)
            out += result.events + result.crossings
            self.frames += 1
        self.events += out
        return out

    def finish(self) -> list[VisionEvent]:
        out = self.pipeline.finish(self.now).events
        self.events += out
        return out


def starts(events: list[VisionEvent], kind: str) -> list[VisionEvent]:
    return [e for e in events if e.kind == kind and e.phase == "start"]


def ends(events: list[VisionEvent], kind: str) -> list[VisionEvent]:
    return [e for e in events if e.kind == kind and e.phase == "end"]

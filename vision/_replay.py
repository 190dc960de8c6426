"""``ioc vision replay``: the live detectors over a video file, as fast as it decodes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from protocol import Camera, EventKind, VisionEvent

from ._batch import FrameBatch
from ._pipeline import ANALYSIS_SIZE, BatchResult, VisionPipeline, to_analysis_gray
from ._speed import SpeedMeasurement


class ReplayError(RuntimeError):
    """The video cannot be read."""


def _video_seconds(event: VisionEvent, origin: float) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": str(event.kind), "camera_id": event.camera_id}
    if event.zone_id is not None:
        out["zone_id"] = event.zone_id
    if event.line_id is not None:
        out["line_id"] = event.line_id
    out["started_at"] = round(event.started_at - origin, 3)
    ended = event.ended_at if event.ended_at is not None else event.started_at
    out["ended_at"] = round(ended - origin, 3)
    if event.direction is not None:
        out["direction"] = event.direction
    if event.detail is not None:
        out["detail"] = event.detail
    out["score"] = event.score
    return out


def _speed_records(speed: SpeedMeasurement, origin: float) -> list[dict[str, Any]]:
    """The ``speed`` line of a timed vehicle, and its ``speeding`` line when over the limit."""
    record: dict[str, Any] = {
        "kind": "speed",
        "camera_id": speed.camera_id,
        "gate_id": speed.gate_id,
        "started_at": round(speed.started_at - origin, 3),
        "ended_at": round(speed.ended_at - origin, 3),
        "speed_kmh": speed.speed_kmh,
        "direction": speed.direction,
    }
    if not speed.speeding:
        return [record]
    return [record, {**record, "kind": "speeding", "limit_kmh": speed.limit_kmh}]


def _records(result: BatchResult, origin: float) -> Iterator[dict[str, Any]]:
    for event in [*result.events, *result.crossings]:
        # speeding is printed with its speed line, in the gate's own format.
        if event.phase != "start" and event.kind is not EventKind.SPEEDING:
            yield _video_seconds(event, origin)
    for speed in result.speeds:
        yield from _speed_records(speed, origin)


def replay(
    video: Path,
    camera: Camera,
    *,
    timezone: str,
    origin: float,
    size: tuple[int, int] = ANALYSIS_SIZE,
    target_fps: float | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield one record per finished event (and a ``speed`` record per vehicle timed by a
    speed gate, with a ``speeding`` one when over the limit), then the summary record.

    ``origin`` is the wall-clock time (epoch seconds) of the first frame, which decides
    whether scheduled zones are watched; reported times are seconds of video time.
    ``target_fps`` keeps every k-th frame (k = round(clip fps / target_fps), at least 1), as a
    camera sending at that rate would, and tells the pipeline the resulting rate; the
    summary's ``frames`` counts the frames analysed.
    """
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise ReplayError(f"{video}: cannot open the video")
    fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    if fps <= 0:
        raise ReplayError(f"{video}: the file does not state its frame rate")
    if target_fps is not None and target_fps <= 0:
        raise ReplayError(f"--fps must be positive, not {target_fps:g}")
    stride = max(1, round(fps / target_fps)) if target_fps else 1
    pipeline = VisionPipeline([camera], timezone=timezone, size=size, fps={camera.id: fps / stride})
    cameras = np.zeros(1, np.intp)
    frames = 0
    read = 0
    try:
        while True:
            # grab() without retrieve() skips a frame's decode (cheap for the dropped ones).
            if not capture.grab():
                break
            read += 1
            if (read - 1) % stride:
                continue
            ok, frame = capture.retrieve()
            if not ok:
                break
            now = origin + frames * stride / fps
            batch = FrameBatch(
                to_analysis_gray(frame, size)[None],
                cameras,
                np.array([now]),
                np.array([frames], np.int64),
            )
            yield from _records(pipeline.process(batch), origin)
            frames += 1
    finally:
        capture.release()
    if frames == 0:
        raise ReplayError(f"{video}: no frame could be decoded")
    for event in pipeline.finish(origin + frames * stride / fps).events:
        yield _video_seconds(event, origin)
    counts = pipeline.line_totals()[camera.id]
    yield {"kind": "summary", "frames": frames, "line_counts": counts}

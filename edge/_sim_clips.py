"""Evidence clips for the simulator: cut from the replayed file itself, at the frames the
camera was showing, when an alert asks. No ring per camera is needed (every camera replays
a file it can seek), so 200 simulated cameras cost nothing until a clip is ordered; the
clip is encoded exactly as an agent's ring would encode it (same encoder and muxer)."""

from __future__ import annotations

from pathlib import Path

import cv2

from ._ring import Clip, ClipRing, RingSettings


def cut_replayed(
    path: Path,
    camera_id: str,
    *,
    first_frame: int,
    frames: int,
    file_fps: float,
    started_at: float,
    settings: RingSettings,
) -> Clip:
    """``frames`` frames of the file from ``first_frame`` (looping as the replay does),
    frame i stamped ``started_at + i / file_fps``, as an MP4 at ``settings``."""
    span = frames / file_fps
    ring = ClipRing(
        camera_id,
        RingSettings(settings.width, settings.height, settings.fps, span + 5.0, settings.crf),
    )
    capture = cv2.VideoCapture(str(path))
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or 1
        capture.set(cv2.CAP_PROP_POS_FRAMES, first_frame % total)
        position = first_frame % total
        for i in range(frames):
            ok, image = capture.read()
            if not ok or position >= total:
                capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                position = 0
                ok, image = capture.read()
                if not ok:
                    break
            position += 1
            ring.add(image, started_at + i / file_fps)
    finally:
        capture.release()
    return ring.cut(started_at, started_at + span)

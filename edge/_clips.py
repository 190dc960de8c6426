"""Video clips decoded and JPEG-encoded once, at analysis size, for cheap replay by many
simulated cameras (each camera reuses the same bytes from its own offset)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2

logger = logging.getLogger(__name__)


class ClipError(RuntimeError):
    """A clip that cannot be read as video."""


@dataclass(frozen=True, slots=True)
class EncodedClip:
    path: Path
    fps: float
    width: int
    height: int
    frames: tuple[bytes, ...]


def encode_clip(path: Path, size: tuple[int, int], *, quality: int = 80) -> EncodedClip:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ClipError(f"{path}: cannot open as video")
    fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    frames: list[bytes] = []
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            ok, jpeg = cv2.imencode(".jpg", small, params)
            if ok:
                frames.append(jpeg.tobytes())
    finally:
        capture.release()
    if not frames or fps <= 0:
        raise ClipError(f"{path}: no decodable frames or no frame rate")
    logger.info("encoded %d frames of %s at %dx%d", len(frames), path.name, *size)
    return EncodedClip(path, fps, size[0], size[1], tuple(frames))


class ClipLibrary:
    """Encodes each distinct clip once, however many cameras replay it."""

    def __init__(self, size: tuple[int, int] = (320, 180), *, base: Path | None = None) -> None:
        self.size = size
        self.base = base
        self._clips: dict[Path, EncodedClip] = {}

    def get(self, source: str) -> EncodedClip:
        path = Path(source)
        if not path.is_absolute() and self.base is not None:
            path = self.base / path
        path = path.resolve()
        if path not in self._clips:
            self._clips[path] = encode_clip(path, self.size)
        return self._clips[path]

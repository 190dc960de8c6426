"""Synthetic evidence footage: every frame carries its number, burned in as 16 black or white
blocks that survive H.264, so a test can read which source frames a clip holds."""

from __future__ import annotations

import io

import av
import numpy as np

from edge._ring import ClipRing, RingSettings

BITS = 12
BLOCK = 40


def counter_frame(n: int, width: int = 640, height: int = 360) -> np.ndarray:
    image = np.full((height, width, 3), 90, np.uint8)
    image[:, :, 1] = (n * 7) % 255  # a changing background, so frames differ everywhere
    for bit in range(BITS):
        x = (bit % 8) * (BLOCK + 8) + 8
        y = (bit // 8) * (BLOCK + 8) + 8
        image[y : y + BLOCK, x : x + BLOCK] = 255 if (n >> bit) & 1 else 0
    return image


def read_counter(image: np.ndarray) -> int:
    n = 0
    for bit in range(BITS):
        x = (bit % 8) * (BLOCK + 8) + 8 + BLOCK // 2
        y = (bit // 8) * (BLOCK + 8) + 8 + BLOCK // 2
        if image[y - 4 : y + 4, x - 4 : x + 4].mean() > 128:
            n |= 1 << bit
    return n


def clip_counters(mp4: bytes) -> list[int]:
    with av.open(io.BytesIO(mp4), "r") as container:
        return [read_counter(f.to_ndarray(format="bgr24")) for f in container.decode(video=0)]


def filled_ring(
    frames: int, *, start: float = 1_000_000.0, fps: float = 10.0, seconds: float = 30.0
) -> ClipRing:
    """A ring fed ``frames`` counter frames, frame n captured at ``start + n / fps``."""
    ring = ClipRing("cam-test", RingSettings(fps=fps, seconds=seconds))
    for n in range(frames):
        ring.add(counter_frame(n), start + n / fps)
    return ring

"""JPEG frames of many cameras decoded into one preallocated batch at the analysis size.

Frames are decoded in gray by libjpeg-turbo (simplejpeg) straight into their row of the
batch: no picture is allocated and copied per frame, which ``cv2.imdecode`` cannot avoid
(the same library underneath, pixel for pixel the same gray picture, ~6 us a frame less).
A JPEG two, four or eight times the analysis size is decoded straight at the analysis size
(libjpeg scales while it decodes); any other size is decoded in gray and resized. A frame
that cannot be read is refused with its reason and the batch goes on with the other cameras.
The JPEG's own frame header is read before decoding: a picture larger than ``max_pixels``,
or of another size than the frame header announced, is refused without allocating it (a
1.7 MB JPEG can claim 12000x12000 pixels, 144 MB).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import simplejpeg

from protocol import FrameDecodeError, FrameHeader, jpeg_size

from ._batch import FrameBatch

MAX_PIXELS = 3840 * 2160
"""Largest picture decoded (4K UHD); analysis frames are far smaller."""
_REDUCTIONS = (8, 4, 2)
"""Scales libjpeg decodes at directly (of the JPEG's own size), tried largest first."""


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    camera: int
    """The pipeline's index of the camera."""
    header: FrameHeader
    jpeg: bytes | memoryview


@dataclass(frozen=True, slots=True)
class RefusedFrame:
    camera: int
    reason: str
    """Names the field that is wrong, e.g. ``frame size: the header says 640x360 ...``."""


class FrameDecoder:
    """Decodes up to ``capacity`` frames per batch into one reused buffer."""

    def __init__(self, size: tuple[int, int], capacity: int, max_pixels: int = MAX_PIXELS) -> None:
        self.width, self.height = size
        self.max_pixels = max_pixels
        self.buffer = np.empty((max(capacity, 1), self.height, self.width), np.uint8)
        self._plans: dict[tuple[int, int], tuple[int, int]] = {}

    def decode(
        self, frames: Sequence[EncodedFrame]
    ) -> tuple[FrameBatch | None, list[RefusedFrame]]:
        """The batch (cameras in increasing order) and the frames that were refused. The
        batch is a view of the buffer: it is valid until the next call."""
        if len(frames) > len(self.buffer):
            self.buffer = np.empty((len(frames), self.height, self.width), np.uint8)
        buffer, plans = self.buffer, self._plans
        cameras: list[int] = []
        times: list[float] = []
        seqs: list[int] = []
        refused: list[RefusedFrame] = []
        # One decode per JPEG is the unit of work (~0.1 ms); the loop is kept lean, as
        # its Python overhead per frame measured a tenth of that.
        for frame in sorted(frames, key=_camera_of):
            header = frame.header
            expected = plans.get((header.width, header.height))
            if expected is None:
                expected = plans[header.width, header.height] = self._plan(
                    header.width, header.height
                )
            problem = self._judge_size(header, frame.jpeg)
            if problem is not None:
                refused.append(RefusedFrame(frame.camera, problem))
                continue
            slot = len(cameras)
            direct = expected == buffer.shape[1:]
            try:
                # A failed decode may have written part of the slot: the next frame takes it.
                image = simplejpeg.decode_jpeg(
                    frame.jpeg,
                    colorspace="GRAY",
                    min_height=expected[0],
                    min_width=expected[1],
                    buffer=buffer[slot] if direct else None,
                )
            except ValueError as exc:
                refused.append(RefusedFrame(frame.camera, f"corrupt JPEG: {exc}"))
                continue
            if image.shape[:2] != expected:
                refused.append(RefusedFrame(frame.camera, self._wrong_size(header, image.shape)))
                continue
            if not direct:
                cv2.resize(
                    image[..., 0], (self.width, self.height), buffer[slot], 0, 0, cv2.INTER_AREA
                )
            cameras.append(frame.camera)
            times.append(header.captured_at)
            seqs.append(header.sequence)
        if not cameras:
            return None, refused
        n = len(cameras)
        batch = FrameBatch(
            buffer[:n],
            np.array(cameras, np.intp),
            np.array(times, np.float64),
            np.array(seqs, np.int64),
        )
        return batch, refused

    def _plan(self, width: int, height: int) -> tuple[int, int]:
        """The shape (height, width) to decode a JPEG of this size at: the analysis size
        when it is 2, 4 or 8 times that, else its own."""
        for f in _REDUCTIONS:
            if width == f * self.width and height == f * self.height:
                return self.height, self.width
        return height, width

    def _judge_size(self, header: FrameHeader, jpeg: bytes | memoryview) -> str | None:
        """Why this JPEG must not be decoded, or None."""
        try:
            width, height = jpeg_size(jpeg)
        except FrameDecodeError as exc:
            return f"corrupt JPEG: {exc}"
        if width * height > self.max_pixels:
            return (
                f"frame size: the JPEG is {width}x{height}, more than the {self.max_pixels} "
                "pixels decoded"
            )
        if (width, height) != (header.width, header.height):
            return (
                f"frame size: the header says {header.width}x{header.height} but the JPEG is "
                f"{width}x{height}"
            )
        return None

    @staticmethod
    def _wrong_size(header: FrameHeader, shape: tuple[int, ...]) -> str:
        return (
            f"frame size: the header says {header.width}x{header.height} but the JPEG decoded "
            f"as {shape[1]}x{shape[0]}"
        )


def _camera_of(frame: EncodedFrame) -> int:
    return frame.camera

"""Analysis frames: a fixed little-endian header followed by the JPEG bytes.

Byte layout (schema version 1), all integers little-endian:

| offset | size | field |
|---|---|---|
| 0 | 4 | magic ``b"IOCF"`` |
| 4 | 1 | schema version, ``1`` |
| 5 | 1 | length ``L`` of the camera id (1..63) |
| 6 | 2 | width in pixels (uint16) |
| 8 | 2 | height in pixels (uint16) |
| 10 | 8 | sequence number (uint64), per camera, increasing |
| 18 | 8 | capture time (float64), seconds since the Unix epoch, UTC |
| 26 | L | camera id, ASCII |
| 26+L | rest | JPEG image |
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ._topics import IDENTIFIER

FRAME_MAGIC = b"IOCF"
FRAME_SCHEMA_VERSION = 1
_HEADER = struct.Struct("<4sBBHHQd")
_JPEG_SOI = b"\xff\xd8"


class FrameDecodeError(ValueError):
    """A frame payload we cannot read; the message says which part is wrong."""


@dataclass(frozen=True, slots=True)
class FrameHeader:
    camera_id: str
    sequence: int
    captured_at: float
    width: int
    height: int


def encode_frame(header: FrameHeader, jpeg: bytes) -> bytes:
    camera = header.camera_id.encode("ascii")
    return (
        _HEADER.pack(
            FRAME_MAGIC,
            FRAME_SCHEMA_VERSION,
            len(camera),
            header.width,
            header.height,
            header.sequence,
            header.captured_at,
        )
        + camera
        + jpeg
    )


def decode_frame(payload: bytes) -> tuple[FrameHeader, memoryview]:
    """Split a payload into its header and a view of the JPEG bytes (no copy)."""
    if len(payload) < _HEADER.size:
        raise FrameDecodeError(f"frame payload of {len(payload)} bytes is shorter than the header")
    magic, version, id_len, width, height, seq, captured = _HEADER.unpack_from(payload)
    if magic != FRAME_MAGIC:
        raise FrameDecodeError(f"frame magic {magic!r} is not {FRAME_MAGIC!r}")
    if version != FRAME_SCHEMA_VERSION:
        raise FrameDecodeError(f"frame schema version {version} is not supported")
    start = _HEADER.size
    try:
        camera_id = bytes(payload[start : start + id_len]).decode("ascii")
    except UnicodeDecodeError as exc:
        raise FrameDecodeError("frame camera id is not ASCII") from exc
    if not IDENTIFIER.fullmatch(camera_id):
        raise FrameDecodeError(f"frame camera id {camera_id!r} is not a valid identifier")
    if width == 0 or height == 0:
        raise FrameDecodeError(f"frame size {width}x{height} is empty")
    jpeg = memoryview(payload)[start + id_len :]
    if bytes(jpeg[:2]) != _JPEG_SOI:
        raise FrameDecodeError("frame body is not a JPEG (no start-of-image marker)")
    return FrameHeader(camera_id, seq, captured, width, height), jpeg


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
"""Start-of-frame markers (baseline, progressive, lossless ...); C4, C8, CC are not."""
_STANDALONE = frozenset(range(0xD0, 0xDA)) | {0x01}
"""Markers without a length field (RSTn, SOI, EOI, TEM)."""


def jpeg_size(jpeg: bytes | memoryview) -> tuple[int, int]:
    """(width, height) from the JPEG's frame header, read without decoding anything, so a
    picture's size can be judged before the decoder allocates it."""
    data = memoryview(jpeg)
    i = 2 if bytes(data[:2]) == _JPEG_SOI else -1
    if i < 0:
        raise FrameDecodeError("frame body is not a JPEG (no start-of-image marker)")
    end = len(data)
    while i + 4 <= end:
        if data[i] != 0xFF:
            raise FrameDecodeError(f"JPEG marker expected at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        length = (data[i + 2] << 8) | data[i + 3]
        if marker in _SOF:
            if i + 9 > end or length < 7:
                break
            height = (data[i + 5] << 8) | data[i + 6]
            width = (data[i + 7] << 8) | data[i + 8]
            return width, height
        if marker == 0xDA:  # start of scan: image data follows, no frame header came
            break
        i += 2 + length
    raise FrameDecodeError("JPEG has no frame header (truncated or not a JPEG)")

"""Is it an MP4 with an H.264 video stream that decodes? Asked of FFmpeg (PyAV), which
reads every packet of the file, so a truncated or doctored container is caught, not just its
name."""

from __future__ import annotations

import io
from dataclasses import dataclass

import av


class NotAClipError(ValueError):
    """The bytes are not a playable H.264 MP4 (``reason`` says why)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ClipFacts:
    frames: int
    width: int
    height: int
    seconds: float


def probe_mp4(data: bytes) -> ClipFacts:
    try:
        with av.open(io.BytesIO(data), "r") as container:
            if "mp4" not in container.format.name.split(","):
                raise NotAClipError(f"container is {container.format.name}, not MP4")
            if not container.streams.video:
                raise NotAClipError("no video stream")
            stream = container.streams.video[0]
            if stream.codec_context.name != "h264":
                raise NotAClipError(f"video codec is {stream.codec_context.name}, not H.264")
            # Every packet is read (the container's whole structure), the first picture is
            # decoded (the stream's parameters hold); decoding all would cost a core-second
            # per clip at the centre for little more assurance.
            frames = 0
            last = 0.0
            decoded = False
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                frames += 1
                last = max(last, float(packet.pts * packet.time_base) if packet.pts else 0.0)
                if not decoded:
                    decoded = bool(packet.decode())
            width, height = stream.codec_context.width, stream.codec_context.height
    except av.FFmpegError as exc:
        raise NotAClipError(f"FFmpeg cannot read it: {exc}") from exc
    if frames == 0 or not decoded:
        raise NotAClipError("no decodable frame")
    return ClipFacts(frames, width, height, last)

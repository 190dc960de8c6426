"""Evidence ring buffers: the last seconds of a camera, held as H.264, cut into MP4 clips.

Each camera's evidence frames (colour, at the evidence size and frame rate) are encoded once
as they arrive, by x264 through PyAV, with a key frame every second; the ring keeps the
encoded packets of whole key-frame groups for ``seconds`` and drops the oldest group as a
new one starts, so its memory is the stream's bitrate times ``seconds`` (docs/edge.md).
Cutting a clip copies packets into an MP4 container without decoding or re-encoding: it
starts at the last key frame at or before ``start`` (at most one second early) and ends
with the last packet captured at or before ``end``.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import cv2
import numpy as np
from cv2.typing import MatLike

_MS = Fraction(1, 1000)


class CutError(RuntimeError):
    """No clip: the ring holds nothing of the asked-for time (``start``..``end``)."""

    def __init__(self, camera_id: str, start: float, end: float, detail: str) -> None:
        super().__init__(f"camera {camera_id}: no clip for {start:.3f}..{end:.3f}: {detail}")
        self.camera_id = camera_id
        self.start = start
        self.end = end


@dataclass(frozen=True, slots=True)
class RingSettings:
    width: int = 640
    height: int = 360
    fps: float = 10.0
    seconds: float = 30.0
    crf: int = 30
    """x264 constant quality: 30 keeps plates readable at 640x360 for about 15-40 kB/s."""


@dataclass(frozen=True, slots=True)
class EncodedPacket:
    at: float
    """Capture time of the frame, seconds since the epoch."""
    data: bytes
    key: bool


@dataclass(frozen=True, slots=True)
class Clip:
    camera_id: str
    started_at: float
    ended_at: float
    frames: int
    mp4: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.mp4).hexdigest()


class FrameEncoder:
    """Colour pictures in, H.264 packets out (x264 ultrafast, zero latency: no frame waits
    for a later one, so a packet comes out for every frame in)."""

    def __init__(self, settings: RingSettings) -> None:
        self.settings = settings
        self._codec = av.CodecContext.create("libx264", "w")
        self._codec.width = settings.width
        self._codec.height = settings.height
        self._codec.pix_fmt = "yuv420p"
        self._codec.time_base = _MS
        self._codec.framerate = Fraction(settings.fps).limit_denominator(1000)
        # Key frames are forced by capture time (one a second, whatever rate the source
        # really delivers); the GOP size is only an upper bound. No global header: every key
        # frame carries its SPS/PPS, so a clip may start at any.
        self._codec.gop_size = max(1, round(settings.fps * 10))
        self._codec.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "crf": str(settings.crf),
            "forced-idr": "1",
            "threads": "1",  # one camera, one thread: readers already use every core
        }
        self._first: float | None = None
        self._last_key = float("-inf")
        self._key_every = 1.0 - 0.5 / settings.fps

    def encode(self, image: MatLike, at: float) -> list[EncodedPacket]:
        size = (self.settings.width, self.settings.height)
        if (image.shape[1], image.shape[0]) != size:
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        # OpenCV converts to the encoder's planar YUV (BT.601, limited range, as FFmpeg's
        # scaler would): 15% less CPU per frame, and no scaler context (0.5 MB) per camera.
        yuv = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)
        frame = av.VideoFrame.from_ndarray(np.asarray(yuv, dtype=np.uint8), format="yuv420p")
        if self._first is None:
            self._first = at
        frame.pts = round((at - self._first) * 1000)
        if at - self._last_key >= self._key_every:
            frame.pict_type = av.video.frame.PictureType.I
            self._last_key = at
        return [
            EncodedPacket(
                at=self._first + (p.pts or 0) / 1000, data=bytes(p), key=bool(p.is_keyframe)
            )
            for p in self._codec.encode(frame)
        ]


def mux_mp4(packets: Sequence[EncodedPacket], settings: RingSettings) -> bytes:
    """The packets (the first a key frame) in an MP4 container, times from capture times."""
    if not packets or not packets[0].key:
        raise ValueError("a clip must start with a key frame")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("h264", rate=Fraction(settings.fps).limit_denominator(1000))
        stream.width = settings.width
        stream.height = settings.height
        stream.pix_fmt = "yuv420p"
        stream.time_base = _MS
        origin = packets[0].at
        last = -1
        for item in packets:
            pts = max(round((item.at - origin) * 1000), last + 1)  # strictly increasing
            last = pts
            packet = av.Packet(item.data)
            packet.pts = packet.dts = pts
            packet.time_base = _MS
            packet.is_keyframe = item.key
            packet.stream = stream
            container.mux(packet)
    return buffer.getvalue()


def cut_packets(packets: Iterable[EncodedPacket], start: float, end: float) -> list[EncodedPacket]:
    """The packets from the last key frame at or before ``start`` (or the first key frame
    after it) to the last one captured at or before ``end``."""
    chosen: list[EncodedPacket] = []
    for packet in packets:
        if packet.at > end:
            break
        if packet.key and (packet.at <= start or not chosen):
            chosen = [packet]
        elif chosen:
            chosen.append(packet)
    if chosen and chosen[-1].at < start:
        return []  # all of it before the asked-for time
    return chosen


class ClipRing:
    """One camera's last ``settings.seconds`` as H.264 packets, safe to feed from the
    camera's reader thread and to cut from another thread."""

    def __init__(self, camera_id: str, settings: RingSettings) -> None:
        self.camera_id = camera_id
        self.settings = settings
        self._encoder = FrameEncoder(settings)
        self._packets: deque[EncodedPacket] = deque()
        self._bytes = 0
        self._lock = threading.Lock()
        self._last_at = float("-inf")
        self._interval = 1.0 / settings.fps

    @property
    def nbytes(self) -> int:
        return self._bytes

    @property
    def newest(self) -> float | None:
        with self._lock:
            return self._packets[-1].at if self._packets else None

    def wants(self, at: float) -> bool:
        """Whether a frame captured at ``at`` is due (the ring keeps ``fps``, not more)."""
        return at - self._last_at >= self._interval * 0.999

    def add(self, image: MatLike, at: float) -> None:
        """Encode one picture (any size, BGR or gray) captured at ``at``."""
        if not self.wants(at):
            return
        self._last_at = at
        packets = self._encoder.encode(image, at)
        with self._lock:
            for packet in packets:
                self._packets.append(packet)
                self._bytes += len(packet.data)
            self._trim(at - self.settings.seconds)

    def _trim(self, horizon: float) -> None:
        # Drop whole groups: while the second key frame is older than the horizon, the
        # group before it is not needed to decode anything newer.
        while True:
            keys = (i for i, p in enumerate(self._packets) if p.key and i > 0)
            second = next(keys, None)
            if second is None or self._packets[second].at > horizon:
                return
            for _ in range(second):
                self._bytes -= len(self._packets.popleft().data)

    def cut(self, start: float, end: float) -> Clip:
        with self._lock:
            chosen = cut_packets(list(self._packets), start, end)
        if not chosen:
            raise CutError(self.camera_id, start, end, "nothing buffered for that time")
        return Clip(
            self.camera_id,
            chosen[0].at,
            chosen[-1].at,
            len(chosen),
            mux_mp4(chosen, self.settings),
        )

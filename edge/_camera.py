"""Camera sources: one reader thread per camera, so a camera that hangs holds up nobody.

A reader opens its source with ``cv2.VideoCapture`` (RTSP/HTTP URLs, or files, which loop),
keeps frames at the configured rate (files are paced at their own speed, streams by the
clock), resizes each kept frame to the analysis size and JPEG-encodes it once, and leaves it
in its :class:`FrameSlot`. The slot holds one frame: if the publisher has not taken the
previous one (a slow or absent broker), it is replaced and counted as dropped, so memory
never grows. A source that fails is retried with capped, jittered backoff and its state
says why (the log names the source with its password hidden).

OpenCV releases the GIL while it decodes, resizes and encodes, so readers use both cores.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import cv2
from cv2.typing import MatLike

from protocol import Camera, CameraState, FrameHeader, backoff_delay, redact_url

from ._clips import analysis_frame
from ._ring import ClipRing

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CameraSettings:
    width: int = 320
    height: int = 180
    jpeg_quality: int = 80
    snapshot_quality: int = 90
    open_timeout: float = 10.0
    """Seconds a network source may take to open (FFmpeg's open timeout)."""
    read_timeout: float = 10.0
    """Seconds a network source may go without a frame before it is reopened."""
    file_speed: float = 1.0
    """Replay speed of file sources (1.0: their own frame rate)."""
    max_backoff: float = 60.0
    """Longest wait before reopening a source that failed."""


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    header: FrameHeader
    jpeg: bytes


def probe_stream(url: str, timeout: float) -> str | None:
    """Check that an RTSP/HTTP server answers at all before FFmpeg opens it; the reason if
    not. OpenCV holds one process-wide lock while FFmpeg opens a source (measured: a
    second open waits for the first), so a server that accepts connections and never
    answers would stall every other camera's (re)connection for ``open_timeout``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("rtsp", "http") or not parts.hostname:
        return None  # rtsps/https/udp...: FFmpeg's own timeouts are all we have
    port = parts.port or (554 if scheme == "rtsp" else 80)
    path = parts.path or "/"
    host = parts.hostname
    if scheme == "rtsp":
        request = f"OPTIONS rtsp://{host}:{port}{path} RTSP/1.0\r\nCSeq: 1\r\n\r\n"
        expect = b"RTSP/"
    else:
        request = f"HEAD {path} HTTP/1.0\r\nHost: {host}\r\n\r\n"
        expect = b"HTTP/"
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            conn.sendall(request.encode("ascii", "replace"))
            answer = conn.recv(16)
    except TimeoutError:
        return f"no answer from {scheme.upper()} server within {timeout:g} s"
    except OSError as exc:
        return f"cannot connect ({exc.strerror or exc})"
    if not answer.startswith(expect):
        return f"not an {scheme.upper()} server (answered {answer[:8]!r})"
    return None


class FrameSlot:
    """Latest-frame-wins hand-off between a reader thread and the publisher."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frame: EncodedFrame | None = None
        self.dropped = 0

    def put(self, frame: EncodedFrame) -> None:
        with self._lock:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame

    def take(self) -> EncodedFrame | None:
        with self._lock:
            frame, self._frame = self._frame, None
            return frame


class CameraReader:
    """Reads one camera in its own thread; :meth:`state` reports how it is doing."""

    FPS_WINDOW = 5.0
    """Seconds over which the frame rate is measured (longer for very slow cameras)."""

    def __init__(
        self,
        camera: Camera,
        settings: CameraSettings,
        *,
        base_dir: Path | None = None,
        on_frame: Callable[[], None] | None = None,
    ) -> None:
        self.camera = camera
        self.settings = settings
        self.slot = FrameSlot()
        self.ring: ClipRing | None = None
        """Evidence ring buffer, fed with every kept frame (its own rate caps it)."""
        self.base_dir = base_dir
        self._on_frame = on_frame
        self._stop = threading.Event()
        self._lock = threading.RLock()  # predicates of wait_for may read the state again
        self._changed = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._run, name=f"camera-{camera.id}", daemon=True)
        self._sequence = int(time.time() * 1000)  # grows across restarts of the agent
        self._times: deque[float] = deque()
        self._window = max(self.FPS_WINDOW, 3.0 / camera.fps)
        self._latest: tuple[MatLike, FrameHeader] | None = None
        self.frames = 0
        self.failures = 0
        self.opens = 0
        self.loops = 0
        self.phase = "starting"
        """starting | connecting | streaming | waiting (backoff after a failure) | stopped."""
        self.detail: str | None = None

    @property
    def source(self) -> str:
        """The source for logs: a file path as given, a URL with its password hidden."""
        return redact_url(self.camera.source)

    def _location(self) -> tuple[str, bool]:
        source = self.camera.resolved_source()
        if "://" in source:
            return source, False
        path = Path(source)
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        return str(path), True

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the thread to stop; a thread inside a blocking open is left to finish on its
        own (it is a daemon, and FFmpeg's timeouts bound the wait)."""
        self._stop.set()
        self._thread.join(timeout)

    def _set(self, phase: str, detail: str | None = None) -> None:
        with self._changed:
            self.phase, self.detail = phase, detail
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[CameraReader], bool], timeout: float) -> bool:
        """Block until ``predicate(self)`` holds (checked on every frame and every change of
        phase) or ``timeout`` seconds pass; return whether it holds."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            location, is_file = self._location()
            self._set("connecting", self.detail)
            delivered = self._read(location, is_file)
            if self._stop.is_set():
                break
            if delivered:
                attempt = 0
            else:
                attempt += 1
                self.failures += 1
            delay = min(backoff_delay(max(attempt, 1)), self.settings.max_backoff)
            logger.warning(
                "camera %s (%s): %s; retrying in %.1f seconds",
                self.camera.id,
                self.source,
                self.detail,
                delay,
            )
            self._set("waiting", self.detail)
            self._stop.wait(delay)
        self._set("stopped")

    def _open(self, location: str, is_file: bool) -> cv2.VideoCapture | None:
        if is_file and not Path(location).is_file():
            self._set("connecting", "no such file")
            return None
        if not is_file:
            problem = probe_stream(location, self.settings.open_timeout)
            if problem is not None:
                self._set("connecting", problem)
                return None
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(self.settings.open_timeout * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(self.settings.read_timeout * 1000),
        ]
        capture = cv2.VideoCapture(location, cv2.CAP_FFMPEG, params)
        self.opens += 1
        if not capture.isOpened():
            capture.release()
            self._set("connecting", "cannot open as video")
            return None
        return capture

    def _read(self, location: str, is_file: bool) -> bool:
        """Read until the source fails or we stop; True if any frame came through."""
        capture = self._open(location, is_file)
        if capture is None:
            return False
        delivered = False
        try:
            while not self._stop.is_set():
                got = self._read_file(capture) if is_file else self._read_stream(capture)
                delivered = delivered or got > 0
                if not is_file or got == 0:
                    break
                # A file at its end starts over. Seeking, not reopening: OpenCV opens every
                # FFmpeg source under one process-wide lock, which a slow camera may hold.
                if not capture.set(cv2.CAP_PROP_POS_FRAMES, 0):
                    self._set("connecting", "cannot rewind the file")
                    break
                self.loops += 1
        finally:
            capture.release()
        if is_file and not delivered:
            self._set("connecting", "opened, but no frame decodes (not a video?)")
        return delivered

    def _read_file(self, capture: cv2.VideoCapture) -> int:
        """One pass over a file at its own pace; returns the frames kept."""
        native = capture.get(cv2.CAP_PROP_FPS)
        native = native if 0 < native <= 240 else 25.0
        keep_every = 1.0 / self.camera.fps
        started = time.monotonic()
        kept = 0
        index = 0
        next_keep = 0.0
        while not self._stop.is_set():
            if not capture.grab():
                return kept
            video_time = index / native
            index += 1
            if video_time + 1e-9 < next_keep:
                continue  # not decoded to pixels: grab alone is cheap
            next_keep += keep_every
            wait = started + video_time / self.settings.file_speed - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return kept
            ok, image = capture.retrieve()
            if ok:
                self._deliver(image)
                kept += 1
        return kept

    def _read_stream(self, capture: cv2.VideoCapture) -> int:
        period = 1.0 / self.camera.fps
        next_due = time.monotonic()
        kept = 0
        while not self._stop.is_set():
            if not capture.grab():
                self._set("connecting", "stream ended or stalled")
                return kept
            now = time.monotonic()
            if now < next_due:
                continue
            next_due = max(next_due + period, now - period)
            ok, image = capture.retrieve()
            if ok:
                self._deliver(image)
                kept += 1
        return kept

    def _deliver(self, image: MatLike) -> None:
        if self.ring is not None:
            self.ring.add(image, time.time())
        captured = time.time()
        s = self.settings
        small = analysis_frame(image, (s.width, s.height))
        ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, s.jpeg_quality])
        if not ok:
            return
        self._sequence += 1
        header = FrameHeader(self.camera.id, self._sequence, captured, s.width, s.height)
        self.slot.put(EncodedFrame(header, jpeg.tobytes()))
        full = FrameHeader(self.camera.id, self._sequence, captured, image.shape[1], image.shape[0])
        now = time.monotonic()
        with self._changed:
            self._latest = (image, full)
            self.frames += 1
            self.phase, self.detail = "streaming", None
            self._times.append(now)
            while self._times and self._times[0] < now - self._window:
                self._times.popleft()
            self._changed.notify_all()
        if self._on_frame is not None:
            self._on_frame()

    def measured_fps(self) -> float:
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._times if t >= now - self._window]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(now - recent[0], 1e-3)

    def state(self, published_dropped: int = 0) -> CameraState:
        """Online when frames flow at near the configured rate, degraded when they flow
        slower (or the broker drops them), offline when none come."""
        with self._lock:
            phase, detail = self.phase, self.detail
            latest = self._latest[1].captured_at if self._latest else None
        fps = round(self.measured_fps(), 2)
        target = self.camera.fps
        status: Literal["online", "offline", "degraded"]
        if phase != "streaming" or fps == 0.0:
            status = "offline"
            detail = detail or phase
        elif fps < 0.7 * target:
            status, detail = "degraded", f"{fps:.1f} of {target:g} frames per second"
        else:
            status = "online"
        return CameraState(
            camera_id=self.camera.id,
            status=status,
            fps=fps,
            reported_at=time.time(),
            last_frame_at=latest,
            dropped_frames=self.slot.dropped + published_dropped,
            detail=detail,
        )

    def snapshot(self, max_width: int) -> tuple[FrameHeader, bytes] | None:
        """The latest frame at source resolution (narrowed to ``max_width``), as JPEG."""
        with self._lock:
            latest = self._latest
        if latest is None:
            return None
        image, header = latest
        if header.width > max_width:
            height = max(1, round(header.height * max_width / header.width))
            image = cv2.resize(image, (max_width, height), interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(
            ".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.settings.snapshot_quality]
        )
        if not ok:
            return None
        out = FrameHeader(
            header.camera_id, header.sequence, header.captured_at, image.shape[1], image.shape[0]
        )
        return out, jpeg.tobytes()

"""Camera readers over real files and unreachable or hanging network sources."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from edge_support import mjpeg_server

from edge import CameraReader, CameraSettings, EncodedFrame, FrameSlot
from protocol import Camera, FrameHeader

ROOT = Path(__file__).resolve().parent.parent
PARKING = "data/video/parking_lot_overhead_768x432.mp4"  # 377 frames, 12.5 fps, 768x432
FAST = CameraSettings(file_speed=100.0, open_timeout=2.0, read_timeout=2.0, max_backoff=0.05)
WAIT = 60.0  # generous ceilings: the conditions come true long before on an idle machine


def _camera(camera_id: str, source: str, fps: float = 2.0) -> Camera:
    return Camera(
        id=camera_id,
        name=camera_id,
        kind="security",
        district="d",
        lat=0,
        lon=0,
        source=source,
        fps=fps,
    )


@pytest.fixture
def readers() -> Iterator[list[CameraReader]]:
    started: list[CameraReader] = []
    yield started
    for reader in started:
        reader.request_stop()
    for reader in started:
        reader.stop()


def _start(readers: list[CameraReader], camera: Camera, settings: CameraSettings) -> CameraReader:
    reader = CameraReader(camera, settings, base_dir=ROOT)
    readers.append(reader)
    reader.start()
    return reader


def test_slot_keeps_the_latest_frame_and_counts_the_rest() -> None:
    slot = FrameSlot()
    frames = [EncodedFrame(FrameHeader("c", i, 0.0, 2, 2), b"\xff\xd8") for i in range(3)]
    for frame in frames:
        slot.put(frame)
    assert slot.take() is frames[-1]
    assert slot.take() is None
    assert slot.dropped == 2


def test_file_source_is_sampled_resized_and_loops(readers: list[CameraReader]) -> None:
    reader = _start(readers, _camera("cam-file", PARKING, fps=2.0), FAST)
    # One pass over the 30 s clip keeps about 61 frames at 2 fps: more means it looped.
    assert reader.wait_for(lambda r: r.frames >= 70, WAIT)
    assert reader.loops >= 1
    assert reader.opens == 1
    frame = reader.slot.take()
    assert frame is not None
    assert (frame.header.width, frame.header.height) == (320, 180)
    image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None
    assert image.shape == (180, 320)  # gray: vision reads brightness only
    assert reader.slot.dropped > 0  # nobody took the frames: replaced, counted, not queued
    state = reader.state()
    assert state.status in ("online", "degraded")
    assert state.dropped_frames == reader.slot.dropped


def test_snapshot_is_taken_at_source_resolution(readers: list[CameraReader]) -> None:
    reader = _start(readers, _camera("cam-snap", PARKING), FAST)
    assert reader.snapshot(1920) is None  # nothing read yet
    assert reader.wait_for(lambda r: r.frames >= 1, WAIT)
    full = reader.snapshot(1920)
    narrow = reader.snapshot(640)
    assert full is not None
    assert narrow is not None
    assert (full[0].width, full[0].height) == (768, 432)  # never enlarged
    assert (narrow[0].width, narrow[0].height) == (640, 360)
    image = cv2.imdecode(np.frombuffer(narrow[1], np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    assert image.shape == (360, 640, 3)


def test_a_file_that_is_not_a_video_is_retried_and_reported(
    readers: list[CameraReader], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        reader = _start(readers, _camera("cam-bad", "README.md"), FAST)
        missing = _start(readers, _camera("cam-missing", "no/such/clip.mp4"), FAST)
        assert reader.wait_for(lambda r: r.failures >= 3, WAIT)
        assert missing.wait_for(lambda r: r.failures >= 2, WAIT)
    state = reader.state()
    assert state.status == "offline"
    assert state.detail == "cannot open as video"
    assert missing.state().detail == "no such file"
    assert "camera cam-bad (README.md): cannot open as video; retrying" in caplog.text


def test_unreachable_url_is_logged_without_its_password(
    readers: list[CameraReader], caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    source = f"rtsp://viewer:s3cret@127.0.0.1:{port}/stream1"
    with caplog.at_level(logging.WARNING):
        reader = _start(readers, _camera("cam-rtsp", source), FAST)
        assert reader.wait_for(lambda r: r.failures >= 2, WAIT)
    assert reader.state().status == "offline"
    assert "cannot connect" in str(reader.state().detail)
    assert f"rtsp://viewer:***@127.0.0.1:{port}/stream1" in caplog.text
    assert "s3cret" not in caplog.text


def test_a_hanging_source_does_not_hold_up_the_others(readers: list[CameraReader]) -> None:
    """A server that accepts connections and never answers: its reader sits in FFmpeg's open
    while the file camera next to it delivers frames."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        url = f"http://127.0.0.1:{hung.getsockname()[1]}/video.mjpg"
        slow = CameraSettings(open_timeout=15.0, read_timeout=15.0, file_speed=100.0)
        stuck = _start(readers, _camera("cam-hung", url), slow)
        healthy = _start(readers, _camera("cam-ok", PARKING), FAST)
        assert stuck.wait_for(lambda r: r.phase == "connecting", WAIT)
        assert healthy.wait_for(lambda r: r.frames >= 20, WAIT)
        assert stuck.phase == "connecting"  # still waiting for an answer, 15 s at most
        assert stuck.frames == 0
        assert stuck.state().status == "offline"


@pytest.fixture(scope="module")
def clip_jpegs() -> list[bytes]:
    capture = cv2.VideoCapture(str(ROOT / PARKING))
    out = []
    for _ in range(20):
        ok, image = capture.read()
        assert ok
        out.append(cv2.imencode(".jpg", image)[1].tobytes())
    capture.release()
    return out


def test_http_camera_is_read_and_reconnected_after_a_stall(
    readers: list[CameraReader], clip_jpegs: list[bytes]
) -> None:
    """An MJPEG-over-HTTP camera that goes quiet after 30 frames: the reader notices through
    the read timeout, reports it, reopens the stream and carries on."""
    settings = CameraSettings(open_timeout=5.0, read_timeout=1.0, max_backoff=0.05)
    with mjpeg_server(clip_jpegs, fps=25.0, stall_after=30) as camera:
        reader = _start(readers, _camera("cam-http", camera.url, fps=5.0), settings)
        assert reader.wait_for(lambda r: r.frames >= 1, WAIT)
        assert reader.wait_for(lambda r: r.detail == "stream ended or stalled", WAIT)
        assert reader.wait_for(lambda r: r.opens >= 2 and r.phase == "streaming", WAIT)
    frame = reader.slot.take()
    assert frame is not None
    assert (frame.header.width, frame.header.height) == (320, 180)
    assert camera.connections >= 2

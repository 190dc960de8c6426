"""Frames decoded into one batch: straight at the analysis size, refusing what is wrong and
going on with the other cameras."""

from __future__ import annotations

import cv2
import numpy as np
from scenes import empty_room

from protocol import FrameHeader
from vision import EncodedFrame, FrameDecoder

T0 = 1_764_000_000.0


def _jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


def _frame(camera: int, image: np.ndarray, size: tuple[int, int] | None = None) -> EncodedFrame:
    width, height = size or (image.shape[1], image.shape[0])
    header = FrameHeader(f"cam-{camera}", 7, T0 + camera, width, height)
    return EncodedFrame(camera, header, _jpeg(image))


def test_double_size_jpeg_decodes_straight_at_analysis_size() -> None:
    room = empty_room()
    big = cv2.resize(room, (640, 360), interpolation=cv2.INTER_CUBIC)
    odd = cv2.resize(room, (500, 281), interpolation=cv2.INTER_AREA)
    batch, refused = FrameDecoder((320, 180), 3).decode(
        [_frame(2, big), _frame(0, room), _frame(1, odd)]
    )
    assert refused == []
    assert batch is not None
    assert batch.gray.shape == (3, 180, 320)
    assert batch.cameras.tolist() == [0, 1, 2]  # in camera order for the pipeline
    assert batch.times.tolist() == [T0, T0 + 1, T0 + 2]
    # Whatever the source size, the same scene at the analysis size (JPEG noise aside).
    for frame in batch.gray:
        assert np.abs(frame.astype(int) - room.astype(int)).mean() < 4


def test_bad_frames_are_refused_by_name_and_the_batch_goes_on() -> None:
    room = empty_room()
    corrupt = EncodedFrame(
        1, FrameHeader("cam-1", 1, T0, 320, 180), b"\xff\xd8" + bytes(range(256)) * 4
    )
    frames = [
        _frame(0, room),
        corrupt,
        _frame(2, room, size=(640, 360)),  # announced 640x360, the JPEG is 320x180
        _frame(3, room),
    ]
    batch, refused = FrameDecoder((320, 180), 2).decode(frames)  # grows beyond capacity
    assert batch is not None
    assert batch.cameras.tolist() == [0, 3]
    assert [(r.camera, r.reason.split(":")[0]) for r in refused] == [
        (1, "corrupt JPEG"),
        (2, "frame size"),
    ]
    assert "640x360" in refused[1].reason
    assert "320x180" in refused[1].reason


def test_nothing_readable_is_no_batch() -> None:
    bad = EncodedFrame(0, FrameHeader("cam-0", 1, T0, 320, 180), b"\xff\xd8\x00\x00")
    batch, refused = FrameDecoder((320, 180), 1).decode([bad])
    assert batch is None
    assert len(refused) == 1


def test_a_colour_jpeg_is_read_as_the_same_gray_picture() -> None:
    """Our edges send gray frames; a colour JPEG (an older agent, another vendor's edge)
    decodes to the same brightness."""
    room = empty_room()
    colour = cv2.cvtColor(room, cv2.COLOR_GRAY2BGR)
    colour[..., 0] = np.clip(colour[..., 0].astype(int) + 40, 0, 255)  # a blue cast
    batch, refused = FrameDecoder((320, 180), 2).decode([_frame(0, room), _frame(1, colour)])
    assert refused == []
    assert batch is not None
    gray, from_colour = batch.gray.astype(int)
    assert np.abs(from_colour - cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)).mean() < 3
    assert np.abs(gray - room).mean() < 3


def test_the_batch_holds_what_opencv_decodes_pixel_for_pixel() -> None:
    """The decoder writes straight into the batch; its pictures are OpenCV's own (gray,
    colour, at twice the size), and a frame cut short half-way, which may have written part
    of its row, leaves the next frame's row whole."""
    room = empty_room()
    colour = cv2.cvtColor(room, cv2.COLOR_GRAY2BGR)
    colour[..., 2] = np.clip(colour[..., 2].astype(int) + 60, 0, 255)
    big = cv2.resize(room, (640, 360), interpolation=cv2.INTER_CUBIC)
    frames = [_frame(0, room), _frame(1, colour), _frame(3, big)]
    cut = _frame(2, np.roll(room, 40, axis=1))
    frames.append(EncodedFrame(2, cut.header, bytes(cut.jpeg)[: len(cut.jpeg) * 2 // 3]))
    batch, refused = FrameDecoder((320, 180), 4).decode(frames)
    assert [(r.camera, r.reason.split(":")[0]) for r in refused] == [(2, "corrupt JPEG")]
    assert batch is not None
    assert batch.cameras.tolist() == [0, 1, 3]
    flags = [cv2.IMREAD_GRAYSCALE, cv2.IMREAD_GRAYSCALE, cv2.IMREAD_REDUCED_GRAYSCALE_2]
    for got, frame, flag in zip(batch.gray, [frames[0], frames[1], frames[2]], flags, strict=True):
        want = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), flag)
        assert want is not None
        assert np.array_equal(got, want)

"""The edge's evidence ring: a clip holds exactly the source frames around the event (read
back from a frame counter burned into the footage), memory stays bounded, and the bytes are
a playable H.264 MP4."""

from __future__ import annotations

import pytest
from evidence_support import clip_counters, counter_frame, filled_ring

from edge._ring import ClipRing, CutError, RingSettings
from evidence import NotAClipError, probe_mp4

START = 1_000_000.0


def test_a_clip_holds_the_source_frames_around_the_event() -> None:
    ring = filled_ring(250)  # 25 s at 10 fps
    event = START + 150 / 10  # frame 150
    clip = ring.cut(event - 10, event + 5)
    counters = clip_counters(clip.mp4)
    # From the key frame at or before the start (at most one second early) to the end.
    assert 41 <= counters[0] <= 50
    assert counters[-1] == 200
    assert counters == list(range(counters[0], 201))  # every frame, in order, none twice
    assert clip.frames == len(counters)
    assert clip.started_at == pytest.approx(START + counters[0] / 10)
    facts = probe_mp4(clip.mp4)
    assert (facts.width, facts.height, facts.frames) == (640, 360, len(counters))
    assert facts.seconds == pytest.approx((200 - counters[0]) / 10, abs=0.05)


def test_the_ring_keeps_its_seconds_and_no_more() -> None:
    ring = filled_ring(150, seconds=5.0)  # 15 s through a 5 s ring
    counters = clip_counters(ring.cut(START, START + 15).mp4)
    assert 90 <= counters[0] <= 100  # the oldest whole second still held
    assert counters[-1] == 149
    sizes = []
    ring = ClipRing("cam-test", RingSettings(seconds=3.0))
    for n in range(120):
        ring.add(counter_frame(n), START + n / 10)
        sizes.append(ring.nbytes)
    assert max(sizes[60:]) < 1.5 * min(sizes[60:])  # flat once full


def test_frames_faster_than_the_rings_rate_are_skipped() -> None:
    ring = ClipRing("cam-test", RingSettings(fps=5.0))
    for n in range(50):  # 25 fps offered for 2 s
        ring.add(counter_frame(n), START + n / 25)
    counters = clip_counters(ring.cut(START, START + 2).mp4)
    assert counters == list(range(0, 50, 5))


def test_nothing_buffered_for_the_time_is_an_error_naming_it() -> None:
    ring = filled_ring(20)
    with pytest.raises(CutError, match="cam-test"):
        ring.cut(START + 100, START + 110)


def test_bytes_that_are_not_an_mp4_are_named() -> None:
    with pytest.raises(NotAClipError):
        probe_mp4(b"\x00\x00\x00\x18ftypmp42" + b"junk" * 100)
    mp4 = filled_ring(30).cut(START, START + 3).mp4
    with pytest.raises(NotAClipError):
        probe_mp4(mp4[: len(mp4) // 3])


def test_key_frames_come_every_second_even_from_a_slower_source() -> None:
    ring = ClipRing("cam-test", RingSettings(fps=10.0))
    for n in range(80):  # a camera that delivers 4 fps to a 10 fps ring, for 20 s
        ring.add(counter_frame(n), START + n / 4)
    clip = ring.cut(START + 10.1, START + 15)
    assert START + 9.1 <= clip.started_at <= START + 10.1  # at most a second early
    counters = clip_counters(clip.mp4)
    assert counters == list(range(counters[0], 61))

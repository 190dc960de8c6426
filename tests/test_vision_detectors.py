"""The zone detectors on real frames with controlled changes (see scenes.py)."""

from __future__ import annotations

import numpy as np
from scenes import (
    SIZE,
    Draw,
    Gray,
    Scene,
    blur,
    camera,
    darken,
    empty_lot,
    empty_room,
    ends,
    pan,
    paste,
    person,
    starts,
)

from protocol import VisionEvent

FLOOR = {
    "id": "floor",
    "kind": "restricted",
    "polygon": [[0.0, 0.6], [1.0, 0.6], [1.0, 1.0], [0.0, 1.0]],
}


def test_a_person_standing_still_stays_one_intrusion() -> None:
    scene = Scene(camera([FLOOR]), empty_room())
    who = person()
    assert scene.run(2) == []  # warm-up on the empty room
    events = scene.run(90, lambda bg, t: paste(bg, who, 0.2, 0.1))
    # One start, no end while she stands there a minute and a half: she does not fade.
    assert [(e.kind, e.phase, e.zone_id) for e in events] == [("intrusion", "start", "floor")]
    events = scene.run(5)
    assert [(e.kind, e.phase) for e in events] == [("intrusion", "end")]
    assert events[0].event_id == starts(scene.events, "intrusion")[0].event_id
    assert events[0].ended_at is not None
    assert events[0].ended_at - events[0].started_at > 89


def test_a_single_noisy_frame_raises_nothing() -> None:
    scene = Scene(camera([FLOOR]), empty_room())
    who = person()
    scene.run(2)
    # The person is there for one frame only (0.2 s < min_seconds), three times.
    events = scene.run(6, lambda bg, t: paste(bg, who, 0.2, 0.1) if int(t * 5) % 10 == 0 else bg)
    assert starts(events, "intrusion") == []


def test_two_people_are_two_intrusions() -> None:
    scene = Scene(camera([FLOOR]), empty_room())
    who = person()
    scene.run(2)

    def two(bg: Gray, t: float) -> Gray:
        frame = paste(bg, who, 0.05, 0.1)
        return paste(frame, who, 0.7, 0.1) if t > 5 else frame

    events = scene.run(10, two)
    assert len(starts(events, "intrusion")) == 2
    assert len({e.event_id for e in events}) == 2


def test_a_small_object_under_min_area_is_ignored() -> None:
    zone = {**FLOOR, "min_area": 0.5}  # half the floor: a person is far smaller
    scene = Scene(camera([zone]), empty_room())
    scene.run(2)
    events = scene.run(5, lambda bg, t: paste(bg, person(), 0.2, 0.1))
    assert starts(events, "intrusion") == []


def test_schedule_in_local_time() -> None:
    # The scene starts 23:00 local time: a zone watched 08:00-18:00 is not watched.
    day = {**FLOOR, "schedule": "08:00-18:00"}
    night = {**FLOOR, "id": "night", "schedule": "22:00-05:00"}
    scene = Scene(camera([day, night]), empty_room())
    scene.run(2)
    events = scene.run(5, lambda bg, t: paste(bg, person(), 0.2, 0.1))
    assert [e.zone_id for e in starts(events, "intrusion")] == ["night"]


def test_global_lighting_change_rebaselines_without_events() -> None:
    scene = Scene(camera([FLOOR]), empty_room())
    scene.run(2)
    # Clouds: the whole room 40% darker at once, then back after 20 s.
    events = scene.run(40, lambda bg, t: darken(bg, 0.6) if 5 <= t < 25 else bg)
    assert events == []
    background = scene.pipeline.background
    assert background.exposure_changes + background.rebaselines >= 2
    # Detection still works afterwards.
    assert len(starts(scene.run(3, lambda bg, t: paste(bg, person(), 0.2, 0.1)), "intrusion")) == 1


def _tamper(events: list[VisionEvent]) -> list[tuple[str, str | None]]:
    return [(e.phase, e.detail) for e in events if e.kind == "camera_tamper"]


def test_blurred_view_is_tamper_blur() -> None:
    scene = Scene(camera([FLOOR], tamper_seconds=2.0), empty_room())
    scene.run(3)
    blurred = blur(empty_room(), 4)
    events = scene.run(6, lambda bg, t: blurred)
    assert _tamper(events) == [("start", "blur")]
    events = scene.run(6)
    assert _tamper(events) == [("end", "blur")]
    assert starts(scene.events, "intrusion") == []


def test_covered_lens_is_tamper_covered() -> None:
    scene = Scene(camera([FLOOR], tamper_seconds=2.0), empty_room())
    scene.run(3)
    hand = np.full((SIZE[1], SIZE[0]), 12, np.uint8)
    events = scene.run(6, lambda bg, t: hand)
    assert _tamper(events) == [("start", "covered")]
    assert starts(events, "intrusion") == []


def test_turned_camera_is_tamper_moved() -> None:
    scene = Scene(camera([FLOOR], tamper_seconds=2.0), empty_room())
    scene.run(3)
    # Turned: the same room seen a third of the frame further right.
    turned = pan(empty_room(), 110)
    events = scene.run(6, lambda bg, t: turned)
    assert _tamper(events) == [("start", "moved")]
    assert starts(events, "intrusion") == []
    events = scene.run(6)
    assert _tamper(events) == [("end", "moved")]


def test_crowd_zone_above_threshold() -> None:
    crowd = {
        "id": "square",
        "kind": "crowd",
        "polygon": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]],
        "high_occupancy": 0.35,
        "min_seconds": 2.0,
    }
    scene = Scene(camera([crowd]), empty_room())
    scene.run(2)
    who = person()

    def people(n: int) -> Draw:
        def draw(bg: Gray, t: float) -> Gray:
            for i in range(n):
                bg = paste(bg, who, 0.02 + i * 0.17, 0.05)
            return bg

        return draw

    assert starts(scene.run(5, people(1)), "crowd") == []  # one person: ~15% of the view
    # People come in one by one: a crowd builds up (a global change would be sudden).
    events: list[VisionEvent] = []
    for n in range(2, 6):
        events += scene.run(1, people(n))
    events += scene.run(3, people(5))
    assert [e.zone_id for e in starts(events, "crowd")] == ["square"]
    assert ends(scene.run(5), "crowd")


LANE = {
    "id": "lane",
    "kind": "lane",
    "direction": [1.0, 0.0],
    "polygon": [[0.0, 0.1], [1.0, 0.1], [1.0, 1.0], [0.0, 1.0]],
    "min_seconds": 1.0,
    "high_occupancy": 0.2,
    "congestion_seconds": 5.0,
}


def _moving(x0: float, speed: float) -> Draw:
    who = person()

    def draw(bg: Gray, t: float) -> Gray:
        return paste(bg, who, x0 + speed * t, 0.1)

    return draw


def test_wrong_way_against_the_lane_only() -> None:
    scene = Scene(camera([LANE]), empty_lot())
    scene.run(2)
    # With the lane's direction (left to right): nothing.
    assert starts(scene.run(4, _moving(0.05, 0.18)), "wrong_way") == []
    scene.run(3)
    # Against it: wrong way.
    later = Scene(camera([LANE]), empty_lot())
    later.run(2)
    events = later.run(4, _moving(0.8, -0.18))
    assert [e.zone_id for e in starts(events, "wrong_way")] == ["lane"]


def test_congestion_when_lane_full_and_slow() -> None:
    scene = Scene(camera([LANE]), empty_lot())
    scene.run(2)
    who = person()

    def queue(n: int) -> Draw:
        def draw(bg: Gray, t: float) -> Gray:
            for i in range(n):
                bg = paste(bg, who, 0.05 + i * 0.19, 0.1)
            return bg

        return draw

    # The queue grows one vehicle a second, then stands still.
    events = [e for n in range(1, 6) for e in scene.run(1, queue(n))]
    assert starts(events, "congestion") == []  # not yet congestion_seconds
    events = scene.run(6, queue(5))
    assert [e.zone_id for e in starts(events, "congestion")] == ["lane"]
    assert scene.pipeline.detectors.congested().tolist() == [True]
    assert ends(scene.run(6), "congestion")


def test_stopped_vehicle_in_no_stopping_zone() -> None:
    zone = {
        "id": "kerb",
        "kind": "no_stopping",
        "polygon": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]],
        "min_seconds": 5.0,
    }
    scene = Scene(camera([zone]), empty_lot())
    scene.run(2)
    # Drives in for 3 s, then stays: stopped after min_seconds, not while driving.
    draw = _moving(0.0, 0.1)
    events = scene.run(3, draw)
    assert starts(events, "stopped_vehicle") == []
    parked = paste(empty_lot(), person(), 0.5, 0.1)
    events = scene.run(8, lambda bg, t: parked)
    assert [e.zone_id for e in starts(events, "stopped_vehicle")] == ["kerb"]


def test_line_crossing_direction_convention() -> None:
    # A line drawn top to bottom: its left (as seen) is the right-hand side of the image,
    # so moving right to left is forward.
    line = {"id": "gate", "points": [[0.5, 0.0], [0.5, 1.0]]}
    for start, speed, expected in ((0.05, 0.15, "backward"), (0.8, -0.15, "forward")):
        scene = Scene(camera([], [line]), empty_lot())
        scene.run(2)
        events = scene.run(5, _moving(start, speed))
        crossings = [e for e in events if e.kind == "line_crossing"]
        assert [(e.line_id, e.direction) for e in crossings] == [("gate", expected)]
        assert scene.pipeline.line_totals()["test-cam"]["gate"][expected] == 1

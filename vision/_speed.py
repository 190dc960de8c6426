"""Speed gates: a vehicle's speed from its times across two lines a known distance apart.

Each crossing time is interpolated between the two frames either side of the line (see
:func:`._geometry.crossing_times`), so the error is a fraction of the frame period, not a
whole one: at 5 fps a vehicle that takes 1.2 s between the lines is still timed to a few
percent. A vehicle is timed once per gate, whichever way it goes (``direction`` is
``forward`` when it crossed ``from`` first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from protocol import Camera, EventKind, VisionEvent

from ._events import event_id
from ._tracking import Tracker

Ints = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class SpeedMeasurement:
    """One vehicle timed through one gate; times are the frames' clock (epoch seconds)."""

    camera_id: str
    gate_id: str
    started_at: float
    ended_at: float
    speed_kmh: float
    direction: str
    limit_kmh: float
    track: int

    @property
    def speeding(self) -> bool:
        return self.speed_kmh > self.limit_kmh

    def event(self, phase: str) -> VisionEvent:
        """The ``speeding`` event (``start`` then ``end``: one short episode per vehicle)."""
        ident = event_id(self.camera_id, self.gate_id, "speeding", f"{self.started_at:.3f}")
        return VisionEvent(
            event_id=ident,
            kind=EventKind.SPEEDING,
            camera_id=self.camera_id,
            phase="start" if phase == "start" else "end",
            started_at=self.started_at,
            ended_at=None if phase == "start" else self.ended_at,
            gate_id=self.gate_id,
            direction="forward" if self.direction == "forward" else "backward",
            speed_kmh=self.speed_kmh,
            limit_kmh=self.limit_kmh,
            score=round(self.speed_kmh / self.limit_kmh, 4),
            frame_captured_at=self.ended_at,
        )


class SpeedGates:
    """Every camera's gates as tables (camera, gate) of line slots, distances and limits."""

    def __init__(self, cameras: Sequence[Camera]) -> None:
        self.cameras = list(cameras)
        count = len(self.cameras)
        width = max((len(c.speed_gates) for c in self.cameras), default=0)
        self.width = width
        self.first = np.zeros((count, max(width, 1)), np.intp)
        self.second = np.zeros((count, max(width, 1)), np.intp)
        self.valid = np.zeros((count, max(width, 1)), bool)
        for ci, camera in enumerate(self.cameras):
            slot_of = {line.id: slot for slot, line in enumerate(camera.lines)}
            for g, gate in enumerate(camera.speed_gates):
                self.first[ci, g] = slot_of[gate.from_line]
                self.second[ci, g] = slot_of[gate.to_line]
                self.valid[ci, g] = True
        self.timed_ident = np.zeros((64, max(width, 1)), np.int64)
        """(track slot, gate): the ident of the track last timed there (slots are reused)."""

    def update(self, tracker: Tracker, timed: Ints) -> list[SpeedMeasurement]:
        """Time the tracks that have now crossed both lines of a gate, among ``timed``:
        the tracks that got a crossing time in this step (a track is timed in the step its
        second line's time is found, so looking at every observed track, most of them on
        cameras without gates, only cost time)."""
        if not self.width or not len(timed):
            return []
        if len(self.timed_ident) < tracker.capacity:
            grown = np.zeros((tracker.capacity, self.width), np.int64)
            grown[: len(self.timed_ident)] = self.timed_ident
            self.timed_ident = grown
        cams = tracker.camera[timed]
        t_first = np.take_along_axis(tracker.crossed_at[timed], self.first[cams], axis=1)
        t_second = np.take_along_axis(tracker.crossed_at[timed], self.second[cams], axis=1)
        ready = (
            self.valid[cams]
            & ~np.isnan(t_first)
            & ~np.isnan(t_second)
            & (t_first != t_second)
            & (self.timed_ident[timed] != tracker.ident[timed][:, None])
        )
        out = []
        # One iteration per vehicle through a gate: a few per minute per camera.
        for row, g in zip(*np.nonzero(ready), strict=True):
            slot = int(timed[row])
            self.timed_ident[slot, g] = tracker.ident[slot]
            camera = self.cameras[int(cams[row])]
            gate = camera.speed_gates[int(g)]
            a, b = float(t_first[row, g]), float(t_second[row, g])
            speed = 3.6 * gate.distance_m / abs(b - a)
            out.append(
                SpeedMeasurement(
                    camera_id=camera.id,
                    gate_id=gate.id,
                    started_at=min(a, b),
                    ended_at=max(a, b),
                    speed_kmh=round(speed, 1),
                    direction="forward" if a < b else "backward",
                    limit_kmh=gate.limit_kmh,
                    track=int(tracker.ident[slot]),
                )
            )
        return out

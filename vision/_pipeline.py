"""The batched analysis pipeline shared by live workers and file replay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import numpy.typing as npt

from protocol import Camera, EventKind, VisionEvent, ZoneKind

from ._background import BatchBackground
from ._episodes import Episode, EpisodeTracker
from ._geometry import build_layout, zone_occupancy

ANALYSIS_SIZE = (320, 180)


@dataclass(frozen=True, slots=True)
class FrameBatch:
    """``gray[i]`` is the analysis-size frame of camera ``cameras[i]`` taken at ``times[i]``."""

    gray: npt.NDArray[np.uint8]
    cameras: npt.NDArray[np.intp]
    times: npt.NDArray[np.float64]
    seqs: npt.NDArray[np.int64]


class VisionPipeline:
    """Every camera's detectors, advanced one batch of frames at a time."""

    def __init__(
        self,
        cameras: Sequence[Camera],
        *,
        timezone: str = "Asia/Ho_Chi_Minh",
        size: tuple[int, int] = ANALYSIS_SIZE,
    ) -> None:
        self.cameras = list(cameras)
        self.index = {c.id: i for i, c in enumerate(self.cameras)}
        self.width, self.height = size
        self.tz = ZoneInfo(timezone)
        self.background = BatchBackground(len(self.cameras), self.height, self.width)
        self.layout = build_layout(self.cameras, self.width, self.height)
        zones = self.layout.zones
        self.zone_camera = np.array([z.camera_index for z in zones], np.intp)
        self.min_area = np.array([z.zone.min_area for z in zones])
        self.restricted = np.array([z.zone.kind is ZoneKind.RESTRICTED for z in zones], bool)
        self.scheduled = [i for i, z in enumerate(zones) if z.zone.parsed_schedule.windows]
        self.intrusions = EpisodeTracker(
            EventKind.INTRUSION,
            np.array([z.zone.min_seconds for z in zones]),
            np.array([z.zone.clear_seconds for z in zones]),
        )
        self.frames_processed = 0

    def _schedule_active(self, now: float) -> npt.NDArray[np.bool_]:
        active = np.ones(len(self.layout.zones), bool)
        if self.scheduled:
            local = datetime.fromtimestamp(now, self.tz).time()
            for i in self.scheduled:
                active[i] = self.layout.zones[i].zone.parsed_schedule.active_at(local)
        return active

    def process(self, batch: FrameBatch) -> list[VisionEvent]:
        if len(batch.cameras) == 0:
            return []
        foreground = self.background.apply(batch.gray, batch.cameras)
        occupancy = zone_occupancy(self.layout, foreground, batch.cameras)
        self.frames_processed += len(batch.cameras)
        # Zones of the cameras in this batch, with the time and sequence of their frame.
        position = np.full(len(self.cameras), -1, np.intp)
        position[batch.cameras] = np.arange(len(batch.cameras))
        frame_of_zone = position[self.zone_camera]
        zones = np.flatnonzero(frame_of_zone >= 0)
        if len(zones) == 0:
            return []
        rows = frame_of_zone[zones]
        now = batch.times[rows]
        score = occupancy[zones]
        watched = self.restricted[zones] & self._schedule_active(float(now.max()))[zones]
        present = watched & (score >= self.min_area[zones])
        episodes = self.intrusions.update(zones, present, score, now, batch.seqs[rows])
        return [self._event(e) for e in episodes]

    def finish(self, now: float) -> list[VisionEvent]:
        return [self._event(e) for e in self.intrusions.close_all(now)]

    def _event(self, episode: Episode) -> VisionEvent:
        ref = self.layout.zones[episode.zone_index]
        return VisionEvent(
            event_id=f"{ref.camera_id}:{ref.zone.id}:{episode.kind}:{episode.started_at:.3f}",
            kind=episode.kind,
            camera_id=ref.camera_id,
            phase="start" if episode.ended_at is None else "end",
            started_at=episode.started_at,
            ended_at=episode.ended_at,
            zone_id=ref.zone.id,
            score=round(episode.peak, 4),
            frame_seq=episode.frame_seq,
            frame_captured_at=episode.frame_captured_at,
        )


def to_analysis_gray(frame: cv2.typing.MatLike, size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """A BGR or gray frame of any size as an analysis-size gray image."""
    if frame.ndim == 3:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if (frame.shape[1], frame.shape[0]) != size:
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    return np.asarray(frame, dtype=np.uint8)

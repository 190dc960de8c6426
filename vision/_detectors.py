"""The zone detectors: intrusion, crowd, congestion, stopped vehicle and wrong way.

An object is in a zone when its ground point (the bottom centre of its box: feet, wheels)
is inside the zone's polygon. Intrusions are per object: each tracked object that stays in
a restricted zone is one intrusion, however long it stands there, and two cars passing at
once are two. The other detectors judge the zone as a whole, from its foreground share and
the objects in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from protocol import Camera, EventKind, VisionEvent, ZoneKind

from ._batch import BatchIndex
from ._episodes import Episode, EpisodeTracker
from ._events import event_id, zone_event
from ._geometry import ZoneLayout
from ._intrusions import ObjectIntrusions
from ._tracking import Tracker, TrackStep

Ints = npt.NDArray[np.intp]
Floats = npt.NDArray[np.float64]
WRONG_WAY_COSINE = -0.5
"""Moving more than 120 degrees away from the lane's direction is the wrong way."""
WRONG_WAY_TRAVEL = 0.1
"""Frame fractions an object must have travelled against its lane to be going the wrong way."""
MIN_HITS = 3
"""Observations before a track's speed is trusted (stopped, wrong way)."""
_ZONE_KINDS = {
    EventKind.CROWD: ZoneKind.CROWD,
    EventKind.CONGESTION: ZoneKind.LANE,
    EventKind.STOPPED_VEHICLE: ZoneKind.NO_STOPPING,
    EventKind.WRONG_WAY: ZoneKind.LANE,
}


@dataclass(frozen=True, slots=True)
class ZoneObjects:
    """Objects observed in a batch (track ``slots``), the zone layers their ground points
    are in (``inside``, (objects, layers)) and those layers' global zone indices."""

    slots: Ints
    inside: npt.NDArray[np.bool_]
    zone: Ints


class ZoneDetectors:
    def __init__(self, cameras: Sequence[Camera], layout: ZoneLayout, timezone: str) -> None:
        self.cameras = list(cameras)
        self.layout = layout
        self.tz = ZoneInfo(timezone)
        zones = [ref.zone for ref in layout.zones]
        self.zone_camera = np.array([ref.camera_index for ref in layout.zones], np.intp)
        self.zone_layer = np.array([ref.layer for ref in layout.zones], np.intp)
        self.kind = np.array([str(z.kind) for z in zones], dtype=object)
        self.min_area = np.array([z.min_area for z in zones])
        self.high = np.array([z.high_occupancy for z in zones])
        self.low_speed = np.array([z.low_speed for z in zones])
        direction = np.array([z.direction or (0.0, 0.0) for z in zones]).reshape(-1, 2)
        self.direction = direction / np.maximum(np.hypot(*direction.T), 1e-9)[:, None]
        self.area_share = layout.areas / (layout.width * layout.height)
        self.scheduled = [i for i, z in enumerate(zones) if z.parsed_schedule.windows]
        self._schedule_minute = -1
        self._watched = np.ones(len(zones), bool)
        min_s = np.array([z.min_seconds for z in zones])
        clear_s = np.array([z.clear_seconds for z in zones])
        self.zone_episodes = {kind: EpisodeTracker(kind, min_s, clear_s) for kind in _ZONE_KINDS}
        congestion = np.array([z.congestion_seconds for z in zones])
        self.zone_episodes[EventKind.CONGESTION] = EpisodeTracker(
            EventKind.CONGESTION, congestion, clear_s
        )
        self.intrusions = ObjectIntrusions(cameras, layout)

    def watched(self, now: float) -> npt.NDArray[np.bool_]:
        """Zones whose schedule is active at ``now`` (local time), recomputed each minute."""
        minute = int(now // 60)
        if self.scheduled and minute != self._schedule_minute:
            self._schedule_minute = minute
            local = datetime.fromtimestamp(now, self.tz).time()
            for i in self.scheduled:  # only zones with a schedule, once a minute
                self._watched[i] = self.layout.zones[i].zone.parsed_schedule.active_at(local)
        return self._watched

    def update(
        self, tracker: Tracker, step: TrackStep, index: BatchIndex, occupancy: Floats
    ) -> list[VisionEvent]:
        if not self.layout.zones:
            return []
        watched = self.watched(float(index.times.max()))
        # Observed objects and the zone layers their ground points are in.
        slots = step.observed[index.settled[index.position[tracker.camera[step.observed]]]]
        cams = tracker.camera[slots]
        zone = self.layout.zone_of[cams][:, : self.layout.layers]
        inside = self.layout.inside(cams, tracker.cx[slots], tracker.y1[slots] - 1e-6)
        inside &= (zone >= 0) & watched[np.maximum(zone, 0)]
        objects = ZoneObjects(slots, inside, zone)
        events = self.intrusions.update(tracker, watched, index)
        events += self._zones(tracker, objects, index, occupancy, watched)
        return events

    def close_tracks(self, tracker: Tracker, slots: Ints, now: float) -> list[VisionEvent]:
        """End (or hand over) the intrusions of tracks that are gone."""
        return self.intrusions.close_tracks(tracker, slots, now)

    def _zones(
        self,
        tracker: Tracker,
        objects: ZoneObjects,
        index: BatchIndex,
        occupancy: Floats,
        watched: npt.NDArray[np.bool_],
    ) -> list[VisionEvent]:
        rows = index.position[self.zone_camera]
        live = np.flatnonzero((rows >= 0) & index.settled[np.maximum(rows, 0)])
        if not len(live):
            return []
        r = rows[live]
        occ = occupancy[r, self.zone_layer[live]]
        # Objects per zone: their count, mean speed, and whether any is stopped / wrong-way.
        track_i, layer_i = np.nonzero(objects.inside)
        z = objects.zone[track_i, layer_i]
        s = objects.slots[track_i]
        speed = tracker.speed[s]
        trusted = tracker.hits[s] >= MIN_HITS
        n_zones = len(self.layout.zones)
        count = np.bincount(z, minlength=n_zones)
        mean_speed = np.bincount(z, weights=speed, minlength=n_zones) / np.maximum(count, 1)
        big = tracker.area[s] >= self.min_area[z] * self.area_share[z]
        stopped = np.zeros(n_zones, bool)
        stopped[z[trusted & big & (speed <= self.low_speed[z])]] = True
        along = tracker.vx[s] * self.direction[z, 0] + tracker.vy[s] * self.direction[z, 1]
        heading = along / np.maximum(speed, 1e-9)
        # Wrong way: moving against the lane now, and already well back from where the
        # object was first seen (two cars merging and parting shift a centre, not that far).
        back = (tracker.cx[s] - tracker.origin_x[s]) * self.direction[z, 0] + (
            tracker.cy[s] - tracker.origin_y[s]
        ) * self.direction[z, 1]
        against = (speed > self.low_speed[z]) & (heading < WRONG_WAY_COSINE)
        wrong = np.zeros(n_zones, bool)
        wrong[z[trusted & big & against & (back <= -WRONG_WAY_TRAVEL)]] = True
        kind = self.kind[live]
        found = {
            EventKind.CROWD: (kind == ZoneKind.CROWD) & (occ >= self.high[live]),
            EventKind.CONGESTION: (kind == ZoneKind.LANE)
            & (occ >= self.high[live])
            & (mean_speed[live] <= self.low_speed[live]),
            EventKind.STOPPED_VEHICLE: (kind == ZoneKind.NO_STOPPING) & stopped[live],
            EventKind.WRONG_WAY: (kind == ZoneKind.LANE) & wrong[live],
        }
        events: list[VisionEvent] = []
        for event_kind, zone_kind in _ZONE_KINDS.items():
            mine = kind == zone_kind
            if not mine.any():
                continue
            present = found[event_kind][mine] & watched[live[mine]]
            episodes = self.zone_episodes[event_kind].update(
                live[mine], present, occ[mine], index.times[r[mine]], index.seqs[r[mine]]
            )
            events += [self._zone_event(e) for e in episodes]
        return events

    def congested(self) -> npt.NDArray[np.bool_]:
        """Zones in a congestion episode now."""
        return self.zone_episodes[EventKind.CONGESTION].active

    def _zone_event(self, episode: Episode) -> VisionEvent:
        ref = self.layout.zones[episode.key]
        started = f"{episode.started_at:.3f}"
        ident = event_id(ref.camera_id, ref.zone.id, str(episode.kind), started)
        return zone_event(episode, ident, ref.camera_id, ref.zone.id)

    def finish(self, tracker: Tracker, now: float) -> list[VisionEvent]:
        events = self.intrusions.finish(tracker, now)
        for episodes in self.zone_episodes.values():
            events += [self._zone_event(e) for e in episodes.close_all(now)]
        return events

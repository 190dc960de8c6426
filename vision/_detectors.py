"""The zone detectors: intrusion, crowd, congestion, stopped vehicle and wrong way.

An object is in a zone when its ground point (the bottom centre of its box: feet, wheels)
is inside the zone's polygon. Intrusions are per object: each tracked object that stays in
a restricted zone is one intrusion, however long it stands there, and two cars passing at
once are two. The other detectors judge the zone as a whole, from its foreground share and
the objects in it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from protocol import Camera, EventKind, VisionEvent, ZoneKind

from ._batch import BatchIndex
from ._episodes import Episode, EpisodeTracker
from ._geometry import ZoneLayout
from ._tracking import Tracker, TrackStep

Ints = npt.NDArray[np.intp]
Floats = npt.NDArray[np.float64]
WRONG_WAY_COSINE = -0.5
"""Moving more than 120 degrees away from the lane's direction is the wrong way."""
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


def event_id(camera_id: str, *parts: str) -> str:
    """Stable id of an event; long ids are shortened to a digest (the payload allows 128)."""
    text = ":".join((camera_id, *parts))
    if len(text) <= 128:
        return text
    return f"{camera_id}:{hashlib.sha256(text.encode()).hexdigest()[:40]}"


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
        # Intrusions are keyed by (track slot, zone layer); they grow with the tracker.
        self.layers = max(layout.layers, 1)
        shape = (len(self.cameras), self.layers)
        self.restricted = np.zeros(shape, bool)
        self.layer_min_seconds = np.zeros(shape)
        self.layer_clear_seconds = np.zeros(shape)
        for ref in layout.zones:
            at = (ref.camera_index, ref.layer)
            self.restricted[at] = ref.zone.kind is ZoneKind.RESTRICTED
            self.layer_min_seconds[at] = ref.zone.min_seconds
            self.layer_clear_seconds[at] = ref.zone.clear_seconds
        self.intrusions = EpisodeTracker(EventKind.INTRUSION, np.zeros(0), np.zeros(0))

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
        events = self._intrusions(tracker, objects, index)
        events += self._zones(tracker, objects, index, occupancy, watched)
        return events

    def _intrusions(
        self, tracker: Tracker, objects: ZoneObjects, index: BatchIndex
    ) -> list[VisionEvent]:
        needed = tracker.capacity * self.layers
        if len(self.intrusions.active) < needed:
            self.intrusions.resize(np.zeros(needed), np.zeros(needed))
        # Every live track of the batch's cameras: observed ones may be present, the rest not.
        here = np.flatnonzero(tracker.alive & (index.position[np.maximum(tracker.camera, 0)] >= 0))
        track_i, layer = np.nonzero(self.restricted[tracker.camera[here]])
        if not len(track_i):
            return []
        slot = here[track_i]
        cam = tracker.camera[slot]
        keys = slot * self.layers + layer
        self.intrusions.min_seconds[keys] = self.layer_min_seconds[cam, layer]
        self.intrusions.clear_seconds[keys] = self.layer_clear_seconds[cam, layer]
        zone = self.layout.zone_of[cam, layer]
        share = tracker.area[slot] / self.area_share[zone]
        row = np.full(tracker.capacity, -1, np.intp)
        row[objects.slots] = np.arange(len(objects.slots))
        seen = row[slot] >= 0
        present = np.zeros(len(keys), bool)
        present[seen] = objects.inside[row[slot[seen]], layer[seen]] & (
            share[seen] >= self.min_area[zone[seen]]
        )
        at = index.position[cam]
        episodes = self.intrusions.update(keys, present, share, index.times[at], index.seqs[at])
        return [self._intrusion_event(tracker, e) for e in episodes]

    def close_tracks(self, tracker: Tracker, slots: Ints, now: float) -> list[VisionEvent]:
        """End the intrusions of tracks that are gone (before their slots are reused)."""
        if not len(slots) or not len(self.intrusions.active):
            return []
        keys = (slots[:, None] * self.layers + np.arange(self.layers)).ravel()
        keys = keys[keys < len(self.intrusions.active)]
        return [self._intrusion_event(tracker, e) for e in self.intrusions.close(keys, now)]

    def _intrusion_event(self, tracker: Tracker, episode: Episode) -> VisionEvent:
        slot, layer = divmod(episode.key, self.layers)
        ref = self.layout.zones[self.layout.zone_of[tracker.camera[slot], layer]]
        started = f"{episode.started_at:.3f}"
        ident = event_id(ref.camera_id, ref.zone.id, "intrusion", started, str(tracker.ident[slot]))
        return _event(episode, ident, ref.camera_id, ref.zone.id)

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
        wrong = np.zeros(n_zones, bool)
        wrong[z[trusted & big & (speed > self.low_speed[z]) & (heading < WRONG_WAY_COSINE)]] = True
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
        return _event(
            episode,
            event_id(ref.camera_id, ref.zone.id, str(episode.kind), f"{episode.started_at:.3f}"),
            ref.camera_id,
            ref.zone.id,
        )

    def finish(self, tracker: Tracker, now: float) -> list[VisionEvent]:
        events = self.close_tracks(tracker, np.flatnonzero(tracker.alive), now)
        for episodes in self.zone_episodes.values():
            events += [self._zone_event(e) for e in episodes.close_all(now)]
        return events


def _event(episode: Episode, ident: str, camera_id: str, zone_id: str) -> VisionEvent:
    return VisionEvent(
        event_id=ident,
        kind=episode.kind,
        camera_id=camera_id,
        phase="start" if episode.ended_at is None else "end",
        started_at=episode.started_at,
        ended_at=episode.ended_at,
        zone_id=zone_id,
        score=round(episode.peak, 4),
        frame_seq=episode.frame_seq,
        frame_captured_at=episode.frame_captured_at,
    )

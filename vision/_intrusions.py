"""Intrusions: one per object that stays in a restricted zone while its schedule is active.

An object is in a zone when its ground point (bottom centre of its box) is inside; it must
cover ``min_area`` of the zone and stay ``min_seconds``; its intrusion ends when it has been
out (or unseen) for ``clear_seconds``. Each object is one intrusion, however long it stands
there: the background never learns foreground, so a person at a table does not fade away.

Objects fall apart at times (legs under a coat the colour of the wall, a rider and a bike).
A piece stacked right above or below an object already intruding in the same zone is part of
it: it raises nothing of its own, and if the object's track is lost while the piece stays,
the piece carries the same intrusion on instead of ending it and starting another.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from protocol import Camera, EventKind, VisionEvent, ZoneKind

from ._batch import BatchIndex, pairs_by_key
from ._episodes import Episode, EpisodeTracker
from ._events import event_id, zone_event
from ._geometry import ZoneLayout
from ._tracking import Tracker

Ints = npt.NDArray[np.intp]
Floats = npt.NDArray[np.float64]
PIECE_SHARE = 0.5
PIECE_GAP = 0.25
"""A piece shares half of the narrower box's width with its object, and the vertical gap
between them is at most a quarter of the lower box's height."""


def stacked(tracker: Tracker, a: Ints, b: Ints) -> npt.NDArray[np.bool_]:
    """Whether the boxes of tracks ``a`` and ``b`` are pieces of one upright object."""
    t = tracker
    shared = np.minimum(t.x1[a], t.x1[b]) - np.maximum(t.x0[a], t.x0[b])
    narrower = np.minimum(t.x1[a] - t.x0[a], t.x1[b] - t.x0[b])
    gap = np.maximum(t.y0[a], t.y0[b]) - np.minimum(t.y1[a], t.y1[b])
    lower = np.minimum(t.y1[a] - t.y0[a], t.y1[b] - t.y0[b])
    near: npt.NDArray[np.bool_] = (shared >= PIECE_SHARE * narrower) & (gap <= PIECE_GAP * lower)
    return near


class ObjectIntrusions:
    """Intrusion episodes keyed by (track slot, zone layer); they grow with the tracker."""

    def __init__(self, cameras: Sequence[Camera], layout: ZoneLayout) -> None:
        self.layout = layout
        self.layers = max(layout.layers, 1)
        shape = (len(cameras), self.layers)
        self.restricted = np.zeros(shape, bool)
        self.min_seconds = np.zeros(shape)
        self.clear_seconds = np.zeros(shape)
        for ref in layout.zones:
            at = (ref.camera_index, ref.layer)
            self.restricted[at] = ref.zone.kind is ZoneKind.RESTRICTED
            self.min_seconds[at] = ref.zone.min_seconds
            self.clear_seconds[at] = ref.zone.clear_seconds
        self.min_area = np.array([ref.zone.min_area for ref in layout.zones])
        self.area_share = layout.areas / (layout.width * layout.height)
        self.episodes = EpisodeTracker(EventKind.INTRUSION, np.zeros(0), np.zeros(0))
        self.ids: dict[int, str] = {}
        """Event id of each open intrusion, by key (it moves with a handover)."""

    def update(
        self,
        tracker: Tracker,
        slots: Ints,
        inside: npt.NDArray[np.bool_],
        index: BatchIndex,
    ) -> list[VisionEvent]:
        """``slots`` are the objects observed in settled frames, ``inside`` their zone
        layers (watched zones only)."""
        needed = tracker.capacity * self.layers
        if len(self.episodes.active) < needed:
            self.episodes.resize(np.zeros(needed), np.zeros(needed))
        # Every live track of the batch's cameras: observed ones may be present, the rest not.
        here = np.flatnonzero(tracker.alive & (index.position[np.maximum(tracker.camera, 0)] >= 0))
        track_i, layer = np.nonzero(self.restricted[tracker.camera[here]])
        if not len(track_i):
            return []
        slot = here[track_i]
        cam = tracker.camera[slot]
        keys = slot * self.layers + layer
        self.episodes.min_seconds[keys] = self.min_seconds[cam, layer]
        self.episodes.clear_seconds[keys] = self.clear_seconds[cam, layer]
        zone = self.layout.zone_of[cam, layer]
        share = tracker.area[slot] / self.area_share[zone]
        row = np.full(tracker.capacity, -1, np.intp)
        row[slots] = np.arange(len(slots))
        seen = row[slot] >= 0
        present = np.zeros(len(keys), bool)
        present[seen] = inside[row[slot[seen]], layer[seen]] & (
            share[seen] >= self.min_area[zone[seen]]
        )
        active = self.episodes.active[keys]
        pieces, sustained = self._pieces(tracker, slot, zone, present & ~active, active)
        present = (present & ~pieces) | sustained
        at = index.position[cam]
        episodes = self.episodes.update(keys, present, share, index.times[at], index.seqs[at])
        return [self._event(tracker, e) for e in episodes]

    @staticmethod
    def _pieces(
        tracker: Tracker,
        slot: Ints,
        zone: Ints,
        candidate: npt.NDArray[np.bool_],
        intruding: npt.NDArray[np.bool_],
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """Candidates stacked on an object already intruding in the same zone (pieces),
        and the intruding objects such a piece keeps present."""
        pieces = np.zeros(len(slot), bool)
        sustained = np.zeros(len(slot), bool)
        cand, held = np.flatnonzero(candidate), np.flatnonzero(intruding)
        i, j = pairs_by_key(zone[cand], zone[held])
        near = stacked(tracker, slot[cand[i]], slot[held[j]])
        pieces[cand[i[near]]] = True
        sustained[held[j[near]]] = True
        return pieces, sustained

    def close_tracks(self, tracker: Tracker, slots: Ints, now: float) -> list[VisionEvent]:
        """End the intrusions of tracks that are gone, unless a piece of the object is still
        in the zone and takes the intrusion over. Call before the slots are reused."""
        if not len(slots) or not len(self.episodes.active):
            return []
        keys = (slots[:, None] * self.layers + np.arange(self.layers)).ravel()
        keys = keys[keys < len(self.episodes.active)]
        open_keys = keys[self.episodes.active[keys]]
        gone = set(slots.tolist())
        # A handful of lost objects at most per batch: a loop is clearest here.
        for key in open_keys.tolist():
            heir = self._heir(tracker, key, gone, now)
            if heir is not None:
                self.episodes.transfer(key, heir)
                self.ids[heir] = self.ids.pop(key)
        return [self._event(tracker, e) for e in self.episodes.close(keys, now)]

    def _heir(self, tracker: Tracker, key: int, gone: set[int], now: float) -> int | None:
        slot, layer = divmod(key, self.layers)
        camera = int(tracker.camera[slot])
        others = np.flatnonzero(tracker.alive & (tracker.camera == camera))
        others = others[~np.isin(others, list(gone))]
        others = others[now - tracker.seen[others] <= self.clear_seconds[camera, layer]]
        if not len(others) or self.layout.layers == 0:
            return None
        inside = self.layout.inside(
            tracker.camera[others], tracker.cx[others], tracker.y1[others] - 1e-6
        )[:, layer]
        free = ~self.episodes.active[others * self.layers + layer]
        ok = inside & free & stacked(tracker, np.full(len(others), slot), others)
        if not ok.any():
            return None
        best = others[ok][np.argmax(tracker.area[others[ok]])]
        return int(best) * self.layers + layer

    def finish(self, tracker: Tracker, now: float) -> list[VisionEvent]:
        keys = np.arange(len(self.episodes.active))
        return [self._event(tracker, e) for e in self.episodes.close(keys, now)]

    def _event(self, tracker: Tracker, episode: Episode) -> VisionEvent:
        slot, layer = divmod(episode.key, self.layers)
        ref = self.layout.zones[self.layout.zone_of[tracker.camera[slot], layer]]
        if episode.ended_at is None:
            started = f"{episode.started_at:.3f}"
            ident = str(tracker.ident[slot])
            self.ids[episode.key] = event_id(
                ref.camera_id, ref.zone.id, "intrusion", started, ident
            )
            return zone_event(episode, self.ids[episode.key], ref.camera_id, ref.zone.id)
        ident = self.ids.pop(episode.key, f"{ref.camera_id}:{ref.zone.id}:intrusion")
        return zone_event(episode, ident, ref.camera_id, ref.zone.id)

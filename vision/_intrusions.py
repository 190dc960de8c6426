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
between them is at most a quarter of the taller box's height (legs a person's height apart
from the torso are not a piece)."""
HANDOVER_REACH = 1.0
"""A new track takes over the open intrusion of an object gone from the zone (or unseen)
when its centre lies within the object's last box grown by this many times the box's larger
side, plus the way the object could have gone since at its speed: the same object, found
again as a new track, or the part of it still in the zone, when that track came up after
the intrusion began."""


def stacked(tracker: Tracker, a: Ints, b: Ints) -> npt.NDArray[np.bool_]:
    """Whether the boxes of tracks ``a`` and ``b`` are pieces of one upright object."""
    t = tracker
    shared = np.minimum(t.x1[a], t.x1[b]) - np.maximum(t.x0[a], t.x0[b])
    narrower = np.minimum(t.x1[a] - t.x0[a], t.x1[b] - t.x0[b])
    gap = np.maximum(t.y0[a], t.y0[b]) - np.minimum(t.y1[a], t.y1[b])
    taller = np.maximum(t.y1[a] - t.y0[a], t.y1[b] - t.y0[b])
    near: npt.NDArray[np.bool_] = (shared >= PIECE_SHARE * narrower) & (gap <= PIECE_GAP * taller)
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
        self.min_object = np.array([c.analytics.min_object_area for c in cameras])
        self.area_share = layout.areas / (layout.width * layout.height)
        self.episodes = EpisodeTracker(EventKind.INTRUSION, np.zeros(0), np.zeros(0))
        self.ids: dict[int, str] = {}
        """Event id of each open intrusion, by key (it moves with a handover)."""

    def update(
        self,
        tracker: Tracker,
        watched: npt.NDArray[np.bool_],
        index: BatchIndex,
    ) -> list[VisionEvent]:
        """Advance the intrusions of every live track of the batch's cameras. A track is in
        a zone where it was last seen until it is seen elsewhere or lost: an object that
        fades for a moment (small, far, slow, the colour of the road) keeps its intrusion.
        ``watched`` says which zones' schedules are active."""
        needed = tracker.capacity * self.layers
        if len(self.episodes.active) < needed:
            self.episodes.resize(np.zeros(needed), np.zeros(needed))
        row_of = index.position[np.maximum(tracker.camera, 0)]
        here = np.flatnonzero(tracker.alive & (row_of >= 0))
        here = here[index.settled[row_of[here]]]
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
        inside = self.layout.inside(cam, tracker.cx[slot], tracker.y1[slot] - 1e-6)
        present = (
            inside[np.arange(len(slot)), layer] & watched[zone] & (share >= self.min_area[zone])
        )
        at = index.position[cam]
        active = self.episodes.active[keys]
        # Only an object seen now, at full size, starts an intrusion; one unseen or faint
        # for a moment keeps it.
        seen_now = tracker.seen[slot] >= index.times[at]
        present &= active | (seen_now & (tracker.area[slot] >= self.min_object[cam]))
        orphaned = active & ~(present & seen_now)
        self._hand_over(
            tracker, keys=keys, slot=slot, zone=zone, present=present, orphaned=orphaned
        )
        active = self.episodes.active[keys]
        pieces, sustained = self._pieces(
            tracker, keys=keys, slot=slot, zone=zone, candidate=present & ~active, intruding=active
        )
        present = (present & ~pieces) | sustained
        episodes = self.episodes.update(
            keys, present, share, index.times[at], index.seqs[at], seen=tracker.seen[slot]
        )
        return [self._event(tracker, e) for e in episodes]

    def _hand_over(
        self,
        tracker: Tracker,
        *,
        keys: Ints,
        slot: Ints,
        zone: Ints,
        present: npt.NDArray[np.bool_],
        orphaned: npt.NDArray[np.bool_],
    ) -> None:
        """An object present in a zone without an intrusion of its own takes over a nearby
        open intrusion whose object is gone from the zone or unseen, instead of starting a
        second one: one intrusion per episode, however often the object's track is lost,
        split or found again. ``present`` is updated in place (the old owner is absent)."""
        taker = np.flatnonzero(present & ~self.episodes.active[keys])
        giver = np.flatnonzero(orphaned)
        if not len(taker) or not len(giver):
            return
        i, j = pairs_by_key(zone[taker], zone[giver])
        t, g = slot[taker[i]], slot[giver[j]]
        size = np.maximum(tracker.x1[g] - tracker.x0[g], tracker.y1[g] - tracker.y0[g])
        reach = HANDOVER_REACH * size
        reach += tracker.speed[g] * np.maximum(tracker.seen[t] - tracker.seen[g], 0.0)
        # ... and only a track that came up after the intrusion began (a piece split off,
        # the object found again): one that was around before is another object.
        near = (
            (tracker.born[t] >= self.episodes.started_at[keys[giver[j]]])
            & (tracker.cx[t] >= tracker.x0[g] - reach)
            & (tracker.cx[t] <= tracker.x1[g] + reach)
            & (tracker.cy[t] >= tracker.y0[g] - reach)
            & (tracker.cy[t] <= tracker.y1[g] + reach)
        )
        taken: set[int] = set()
        # A handful of candidate pairs per batch at most (objects re-found or split in a
        # zone), nearest first.
        gap = np.hypot(tracker.cx[t] - tracker.cx[g], tracker.cy[t] - tracker.cy[g])
        for n in np.flatnonzero(near)[np.argsort(gap[near], kind="stable")].tolist():
            a, b = int(taker[i[n]]), int(giver[j[n]])
            if a in taken or b in taken:
                continue
            taken.update((a, b))
            source, target = int(keys[b]), int(keys[a])
            self.episodes.transfer(source, target)
            if source in self.ids:
                self.ids[target] = self.ids.pop(source)
            present[b] = False

    def _pieces(
        self,
        tracker: Tracker,
        *,
        keys: Ints,
        slot: Ints,
        zone: Ints,
        candidate: npt.NDArray[np.bool_],
        intruding: npt.NDArray[np.bool_],
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """Candidates stacked on an object already intruding in the same zone that came up
        after its intrusion began (pieces), and the intruding objects such a piece keeps
        present. An object that was around before is another object (two cars)."""
        pieces = np.zeros(len(slot), bool)
        sustained = np.zeros(len(slot), bool)
        cand, held = np.flatnonzero(candidate), np.flatnonzero(intruding)
        i, j = pairs_by_key(zone[cand], zone[held])
        later = tracker.born[slot[cand[i]]] >= self.episodes.started_at[keys[held[j]]]
        near = later & stacked(tracker, slot[cand[i]], slot[held[j]])
        pieces[cand[i[near]]] = True
        sustained[held[j[near]]] = True
        return pieces, sustained

    def holding(self, tracker: Tracker, slots: Ints, now: float) -> npt.NDArray[np.bool_]:
        """Which lost ``slots`` own an open intrusion whose quiet time (``clear_seconds``)
        has not run out since they were last seen: they are kept, to be found again."""
        if not len(slots) or not len(self.episodes.active):
            return np.zeros(len(slots), bool)
        keys = slots[:, None] * self.layers + np.arange(self.layers)
        keys = np.minimum(keys, len(self.episodes.active) - 1)
        open_ = self.episodes.active[keys] & (keys // self.layers == slots[:, None])
        cams = tracker.camera[slots]
        age = (now - tracker.seen[slots])[:, None]
        held: npt.NDArray[np.bool_] = (
            open_ & (age > 0) & (age < self.clear_seconds[cams][:, : self.layers])
        ).any(axis=1)
        return held

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

"""Centroid tracking of the blobs of every camera at once, with line crossings.

Tracks live in fixed-size arrays (one slot per track, grown when full). A batch is matched
in a few vectorised rounds: every (blob, track) pair of the same camera within the track's
predicted box (plus a margin) is scored, and pairs that are each other's best are taken
until none is left; a blob left over starts a track. A track that is not seen is carried on
its velocity for ``track_seconds``. Two tracks that end up on one object (it fell apart into
pieces for a while) are merged, so it is counted once. An object is counted on a line when
the way from where it was first seen, or its last step, crosses it; a blob that comes apart
from a counted track just past the line (two vehicles that crossed as one blob) is counted
too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._batch import BatchIndex, pairs_by_key
from ._blobs import Blobs
from ._geometry import ZoneLayout, crossing_times, crossings

Ints = npt.NDArray[np.intp]
Floats = npt.NDArray[np.float64]
GATE_MARGIN = 0.03
"""Frame fractions added around a predicted box when looking for its blob."""
YOUNG_REACH = 1.0
"""How many of its own sizes further a track seen only once looks for its blob."""
VELOCITY_SMOOTHING = 0.5
AGE_COST = 0.5
"""Matching cost per second a track has gone unseen."""
MIN_COUNT_HITS = 3
"""Observations before a track counts for a line (a blob seen once or twice is not a car)."""
SPLIT_WINDOW = 1.0
SPLIT_AREA = 0.3
SPLIT_SECONDS = 0.4
"""A blob that comes apart from a track within ``SPLIT_WINDOW`` seconds of the track's
crossing a line, past the line, covering at least ``SPLIT_AREA`` of the track's area, its box
clear of the track's, was a second vehicle that crossed inside the first one's blob (close
behind it in the next lane, overlapping on the image); it is counted too, once its track
has lasted ``SPLIT_SECONDS`` (a piece of one vehicle breaks off for a moment)."""
EDGE = 0.01
"""A box side this close to the frame's edge may be cut by it."""
DUPLICATE_OVERLAP = 0.6
"""A track whose box lies this much inside an older track's box is the same object."""


@dataclass(frozen=True, slots=True)
class TrackStep:
    """What one batch did to the tracks: ``observed`` slots got a blob (``new`` ones were
    born), ``crossings`` lists (slot, line slot, direction +1/-1) moves over counting lines,
    ``lost`` slots were not seen for too long and are freed by :meth:`Tracker.free`;
    ``timed`` observed slots got a crossing time of a speed-gate line (the only ones a
    gate can time in this step)."""

    observed: Ints
    new: Ints
    crossing_slot: Ints
    crossing_line: Ints
    crossing_direction: npt.NDArray[np.int8]
    lost: Ints
    timed: Ints


class Tracker:
    """Track slots of every camera. Positions, boxes and velocities are frame fractions
    (per second for velocities); times are the frames' capture times."""

    alive: npt.NDArray[np.bool_]
    camera: Ints
    ident: npt.NDArray[np.int64]
    hits: npt.NDArray[np.int64]
    x0: Floats
    y0: Floats
    x1: Floats
    y1: Floats
    cx: Floats
    cy: Floats
    vx: Floats
    vy: Floats
    area: Floats
    born: Floats
    seen: Floats
    anchor_x: Floats
    anchor_y: Floats
    still_since: Floats
    """When the object last moved more than a fifth of its size."""
    origin_x: Floats
    origin_y: Floats
    counted: npt.NDArray[np.bool_]
    """(slot, line slot): the object has been counted on that line."""
    counted_at: Floats
    counted_direction: npt.NDArray[np.int8]
    """(slot, line slot): when and which way it was counted."""
    crossed_at: Floats
    """(slot, line slot): when the object's ground point first crossed the line, interpolated
    between the two frames either side of it (NaN until then), for speed gates."""
    owed: npt.NDArray[np.int8]
    """(slot, line slot): a crossing this track made inside another one's blob (the two came
    apart just past the line), counted once the track has lasted ``SPLIT_SECONDS``."""

    _FIELDS: tuple[tuple[str, type, object], ...] = (
        ("alive", bool, False),
        ("camera", np.intp, -1),
        ("ident", np.int64, 0),
        ("hits", np.int64, 0),
        *(
            (name, np.float64, 0.0)
            for name in (
                "x0",
                "y0",
                "x1",
                "y1",
                "cx",
                "cy",
                "vx",
                "vy",
                "area",
                "born",
                "seen",
                "anchor_x",
                "anchor_y",
                "still_since",
                "origin_x",
                "origin_y",
            )
        ),
    )

    _LINE_FIELDS: tuple[tuple[str, type, object], ...] = (
        ("counted", bool, False),
        ("counted_at", np.float64, -np.inf),
        ("counted_direction", np.int8, 0),
        ("owed", np.int8, 0),
        ("crossed_at", np.float64, np.nan),
    )

    def __init__(self, layout: ZoneLayout, track_seconds: Floats) -> None:
        self.layout = layout
        self.track_seconds = track_seconds
        self.next_ident = 1
        self.capacity = 0
        self._grow(64)

    def _grow(self, capacity: int) -> None:
        old = self.capacity
        for name, dtype, fill in self._FIELDS:
            array: npt.NDArray[Any] = np.full(capacity, fill, dtype)
            if old:
                array[:old] = getattr(self, name)
            setattr(self, name, array)
        lines = max(self.layout.max_lines, 1)
        for name, dtype, fill in self._LINE_FIELDS:
            table: npt.NDArray[Any] = np.full((capacity, lines), fill, dtype)
            if old:
                table[:old] = getattr(self, name)
            setattr(self, name, table)
        self.capacity = capacity

    @property
    def speed(self) -> Floats:
        speed: Floats = np.hypot(self.vx, self.vy)
        return speed

    def update(self, blobs: Blobs, index: BatchIndex) -> TrackStep:
        cameras, times, position = index.cameras, index.times, index.position
        candidates = np.flatnonzero(self.alive & (position[self.camera] >= 0))
        candidates = candidates[index.settled[position[self.camera[candidates]]]]
        blob_camera = cameras[blobs.row]
        blob_time = times[blobs.row]
        owner, parent = self._match(blobs, blob_camera, blob_time, candidates)
        fresh = owner < 0
        observed, crossing, timed = self._observe(blobs, owner, blob_time)
        owed = self._owed(blobs, parent, blob_time)[fresh]
        new = self._create(blobs.select(fresh), blob_camera[fresh], blob_time[fresh])
        self.owed[new] = owed
        seen = np.concatenate([observed, new])
        merged = self._merge_duplicates(seen)
        here = np.flatnonzero(self.alive & (position[self.camera] >= 0))
        age = times[position[self.camera[here]]] - self.seen[here]
        lost = np.union1d(here[age > self.track_seconds[self.camera[here]]], merged)
        seen = np.setdiff1d(seen, merged)
        timed = timed[~np.isin(timed, merged)]
        return TrackStep(seen, np.setdiff1d(new, merged), *crossing, lost, timed)

    def _merge_duplicates(self, slots: Ints) -> Ints:
        """Two tracks on one object (it fell apart for a while): the younger one's box lies
        mostly inside the older one's. The older takes the younger's counted lines (so the
        object is counted once); the younger is returned, to be dropped."""
        i, j = pairs_by_key(self.camera[slots], self.camera[slots])
        older = self.ident[slots[i]] < self.ident[slots[j]]
        old, young = slots[i[older]], slots[j[older]]
        width = np.minimum(self.x1[old], self.x1[young]) - np.maximum(self.x0[old], self.x0[young])
        height = np.minimum(self.y1[old], self.y1[young]) - np.maximum(self.y0[old], self.y0[young])
        inter = np.maximum(width, 0.0) * np.maximum(height, 0.0)
        size = (self.x1[young] - self.x0[young]) * (self.y1[young] - self.y0[young])
        duplicate = inter >= DUPLICATE_OVERLAP * np.maximum(size, 1e-12)
        old, young = old[duplicate], young[duplicate]
        # Each younger track goes to its oldest partner; an absorbed track absorbs nothing.
        order = np.lexsort((self.ident[old], young))
        old, young = old[order], young[order]
        _, first = np.unique(young, return_index=True)
        old, young = old[first], young[first]
        keep = ~np.isin(old, young)
        old, young = old[keep], young[keep]
        np.logical_or.at(self.counted, old, self.counted[young])
        merged: Ints = young
        return merged

    def _owed(self, blobs: Blobs, parent: Ints, blob_time: Floats) -> npt.NDArray[np.int8]:
        """Crossings a blob made before it came apart from its ``parent`` track: the lines
        the parent was counted on in the last ``SPLIT_WINDOW`` seconds, when the blob is a
        vehicle's share of the parent (not a roof or a shadow breaking off)."""
        has = parent >= 0
        p = np.where(has, parent, 0)
        recent = blob_time[:, None] - self.counted_at[p] <= SPLIT_WINDOW
        big = blobs.area >= SPLIT_AREA * self.area[p]
        # Apart: pieces of one vehicle that fell apart still touch or overlap.
        apart = (
            (blobs.x0 >= self.x1[p])
            | (blobs.x1 <= self.x0[p])
            | (blobs.y0 >= self.y1[p])
            | (blobs.y1 <= self.y0[p])
        )
        owe = self.counted[p] & recent & (has & big & apart)[:, None]
        # ... and only past the line, on the side the parent went to (one still short of it
        # crosses by itself).
        cams = self.camera[p]
        a, b = self.layout.line_a[cams], self.layout.line_b[cams]
        d = b - a
        side = d[..., 0] * (blobs.cy[:, None] - a[..., 1]) - d[..., 1] * (
            blobs.cx[:, None] - a[..., 0]
        )
        direction = self.counted_direction[p]
        owe &= side * direction > 0
        owed: npt.NDArray[np.int8] = np.where(owe, direction, 0).astype(np.int8)
        return owed

    def _match(
        self, blobs: Blobs, blob_camera: Ints, blob_time: Floats, candidates: Ints
    ) -> tuple[Ints, Ints]:
        """The track slot each blob belongs to, or -1 for a new object; and for a new object
        whose centre lies inside a matched track's predicted box, that track (its parent:
        two vehicles side by side that travelled as one blob and came apart), else -1."""
        owner = np.full(len(blobs), -1, np.intp)
        parent = np.full(len(blobs), -1, np.intp)
        if not len(blobs) or not len(candidates):
            return owner, parent
        i, j = pairs_by_key(blob_camera, self.camera[candidates])
        pb, pt = i, candidates[j]
        dt = blob_time[pb] - self.seen[pt]
        dx = np.abs(blobs.cx[pb] - (self.cx[pt] + self.vx[pt] * dt))
        dy = np.abs(blobs.cy[pb] - (self.cy[pt] + self.vy[pt] * dt))
        hw, hh = (self.x1[pt] - self.x0[pt]) / 2, (self.y1[pt] - self.y0[pt]) / 2
        # A track seen once has no velocity yet: at 5 fps a fast vehicle moves more than its
        # own length between frames, so its gate reaches further.
        young = YOUNG_REACH * (self.hits[pt] == 1) * np.maximum(2 * hw, 2 * hh)
        gate_x = hw + (blobs.x1[pb] - blobs.x0[pb]) / 4 + GATE_MARGIN + young
        gate_y = hh + (blobs.y1[pb] - blobs.y0[pb]) / 4 + GATE_MARGIN + young
        gated = (dx <= gate_x) & (dy <= gate_y)
        within = (dx <= hw) & (dy <= hh)
        cost = (dx / gate_x) ** 2 + (dy / gate_y) ** 2
        cost += 0.25 * np.abs(np.log(blobs.area[pb] / np.maximum(self.area[pt], 1e-9)))
        # A track seen a moment ago beats one coasting on an old velocity.
        cost += AGE_COST * dt
        by_cost = np.argsort(cost[gated], kind="stable")
        pb, pt = pb[gated][by_cost], pt[gated][by_cost]
        # Mutual best pairs, round after round; the best remaining pair is always mutual.
        taken = np.zeros(self.capacity, bool)
        while len(pb):
            _, first_b = np.unique(pb, return_index=True)
            _, first_t = np.unique(pt, return_index=True)
            mutual = np.intersect1d(first_b, first_t)
            owner[pb[mutual]] = pt[mutual]
            taken[pt[mutual]] = True
            keep = (owner[pb] < 0) & ~taken[pt]
            pb, pt = pb[keep], pt[keep]
        # A blob left over inside a track's predicted box came apart from it; the track
        # (matched to another blob) whose pair costs least is its parent.
        pb, pt = i[gated][by_cost], candidates[j][gated][by_cost]
        orphan = within[gated][by_cost] & (owner[pb] < 0) & taken[pt]
        pb, pt = pb[orphan][::-1], pt[orphan][::-1]
        parent[pb] = pt  # written from the costliest pair down: the cheapest stays
        return owner, parent

    def _observe(
        self, blobs: Blobs, owner: Ints, blob_time: Floats
    ) -> tuple[Ints, tuple[Ints, Ints, npt.NDArray[np.int8]], Ints]:
        """Move matched tracks to the union of their blobs; find their line crossings and
        the tracks that got a crossing time of a speed-gate line."""
        matched = np.flatnonzero(owner >= 0)
        slots, inverse = np.unique(owner[matched], return_inverse=True)
        if not len(slots):
            empty = np.zeros(0, np.intp)
            return empty, (empty, empty, np.zeros(0, np.int8)), empty
        b = blobs.select(matched)
        area = np.bincount(inverse, weights=b.area)
        cx = np.bincount(inverse, weights=b.area * b.cx) / area
        cy = np.bincount(inverse, weights=b.area * b.cy) / area
        x0 = np.full(len(slots), np.inf)
        y0 = np.full(len(slots), np.inf)
        x1 = np.zeros(len(slots))
        y1 = np.zeros(len(slots))
        np.minimum.at(x0, inverse, b.x0)
        np.minimum.at(y0, inverse, b.y0)
        np.maximum.at(x1, inverse, b.x1)
        np.maximum.at(y1, inverse, b.y1)
        now = np.zeros(len(slots))
        now[inverse] = blob_time[matched]
        dt = now - self.seen[slots]
        moving = dt > 0
        step_vx = np.where(moving, (cx - self.cx[slots]) / np.where(moving, dt, 1.0), 0.0)
        step_vy = np.where(moving, (cy - self.cy[slots]) / np.where(moving, dt, 1.0), 0.0)
        smooth = np.where(self.hits[slots] <= 1, 1.0, VELOCITY_SMOOTHING) * moving
        self.vx[slots] += smooth * (step_vx - self.vx[slots])
        self.vy[slots] += smooth * (step_vy - self.vy[slots])
        # An object is counted once per line, when it is established and the way from where
        # it was first seen to where it is now crosses the line: a track that jitters on the
        # line, or a piece that splits off a car for a few frames, is not counted again.
        start = np.stack([self.origin_x[slots], self.origin_y[slots]], axis=1)
        end = np.stack([cx, cy], axis=1)
        cams = self.camera[slots]
        line_a, line_b = self.layout.line_a[cams], self.layout.line_b[cams]
        direction = crossings(start, end, line_a, line_b)
        # The last step counts too: a track that took over another object's blob (they
        # travelled as one for a while) has an origin that says nothing about this object.
        last = np.stack([self.cx[slots], self.cy[slots]], axis=1)
        direction = np.where(direction != 0, direction, crossings(last, end, line_a, line_b))
        # A crossing made inside another track's blob counts once the track has lasted.
        lasted = (now - self.born[slots] >= SPLIT_SECONDS)[:, None]
        direction = np.where(direction != 0, direction, self.owed[slots] * lasted)
        young = self.hits[slots] + 1 < MIN_COUNT_HITS
        direction[~self.layout.line_valid[cams] | self.counted[slots] | young[:, None]] = 0
        hit_track, hit_line = np.nonzero(direction)
        self.counted[slots[hit_track], hit_line] = True
        self.counted_at[slots[hit_track], hit_line] = now[hit_track]
        self.counted_direction[slots[hit_track], hit_line] = direction[hit_track, hit_line]
        timed = self._time_crossings(slots, (x0, y0, x1, y1), now)
        self.cx[slots], self.cy[slots], self.area[slots] = cx, cy, area
        self.x0[slots], self.y0[slots], self.x1[slots], self.y1[slots] = x0, y0, x1, y1
        self.seen[slots] = now
        self.hits[slots] += 1
        self._settle(slots, np.maximum(x1 - x0, y1 - y0), now)
        crossing = (slots[hit_track], hit_line.astype(np.intp), direction[hit_track, hit_line])
        return slots, crossing, timed

    def _settle(self, slots: Ints, size: Floats, now: Floats) -> None:
        """Still: the centre stays within a fifth of the object's size of where it settled."""
        cx, cy = self.cx[slots], self.cy[slots]
        radius = np.maximum(0.015, 0.2 * size)
        moved = np.hypot(cx - self.anchor_x[slots], cy - self.anchor_y[slots]) > radius
        self.anchor_x[slots] = np.where(moved, cx, self.anchor_x[slots])
        self.anchor_y[slots] = np.where(moved, cy, self.anchor_y[slots])
        self.still_since[slots] = np.where(moved, now, self.still_since[slots])

    def _time_crossings(self, slots: Ints, box: tuple[Floats, ...], now: Floats) -> Ints:
        """Record when each track's ground point (bottom centre) first crossed each line of
        a speed gate, interpolated along its step from the previous frame to this one
        (``box``: the new x0, y0, x1, y1). Where the previous box was cut by the frame's
        edge (a vehicle coming in), its hidden side is put back from the new box's size.
        Returns the slots that got a crossing time."""
        none = np.zeros(0, np.intp)
        layout = self.layout
        if not layout.timed.any():
            return none
        rows = np.flatnonzero(layout.timed_valid[self.camera[slots], 0])
        if not len(rows):
            return none
        s = slots[rows]
        x0, y0, x1, y1 = (side[rows] for side in box)
        width, height = x1 - x0, y1 - y0
        whole = (x0 > EDGE) & (x1 < 1 - EDGE) & (y1 < 1 - EDGE)
        cut = whole & (self.y1[s] >= 1 - EDGE)
        bottom = np.where(cut, np.maximum(self.y1[s], self.y0[s] + height), self.y1[s])
        centre = (self.x0[s] + self.x1[s]) / 2
        centre = np.where(whole & (self.x0[s] <= EDGE), self.x1[s] - width / 2, centre)
        centre = np.where(whole & (self.x1[s] >= 1 - EDGE), self.x0[s] + width / 2, centre)
        # Only the gates' lines (columns of ``layout.timed_slot``), not every counting line.
        cams = self.camera[s]
        a, b = layout.timed_a[cams], layout.timed_b[cams]
        start = np.stack([centre, bottom], axis=1)
        end = np.stack([(x0 + x1) / 2, y1], axis=1)
        t0, t1 = self.seen[s], now[rows]
        at = crossing_times(start, end, a, b, times=(t0, t1))
        # A vehicle that came into view already across a line (fast, at 5 fps) is timed by
        # extending its first step back by one step.
        entering = (self.hits[s] == 1) & ~(
            (self.x0[s] > EDGE)
            & (self.x1[s] < 1 - EDGE)
            & (self.y0[s] > EDGE)
            & (self.y1[s] < 1 - EDGE)
        )
        e = np.flatnonzero(entering)
        if len(e):
            # Only the few tracks coming into view: the others' first step is in the frame.
            back = crossing_times(
                2 * start[e] - end[e], start[e], a[e], b[e], times=(2 * t0[e] - t1[e], t0[e])
            )
            at[e] = np.where(np.isnan(at[e]), back, at[e])
        column = layout.timed_slot[cams]
        known = np.take_along_axis(self.crossed_at[s], column, axis=1)
        first = np.isnan(known) & ~np.isnan(at) & layout.timed_valid[cams]
        row, col = np.nonzero(first)
        self.crossed_at[s[row], column[row, col]] = at[row, col]
        got: Ints = s[first.any(axis=1)]
        return got

    def _create(self, blobs: Blobs, cameras: Ints, times: Floats) -> Ints:
        n = len(blobs)
        free = np.flatnonzero(~self.alive)
        if len(free) < n:
            self._grow(max(self.capacity * 2, self.capacity + n))
            free = np.flatnonzero(~self.alive)
        slots = free[:n]
        self.alive[slots] = True
        self.camera[slots] = cameras
        self.ident[slots] = np.arange(self.next_ident, self.next_ident + n)
        self.next_ident += n
        self.hits[slots] = 1
        self.x0[slots], self.y0[slots], self.x1[slots], self.y1[slots] = (
            blobs.x0,
            blobs.y0,
            blobs.x1,
            blobs.y1,
        )
        self.cx[slots], self.cy[slots], self.area[slots] = blobs.cx, blobs.cy, blobs.area
        self.vx[slots] = 0.0
        self.vy[slots] = 0.0
        self.born[slots] = times
        self.seen[slots] = times
        self.anchor_x[slots], self.anchor_y[slots] = blobs.cx, blobs.cy
        self.origin_x[slots], self.origin_y[slots] = blobs.cx, blobs.cy
        self.still_since[slots] = times
        self.counted[slots] = False
        self.counted_at[slots] = -np.inf
        self.counted_direction[slots] = 0
        self.owed[slots] = 0
        self.crossed_at[slots] = np.nan
        return slots

    def of_cameras(self, cameras: Ints) -> Ints:
        """Live tracks of ``cameras``."""
        found: Ints = np.flatnonzero(np.isin(self.camera, cameras) & self.alive)
        return found

    def free(self, slots: Ints) -> None:
        self.alive[slots] = False
        self.camera[slots] = -1

"""Zones and lines of every camera, rasterised once at the analysis size.

Zones of one camera may overlap, so the k-th zone of every camera goes to layer k: a layer
is one 0/255 mask per camera, and the occupancy of every zone of every camera in a batch is
one ``bitwise_and`` and one row sum per layer (a handful of layers, not a loop over cameras),
on the half-size foreground (each pixel the share of its four that are foreground, so the
sums are exact areas at a quarter of the memory traffic).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from protocol import Camera, Line, Zone

from ._batch import BatchRows, Scratch


@dataclass(frozen=True, slots=True)
class ZoneRef:
    """One (camera, zone) pair and its place in the flattened zone table."""

    index: int
    camera_index: int
    layer: int
    camera_id: str
    zone: Zone
    area_px: int


@dataclass(frozen=True, slots=True)
class LineRef:
    index: int
    camera_index: int
    slot: int
    camera_id: str
    line: Line


def zone_mask(zone: Zone, width: int, height: int) -> npt.NDArray[np.uint8]:
    """The zone as a 0/255 mask; the polygon's corners are fractions of the frame."""
    mask = np.zeros((height, width), np.uint8)
    pts = np.array(zone.polygon, dtype=np.float64) * [width - 1, height - 1]
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255)
    return mask


class ZoneLayout:
    """Zone masks, zone tables and line segments for all cameras at one analysis size."""

    def __init__(self, cameras: Sequence[Camera], width: int, height: int) -> None:
        self.width, self.height = width, height
        count = len(cameras)
        self.layers = max((len(c.zones) for c in cameras), default=0)
        half = (height // 2) * (width // 2)
        self.half_masks = np.zeros((max(self.layers, 1), count, half), np.uint8)
        self.zone_of = np.full((count, max(self.layers, 1)), -1, np.intp)
        self.zones: list[ZoneRef] = []
        half_areas: list[int] = []
        for ci, camera in enumerate(cameras):
            for layer, zone in enumerate(camera.zones):
                mask = zone_mask(zone, width, height)
                small = zone_mask(zone, width // 2, height // 2)
                ref = ZoneRef(
                    len(self.zones), ci, layer, camera.id, zone, int(np.count_nonzero(mask))
                )
                self.zones.append(ref)
                half_areas.append(int(np.count_nonzero(small)))
                self.half_masks[layer, ci] = small.ravel()
                self.zone_of[ci, layer] = ref.index
        self.half_areas = np.maximum(np.array(half_areas, np.float64), 1.0)
        self.scratch = Scratch()
        self.areas = np.array([max(z.area_px, 1) for z in self.zones], np.float64)
        self.max_lines = max((len(c.lines) for c in cameras), default=0)
        slots = max(self.max_lines, 1)
        # Segment ends in frame fractions, (camera, slot, xy); unused slots never cross.
        self.line_a = np.zeros((count, slots, 2))
        self.line_b = np.zeros((count, slots, 2))
        self.line_valid = np.zeros((count, slots), bool)
        self.line_of = np.full((count, slots), -1, np.intp)
        self.lines: list[LineRef] = []
        for ci, camera in enumerate(cameras):
            for slot, line in enumerate(camera.lines):
                line_ref = LineRef(len(self.lines), ci, slot, camera.id, line)
                self.lines.append(line_ref)
                self.line_a[ci, slot] = line.points[0]
                self.line_b[ci, slot] = line.points[1]
                self.line_valid[ci, slot] = True
                self.line_of[ci, slot] = line_ref.index
        # Lines of a speed gate: their crossings are timed (see ``crossing_times``).
        self.timed = np.zeros((count, slots), bool)
        for ci, camera in enumerate(cameras):
            slot_of = {line.id: slot for slot, line in enumerate(camera.lines)}
            for gate in camera.speed_gates:
                self.timed[ci, slot_of[gate.from_line]] = True
                self.timed[ci, slot_of[gate.to_line]] = True
        # The same as columns of each camera's timed lines only (camera, column): their slots
        # and segments, so timing looks at those lines and not at every counting line.
        width = max(int(self.timed.sum(axis=1).max(initial=0)), 1)
        self.timed_slot = np.zeros((count, width), np.intp)
        self.timed_valid = np.zeros((count, width), bool)
        for ci in range(count):
            found = np.flatnonzero(self.timed[ci])
            self.timed_slot[ci, : len(found)] = found
            self.timed_valid[ci, : len(found)] = True
        rows = np.arange(count)[:, None]
        self.timed_a = self.line_a[rows, self.timed_slot]
        self.timed_b = self.line_b[rows, self.timed_slot]

    def occupancy(self, half: npt.NDArray[np.uint8], rows: BatchRows) -> npt.NDArray[np.float64]:
        """Foreground share of every zone layer, ``(frames, layers)``, from the half-size
        foreground ``(frames * height/2, width/2)``."""
        k = len(rows.cameras)
        out = np.zeros((k, self.layers))
        flat = half.reshape(k, -1)
        scratch = self.scratch.get("and", flat.shape, np.uint8)
        for layer in range(self.layers):
            cv2.bitwise_and(flat, rows.take(self.half_masks[layer]), dst=scratch)
            sums = cv2.reduce(scratch, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)
            out[:, layer] = sums[:, 0] / 255.0
        zones = self.zone_of[rows.cameras, : self.layers]
        valid = zones >= 0
        out[valid] /= self.half_areas[zones[valid]]
        out[~valid] = 0.0
        np.clip(out, 0.0, 1.0, out=out)
        return out

    def inside(
        self, cameras: npt.NDArray[np.intp], x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.bool_]:
        """Which zone layers contain each point (frame fractions), ``(points, layers)``,
        looked up in the half-size masks."""
        w, h = self.width // 2, self.height // 2
        px = np.clip(np.round(x * (w - 1)), 0, w - 1).astype(np.intp)
        py = np.clip(np.round(y * (h - 1)), 0, h - 1).astype(np.intp)
        return (self.half_masks[: self.layers, cameras, py * w + px] > 0).T


Sides = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]


def _sides(
    start: npt.NDArray[np.float64],
    end: npt.NDArray[np.float64],
    a: npt.NDArray[np.float64],
    b: npt.NDArray[np.float64],
) -> Sides:
    """The sides of the segments ``start`` and ``end`` are on (cross products) and whether
    the move crosses each segment."""
    d = b - a
    p, q = start[:, None, :], end[:, None, :]
    side_p = d[..., 0] * (p[..., 1] - a[..., 1]) - d[..., 1] * (p[..., 0] - a[..., 0])
    side_q = d[..., 0] * (q[..., 1] - a[..., 1]) - d[..., 1] * (q[..., 0] - a[..., 0])
    m = q - p
    side_a = m[..., 0] * (a[..., 1] - p[..., 1]) - m[..., 1] * (a[..., 0] - p[..., 0])
    side_b = m[..., 0] * (b[..., 1] - p[..., 1]) - m[..., 1] * (b[..., 0] - p[..., 0])
    # A move that starts exactly on the line crosses it; one that ends on it does not yet.
    hit = (side_a * side_b < 0) & (((side_p <= 0) & (side_q > 0)) | ((side_p >= 0) & (side_q < 0)))
    return side_p, side_q, hit


def crossings(
    start: npt.NDArray[np.float64],
    end: npt.NDArray[np.float64],
    a: npt.NDArray[np.float64],
    b: npt.NDArray[np.float64],
) -> npt.NDArray[np.int8]:
    """For moves ``start -> end`` ``(n, 2)`` against segments ``a -> b`` ``(n, lines, 2)``:
    +1 where the move crosses from the segment's left to its right (forward), -1 for the
    reverse, 0 otherwise. With y pointing down, "left" as seen on the image is where the
    cross product of (b - a) and (p - a) is negative."""
    _, side_q, hit = _sides(start, end, a, b)
    return np.where(hit, np.where(side_q > 0, 1, -1), 0).astype(np.int8)


def crossing_times(
    start: npt.NDArray[np.float64],
    end: npt.NDArray[np.float64],
    a: npt.NDArray[np.float64],
    b: npt.NDArray[np.float64],
    *,
    times: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]],
) -> npt.NDArray[np.float64]:
    """For moves ``start -> end`` ``(n, 2)`` made between ``times`` ``(t0, t1)``, each ``(n,)``,
    against segments ``a -> b`` ``(n, lines, 2)``: the time each move crossed each segment,
    interpolated linearly along the move (NaN where it does not cross). At constant speed the
    error is that of the positions, not of the frame period."""
    t0, t1 = times
    side_p, side_q, hit = _sides(start, end, a, b)
    share = side_p / np.where(hit, side_p - side_q, 1.0)
    at = t0[:, None] + np.clip(share, 0.0, 1.0) * (t1 - t0)[:, None]
    out: npt.NDArray[np.float64] = np.where(hit, at, np.nan)
    return out

"""Blobs: the connected pieces of foreground of every frame of a batch, in one OpenCV call.

Connected components run at half the analysis size, on a mask where a half-size pixel is
set when any of its four pixels is: a quarter of the pixels to label (labelling with
statistics is the costliest OpenCV step per pixel here: 130 us for a 320x180 frame, 32 us at
half size), and pieces of one object a pixel apart join up. The frames are stacked with an
empty row between them, so a blob never spans two cameras. Pieces whose boxes mostly overlap
(a car's roof above its body, a person's head above a shirt that matches the wall) are then
grouped into one blob.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from ._batch import Scratch, pairs_by_key

Floats = npt.NDArray[np.float64]
GROUP_MARGIN = 0.25
GROUP_OVERLAP = 0.5
"""Blobs of one frame whose boxes, grown by ``GROUP_MARGIN`` of the smaller one's size on
every side, share this much of the smaller grown box are one object."""
STACK_SHARE = 0.6
STACK_GAP = 0.2
"""Blobs one above the other, of about one width, sharing this much of the narrower one's
width, with a gap of at most this much of the lower one's height, are one object."""


@dataclass(frozen=True, slots=True)
class Blobs:
    """Blob ``i`` is in batch row ``row[i]``; boxes and centroids are frame fractions."""

    row: npt.NDArray[np.intp]
    x0: Floats
    y0: Floats
    x1: Floats
    y1: Floats
    cx: Floats
    cy: Floats
    area: Floats
    """Share of the frame."""

    @classmethod
    def empty(cls) -> Blobs:
        nothing = np.zeros(0)
        return cls(np.zeros(0, np.intp), *([nothing] * 7))

    def __len__(self) -> int:
        return len(self.row)

    def select(self, keep: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> Blobs:
        return Blobs(
            self.row[keep],
            self.x0[keep],
            self.y0[keep],
            self.x1[keep],
            self.y1[keep],
            self.cx[keep],
            self.cy[keep],
            self.area[keep],
        )


class BlobFinder:
    def __init__(self, height: int, width: int) -> None:
        if height % 4 or width % 4:
            raise ValueError(f"analysis size {width}x{height} must be a multiple of 4")
        self.height, self.width = height, width
        self.scratch = Scratch()

    def find(self, half: npt.NDArray[np.uint8], min_area: npt.NDArray[np.float64]) -> Blobs:
        """Blobs of the batch's foreground at half size (``half``, ``(frames * height/2,
        width/2)``, each pixel the share of its four pixels that are foreground, 0..255)
        covering at least ``min_area[row]`` of their frame."""
        h, w = self.height // 2, self.width // 2
        k = half.shape[0] // h
        binary = self.scratch.get("binary", (k * h, w), np.uint8)
        # Any foreground among the four pixels sets the half-size pixel.
        cv2.threshold(half, 0, 255, cv2.THRESH_BINARY, dst=binary)
        # Tracing costs per pixel, empty or not: only frames with enough foreground for an
        # object take part (a quiet room or car park is empty most of the day).
        sums = cv2.reduce(binary.reshape(k, h * w), 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)
        busy = np.flatnonzero(sums[:, 0] >= 255.0 * min_area * (h * w))
        n = len(busy)
        if n == 0:
            return Blobs.empty()
        padded = self.scratch.get("padded", (n, h + 1, w), np.uint8)
        padded[:n, :h] = binary.reshape(k, h, w)[busy]
        padded[:, h] = 0
        x0, y0, x1, y1, area, cx, cy = _outlines(padded.reshape(-1, w))
        slot = (y0 // (h + 1)).astype(np.intp)
        row = busy[slot]
        area /= float(h * w)
        keep = area >= min_area[row]
        slot, row = slot[keep], row[keep]
        offset = slot * (h + 1)
        return group_overlapping(
            Blobs(
                row,
                x0[keep] / w,
                (y0[keep] - offset) / h,
                (x1[keep] + 1) / w,
                (y1[keep] - offset + 1) / h,
                (cx[keep] + 0.5) / w,
                (cy[keep] - offset + 0.5) / h,
                area[keep],
            )
        )


def _outlines(binary: npt.NDArray[np.uint8]) -> tuple[Floats, ...]:
    """Box (inclusive pixel bounds), pixel count and centroid of every outer contour of
    ``binary``, vectorised over all the contours' points. OpenCV's labelling with statistics
    costs twice as much as tracing outlines here; holes count as filled, which suits objects.

    Pixel count by Pick's theorem: a polygon through pixel centres of area A with B boundary
    pixels covers A + B/2 + 1 pixels; B is the sum of the chain-code steps."""
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        nothing = np.zeros(0)
        return (nothing,) * 7
    lengths = np.fromiter(map(len, contours), np.intp, len(contours))
    points = np.concatenate(contours).reshape(-1, 2).astype(np.float64)
    starts = np.cumsum(lengths) - lengths
    x, y = points[:, 0], points[:, 1]
    following = np.arange(len(x)) + 1
    following[starts + lengths - 1] = starts
    xn, yn = x[following], y[following]
    cross = x * yn - xn * y
    twice_area = np.add.reduceat(cross, starts)
    steps = np.add.reduceat(np.maximum(np.abs(xn - x), np.abs(yn - y)), starts)
    pixels = np.abs(twice_area) / 2 + steps / 2 + 1
    flat = np.abs(twice_area) < 1e-9  # a line or a dot: the mean of its points
    safe = np.where(flat, 1.0, 3 * twice_area)
    cx = np.where(
        flat, np.add.reduceat(x, starts) / lengths, np.add.reduceat((x + xn) * cross, starts) / safe
    )
    cy = np.where(
        flat, np.add.reduceat(y, starts) / lengths, np.add.reduceat((y + yn) * cross, starts) / safe
    )
    return (
        np.minimum.reduceat(x, starts),
        np.minimum.reduceat(y, starts),
        np.maximum.reduceat(x, starts),
        np.maximum.reduceat(y, starts),
        pixels,
        cx,
        cy,
    )


def _box_area(x0: Floats, y0: Floats, x1: Floats, y1: Floats) -> Floats:
    return np.maximum(x1 - x0, 0.0) * np.maximum(y1 - y0, 0.0)


def group_overlapping(blobs: Blobs) -> Blobs:
    """Merge blobs of the same frame whose grown boxes overlap by ``GROUP_OVERLAP`` of the
    smaller one (connected groups, by label propagation over the overlapping pairs)."""
    i, j = pairs_by_key(blobs.row, blobs.row)
    keep = i < j
    i, j = i[keep], j[keep]
    b = blobs
    w, h = b.x1 - b.x0, b.y1 - b.y0
    # Grown by a share of the smaller blob's size: a truck must not swallow the car beside it.
    mx = GROUP_MARGIN * np.minimum(w[i], w[j])
    my = GROUP_MARGIN * np.minimum(h[i], h[j])
    inter = _box_area(
        np.maximum(b.x0[i], b.x0[j]) - mx,
        np.maximum(b.y0[i], b.y0[j]) - my,
        np.minimum(b.x1[i], b.x1[j]) + mx,
        np.minimum(b.y1[i], b.y1[j]) + my,
    )
    smaller = np.minimum((w[i] + 2 * mx) * (h[i] + 2 * my), (w[j] + 2 * mx) * (h[j] + 2 * my))
    near = inter >= GROUP_OVERLAP * smaller
    # Stacked pieces of one width, one above the other and touching: a car's rear window
    # above its bumper when the boot is the colour of the road.
    shared = np.minimum(b.x1[i], b.x1[j]) - np.maximum(b.x0[i], b.x0[j])
    narrower = np.minimum(w[i], w[j])
    gap = np.maximum(b.y0[i], b.y0[j]) - np.minimum(b.y1[i], b.y1[j])
    lower = np.minimum(h[i], h[j])
    alike = narrower >= STACK_SHARE * np.maximum(w[i], w[j])
    near |= alike & (shared >= STACK_SHARE * narrower) & (gap <= STACK_GAP * lower)
    i, j = i[near], j[near]
    if not len(i):
        return blobs
    label = np.arange(len(b))
    while True:
        low = np.minimum(label[i], label[j])
        new = label.copy()
        np.minimum.at(new, i, low)
        np.minimum.at(new, j, low)
        new = new[new]
        if np.array_equal(new, label):
            break
        label = new
    groups, inverse = np.unique(label, return_inverse=True)
    n = len(groups)
    area = np.bincount(inverse, weights=b.area, minlength=n).astype(np.float64)
    x0, y0 = np.full(n, np.inf), np.full(n, np.inf)
    x1, y1 = np.zeros(n), np.zeros(n)
    np.minimum.at(x0, inverse, b.x0)
    np.minimum.at(y0, inverse, b.y0)
    np.maximum.at(x1, inverse, b.x1)
    np.maximum.at(y1, inverse, b.y1)
    return Blobs(
        b.row[groups],
        x0,
        y0,
        x1,
        y1,
        np.bincount(inverse, weights=b.area * b.cx, minlength=n) / area,
        np.bincount(inverse, weights=b.area * b.cy, minlength=n) / area,
        area,
    )

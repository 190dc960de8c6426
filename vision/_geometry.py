"""Zones and lines rasterised for the analysis size, for every camera at once."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from protocol import Camera, Zone


@dataclass(frozen=True, slots=True)
class ZoneRef:
    """One (camera, zone) pair, with its global index in the flattened zone table."""

    index: int
    camera_index: int
    camera_id: str
    zone: Zone
    area_px: int


@dataclass(frozen=True, slots=True)
class ZoneLayout:
    """Zone label layers for all cameras: ``labels[layer, camera, y, x]`` holds the global
    zone index + 1 (0 = no zone). Zones of one camera may overlap, so the k-th zone of each
    camera goes to layer k; occupancy of every zone is then one ``np.bincount`` per layer."""

    labels: npt.NDArray[np.int32]
    zones: list[ZoneRef]

    @property
    def areas(self) -> npt.NDArray[np.float64]:
        return np.array([z.area_px for z in self.zones], dtype=np.float64)


def zone_mask(zone: Zone, width: int, height: int) -> npt.NDArray[np.uint8]:
    mask = np.zeros((height, width), np.uint8)
    pts = np.array(zone.polygon, dtype=np.float64) * [width - 1, height - 1]
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return mask


def build_layout(cameras: list[Camera], width: int, height: int) -> ZoneLayout:
    layers = max((len(c.zones) for c in cameras), default=0)
    labels = np.zeros((max(layers, 1), len(cameras), height, width), np.int32)
    refs: list[ZoneRef] = []
    for ci, camera in enumerate(cameras):
        for layer, zone in enumerate(camera.zones):
            mask = zone_mask(zone, width, height)
            ref = ZoneRef(len(refs), ci, camera.id, zone, int(mask.sum()))
            refs.append(ref)
            labels[layer, ci][mask > 0] = ref.index + 1
    return ZoneLayout(labels, refs)


def zone_occupancy(
    layout: ZoneLayout, foreground: npt.NDArray[np.bool_], camera_index: npt.NDArray[np.intp]
) -> npt.NDArray[np.float64]:
    """Foreground fraction of every zone, for the cameras in this batch (others are 0)."""
    counts = np.zeros(len(layout.zones) + 1, np.int64)
    if not layout.zones:
        return np.zeros(0)
    for layer in layout.labels:
        hits = layer[camera_index][foreground]
        counts += np.bincount(hits, minlength=len(layout.zones) + 1)
    return counts[1:] / np.maximum(layout.areas, 1.0)

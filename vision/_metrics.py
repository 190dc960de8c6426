"""Per-interval traffic metrics of every camera: crossings by line and direction, mean zone
occupancy, congested zones, and the mean and 85th percentile of the speeds timed by speed
gates. Intervals are aligned to the clock (``metrics_seconds``), so the
interval number is the same whichever worker counts it: ``(camera_id, seq)`` is the row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from protocol import Camera, LineCount, TrafficMetrics

from ._batch import BatchIndex
from ._geometry import ZoneLayout
from ._speed import SpeedMeasurement

Ints = npt.NDArray[np.intp]


class TrafficCounter:
    def __init__(self, cameras: Sequence[Camera], layout: ZoneLayout) -> None:
        self.cameras = list(cameras)
        self.layout = layout
        count = len(self.cameras)
        slots = max(layout.max_lines, 1)
        self.period = np.array([c.analytics.metrics_seconds for c in self.cameras])
        self.interval = np.full(count, -1, np.int64)
        self.counts = np.zeros((count, slots, 2), np.int64)
        self.total = np.zeros((count, slots, 2), np.int64)
        self.occupancy = np.zeros((count, max(layout.layers, 1)))
        self.analysed = np.zeros(count, np.int64)
        self.frames = np.zeros(count, np.int64)
        self.congested = np.zeros(len(layout.zones), bool)
        self.speeds: list[list[float]] = [[] for _ in self.cameras]
        self.index = {c.id: i for i, c in enumerate(self.cameras)}

    def update(
        self,
        index: BatchIndex,
        occupancy: npt.NDArray[np.float64],
        *,
        crossing_camera: Ints,
        crossing_line: Ints,
        crossing_direction: npt.NDArray[np.int8],
        congested: npt.NDArray[np.bool_],
        speeds: Sequence[SpeedMeasurement] = (),
    ) -> list[TrafficMetrics]:
        """Account one batch; return the intervals it closed."""
        cameras, times, settled = index.cameras, index.times, index.settled
        interval = np.floor(times / self.period[cameras]).astype(np.int64)
        current = self.interval[cameras]
        rolled = cameras[(current >= 0) & (interval != current)]
        # Once per camera and interval (a minute), not per frame.
        out = [self._emit(int(c)) for c in rolled]
        self.interval[cameras] = interval
        self.frames[cameras] += 1
        self.analysed[cameras] += settled
        layers = self.layout.layers
        self.occupancy[cameras, :layers] += np.where(settled[:, None], occupancy, 0.0)
        backward = (crossing_direction < 0).astype(np.intp)
        np.add.at(self.counts, (crossing_camera, crossing_line, backward), 1)
        np.add.at(self.total, (crossing_camera, crossing_line, backward), 1)
        self.congested |= congested
        for speed in speeds:  # a few vehicles a minute per camera
            self.speeds[self.index[speed.camera_id]].append(speed.speed_kmh)
        return out

    def _emit(self, camera: int) -> TrafficMetrics:
        cam = self.cameras[camera]
        seq = int(self.interval[camera])
        period = float(self.period[camera])
        counts = self.counts[camera]
        mean = self.occupancy[camera] / max(int(self.analysed[camera]), 1)
        zones = self.layout.zone_of[camera]
        metrics = TrafficMetrics(
            camera_id=cam.id,
            interval_start=seq * period,
            interval_end=(seq + 1) * period,
            seq=seq,
            line_counts={
                line.id: LineCount(forward=int(counts[i, 0]), backward=int(counts[i, 1]))
                for i, line in enumerate(cam.lines)
            },
            zone_occupancy={
                zone.id: round(float(np.clip(mean[i], 0.0, 1.0)), 4)
                for i, zone in enumerate(cam.zones)
            },
            congested_zones=[
                zone.id for i, zone in enumerate(cam.zones) if self.congested[zones[i]]
            ],
            frames=int(self.frames[camera]),
            **_speed_summary(self.speeds[camera]),
        )
        self.speeds[camera] = []
        self.counts[camera] = 0
        self.occupancy[camera] = 0.0
        self.analysed[camera] = 0
        self.frames[camera] = 0
        self.congested[zones[: len(cam.zones)]] = False
        self.interval[camera] = -1
        return metrics

    def flush_idle(self, quiet: npt.NDArray[np.float64]) -> list[TrafficMetrics]:
        """Close the intervals of cameras quiet (no frame) for half an interval: a camera
        that stops sending still reports what it counted."""
        due = (self.interval >= 0) & (quiet >= self.period / 2)
        return [self._emit(int(c)) for c in np.flatnonzero(due)]

    def flush_all(self) -> list[TrafficMetrics]:
        return [self._emit(int(c)) for c in np.flatnonzero(self.interval >= 0)]

    def totals(self) -> dict[str, dict[str, dict[str, int]]]:
        return {
            cam.id: {
                line.id: {
                    "forward": int(self.total[ci, li, 0]),
                    "backward": int(self.total[ci, li, 1]),
                }
                for li, line in enumerate(cam.lines)
            }
            for ci, cam in enumerate(self.cameras)
        }


def _speed_summary(speeds: Sequence[float]) -> dict[str, Any]:
    """Count, mean and 85th percentile of an interval's speeds (km/h)."""
    if not speeds:
        return {}
    values = np.asarray(speeds)
    return {
        "speeds": len(values),
        "speed_mean_kmh": round(float(values.mean()), 1),
        "speed_p85_kmh": round(float(np.percentile(values, 85)), 1),
    }

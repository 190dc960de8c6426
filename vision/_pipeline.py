"""The batched analysis pipeline shared by live workers, file replay and the benchmark.

One call to :meth:`VisionPipeline.process` advances every camera that has a frame in the
batch through the same steps, each a handful of numpy/OpenCV calls over the whole batch:
background and foreground, zone occupancy, blobs, tracks and line crossings, the zone
detectors, camera health, and the traffic metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from protocol import Camera, EventKind, TrafficMetrics, VisionEvent

from ._background import BatchBackground
from ._batch import BatchIndex, BatchRows, FrameBatch, Scratch
from ._blobs import BlobFinder
from ._detectors import ZoneDetectors
from ._events import event_id
from ._geometry import ZoneLayout
from ._health import CameraHealth
from ._metrics import TrafficCounter
from ._speed import SpeedGates, SpeedMeasurement
from ._tracking import Tracker, TrackStep

ANALYSIS_SIZE = (320, 180)


@dataclass(frozen=True, slots=True)
class BatchResult:
    events: list[VisionEvent] = field(default_factory=list)
    """Episode starts and ends (intrusion, congestion, camera_tamper ...), to publish."""
    crossings: list[VisionEvent] = field(default_factory=list)
    """One ``instant`` line_crossing per object and line: counted into the traffic metrics
    live (the alerts engine does not want a message per car), printed by replay."""
    metrics: list[TrafficMetrics] = field(default_factory=list)
    """Traffic intervals that closed with this batch."""
    speeds: list[SpeedMeasurement] = field(default_factory=list)
    """Vehicles timed through a speed gate (the ``speeding`` events are in ``events``)."""


class VisionPipeline:
    """Every camera's detectors, advanced one batch of frames at a time."""

    def __init__(
        self,
        cameras: Sequence[Camera],
        *,
        timezone: str = "Asia/Ho_Chi_Minh",
        size: tuple[int, int] = ANALYSIS_SIZE,
        fps: Mapping[str, float] | None = None,
    ) -> None:
        """``fps`` overrides the configured frame rate of some cameras (a replayed file)."""
        rate = {c.id: (fps or {}).get(c.id, c.fps) for c in cameras}
        # Cameras sharing background settings are neighbours, so a sorted batch gives each
        # settings group one contiguous run of rows (one OpenCV call per group).
        self.cameras = sorted(
            cameras,
            key=lambda c: (c.analytics.threshold, c.analytics.background_seconds, rate[c.id]),
        )
        self.index = {c.id: i for i, c in enumerate(self.cameras)}
        self.width, self.height = size
        analytics = [c.analytics for c in self.cameras]
        self.background = BatchBackground(
            self.cameras, self.height, self.width, np.array([rate[c.id] for c in self.cameras])
        )
        self.layout = ZoneLayout(self.cameras, self.width, self.height)
        self.blobs = BlobFinder(self.height, self.width)
        self.min_object = np.array([a.min_object_area for a in analytics])
        self.absorb_seconds = np.array([a.absorb_seconds for a in analytics])
        self.track_seconds = np.array([a.track_seconds for a in analytics])
        self.tracker = Tracker(self.layout, self.track_seconds)
        self.detectors = ZoneDetectors(self.cameras, self.layout, timezone)
        self.health = CameraHealth(self.cameras, self.height, self.width)
        self.traffic = TrafficCounter(self.cameras, self.layout)
        self.gates = SpeedGates(self.cameras)
        self.frames_processed = 0
        self.scratch = Scratch()

    def process(self, batch: FrameBatch, arrived_at: float | None = None) -> BatchResult:
        """Advance the batch's cameras. ``arrived_at`` is when a live worker received the
        frames (wall clock); silence is judged on it, so an edge whose clock is off does not
        look offline. Replay and benchmarks leave it out: frame times stand in."""
        k = len(batch.cameras)
        if k == 0:
            return BatchResult()
        if k > 1 and np.any(np.diff(batch.cameras) <= 0):
            order = np.argsort(batch.cameras, kind="stable")
            batch = FrameBatch(
                batch.gray[order], batch.cameras[order], batch.times[order], batch.seqs[order]
            )
        gray = batch.gray.reshape(k, self.height * self.width)
        rows = BatchRows(batch.cameras)
        foreground = self.background.apply(gray, rows, batch.times)
        index = BatchIndex.of(batch, foreground.settled, len(self.cameras))
        events, healthy = self.health.update(
            gray, index, foreground.share, foreground.jump, arrived_at
        )
        if not healthy.all():
            foreground.half.reshape(k, -1)[~healthy] = 0
            index = BatchIndex.of(batch, foreground.settled & healthy, len(self.cameras))
        half = foreground.half
        occupancy = self.layout.occupancy(half, rows)
        blobs = self.blobs.find(half, self.min_object[batch.cameras])
        step = self.tracker.update(blobs, index)
        now = float(batch.times.max())
        events += self.detectors.update(self.tracker, step, index, occupancy)
        crossings = self._crossings(step, index)
        speeds = self.gates.update(self.tracker, step.timed)
        for speed in speeds:  # a few vehicles a minute per camera
            if speed.speeding:
                events += [speed.event("start"), speed.event("end")]
        # A lost object whose intrusion's quiet time has not run out is kept, to be found
        # again (a track merged into another this frame, seen now, is not).
        lost = step.lost[~self.detectors.intrusions.holding(self.tracker, step.lost, now)]
        gone = np.concatenate([lost, self._absorb(gray, step.observed, index)])
        events += self.detectors.close_tracks(self.tracker, gone, now)
        self.tracker.free(gone)
        metrics = self.traffic.update(
            index,
            occupancy,
            crossing_camera=self.tracker.camera[step.crossing_slot],
            crossing_line=step.crossing_line,
            crossing_direction=step.crossing_direction,
            congested=self.detectors.congested(),
            speeds=speeds,
        )
        self.frames_processed += k
        return BatchResult(events, crossings, metrics, speeds)

    def _crossings(self, step: TrackStep, index: BatchIndex) -> list[VisionEvent]:
        out = []
        for slot, line, sign in zip(
            step.crossing_slot.tolist(),
            step.crossing_line.tolist(),
            step.crossing_direction.tolist(),
            strict=True,
        ):  # one iteration per object crossing a line: a few per second per camera
            camera = int(self.tracker.camera[slot])
            ref = self.layout.lines[self.layout.line_of[camera, line]]
            row = index.position[camera]
            at = float(index.times[row])
            ident = event_id(ref.camera_id, ref.line.id, f"{at:.3f}", str(self.tracker.ident[slot]))
            out.append(
                VisionEvent(
                    event_id=ident,
                    kind=EventKind.LINE_CROSSING,
                    camera_id=ref.camera_id,
                    phase="instant",
                    started_at=at,
                    ended_at=at,
                    line_id=ref.line.id,
                    direction="forward" if sign > 0 else "backward",
                    frame_seq=int(index.seqs[row]),
                    frame_captured_at=at,
                )
            )
        return out

    def _absorb(
        self, gray: npt.NDArray[np.uint8], observed: npt.NDArray[np.intp], index: BatchIndex
    ) -> npt.NDArray[np.intp]:
        """Objects still for ``absorb_seconds`` become background (a parked car)."""
        t = self.tracker
        cams = t.camera[observed]
        still = t.seen[observed] - t.still_since[observed] >= self.absorb_seconds[cams]
        done = observed[still]
        for slot in done.tolist():  # rare: an object that has not moved for many minutes
            camera = int(t.camera[slot])
            box = (
                int(t.x0[slot] * self.width),
                int(t.y0[slot] * self.height),
                int(np.ceil(t.x1[slot] * self.width)),
                int(np.ceil(t.y1[slot] * self.height)),
            )
            self.background.absorb(camera, gray[index.position[camera]], box)
        absorbed: npt.NDArray[np.intp] = done
        return absorbed

    def silence(self, now: float) -> BatchResult:
        """Periodic check without frames: offline cameras, their lost objects, and traffic
        intervals of cameras that stopped sending."""
        offline, quiet = self.health.silence(now)
        # Objects of cameras that stopped sending are gone; their intrusions end.
        lost = self.tracker.of_cameras(np.flatnonzero(quiet >= self.track_seconds))
        events = offline + self.detectors.close_tracks(self.tracker, lost, now)
        self.tracker.free(lost)
        return BatchResult(events, [], self.traffic.flush_idle(quiet))

    def finish(self, now: float) -> BatchResult:
        """End every open episode and interval (end of a replayed file, a worker stopping)."""
        events = self.detectors.finish(self.tracker, now) + self.health.finish(now)
        return BatchResult(events, [], self.traffic.flush_all())

    def line_totals(self) -> dict[str, dict[str, dict[str, int]]]:
        """Crossings counted since start: camera id -> line id -> direction -> count."""
        return self.traffic.totals()


def to_analysis_gray(frame: cv2.typing.MatLike, size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """A BGR or gray frame of any size as an analysis-size gray image."""
    if frame.ndim == 3:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if (frame.shape[1], frame.shape[0]) != size:
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    return np.asarray(frame, dtype=np.uint8)

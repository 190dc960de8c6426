"""Camera health: tamper (blurred, covered or moved view) and offline (no frames).

Each camera keeps a reference of its own view, learnt while the view is healthy: a small
normalised thumbnail, its contrast and its sharpness. A frame is
- covered when its contrast falls below a fifth of the usual (hand, cloth, paint);
- blurred when its sharpness falls below ``blur_ratio`` of the usual (defocus, spray, fog);
- moved when its thumbnail no longer correlates with the reference (the camera was turned).
Correlation and contrast ignore brightness, so dusk, clouds or an IR switch are none of these.
Each must last ``tamper_seconds`` to raise camera_tamper.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from protocol import Camera, EventKind, VisionEvent

from ._batch import BatchIndex, Pyramid, Scratch, shrink
from ._episodes import Episode, EpisodeTracker
from ._events import event_id, zone_event

Ints = npt.NDArray[np.intp]
Floats = npt.NDArray[np.float64]
CAUSES = ("blur", "covered", "moved")
COVERED_CONTRAST = 0.2
MOVED_CORRELATION = 0.4
CHECK_EVERY = 5
"""A camera's view is checked on every fifth frame (once a second at 5 fps)."""
REFERENCE_RATE = 0.05
"""Share of a healthy frame blended into the reference: it follows the scene over minutes."""
CLEAR_SECONDS = 2.0


class CameraHealth:
    def __init__(self, cameras: Sequence[Camera], height: int, width: int) -> None:
        self.cameras = list(cameras)
        self.height, self.width = height, width
        count = len(self.cameras)
        # Every other pixel of a quarter-size image: 920 values at 320x180.
        self.home = np.zeros(
            (count, ((height // 4 + 1) // 2) * ((width // 4 + 1) // 2)), np.float32
        )
        self.home_ready = np.zeros(count, bool)
        self.contrast = np.zeros(count)
        self.sharpness = np.zeros(count)
        self.blur_ratio = np.array([c.analytics.blur_ratio for c in self.cameras])
        tamper = np.array([c.analytics.tamper_seconds for c in self.cameras])
        self.tamper = EpisodeTracker(
            EventKind.CAMERA_TAMPER,
            np.repeat(tamper, len(CAUSES)),
            np.full(count * 3, CLEAR_SECONDS),
        )
        self.offline_seconds = np.array([c.analytics.offline_seconds for c in self.cameras])
        self.offline = EpisodeTracker(EventKind.CAMERA_OFFLINE, np.zeros(count), np.zeros(count))
        self.last_frame = np.full(count, np.nan)
        self.started: float | None = None
        self.frames = np.zeros(count, np.int64)
        self.scratch = Scratch()

    def update(
        self, gray: npt.NDArray[np.uint8], index: BatchIndex, arrived_at: float | None
    ) -> list[VisionEvent]:
        """Note the frames' arrival (offline ends) and check the view of the cameras due
        for a check: every ``CHECK_EVERY``-th frame, as tamper is judged over seconds."""
        k = len(index.cameras)
        arrived = index.times if arrived_at is None else np.full(k, arrived_at)
        self.last_frame[index.cameras] = arrived
        if self.started is None:
            self.started = float(arrived.min())
        events = [
            self._event(e)
            for e in self.offline.update(
                index.cameras, np.zeros(k, bool), np.zeros(k), arrived, index.seqs
            )
        ]
        due = self.frames[index.cameras] % CHECK_EVERY == 0
        self.frames[index.cameras] += 1
        rows = np.flatnonzero(due)
        if len(rows):
            checked = gray if len(rows) == k else gray[rows]
            pyramid = shrink(checked, self.height, self.width, self.scratch, "health")
            events += self._check(pyramid, index, rows)
        return events

    def _check(self, pyramid: Pyramid, index: BatchIndex, rows: Ints) -> list[VisionEvent]:
        cameras, times, seqs = index.cameras[rows], index.times[rows], index.seqs[rows]
        settled = index.settled[rows]
        k = len(rows)
        # Sharpness: mean horizontal gradient at half size (a blur removes it; text burnt
        # in by the camera after the lens stays, so an OSD camera is judged on the rest).
        half = pyramid.half
        edges = cv2.absdiff(half[:, 1:], half[:, :-1])
        edge_sum = cv2.reduce(edges.reshape(k, -1), 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)[:, 0]
        sharp = edge_sum / float(edges.size // k)
        thumb = pyramid.thumbs
        mean = thumb.mean(axis=1, keepdims=True)
        contrast = thumb.std(axis=1)
        thumb = (thumb - mean) / np.maximum(contrast, 1.0)[:, None].astype(np.float32)
        home = self.home[cameras]
        norm = np.sqrt((home * home).sum(axis=1) * thumb.shape[1])
        correlation = (thumb * home).sum(axis=1) / np.maximum(norm, 1e-6)
        ready = self.home_ready[cameras]
        covered = ready & (contrast < COVERED_CONTRAST * self.contrast[cameras])
        blurred = ready & ~covered & (sharp < self.blur_ratio[cameras] * self.sharpness[cameras])
        moved = ready & ~covered & ~blurred & (correlation < MOVED_CORRELATION)
        healthy = ~(covered | blurred | moved)
        # The reference starts from the first settled frame and follows healthy frames.
        first = ~ready & settled
        learn = ready & healthy & settled
        rate = np.where(first, 1.0, np.where(learn, REFERENCE_RATE, 0.0))
        self.home[cameras] = home + rate[:, None].astype(np.float32) * (thumb - home)
        self.contrast[cameras] += rate * (contrast - self.contrast[cameras])
        self.sharpness[cameras] += rate * (sharp - self.sharpness[cameras])
        self.home_ready[cameras] |= first
        keys = (cameras[:, None] * len(CAUSES) + np.arange(len(CAUSES))).ravel()
        present = np.stack([blurred, covered, moved], axis=1).ravel()
        score = np.stack(
            [
                sharp / np.maximum(self.sharpness[cameras], 1e-6),
                contrast / np.maximum(self.contrast[cameras], 1e-6),
                correlation,
            ],
            axis=1,
        ).ravel()
        episodes = self.tamper.update(
            keys, present, score, np.repeat(times, len(CAUSES)), np.repeat(seqs, len(CAUSES))
        )
        return [self._event(e) for e in episodes]

    def silence(self, now: float) -> tuple[list[VisionEvent], Floats]:
        """camera_offline for cameras without a frame for ``offline_seconds`` (since start
        if never seen), and how long each camera has been quiet."""
        if self.started is None:
            self.started = now
        last = np.where(np.isnan(self.last_frame), self.started, self.last_frame)
        quiet = now - last
        late = quiet >= self.offline_seconds
        count = len(self.cameras)
        episodes = self.offline.update(
            np.arange(count), late, quiet, np.full(count, now), np.zeros(count, np.int64)
        )
        return [self._event(e) for e in episodes], quiet

    def finish(self, now: float) -> list[VisionEvent]:
        episodes = self.tamper.close_all(now) + self.offline.close_all(now)
        return [self._event(e) for e in episodes]

    def _event(self, episode: Episode) -> VisionEvent:
        detail: str | None = None
        camera = episode.key
        if episode.kind is EventKind.CAMERA_TAMPER:
            camera, cause = divmod(episode.key, len(CAUSES))
            detail = CAUSES[cause]
        camera_id = self.cameras[camera].id
        parts = [str(episode.kind), *([detail] if detail else []), f"{episode.started_at:.3f}"]
        return zone_event(episode, event_id(camera_id, *parts), camera_id, None, detail)

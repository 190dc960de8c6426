"""Camera health: tamper (blurred, covered or moved view) and offline (no frames).

Each camera keeps a reference of its own view, learnt while the view is healthy: the edges
of a small thumbnail, its contrast and its sharpness. A frame is
- covered when its contrast falls below a fifth of the usual (hand, cloth, paint);
- blurred when its sharpness falls below ``blur_ratio`` of the usual (defocus, spray, fog);
- moved when its thumbnail's edges no longer correlate with the reference's (the camera
  was turned: walls and posts are no longer where they were).
Correlation and contrast ignore brightness, so dusk, clouds or an IR switch are none of these.
Each must last ``tamper_seconds`` to raise camera_tamper; while a view is unhealthy its
frames are not analysed for objects.
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
MOVED_JUMP = 0.15
CHECK_EVERY = 25
"""A camera's view is checked on every 25th frame (every 5 s at 5 fps), and on every frame
while it is unhealthy."""
SUSPECT_SHARPNESS = 0.7
SUSPECT_JUMP = 0.15
"""A frame this much less sharp than usual, or with this much more foreground than the
last calm frame, is checked at once."""
CALM_SHARE = 0.1
REFERENCE_RATE = 0.02
"""Share of a healthy, calm frame blended into the reference at each check (once a second):
it follows the scene over minutes."""
CLEAR_SECONDS = 2.0


class CameraHealth:
    def __init__(self, cameras: Sequence[Camera], height: int, width: int) -> None:
        self.cameras = list(cameras)
        self.height, self.width = height, width
        count = len(self.cameras)
        # Gradients of every other pixel of a quarter-size image (23x40 at 320x180).
        rows, cols = (height // 4 + 1) // 2, (width // 4 + 1) // 2
        self.thumb_shape = (rows, cols)
        self.home = np.zeros((count, rows * (cols - 1) + (rows - 1) * cols), np.float32)
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
        self.unhealthy = np.zeros(count, bool)
        self.turned = np.zeros(count, bool)
        self.scratch = Scratch()

    def update(
        self,
        gray: npt.NDArray[np.uint8],
        index: BatchIndex,
        share: Floats,
        jump: Floats,
        arrived_at: float | None,
    ) -> tuple[list[VisionEvent], npt.NDArray[np.bool_]]:
        """Note the frames' arrival (offline ends) and check the views; return the events
        and which frames show a healthy view (the others are not analysed: a blurred or
        covered view would raise intrusions out of its changed edges).

        A view is checked on every ``CHECK_EVERY``-th frame, and at once when the frame is
        suddenly less sharp, or its foreground share ``jump``s."""
        k = len(index.cameras)
        cameras = index.cameras
        arrived = index.times if arrived_at is None else np.full(k, arrived_at)
        self.last_frame[cameras] = arrived
        if self.started is None:
            self.started = float(arrived.min())
        events = [
            self._event(e)
            for e in self.offline.update(
                cameras, np.zeros(k, bool), np.zeros(k), arrived, index.seqs
            )
        ]
        # Sharpness: mean horizontal gradient (a blur removes it; text burnt in by the
        # camera after the lens stays, so an OSD camera is judged on the rest).
        # Every fourth row is plenty for a mean, at a quarter of the memory traffic.
        tall = gray.reshape(k * self.height, self.width)[::4]
        edges = self.scratch.get("edges", (tall.shape[0], self.width - 1), np.uint8)
        cv2.absdiff(tall[:, 1:], tall[:, :-1], dst=edges)
        sums = cv2.reduce(edges.reshape(k, -1), 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)[:, 0]
        sharp = (sums / float(edges.size // k)).astype(np.float64)
        ready = self.home_ready[cameras]
        suspect = (sharp < SUSPECT_SHARPNESS * self.sharpness[cameras]) | (jump > SUSPECT_JUMP)
        due = (self.frames[cameras] % CHECK_EVERY == 0) | ~ready | suspect
        # Every frame while something is wrong or an episode is open, to end it on time.
        open_episodes = self.tamper.active.reshape(-1, len(CAUSES))[cameras]
        due |= self.unhealthy[cameras] | np.any(open_episodes, axis=1)
        self.frames[cameras] += 1
        rows = np.flatnonzero(due)
        if len(rows):
            checked = gray if len(rows) == k else gray[rows]
            pyramid = shrink(checked, self.height, self.width, self.scratch, "health")
            calm = share[rows] <= CALM_SHARE
            events += self._check(
                pyramid, index, rows, sharp=sharp[rows], jump=jump[rows], calm=calm
            )
        return events, ~self.unhealthy[cameras]

    def _check(
        self,
        pyramid: Pyramid,
        index: BatchIndex,
        rows: Ints,
        *,
        sharp: Floats,
        jump: Floats,
        calm: npt.NDArray[np.bool_],
    ) -> list[VisionEvent]:
        cameras, times, seqs = index.cameras[rows], index.times[rows], index.seqs[rows]
        settled = index.settled[rows]
        k = len(rows)
        contrast = pyramid.thumbs.std(axis=1)
        thumb = pyramid.thumbs.reshape(k, *self.thumb_shape)
        edges = np.concatenate(
            [np.diff(thumb, axis=2).reshape(k, -1), np.diff(thumb, axis=1).reshape(k, -1)], axis=1
        )
        edges -= edges.mean(axis=1, keepdims=True)
        edges /= np.maximum(edges.std(axis=1, keepdims=True), 1e-3)
        home = self.home[cameras]
        norm = np.sqrt((home * home).sum(axis=1) * edges.shape[1])
        correlation = (edges * home).sum(axis=1) / np.maximum(norm, 1e-6)
        ready = self.home_ready[cameras]
        covered = ready & (contrast < COVERED_CONTRAST * self.contrast[cameras])
        blurred = ready & ~covered & (sharp < self.blur_ratio[cameras] * self.sharpness[cameras])
        # Moved: the edges are elsewhere, since a sudden change of much of the frame (a crowd
        # or a jam changes the edges too, but builds up); it lasts until they come back.
        elsewhere = ready & ~covered & ~blurred & (correlation < MOVED_CORRELATION)
        turned = elsewhere & (jump > MOVED_JUMP)
        self.turned[cameras] = elsewhere & (turned | self.turned[cameras])
        moved = self.turned[cameras]
        healthy = ~(covered | blurred | moved)
        self.unhealthy[cameras] = ~healthy
        # The reference starts from the first settled frame and follows healthy frames with
        # few objects in view (a passing queue must not make the empty scene look blurred).
        first = ~ready & settled
        learn = ready & healthy & settled & calm
        rate = np.where(first, 1.0, np.where(learn, REFERENCE_RATE, 0.0))
        self.home[cameras] = home + rate[:, None].astype(np.float32) * (edges - home)
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

"""The background model of every camera, advanced one batch of frames at a time.

Each camera's background is an 8-bit image learnt by a running average with the camera's own
learning rate, updated only where no foreground was found, so an object that stops inside a
zone stays foreground instead of fading into the scene. The frames of a batch are one tall
image, so every OpenCV call (difference, threshold, morphology, update) runs once per batch.

The average advances every ``stride``-th frame of a camera with the rate compounded to at
least ``MIN_STEP``, so that rounding to 8 bits leaves it at most three gray levels from the
scene: a float model (four times the bytes) made its update the costliest memory traffic of
the whole pipeline.

Three things keep the model honest without flooding events:
- warm-up: the first background is the median of a few frames spread over half a second, so
  cars passing at start-up leave no ghosts;
- exposure: a global brightness change (auto exposure, clouds, IR switch) is measured as the
  median brightness ratio of frame and background over a grid of pixels, and the background
  is rescaled to it;
- re-baseline: a frame that is mostly foreground even so (the camera moved, the light
  changed its character) is not analysed, and if that lasts, the camera warms up again.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from protocol import Camera

from ._batch import BatchRows, Scratch

_OPEN_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
WARMUP_SAMPLES = 5
"""The warm-up median is of five frames (a min/max network, see :func:`_median5`)."""
WARMUP_SPACING = 0.1
"""Seconds between warm-up samples: five samples span half a second at any frame rate."""
GAIN_TOLERANCE = 0.04
"""Brightness ratios closer to 1 than this are left to the running average."""
SUSPECT_GAIN = 0.06
"""A mean brightness ratio this far from 1 is worth measuring the exposure change."""
UNSETTLED_SHARE = 0.45
SHARE_JUMP = 0.3
"""A frame whose foreground share jumps by SHARE_JUMP to above UNSETTLED_SHARE from one
frame to the next shows a global change, not objects."""
REBASELINE_SECONDS = 1.0
MIN_STEP = 0.15
CHUNK = 24
"""Frames per step of the background (24 frames: 1.4 MB per 8-bit array)."""
"""Smallest share of the frame blended in at an update (sets each camera's stride)."""


@dataclass(frozen=True, slots=True)
class Foreground:
    """The batch's foreground at half size, ``(frames * height/2, width/2)``: each pixel
    the share of its four pixels that are foreground (0..255); ``settled`` says which frames
    can be analysed (warmed up, no global change in progress)."""

    half: npt.NDArray[np.uint8]
    settled: npt.NDArray[np.bool_]
    share: npt.NDArray[np.float64]
    jump: npt.NDArray[np.float64]
    """How much the share grew since the camera's last calm (settled) frame."""


class BatchBackground:
    def __init__(
        self, cameras: Sequence[Camera], height: int, width: int, fps: npt.NDArray[np.float64]
    ) -> None:
        count = len(cameras)
        self.height, self.width = height, width
        self.model8 = np.zeros((count, height * width), np.uint8)
        self.ready = np.zeros(count, bool)
        seconds = np.array([c.analytics.background_seconds for c in cameras])
        rate = 1.0 - np.exp(-1.0 / (np.maximum(fps, 1e-3) * seconds))
        self.stride = np.maximum(np.ceil(np.log1p(-MIN_STEP) / np.log1p(-rate)), 1).astype(np.int64)
        self.alpha = 1.0 - (1.0 - rate) ** self.stride
        self.threshold = np.array([c.analytics.threshold for c in cameras], np.float64)
        # Cameras with equal settings share one OpenCV call; the pipeline orders its cameras
        # so that each such group is one run of rows in a sorted batch.
        keys = list(zip(self.threshold.tolist(), self.alpha.tolist(), strict=True))
        distinct = list(dict.fromkeys(keys))
        self.group = np.array([distinct.index(k) for k in keys], np.intp)
        self.group_threshold = [t for t, _ in distinct]
        self.group_alpha = [a for _, a in distinct]
        self.unsettled_since = np.full(count, np.nan)
        self.calm_share = np.zeros(count)
        self._samples: dict[int, list[npt.NDArray[np.uint8]]] = {}
        self._last_sample = np.full(count, -math.inf)
        self.rebaselines = 0
        self.exposure_changes = 0
        self.scratch = Scratch()
        self.frames = np.zeros(count, np.int64)
        grid_y, grid_x = np.mgrid[3:height:7, 4:width:8]
        self.sample = (grid_y * width + grid_x).ravel()

    def apply(
        self,
        gray: npt.NDArray[np.uint8],
        rows: BatchRows,
        times: npt.NDArray[np.float64],
    ) -> Foreground:
        """Foreground of ``gray`` ``(frames, height * width)``; updates the model. The
        foreground is valid until the next call."""
        k = len(gray)
        ready = self.ready[rows.cameras]
        model8 = rows.take(self.model8)
        # Full-size work arrays hold one chunk, so each chunk reuses memory still in cache
        # (a batch-sized array would be fresh memory for every chunk).
        size = (CHUNK, gray.shape[1])
        mask = self.scratch.get("mask", size, np.uint8)
        work = self.scratch.get("work", size, np.uint8)
        blend = self.scratch.get("blend", size, np.uint8)
        h, w = self.height // 2, self.width // 2
        half = self.scratch.get("half", (k * h, w), np.uint8)
        pixels = np.zeros(k)
        counts = self.frames[rows.cameras]
        self.frames[rows.cameras] += 1
        learn = counts % self.stride[rows.cameras] == 0
        everything = np.ones(k, bool)
        # A few frames at a time, so that each step finds the last one's output in cache
        # (the whole batch's arrays are megabytes; memory traffic is the cost here).
        for first in range(0, k, CHUNK):
            last = min(first + CHUNK, k)
            chunk = slice(first, last)
            self._match_exposure(gray[chunk], model8[chunk], ready[chunk])
            for start, stop, group in self._runs(rows.cameras, everything, first, last):
                here = slice(start - first, stop - first)
                cv2.absdiff(gray[start:stop], model8[start:stop], dst=work[here])
                thr = self.group_threshold[group]
                cv2.threshold(work[here], thr, 255, cv2.THRESH_BINARY, dst=mask[here])
            tall = mask[: last - first].reshape(-1, self.width)  # frames stacked, a view
            cv2.morphologyEx(tall, cv2.MORPH_OPEN, _OPEN_KERNEL, dst=tall)
            sums = cv2.reduce(mask[: last - first], 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)
            pixels[chunk] = sums[:, 0]
            cv2.resize(
                tall, (w, (last - first) * h), half[first * h : last * h], 0, 0, cv2.INTER_AREA
            )
            for start, stop, group in self._runs(rows.cameras, learn, first, last):
                alpha = self.group_alpha[group]
                run, here = slice(start, stop), slice(start - first, stop - first)
                cv2.addWeighted(gray[run], alpha, model8[run], 1.0 - alpha, 0.0, dst=blend[here])
                cv2.bitwise_not(mask[here], dst=work[here])
                cv2.copyTo(blend[here], work[here], model8[run])
        rows.put(self.model8, model8)
        share = pixels / (255.0 * gray.shape[1])
        # A global change (the light changed its character, the camera was moved or
        # covered) turns most of the frame to foreground at once; a crowd fills it bit by
        # bit. Frames of a global change are not analysed, and if it lasts the camera warms
        # up again.
        cameras = rows.cameras
        jump = share - self.calm_share[cameras]
        ongoing = ~np.isnan(self.unsettled_since[cameras])
        settled = ready & ~((share > UNSETTLED_SHARE) & ((jump > SHARE_JUMP) | ongoing))
        self.calm_share[cameras] = np.where(settled, share, self.calm_share[cameras])
        self._watch_global_change(cameras, ready, settled, times)
        for i in np.flatnonzero(~ready):
            # Only cameras warming up (start-up, re-baseline) take this loop.
            self._warm_up(int(rows.cameras[i]), gray[i], float(times[i]))
        if not settled.all():
            half.reshape(k, -1)[~settled] = 0
        return Foreground(half, settled, share, np.where(ready, jump, 0.0))

    def _runs(
        self, cameras: npt.NDArray[np.intp], chosen: npt.NDArray[np.bool_], first: int, last: int
    ) -> list[tuple[int, int, int]]:
        """(start, stop, settings group) of each run of ``chosen`` rows between ``first``
        and ``last`` sharing settings."""
        key = np.where(chosen[first:last], self.group[cameras[first:last]], -1)
        edges = [0, *(np.flatnonzero(np.diff(key)) + 1).tolist(), len(key)]
        return [
            (first + a, first + b, int(key[a])) for a, b in itertools.pairwise(edges) if key[a] >= 0
        ]

    def _match_exposure(
        self,
        gray: npt.NDArray[np.uint8],
        model8: npt.NDArray[np.uint8],
        ready: npt.NDArray[np.bool_],
    ) -> None:
        """Rescale the background of cameras whose whole image got brighter or darker, by
        the median brightness ratio of frame and background over a grid of pixels (objects
        covering less than half the image do not move a median)."""
        frame_sum = cv2.reduce(gray, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)[:, 0]
        model_sum = cv2.reduce(model8, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)[:, 0]
        ratio = frame_sum / np.maximum(model_sum, 1.0)
        # The mean moves with objects too; only frames whose mean moved a lot pay for the
        # median (smaller drifts are within the threshold and the running average's reach).
        suspect = np.flatnonzero(ready & (np.abs(ratio - 1.0) > SUSPECT_GAIN))
        if not len(suspect):
            return
        # A thousand pixels on a grid are plenty for a median: no resize, no copy of frames.
        pick = np.ix_(suspect, self.sample)
        frame = gray[pick].astype(np.float32)
        background = model8[pick].astype(np.float32)
        lit = background > 8
        quotient = np.where(lit, frame / np.maximum(background, 1.0), np.inf)
        quotient.sort(axis=1)
        count = lit.sum(axis=1)
        gain = quotient[np.arange(len(suspect)), count // 2]
        change = (count >= lit.shape[1] // 4) & (np.abs(gain - 1.0) > GAIN_TOLERANCE)
        for i, g in zip(suspect[change].tolist(), gain[change].tolist(), strict=True):
            # Cameras whose exposure changed in this frame: a few a second, province-wide.
            cv2.convertScaleAbs(model8[i], dst=model8[i], alpha=g)
            self.exposure_changes += 1

    def _watch_global_change(
        self,
        cameras: npt.NDArray[np.intp],
        ready: npt.NDArray[np.bool_],
        settled: npt.NDArray[np.bool_],
        times: npt.NDArray[np.float64],
    ) -> None:
        since = self.unsettled_since[cameras]
        since = np.where(settled | ~ready, np.nan, np.where(np.isnan(since), times, since))
        self.unsettled_since[cameras] = since
        for i in np.flatnonzero(times - since >= REBASELINE_SECONDS):
            self.restart(int(cameras[i]))

    def restart(self, camera: int) -> None:
        """Learn the camera's background again from its next frames."""
        self.ready[camera] = False
        self.unsettled_since[camera] = np.nan
        self._samples.pop(camera, None)
        self._last_sample[camera] = -math.inf
        self.rebaselines += 1

    def _warm_up(self, camera: int, frame: npt.NDArray[np.uint8], now: float) -> None:
        if now - self._last_sample[camera] < WARMUP_SPACING - 1e-6:
            return
        self._last_sample[camera] = now
        samples = self._samples.setdefault(camera, [])
        samples.append(frame.copy())
        if len(samples) >= WARMUP_SAMPLES:
            self.model8[camera] = _median5(*samples)
            self.ready[camera] = True
            del self._samples[camera]

    def absorb(
        self, camera: int, frame: npt.NDArray[np.uint8], box: tuple[int, int, int, int]
    ) -> None:
        """Make what ``frame`` shows inside ``box`` (x0, y0, x1, y1 pixels) background."""
        x0, y0, x1, y1 = box
        model8 = self.model8[camera].reshape(self.height, self.width)
        model8[y0:y1, x0:x1] = frame.reshape(self.height, self.width)[y0:y1, x0:x1]


def _median5(
    a: npt.NDArray[np.uint8],
    b: npt.NDArray[np.uint8],
    c: npt.NDArray[np.uint8],
    d: npt.NDArray[np.uint8],
    e: npt.NDArray[np.uint8],
) -> npt.NDArray[np.uint8]:
    """Pixelwise median of five images with six min/max passes (np.median over a stack is
    a hundred times slower, and every camera warms up at start)."""
    low = np.maximum(np.minimum(a, b), np.minimum(c, d))
    high = np.minimum(np.maximum(a, b), np.maximum(c, d))
    median: npt.NDArray[np.uint8] = np.maximum(
        np.minimum(e, low), np.minimum(np.maximum(e, low), high)
    )
    return median

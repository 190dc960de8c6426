"""A running-average background for a whole batch of cameras at once."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

_OPEN_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))


class BatchBackground:
    """Per-camera float background, updated only where no foreground was found, so an
    object that stops inside a zone stays foreground instead of fading into the scene."""

    def __init__(
        self,
        cameras: int,
        height: int,
        width: int,
        *,
        threshold: float = 25.0,
        learning_rate: npt.NDArray[np.float32] | None = None,
    ) -> None:
        self.model = np.zeros((cameras, height, width), np.float32)
        self.ready = np.zeros(cameras, bool)
        self.threshold = np.float32(threshold)
        self.learning_rate = (
            learning_rate if learning_rate is not None else np.full(cameras, 0.05, np.float32)
        )

    def apply(
        self, gray: npt.NDArray[np.uint8], cameras: npt.NDArray[np.intp]
    ) -> npt.NDArray[np.bool_]:
        """Foreground masks (k, H, W) for frames ``gray`` of ``cameras``; updates the model."""
        frames = gray.astype(np.float32)
        model = self.model[cameras]
        fresh = ~self.ready[cameras]
        model[fresh] = frames[fresh]
        raw = (np.abs(frames - model) > self.threshold).astype(np.uint8)
        k, h, w = raw.shape
        # One morphology call over the batch stacked as a tall image.
        opened = cv2.morphologyEx(raw.reshape(k * h, w), cv2.MORPH_OPEN, _OPEN_KERNEL)
        foreground = opened.reshape(k, h, w).astype(bool)
        rate = self.learning_rate[cameras][:, None, None]
        model += np.where(foreground, np.float32(0), rate * (frames - model))
        self.model[cameras] = model
        self.ready[cameras] = True
        return foreground

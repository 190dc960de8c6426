"""A batch of frames, one per camera, and the ways the pipeline indexes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import cv2
import numpy as np
import numpy.typing as npt

T = TypeVar("T", bound=np.generic)


@dataclass(frozen=True, slots=True)
class FrameBatch:
    """``gray[i]`` is the analysis-size frame of camera ``cameras[i]`` (the pipeline's camera
    index) taken at ``times[i]``; a camera appears at most once."""

    gray: npt.NDArray[np.uint8]
    cameras: npt.NDArray[np.intp]
    times: npt.NDArray[np.float64]
    seqs: npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class BatchIndex:
    """A batch as the detectors see it: ``settled[i]`` says whether frame ``i`` could be
    analysed; ``position[camera]`` is the camera's row in the batch, or -1."""

    cameras: npt.NDArray[np.intp]
    times: npt.NDArray[np.float64]
    seqs: npt.NDArray[np.int64]
    settled: npt.NDArray[np.bool_]
    position: npt.NDArray[np.intp]

    @classmethod
    def of(cls, batch: FrameBatch, settled: npt.NDArray[np.bool_], cameras: int) -> BatchIndex:
        position = np.full(cameras, -1, np.intp)
        position[batch.cameras] = np.arange(len(batch.cameras))
        return cls(batch.cameras, batch.times, batch.seqs, settled, position)


class BatchRows:
    """The rows of per-camera arrays that belong to a batch's cameras (sorted, distinct).

    When the batch holds a contiguous run of cameras (every camera at once, as on a busy
    worker or in replay) the rows are a view and nothing is copied; otherwise they are
    gathered, and :meth:`put` writes changes back."""

    def __init__(self, cameras: npt.NDArray[np.intp]) -> None:
        self.cameras = cameras
        n = len(cameras)
        first = int(cameras[0]) if n else 0
        self.span: slice | None = None
        if n and int(cameras[-1]) - first == n - 1:
            self.span = slice(first, first + n)

    def take(self, array: npt.NDArray[T]) -> npt.NDArray[T]:
        if self.span is not None:
            return array[self.span]
        return np.take(array, self.cameras, axis=0)

    def put(self, array: npt.NDArray[T], values: npt.NDArray[T]) -> None:
        """Store ``values`` (from :meth:`take`, changed) back; a no-op for views."""
        if self.span is None:
            array[self.cameras] = values


def pairs_by_key(
    left: npt.NDArray[np.intp], right: npt.NDArray[np.intp]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Every pair ``(i, j)`` with ``left[i] == right[j]`` (same camera, same frame), without a
    Python loop: sort ``right``, find each key's run, and repeat."""
    order = np.argsort(right, kind="stable")
    keys = right[order]
    lo = np.searchsorted(keys, left, "left")
    n = np.searchsorted(keys, left, "right") - lo
    i = np.repeat(np.arange(len(left)), n)
    offsets = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    return i, order[np.repeat(lo, n) + offsets]


class Scratch:
    """Work arrays reused from batch to batch. A fresh multi-megabyte array costs a page
    fault per 4 KiB on first touch, which measured as much as the arithmetic itself."""

    def __init__(self) -> None:
        self._arrays: dict[str, npt.NDArray[np.generic]] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: type[T]) -> npt.NDArray[T]:
        size = int(np.prod(shape))
        array: npt.NDArray[Any] | None = self._arrays.get(name)
        if array is None or array.size < size or array.dtype != dtype:
            array = np.empty(max(size, 1), dtype)
            self._arrays[name] = array
        view: npt.NDArray[T] = array[:size].reshape(shape)
        return view


@dataclass(frozen=True, slots=True)
class Pyramid:
    """Smaller copies of a batch's frames, made once and shared: ``half`` is the frames at
    half size stacked, ``(frames * height/2, width/2)``; ``thumbs`` every other pixel of the
    quarter size, ``(frames, n)`` float32 (920 values at 320x180)."""

    half: npt.NDArray[np.uint8]
    thumbs: npt.NDArray[np.float32]


def shrink(
    images: npt.NDArray[np.uint8], height: int, width: int, scratch: Scratch, name: str
) -> Pyramid:
    """The pyramid of ``images`` ``(frames, height * width)``. Two successive halvings:
    OpenCV's area resize has a fast path for exactly 2x, ten times quicker than 4x."""
    k = images.shape[0]
    h, w = height // 2, width // 2
    half = scratch.get(f"{name}-half", (k * h, w), np.uint8)
    cv2.resize(images.reshape(k * height, width), (w, k * h), half, 0, 0, cv2.INTER_AREA)
    quarter = scratch.get(f"{name}-quarter", (k * (h // 2), w // 2), np.uint8)
    cv2.resize(half, (w // 2, k * (h // 2)), quarter, 0, 0, cv2.INTER_AREA)
    thumbs = quarter.reshape(k, h // 2, w // 2)[:, ::2, ::2].reshape(k, -1).astype(np.float32)
    return Pyramid(half, thumbs)

"""``ioc bench vision``: the batched pipeline against a per-camera OpenCV loop, same frames.

The shipped clips are encoded once as 320x180 JPEG (as edges send them) and replayed as N
cameras, each from its own offset at 5 frames per second, with the zones and lines of the
sample province (config/province.yaml), the settings the replay tests check for accuracy.
Three runs over the same frames, on one core (``cv2.setNumThreads(1)``), JPEG decode
included in both contenders:
- decode only: ``cv2.imdecode`` of every frame, the floor under both;
- batched: :class:`vision.FrameDecoder` + :class:`vision.VisionPipeline`, one batch per tick
  holding one frame of every camera;
- baseline: per camera ``cv2.createBackgroundSubtractorMOG2`` (shadows off, its faster
  mode) + a 3x3 opening + ``findContours`` and a minimum-area filter, camera after camera.
"""

from __future__ import annotations

import hashlib
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge import ClipLibrary, EncodedClip
from protocol import Camera, FrameHeader, load_province
from vision import ANALYSIS_SIZE, EncodedFrame, FrameDecoder, VisionPipeline

from ..settings import DEFAULT_PROVINCE, PROJECT_ROOT

FPS = 5.0
T0 = 1_764_000_000.0
MIN_BLOB_PX = 60


@dataclass(frozen=True, slots=True)
class Workload:
    cameras: list[Camera]
    ticks: list[list[EncodedFrame]]

    @property
    def frames(self) -> int:
        return sum(len(t) for t in self.ticks)


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _offset(camera_id: str, frames: int) -> int:
    return int.from_bytes(hashlib.sha256(camera_id.encode()).digest()[:4], "big") % frames


def prepare(cameras: int, seconds: float, province: Path = DEFAULT_PROVINCE) -> Workload:
    """N cameras cycling over the province's clip templates, JPEG frames ready to decode."""
    templates: dict[str, Camera] = {}
    for camera in load_province(province).cameras:
        templates.setdefault(camera.source, camera)
    library = ClipLibrary(ANALYSIS_SIZE, base=PROJECT_ROOT)
    clips: dict[str, EncodedClip] = {}
    for source in templates:
        _say(f"encoding {source} at {ANALYSIS_SIZE[0]}x{ANALYSIS_SIZE[1]} ...")
        clips[source] = library.get(source)
    chosen = [list(templates.values())[i % len(templates)] for i in range(cameras)]
    fleet = [
        c.model_copy(update={"id": f"bench-{i:04d}", "fps": FPS}) for i, c in enumerate(chosen)
    ]
    ticks: list[list[EncodedFrame]] = []
    for tick in range(int(seconds * FPS)):
        frames = []
        for index, camera in enumerate(fleet):
            clip = clips[camera.source]
            start = _offset(camera.id, len(clip.frames))
            at = (start + round(tick / FPS * clip.fps)) % len(clip.frames)
            header = FrameHeader(camera.id, tick, T0 + tick / FPS, clip.width, clip.height)
            frames.append(EncodedFrame(index, header, clip.frames[at]))
        ticks.append(frames)
    return Workload(fleet, ticks)


def decode_only(work: Workload) -> float:
    started = time.perf_counter()
    for tick in work.ticks:
        for frame in tick:
            cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    return time.perf_counter() - started


def batched(work: Workload) -> tuple[float, float, Counter[str]]:
    """Seconds in total and in decoding, and the events raised (kind -> count)."""
    pipeline = VisionPipeline(work.cameras, fps={c.id: FPS for c in work.cameras})
    # The pipeline orders cameras its own way; frames carry its indices.
    index = [pipeline.index[c.id] for c in work.cameras]
    decoder = FrameDecoder(ANALYSIS_SIZE, len(work.cameras))
    events: Counter[str] = Counter()
    decoding = 0.0
    started = time.perf_counter()
    for tick in work.ticks:
        t0 = time.perf_counter()
        batch, refused = decoder.decode(
            [EncodedFrame(index[f.camera], f.header, f.jpeg) for f in tick]
        )
        decoding += time.perf_counter() - t0
        if refused or batch is None:
            raise RuntimeError(f"benchmark frames refused: {refused[:1]}")
        result = pipeline.process(batch)
        events.update(str(e.kind) for e in result.events if e.phase == "start")
        events["line_crossing"] += len(result.crossings)
    elapsed = time.perf_counter() - started
    for event in pipeline.finish(T0 + len(work.ticks) / FPS).events:
        if event.phase == "start":
            events[str(event.kind)] += 1
    return elapsed, decoding, events


def baseline(work: Workload) -> tuple[float, int]:
    """Seconds for the per-camera MOG2 loop, and the blobs it found."""
    subtractors = [cv2.createBackgroundSubtractorMOG2(detectShadows=False) for _ in work.cameras]
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    blobs = 0
    started = time.perf_counter()
    for tick in work.ticks:
        for frame in tick:
            gray = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
            if gray is None:
                raise RuntimeError(f"benchmark frame of {frame.header.camera_id} is corrupt")
            mask = subtractors[frame.camera].apply(gray)
            mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            blobs += sum(1 for c in contours if cv2.contourArea(c) >= MIN_BLOB_PX)
    return time.perf_counter() - started, blobs


def run(cameras: int, seconds: float) -> dict[str, Any]:
    cv2.setNumThreads(1)
    work = prepare(cameras, seconds)
    frames = work.frames
    _say(f"{cameras} cameras x {seconds:g} s at {FPS:g} fps = {frames} frames")
    _say("decode only ...")
    decode_s = decode_only(work)
    _say(f"  {frames / decode_s:,.0f} frames/s")
    _say("batched pipeline ...")
    batched_s, decoding_s, events = batched(work)
    _say(f"  {frames / batched_s:,.0f} frames/s; events {dict(events)}")
    _say("baseline: per-camera MOG2 + opening + contours ...")
    baseline_s, blobs = baseline(work)
    _say(f"  {frames / baseline_s:,.0f} frames/s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "bench": "vision",
        "cameras": cameras,
        "seconds": seconds,
        "fps_per_camera": FPS,
        "frames": frames,
        "analysis_size": f"{ANALYSIS_SIZE[0]}x{ANALYSIS_SIZE[1]}",
        "threads": 1,
        "batched_fps": round(frames / batched_s, 1),
        "baseline_fps": round(frames / baseline_s, 1),
        "ratio": round(baseline_s / batched_s, 2),
        "decode_only_fps": round(frames / decode_s, 1),
        "batched_decode_share": round(decoding_s / batched_s, 3),
        "batched_events": dict(sorted(events.items())),
        "baseline_blobs": blobs,
        "peak_rss_mb": round(peak, 1),
    }

"""``ioc bench vision``: the batched pipeline against a per-camera OpenCV loop, same frames.

The shipped clips are encoded once as 320x180 JPEG (as edges send them) and replayed as N
cameras, each from its own offset at 5 frames per second, with the zones and lines of the
sample province (config/province.yaml), the settings the replay tests check for accuracy;
every traffic camera also gets a speed gate (two more lines, 20 m apart).
Three contenders over the same frames, on one core (``cv2.setNumThreads(1)``), JPEG decode
included in both real ones, taking turns tick by tick (one frame of every camera):
- decode only: ``cv2.imdecode`` of every frame, the floor under both;
- batched: :class:`vision.FrameDecoder` + :class:`vision.VisionPipeline`, one batch per tick;
- batched without the speed gates, to tell their cost per frame;
- baseline: per camera ``cv2.createBackgroundSubtractorMOG2`` (shadows off, its faster
  mode) + a 3x3 opening + ``findContours`` and a minimum-area filter, camera after camera.
Wall-clock rates are the headline; CPU times per frame are reported too, being less
sensitive to other processes on a shared machine.
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
from protocol import Camera, FrameHeader, Line, SpeedGate, load_province
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
        _gated(c.model_copy(update={"id": f"bench-{i:04d}", "fps": FPS}))
        for i, c in enumerate(chosen)
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


def _gated(camera: Camera) -> Camera:
    """A traffic camera with a speed gate across the frame (as the province's will have)."""
    if camera.kind != "traffic" or camera.speed_gates:
        return camera
    lines = [
        Line(id="gate-entry", points=((0.0, 0.45), (1.0, 0.45))),
        Line(id="gate-exit", points=((0.0, 0.85), (1.0, 0.85))),
    ]
    gate = SpeedGate.model_validate(
        {"id": "gate", "from": "gate-entry", "to": "gate-exit", "distance_m": 20, "limit_kmh": 60}
    )
    return camera.model_copy(update={"lines": [*camera.lines, *lines], "speed_gates": [gate]})


def _ungated(camera: Camera) -> Camera:
    gated = {line for gate in camera.speed_gates for line in (gate.from_line, gate.to_line)}
    lines = [line for line in camera.lines if line.id not in gated]
    return camera.model_copy(update={"lines": lines, "speed_gates": []})


class DecodeOnly:
    """``cv2.imdecode`` of every frame: the floor under both contenders."""

    def __init__(self, work: Workload) -> None:
        self.work = work

    def step(self, number: int) -> None:
        for frame in self.work.ticks[number]:
            cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)


class Batched:
    """Ours: one batch per tick through :class:`FrameDecoder` and :class:`VisionPipeline`."""

    def __init__(self, work: Workload, *, gates: bool = True) -> None:
        cameras = work.cameras if gates else [_ungated(c) for c in work.cameras]
        self.pipeline = VisionPipeline(cameras, fps={c.id: FPS for c in cameras})
        # The pipeline orders cameras its own way: its frames carry its indices, made here
        # as the baseline's are made in advance (a live worker makes them on receipt).
        index = [self.pipeline.index[c.id] for c in work.cameras]
        self.ticks = [
            [EncodedFrame(index[f.camera], f.header, f.jpeg) for f in tick] for tick in work.ticks
        ]
        self.decoder = FrameDecoder(ANALYSIS_SIZE, len(work.cameras))
        self.events: Counter[str] = Counter()

    def step(self, number: int) -> None:
        batch, refused = self.decoder.decode(self.ticks[number])
        if refused or batch is None:
            raise RuntimeError(f"benchmark frames refused: {refused[:1]}")
        result = self.pipeline.process(batch)
        self.events.update(str(e.kind) for e in result.events if e.phase == "start")
        self.events["line_crossing"] += len(result.crossings)
        self.events["speed"] += len(result.speeds)


class Baseline:
    """Per camera ``createBackgroundSubtractorMOG2`` (shadows off, its faster mode), a 3x3
    opening and ``findContours`` with a minimum area, camera after camera."""

    def __init__(self, work: Workload) -> None:
        self.work = work
        self.subtractors = [
            cv2.createBackgroundSubtractorMOG2(detectShadows=False) for _ in work.cameras
        ]
        self.kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self.blobs = 0

    def step(self, number: int) -> None:
        for frame in self.work.ticks[number]:
            gray = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
            if gray is None:
                raise RuntimeError(f"benchmark frame of {frame.header.camera_id} is corrupt")
            mask = self.subtractors[frame.camera].apply(gray)
            mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self.kernel)
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            self.blobs += sum(1 for c in contours if cv2.contourArea(c) >= MIN_BLOB_PX)


@dataclass
class Clock:
    wall: float = 0.0
    cpu: float = 0.0


def race(work: Workload) -> tuple[dict[str, Clock], Batched, Baseline]:
    """The contenders take turns on each tick, so a machine whose load changes
    during the run (it is shared) weighs on all of them alike."""
    batched, baseline = Batched(work), Baseline(work)
    contenders: dict[str, DecodeOnly | Batched | Baseline] = {
        "decode": DecodeOnly(work),
        "batched": batched,
        "ungated": Batched(work, gates=False),
        "baseline": baseline,
    }
    clocks = {name: Clock() for name in contenders}
    for number, tick in enumerate(work.ticks):
        for name, contender in contenders.items():
            wall, cpu = time.perf_counter(), time.thread_time()
            contender.step(number)
            clocks[name].wall += time.perf_counter() - wall
            clocks[name].cpu += time.thread_time() - cpu
        if number % 20 == 19:
            done = (number + 1) * len(tick)
            rates = ", ".join(f"{n} {done / c.wall:,.0f}/s" for n, c in clocks.items())
            _say(f"  {number + 1}/{len(work.ticks)} ticks: {rates}")
    return clocks, batched, baseline


def run(cameras: int, seconds: float) -> dict[str, Any]:
    cv2.setNumThreads(1)
    work = prepare(cameras, seconds)
    frames = work.frames
    _say(f"{cameras} cameras x {seconds:g} s at {FPS:g} fps = {frames} frames; taking turns:")
    clocks, batched, baseline = race(work)
    end = T0 + len(work.ticks) / FPS
    for event in batched.pipeline.finish(end).events:
        if event.phase == "start":
            batched.events[str(event.kind)] += 1
    ours, theirs, decode = clocks["batched"], clocks["baseline"], clocks["decode"]
    ungated = clocks["ungated"]
    _say(f"batched {frames / ours.wall:,.0f}/s, baseline {frames / theirs.wall:,.0f}/s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "bench": "vision",
        "cameras": cameras,
        "seconds": seconds,
        "fps_per_camera": FPS,
        "frames": frames,
        "analysis_size": f"{ANALYSIS_SIZE[0]}x{ANALYSIS_SIZE[1]}",
        "threads": 1,
        "batched_fps": round(frames / ours.wall, 1),
        "baseline_fps": round(frames / theirs.wall, 1),
        "ratio": round(theirs.wall / ours.wall, 2),
        "decode_only_fps": round(frames / decode.wall, 1),
        "cpu_ratio": round(theirs.cpu / ours.cpu, 2),
        "batched_cpu_us_per_frame": round(ours.cpu / frames * 1e6, 1),
        "baseline_cpu_us_per_frame": round(theirs.cpu / frames * 1e6, 1),
        "decode_cpu_us_per_frame": round(decode.cpu / frames * 1e6, 1),
        "ungated_fps": round(frames / ungated.wall, 1),
        "gates_cpu_us_per_frame": round((ours.cpu - ungated.cpu) / frames * 1e6, 1),
        "batched_events": dict(sorted(batched.events.items())),
        "baseline_blobs": baseline.blobs,
        "peak_rss_mb": round(peak, 1),
    }

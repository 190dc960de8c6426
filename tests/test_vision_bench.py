"""``ioc bench vision`` through the real command, at a small size: its last line is the
JSON object the issue names, both contenders saw every frame, and the frames it replays are
what edges send (320x180 gray JPEG). Speed is measured by the command, never asserted here."""

from __future__ import annotations

import json

import cv2
import numpy as np
from conftest import run_ioc

from ioc.bench.vision import prepare


def test_bench_vision_prints_its_numbers_as_the_last_line() -> None:
    result = run_ioc("bench", "vision", "--cameras", "6", "--seconds", "2", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    numbers = json.loads(result.stdout.strip().splitlines()[-1])
    required = {"cameras", "frames", "batched_fps", "baseline_fps", "ratio", "decode_only_fps"}
    assert required | {"peak_rss_mb"} <= numbers.keys()
    assert numbers["cameras"] == 6
    assert numbers["frames"] == 6 * 10  # 2 s at 5 fps
    assert numbers["batched_fps"] > 0
    assert numbers["baseline_fps"] > 0
    assert abs(numbers["ratio"] - numbers["batched_fps"] / numbers["baseline_fps"]) < 0.02
    assert numbers["baseline_blobs"] > 0  # the baseline did its work on real frames


def test_bench_frames_are_what_edges_send() -> None:
    work = prepare(3, 1.0)
    assert work.frames == 3 * 5
    for frame in work.ticks[0]:
        image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
        assert image is not None
        assert image.shape == (180, 320)
        assert (frame.header.width, frame.header.height) == (320, 180)

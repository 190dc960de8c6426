"""``ioc bench edge``: what the edge side costs, ours against a baseline, in one run.

1. The simulated province (200 cameras x 5 fps from the real clips, 500 access points) into a
   real Mosquitto: CPU of our simulator, which encodes each clip frame once and reuses the
   bytes, against a per-camera replay that decodes, resizes and encodes every frame it sends.
2. Camera readers: one thread per camera (ours) against one loop over all cameras, with and
   without a source that hangs (a server that accepts connections and never answers).

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import psutil

from edge import (
    CameraReader,
    CameraSettings,
    CitySimulator,
    ClipLibrary,
    EdgeAgent,
    EncodedClip,
    parse_agent_config,
    resolve,
)
from ioc.servers import MosquittoBroker
from protocol import (
    AccessPoint,
    Camera,
    FrameHeader,
    MqttEndpoint,
    Province,
    Topics,
    encode_frame,
    load_province,
)

from ..settings import DEFAULT_PROVINCE, PROJECT_ROOT

logger = logging.getLogger("ioc.bench.edge")
PARKING = PROJECT_ROOT / "data" / "video" / "parking_lot_overhead_768x432.mp4"


def bench_province(cameras: int = 200, access_points: int = 500) -> Province:
    """The sample province cut to ``cameras`` cameras and grown to ``access_points`` APs."""
    province = load_province(DEFAULT_PROVINCE)
    aps: list[AccessPoint] = []
    copy = 0
    while len(aps) < access_points:
        for ap in province.access_points:
            if len(aps) == access_points:
                break
            aps.append(ap if copy == 0 else ap.model_copy(update={"id": f"{ap.id}-x{copy}"}))
        copy += 1
    return province.model_copy(update={"cameras": province.cameras[:cameras], "access_points": aps})


class _Meter:
    """CPU seconds of this process and of the broker over a stretch of wall time."""

    def __init__(self, broker: MosquittoBroker) -> None:
        process = broker._process  # the broker's own CPU, which servers.py does not expose
        pid = process.pid if process else None
        self._broker = psutil.Process(pid) if pid else None

    def read(self) -> tuple[float, float, float]:
        broker = 0.0
        if self._broker is not None:
            times = self._broker.cpu_times()
            broker = times.user + times.system
        return time.monotonic(), time.process_time(), broker


def _rates(
    start: tuple[float, float, float], end: tuple[float, float, float], frames: int
) -> dict[str, float]:
    wall = end[0] - start[0]
    cpu = end[1] - start[1]
    return {
        "seconds": round(wall, 1),
        "frames_per_s": round(frames / wall, 1),
        "cpu_cores": round(cpu / wall, 3),
        "cpu_ms_per_frame": round(1000 * cpu / max(frames, 1), 3),
        "broker_cpu_cores": round((end[2] - start[2]) / wall, 3),
    }


async def _ours(
    province: Province, endpoint: MqttEndpoint, clips: ClipLibrary, duration: float, meter: _Meter
) -> dict[str, Any]:
    simulator = CitySimulator(province, endpoint, clips, topics=Topics("bench-edge/v1"))
    async with simulator:
        await simulator.connected.wait()
        await asyncio.sleep(2.0)  # let the first state reports and batches pass
        frames0, samples0 = simulator.stats.frames_published, simulator.pipeline.stats.samples
        start = meter.read()
        await asyncio.sleep(duration)
        end = meter.read()
        frames = simulator.stats.frames_published - frames0
        samples = simulator.pipeline.stats.samples - samples0
    result = _rates(start, end, frames)
    result["wifi_samples_per_s"] = round(samples / (end[0] - start[0]), 1)
    result["access_points"] = len(province.access_points)
    return result


async def _baseline(
    province: Province,
    endpoint: MqttEndpoint,
    clips: dict[str, EncodedClip],
    duration: float,
    meter: _Meter,
) -> dict[str, Any]:
    """Per-camera replay without sharing: each camera decodes its own clip, resizes and
    encodes every frame it sends (frames only; no Wi-Fi)."""
    captures = []
    for camera in province.cameras:
        clip = clips[camera.id]
        capture = cv2.VideoCapture(str(clip.path))
        captures.append((camera, capture, 1.0 / camera.fps))
    topics = Topics("bench-edge-base/v1")
    frames = 0
    try:
        async with endpoint.client("bench-edge-baseline", max_inflight=1000) as client:
            next_due = [time.monotonic()] * len(captures)
            start = meter.read()
            deadline = start[0] + duration
            while time.monotonic() < deadline:
                now = time.monotonic()
                for i, (camera, capture, period) in enumerate(captures):
                    if next_due[i] > now:
                        continue
                    next_due[i] = max(next_due[i] + period, now)
                    ok, image = capture.read()
                    if not ok:
                        capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                        ok, image = capture.read()
                    small = cv2.resize(image, (320, 180), interpolation=cv2.INTER_AREA)
                    jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
                    header = FrameHeader(camera.id, frames, time.time(), 320, 180)
                    await client.publish(
                        topics.frames(camera.id), encode_frame(header, jpeg), qos=0
                    )
                    frames += 1
                await asyncio.sleep(max(0.0, min(next_due) - time.monotonic()))
            end = meter.read()
    finally:
        for _, capture, _ in captures:
            capture.release()
    return _rates(start, end, frames)


async def _agent(endpoint: MqttEndpoint, cameras: int, seconds: float) -> dict[str, Any]:
    """A real edge agent reading ``cameras`` file cameras (768x432 H.264, 5 fps kept) and
    publishing them: what one camera costs an edge box, decode included."""
    raw: dict[str, Any] = {
        "agent_id": "bench-agent",
        "cameras": [
            {**_reader_camera(i, str(PARKING)).model_dump(), "fps": 5.0} for i in range(cameras)
        ],
        "mqtt": {"topic_prefix": "bench-edge-agent/v1"},
    }
    with tempfile.TemporaryDirectory(prefix="ioc-bench-agent-") as tmp:
        raw["spool"] = {"path": str(Path(tmp) / "spool.sqlite")}
        env = {"IOC_MQTT_URL": f"mqtt://{endpoint.host}:{endpoint.port}"}
        plan = resolve(parse_agent_config(raw), Path(tmp), env)
        async with EdgeAgent(plan) as agent:
            await agent.connected.wait()
            await asyncio.sleep(2.0)
            published0 = agent.stats.frames_published
            cpu0, t0 = time.process_time(), time.monotonic()
            await asyncio.sleep(seconds)
            wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
            published = agent.stats.frames_published - published0
            dropped = sum(r.slot.dropped for r in agent.readers)
    return {
        "cameras": cameras,
        "frames_per_s": round(published / wall, 1),
        "target_frames_per_s": 5.0 * cameras,
        "cpu_cores": round(cpu / wall, 2),
        "cpu_ms_per_camera_second": round(1000 * cpu / wall / cameras, 1),
        "dropped_frames": dropped,
    }


def _reader_camera(i: int, source: str) -> Camera:
    return Camera(
        id=f"bench-{i}",
        name="bench",
        kind="traffic",
        district="d",
        lat=0,
        lon=0,
        source=source,
        fps=30,
    )


def _threaded(n: int, seconds: float, hung_url: str | None) -> dict[str, float]:
    settings = CameraSettings(file_speed=100.0, open_timeout=seconds * 2, read_timeout=seconds * 2)
    readers = [CameraReader(_reader_camera(i, str(PARKING)), settings) for i in range(n)]
    if hung_url:
        readers.append(CameraReader(_reader_camera(n, hung_url), settings))
    cpu0, t0 = time.process_time(), time.monotonic()
    for reader in readers:
        reader.start()
    time.sleep(seconds)
    frames = sum(r.frames for r in readers)
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    for reader in readers:
        reader.request_stop()
    for reader in readers:
        reader.stop(0.5)
    return {
        "frames_per_s": round(frames / wall, 1),
        "cpu_cores": round(cpu / wall, 2),
        "cpu_ms_per_frame": round(1000 * cpu / max(frames, 1), 2),
    }


def _sequential(n: int, seconds: float, hung_url: str | None) -> dict[str, float]:
    """One loop over every camera: read, resize, encode; a hung camera is retried in line
    (its open blocks the loop for the open timeout), as a single-threaded reader must."""
    captures = [cv2.VideoCapture(str(PARKING), cv2.CAP_FFMPEG) for _ in range(n)]
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(seconds * 2000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(seconds * 2000),
    ]
    frames = 0
    cpu0, t0 = time.process_time(), time.monotonic()
    deadline = t0 + seconds
    while time.monotonic() < deadline:
        if hung_url:
            cv2.VideoCapture(hung_url, cv2.CAP_FFMPEG, params).release()
        for capture in captures:
            ok, image = capture.read()
            if not ok:
                capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            small = cv2.resize(image, (320, 180), interpolation=cv2.INTER_AREA)
            cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
            frames += 1
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    for capture in captures:
        capture.release()
    return {
        "frames_per_s": round(frames / wall, 1),
        "cpu_cores": round(cpu / wall, 2),
        "cpu_ms_per_frame": round(1000 * cpu / max(frames, 1), 2),
    }


def main(duration: float, baseline_duration: float, reader_seconds: float) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    result: dict[str, Any] = {"benchmark": "edge"}
    province = bench_province()
    logger.info("encoding the clips once for %d cameras ...", len(province.cameras))
    started = time.process_time()
    clips = ClipLibrary(base=PROJECT_ROOT)
    by_camera = {c.id: clips.get(c.resolved_source()) for c in province.cameras}
    result["clip_encoding_cpu_s"] = round(time.process_time() - started, 2)
    with (
        tempfile.TemporaryDirectory(prefix="ioc-bench-edge-") as tmp,
        MosquittoBroker(Path(tmp) / "broker") as broker,
    ):
        meter = _Meter(broker)
        endpoint = MqttEndpoint.from_url(broker.url)
        logger.info(
            "ours: %d cameras x 5 fps + %d APs for %.0f s ...",
            len(province.cameras),
            len(province.access_points),
            duration,
        )
        ours = asyncio.run(_ours(province, endpoint, clips, duration, meter))
        logger.info("ours: %s", ours)
        logger.info(
            "baseline: per-camera decode + resize + encode for %.0f s ...", baseline_duration
        )
        base = asyncio.run(_baseline(province, endpoint, by_camera, baseline_duration, meter))
        logger.info("baseline: %s", base)
        logger.info(
            "edge agent: 20 file cameras (768x432 H.264) at 5 fps for %.0f s ...", duration / 2
        )
        agent = asyncio.run(_agent(endpoint, 20, duration / 2))
        logger.info("edge agent: %s", agent)
        result["edge_agent"] = agent
    result["simulator"] = {
        "ours": ours,
        "baseline_per_frame_encoding": base,
        "cpu_per_frame_ratio": round(
            base["cpu_ms_per_frame"] / max(ours["cpu_ms_per_frame"], 1e-9), 1
        ),
    }
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        hung_url = f"http://127.0.0.1:{hung.getsockname()[1]}/video.mjpg"
        readers: dict[str, Any] = {}
        for label, url in (("healthy", None), ("with_one_hung_source", hung_url)):
            logger.info(
                "camera readers (%s), 4 cameras, %.0f s each way ...", label, reader_seconds
            )
            readers[label] = {
                "threads_ours": _threaded(4, reader_seconds, url),
                "one_loop_baseline": _sequential(4, reader_seconds, url),
            }
            logger.info("%s: %s", label, readers[label])
    result["camera_readers"] = readers
    sys.stdout.write(json.dumps(result) + "\n")

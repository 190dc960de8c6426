"""``ioc bench evidence``: what evidence clips cost and how reliably they arrive.

1. ``buffers``: ring buffers (640x360, 10 fps, 30 s, x264 CRF 30) fed with the real clips,
   one per camera at its own offset: CPU per camera-second and ring bytes per camera (with
   the same frames as JPEG, what a ring of pictures would hold, side by side), and the
   process's memory growth for them (the packets plus each x264 encoder's own state); run
   with ``--cameras 200`` to measure the 200-camera budget itself.
2. ``pipeline``: Mosquitto, a durable PostgreSQL, the console API with its evidence intake,
   the alerts service's evidence collector ordering clips at ``--rate`` per minute, and the
   simulated province (200 cameras) cutting and uploading them. Mid-run the broker restarts,
   and later the API restarts while uploads are in flight. Reports the time from an alert
   to its clip kept at the centre (p50/p99), bytes per clip, and lost clips (ordered and
   never kept).

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import cv2
import psutil
import uvicorn

from alerts import EvidenceCollector
from console_api import create_app
from edge import CitySimulator, ClipLibrary, ClipOutbox, ClipRing, ClipUploader, RingSettings
from evidence import EvidenceCentre, EvidenceSettings, agent_token
from protocol import MqttEndpoint, Topics, load_province
from store import StoreConfig

from ..runtime import prepare_store
from ..servers import MosquittoBroker, PostgresCluster
from ..settings import DEFAULT_PROVINCE, PROJECT_ROOT
from .edge import bench_province

logger = logging.getLogger("ioc.bench.evidence")
VIDEOS = sorted((PROJECT_ROOT / "data" / "video").glob("*.mp4")) + sorted(
    (PROJECT_ROOT / "data" / "video").glob("*.avi")
)
SECRET = secrets.token_urlsafe(32)


def _progress(message: str) -> None:
    print(f"[bench evidence] {message}", file=sys.stderr, flush=True)


def _source_frames(settings: RingSettings, seconds: float) -> list[list[Any]]:
    """Each clip's frames at the evidence size and rate, decoded once (looped to length)."""
    result = []
    for path in VIDEOS:
        capture = cv2.VideoCapture(str(path))
        fps = capture.get(cv2.CAP_PROP_FPS) or settings.fps
        step = max(1, round(fps / settings.fps))
        frames: list[Any] = []
        index = 0
        while len(frames) < seconds * settings.fps:
            ok, image = capture.read()
            if not ok:
                capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            if index % step == 0:
                frames.append(cv2.resize(image, (settings.width, settings.height)))
            index += 1
        capture.release()
        result.append(frames)
    return result


def bench_buffers(cameras: int, seconds: float) -> dict[str, Any]:
    settings = RingSettings()
    sources = _source_frames(settings, seconds)
    process = psutil.Process()
    rss_before = process.memory_info().rss
    rings = [ClipRing(f"cam-{i}", settings) for i in range(cameras)]
    steps = int(seconds * settings.fps)
    _progress(f"buffers: {cameras} rings x {seconds:g} s of {len(sources)} clips at 10 fps")
    cpu_before = time.process_time()
    for step in range(steps):
        at = 1_000_000.0 + step / settings.fps
        for i, ring in enumerate(rings):
            frames = sources[i % len(sources)]
            ring.add(frames[(step + 37 * i) % len(frames)], at)
    cpu = time.process_time() - cpu_before
    ring_bytes = [r.nbytes for r in rings]
    jpeg_bytes = []
    for frames in sources:
        window = frames[-int(settings.seconds * settings.fps) :]
        jpeg_bytes.append(
            sum(len(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 80])[1]) for f in window)
        )
    growth = process.memory_info().rss - rss_before  # rings and their encoders, measured
    per_camera_second = cpu / (cameras * seconds)
    mean_ring = statistics.mean(ring_bytes)
    mean_jpeg = statistics.mean(jpeg_bytes)
    return {
        "cameras_measured": cameras,
        "evidence": f"{settings.width}x{settings.height} {settings.fps:g} fps, "
        f"{settings.seconds:g} s, x264 CRF {settings.crf}",
        "cpu_ms_per_camera_second": round(per_camera_second * 1000, 2),
        "cores_for_200_cameras": round(per_camera_second * 200, 2),
        "ring_kb_per_camera": {
            "mean": round(mean_ring / 1024),
            "max": round(max(ring_bytes) / 1024),
        },
        "ring_mb_for_200_cameras": round(mean_ring * 200 / 2**20, 1),
        "jpeg_ring_mb_for_200_cameras": round(mean_jpeg * 200 / 2**20, 1),
        "rss_growth_mb": round(growth / 2**20, 1),
        "rss_growth_mb_per_camera": round(growth / cameras / 2**20, 2),
    }


@contextlib.asynccontextmanager
async def _api(store: StoreConfig, root: Path, port: int) -> AsyncIterator[None]:
    settings = EvidenceSettings(
        secret=SECRET, dir=root, public_url=f"http://127.0.0.1:{port}", fleet_agents="sim-1"
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(256)
    app = create_app(store, evidence=EvidenceCentre.create(settings, {}))
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield
    finally:
        server.should_exit = True
        await task
        sock.close()


async def _insert_alert(conn: asyncpg.Connection, camera: str, district: str) -> str:
    alert_id = uuid.uuid4()
    await conn.execute(
        """INSERT INTO alerts (id, kind, source_id, district_id, severity, state, title_vi,
               title_en, opened_at, last_seen_at)
           VALUES ($1, 'intrusion', $2, $3, 'major', 'open', 'Xâm nhập', 'Intrusion',
                   now(), now())""",
        alert_id,
        camera,
        district,
    )
    return str(alert_id)


async def bench_pipeline(rate: float, alerts: int, drain: float, root: Path) -> dict[str, Any]:
    province = bench_province(200, 0)
    cluster = PostgresCluster(root / "postgres", durable=True)
    broker = MosquittoBroker(root / "mosquitto")
    _progress("pipeline: starting PostgreSQL (durable) and Mosquitto")
    await asyncio.to_thread(cluster.start)
    await asyncio.to_thread(broker.start)
    store = StoreConfig(url=cluster.url)
    await prepare_store(store, province)
    mqtt = MqttEndpoint.from_url(broker.url)
    topics = Topics("bench-evidence/v1")
    port = _free_port()
    credential = f"sim-1:{agent_token(SECRET.encode(), 'sim-1')}"
    uploader = ClipUploader(
        ClipOutbox(root / "edge"), f"http://127.0.0.1:{port}", credential, max_backoff=2.0
    )
    ordered: dict[str, float] = {}
    conn = await asyncpg.connect(store.url)
    rows: list[asyncpg.Record] = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            api = await stack.enter_async_context(contextlib.AsyncExitStack())
            await api.enter_async_context(_api(store, root / "centre", port))
            simulator = await stack.enter_async_context(
                CitySimulator(
                    province,
                    mqtt,
                    ClipLibrary(base=PROJECT_ROOT),
                    topics=topics,
                    uploader=uploader,
                )
            )
            collector = await stack.enter_async_context(
                EvidenceCollector(mqtt, store, topics=topics, timeout=30.0)
            )
            await collector.wait_until_ready()
            await asyncio.sleep(3.0)  # the simulator's snapshot session subscribes
            cameras = [(c.id, c.district) for c in province.cameras]
            _progress(f"pipeline: {alerts} alerts at {rate:g}/min over 200 cameras")
            for n in range(alerts):
                camera, district = cameras[(n * 7) % len(cameras)]
                alert_id = await _insert_alert(conn, camera, district)
                ordered[alert_id] = time.time()
                collector.request(camera, alert_id)
                if n == alerts // 3:
                    _progress("pipeline: restarting the broker")
                    await asyncio.to_thread(broker.stop)
                    await asyncio.to_thread(broker.start)
                if n == 2 * alerts // 3:
                    _progress("pipeline: restarting the API with uploads in flight")
                    await api.aclose()
                    await asyncio.sleep(1.0)
                    api = await stack.enter_async_context(contextlib.AsyncExitStack())
                    await api.enter_async_context(_api(store, root / "centre", port))
                await asyncio.sleep(60.0 / rate)
            rows = await _drain(conn, len(ordered), drain)
            simulator_stats = simulator.stats
    finally:
        await conn.close()
        await asyncio.to_thread(broker.stop)
        await asyncio.to_thread(cluster.stop)
    return _summary(ordered, rows, uploader, simulator_stats)


def _summary(
    ordered: dict[str, float],
    rows: list[asyncpg.Record],
    uploader: ClipUploader,
    simulator_stats: Any,
) -> dict[str, Any]:
    latencies = sorted(r["received_at"].timestamp() - ordered[r["a"]] for r in rows)
    sizes = [r["size"] for r in rows]
    return {
        "alerts": len(ordered),
        "clips_kept": len(rows),
        "lost_clips": len(ordered) - len(rows),
        "alert_to_clip_s": {
            "p50": round(statistics.median(latencies), 2) if latencies else None,
            "p99": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2)
            if latencies
            else None,
            "note": "includes post = 10 s",
        },
        "bytes_per_clip": {
            "mean": round(statistics.mean(sizes)) if sizes else None,
            "max": max(sizes) if sizes else None,
        },
        "upload_failures_retried": uploader.stats.failures,
        "snapshots_answered": simulator_stats.snapshots_answered,
    }


async def _drain(conn: asyncpg.Connection, expected: int, drain: float) -> list[asyncpg.Record]:
    deadline = time.time() + drain
    while time.time() < deadline:
        if await conn.fetchval("SELECT count(*) FROM evidence_clips") >= expected:
            break
        await asyncio.sleep(1.0)  # a bench waiting for arrivals, not a test
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT alert_id::text AS a, received_at, size FROM evidence_clips"
    )
    return rows


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main(cameras: int, seconds: float, rate: float, alerts: int, drain: float) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    load = os.getloadavg()[0]
    result: dict[str, Any] = {"bench": "evidence", "load_average_at_start": round(load, 1)}
    result["buffers"] = bench_buffers(cameras, seconds)
    _progress(json.dumps(result["buffers"]))
    if alerts > 0:
        with tempfile.TemporaryDirectory(prefix="ioc-bench-evidence-") as root:
            result["pipeline"] = asyncio.run(bench_pipeline(rate, alerts, drain, Path(root)))
            result["pipeline"]["rate_per_minute"] = rate
    sys.stdout.write(json.dumps(result) + "\n")


__all__ = ["DEFAULT_PROVINCE", "load_province", "main"]

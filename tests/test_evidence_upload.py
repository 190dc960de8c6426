"""The edge's clip outbox and uploader against the real API: a clip waits on disk while the
centre is away, an upload broken by a centre restart resumes from the centre's offset, and
a clip the centre refuses for good is set aside and never sent again."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import uvicorn
from console_support import raise_alert, seed_registry
from evidence_support import filled_ring
from test_evidence_centre import CHUNK, SECRET, manifest_for

from console_api import create_app
from edge._clip_upload import ClipOutbox, ClipUploader
from evidence import EvidenceCentre, EvidenceSettings, agent_token
from protocol import CLIP_MANIFEST
from store import StoreConfig

pytestmark = [pytest.mark.postgres]
START = 1_000_000.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def centre_on(database: StoreConfig, root: Path, port: int) -> AsyncIterator[str]:
    settings = EvidenceSettings(secret=SECRET, dir=root)
    centre = EvidenceCentre.create(settings, {"edge-a": {"cam-a"}})
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    app = create_app(database, evidence=centre)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as http:
            (await http.get(f"{url}/healthz")).raise_for_status()
        yield url
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_clips_wait_for_the_centre_resume_after_a_restart_and_refusals_stop(
    database: StoreConfig, db: asyncpg.Connection, tmp_path: Path
) -> None:
    await seed_registry(db)
    alert_id, _ = await raise_alert(db)
    ring = filled_ring(200)
    first = ring.cut(START, START + 20).mp4
    second = ring.cut(START + 5, START + 15).mp4
    port = free_port()
    credential = f"edge-a:{agent_token(SECRET.encode(), 'edge-a')}"
    outbox = ClipOutbox(tmp_path / "edge")
    uploader = ClipUploader(outbox, f"http://127.0.0.1:{port}", credential, max_backoff=0.5)

    # The centre is away: the clip waits on disk, the uploader retries.
    outbox.put(manifest_for(first, alert_id, clip_id="clip-first"), first)
    task = asyncio.create_task(uploader.run())
    try:
        await asyncio.wait_for(uploader.wait_for(0, failures=2), 30)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # Half an upload of the clip, then the centre restarts.
        async with (
            centre_on(database, tmp_path / "centre", port) as url,
            httpx.AsyncClient(
                base_url=url, headers={"Authorization": f"Bearer {credential}"}
            ) as http,
        ):
            manifest = manifest_for(first, alert_id, clip_id="clip-first")
            await http.post("/api/v1/evidence/uploads", content=CLIP_MANIFEST.encode(manifest))
            answer = await http.put(
                "/api/v1/evidence/uploads/clip-first", params={"offset": 0}, content=first[:CHUNK]
            )
            assert answer.json()["offset"] == CHUNK
        assert (tmp_path / "centre" / "uploads" / "clip-first.part").stat().st_size == CHUNK
        refused = manifest_for(second, alert_id, clip_id="clip-other-camera", camera_id="cam-b")
        outbox.put(refused, second)
        task = asyncio.create_task(uploader.run())
        async with centre_on(database, tmp_path / "centre", port):
            await asyncio.wait_for(uploader.wait_for(2), 60)
        assert (uploader.stats.uploaded, uploader.stats.refused) == (1, 1)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    kept = await db.fetchval("SELECT size FROM evidence_clips WHERE clip_id = 'clip-first'")
    assert kept == len(first)
    assert list((tmp_path / "edge" / "outbox").iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "edge" / "refused").iterdir()) == [
        "clip-other-camera.json",
        "clip-other-camera.mp4",
    ]
    custody = await db.fetch(
        "SELECT action FROM evidence_custody WHERE clip_id = 'clip-first' ORDER BY seq"
    )
    assert [r["action"] for r in custody] == ["cut", "received", "verified"]

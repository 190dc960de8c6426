"""Clips waiting for the centre: an on-disk outbox and the uploader that empties it.

A cut clip is written to ``outbox/`` (the MP4 and its manifest, fsynced) before any upload
starts, so neither a centre outage nor an agent restart loses it. The uploader sends the
oldest first over HTTPS to the API (``POST .../uploads`` then chunks at the offset the
centre acknowledged), resuming where the centre stands after any break, with capped,
jittered backoff. A clip the centre refuses for good (``Upload-Final: true``: wrong hash,
not our camera, too large, not an MP4) moves to ``refused/`` and is never sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import httpx

from protocol import CLIP_MANIFEST, ClipManifest, PayloadError, backoff_delay

logger = logging.getLogger(__name__)
CHUNK = 1 << 20
"""The console API's limit for upload chunks (most clips go in one)."""


@dataclass
class UploadStats:
    queued: int = 0
    uploaded: int = 0
    refused: int = 0
    failures: int = 0


class ClipOutbox:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.pending = root / "outbox"
        self.refused = root / "refused"
        self.pending.mkdir(parents=True, exist_ok=True)
        self.refused.mkdir(parents=True, exist_ok=True)
        self._changed = asyncio.Event()

    def put(self, manifest: ClipManifest, mp4: bytes) -> None:
        """Keep the clip on disk (MP4 first, then its manifest: a manifest means complete)."""
        for path, data in (
            (self.pending / f"{manifest.clip_id}.mp4", mp4),
            (self.pending / f"{manifest.clip_id}.json", CLIP_MANIFEST.encode(manifest)),
        ):
            temporary = path.with_suffix(".tmp")
            with temporary.open("wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            temporary.replace(path)
        self._changed.set()

    def oldest(self) -> list[Path]:
        return sorted(self.pending.glob("*.json"), key=lambda p: p.stat().st_mtime)

    async def wait(self) -> None:
        await self._changed.wait()
        self._changed.clear()


class ClipUploader:
    """Empties a :class:`ClipOutbox` into the centre's API as agent ``token``'s owner."""

    def __init__(
        self,
        outbox: ClipOutbox,
        api_url: str,
        credential: str,
        *,
        verify: str | bool = True,
        max_backoff: float = 60.0,
        concurrency: int = 3,
    ) -> None:
        self.outbox = outbox
        self.api_url = api_url.rstrip("/")
        self.credential = credential
        self.verify = verify
        self.max_backoff = max_backoff
        self.concurrency = concurrency
        self.stats = UploadStats()
        self._changed = asyncio.Event()
        self._orders: deque[str] = deque(maxlen=1000)

    def first_order(self, clip_id: str) -> bool:
        """True the first time a clip id is ordered (the centre resends unanswered orders;
        the last thousand ids are remembered, hours of alerts for one edge)."""
        if clip_id in self._orders:
            return False
        self._orders.append(clip_id)
        return True

    def _count(self, name: str) -> None:
        setattr(self.stats, name, getattr(self.stats, name) + 1)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_for(self, settled: int, *, failures: int = 0) -> None:
        """Return once ``settled`` clips were uploaded or refused (and ``failures`` seen)."""
        while self.stats.uploaded + self.stats.refused < settled or self.stats.failures < failures:
            await self._changed.wait()

    async def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.credential}"}
        async with httpx.AsyncClient(
            base_url=self.api_url, headers=headers, timeout=30, verify=self.verify
        ) as http:
            attempt = 0
            while True:
                pending = self.outbox.oldest()
                if not pending:
                    await self.outbox.wait()
                    continue
                # A few clips at a time, oldest first: one slow upload does not hold the rest.
                results = await asyncio.gather(
                    *(self._send(http, path) for path in pending[: self.concurrency]),
                    return_exceptions=True,
                )
                failures = [r for r in results if isinstance(r, BaseException)]
                for failure in failures:
                    if not isinstance(failure, httpx.HTTPError | _Retry):
                        raise failure
                if not failures:
                    attempt = 0
                    continue
                attempt += 1
                self._count("failures")
                delay = min(self.max_backoff, backoff_delay(attempt))
                logger.warning("clip upload failed (%s); retrying in %.2f s", failures[0], delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.outbox.wait(), delay)

    async def _send(self, http: httpx.AsyncClient, manifest_path: Path) -> None:
        mp4_path = manifest_path.with_suffix(".mp4")
        try:
            body, data = await asyncio.to_thread(_read_both, manifest_path, mp4_path)
            manifest = CLIP_MANIFEST.decode(body)
        except (PayloadError, FileNotFoundError):
            logger.exception("clip outbox entry %s unreadable: set aside", manifest_path)
            self._set_aside(manifest_path, mp4_path)
            return
        answer = await http.post("/api/v1/evidence/uploads", content=body)
        offset = self._offset(answer, manifest, manifest_path, mp4_path)
        while offset is not None and offset < len(data):
            answer = await http.put(
                f"/api/v1/evidence/uploads/{manifest.clip_id}",
                params={"offset": offset},
                content=data[offset : offset + CHUNK],
            )
            offset = self._offset(answer, manifest, manifest_path, mp4_path)
        if offset is not None:  # complete: kept by the centre
            await asyncio.to_thread(_remove_both, manifest_path, mp4_path)
            self._count("uploaded")
            logger.info("clip %s uploaded (%d bytes)", manifest.clip_id, len(data))

    def _offset(
        self, answer: httpx.Response, manifest: ClipManifest, manifest_path: Path, mp4_path: Path
    ) -> int | None:
        if answer.status_code in (200, 201):
            return int(answer.json()["offset"])
        if answer.headers.get("Upload-Final") == "true":
            logger.error(
                "clip %s of camera %s refused by the centre (%d: %s); not sent again",
                manifest.clip_id,
                manifest.camera_id,
                answer.status_code,
                answer.text[:300],
            )
            self._set_aside(manifest_path, mp4_path)
            self._count("refused")
            return None
        raise _Retry(f"clip {manifest.clip_id}: HTTP {answer.status_code} {answer.text[:200]}")

    def _set_aside(self, manifest_path: Path, mp4_path: Path) -> None:
        for path in (manifest_path, mp4_path):
            if path.exists():
                path.replace(self.outbox.refused / path.name)


class _Retry(Exception):
    """An answer that may change (the centre busy or restarting, an offset race)."""


def _read_both(manifest_path: Path, mp4_path: Path) -> tuple[bytes, bytes]:
    return manifest_path.read_bytes(), mp4_path.read_bytes()


def _remove_both(manifest_path: Path, mp4_path: Path) -> None:
    manifest_path.unlink(missing_ok=True)
    mp4_path.unlink(missing_ok=True)

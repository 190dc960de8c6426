"""Clips arriving from edges: resumable uploads, checked before they are kept.

An upload starts with the edge's :class:`protocol.ClipManifest` and goes on in chunks at
explicit offsets (``PUT`` with the offset the centre last acknowledged; ``HEAD`` says where
to resume after any break), staged in a file of its own. The last byte triggers the checks:
the camera must be the agent's, the size within bounds, the SHA-256 the manifest's, and the
bytes a playable H.264 MP4. A clip that passes is stored (:class:`ClipStore`), its row and
first custody entries (cut at the edge, received, verified) commit together; one that fails
is deleted, logged and recorded in ``evidence_refusals``, and the edge is told with a final
status (409/413/415/422) so it does not send it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from protocol import CLIP_MANIFEST, ClipManifest, PayloadError
from store import Connection

from ._custody import CustodyAction, Detail, append_custody
from ._mp4 import NotAClipError, probe_mp4
from ._storage import ClipStore

logger = logging.getLogger(__name__)


class UploadRefusedError(Exception):
    """The centre will not take this clip; ``status`` is the HTTP answer, ``final`` whether
    sending it again could ever help."""

    def __init__(self, status: int, reason: str, *, final: bool = True) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.final = final
        self.manifest: ClipManifest | None = None
        """The upload refused, once it is known; :func:`record_refusal` keeps it."""
        self.agent_id = ""


async def record_refusal(conn: Connection, error: UploadRefusedError) -> None:
    """Keep a refusal in ``evidence_refusals`` (in a transaction of its own: the upload's
    own transaction is rolled back by the refusal)."""
    if error.manifest is None:
        return
    await conn.execute(
        """INSERT INTO evidence_refusals (clip_id, agent_id, camera_id, reason)
           VALUES ($1, $2, $3, $4)""",
        error.manifest.clip_id,
        error.agent_id,
        error.manifest.camera_id,
        error.reason,
    )


def agent_token(secret: bytes, agent_id: str) -> str:
    """The upload credential of one agent: only the centre's secret makes it."""
    return hmac.new(secret, f"evidence-upload\n{agent_id}".encode(), hashlib.sha256).hexdigest()


def check_agent(secret: bytes, credential: str) -> str | None:
    """The agent id of a ``<agent_id>:<token>`` credential, or None when it is not valid."""
    agent_id, _, token = credential.partition(":")
    if not agent_id or not hmac.compare_digest(agent_token(secret, agent_id), token):
        return None
    return agent_id


@dataclass(frozen=True, slots=True)
class ClipRecord:
    clip_id: str
    alert_id: str
    camera_id: str
    size: int
    sha256: str
    sha1: str
    storage_key: str


Owners = Callable[[str], Collection[str] | None]
"""The cameras of an agent; None: every camera (the simulator's fleet)."""


class ClipIntake:
    def __init__(
        self, staging: Path, store: ClipStore, owners: Owners, *, max_bytes: int = 64 << 20
    ) -> None:
        self.staging = staging
        self.store = store
        self.owners = owners
        self.max_bytes = max_bytes
        staging.mkdir(parents=True, exist_ok=True)

    def _paths(self, clip_id: str) -> tuple[Path, Path]:
        return self.staging / f"{clip_id}.json", self.staging / f"{clip_id}.part"

    def _refuse(
        self, agent_id: str, manifest: ClipManifest, error: UploadRefusedError
    ) -> UploadRefusedError:
        logger.warning(
            "evidence: clip %s of camera %s from agent %s refused: %s",
            manifest.clip_id,
            manifest.camera_id,
            agent_id,
            error.reason,
        )
        error.manifest = manifest
        error.agent_id = agent_id
        for path in self._paths(manifest.clip_id):
            path.unlink(missing_ok=True)
        return error

    async def begin(self, conn: Connection, agent_id: str, body: bytes) -> tuple[str, int]:
        """Start (or find) the upload a manifest describes; the clip id and the offset to
        send from (the size when the clip is already kept)."""
        try:
            manifest = CLIP_MANIFEST.decode(body)
        except PayloadError as exc:
            raise UploadRefusedError(422, str(exc)) from exc
        if manifest.agent_id != agent_id:
            raise self._refuse(
                agent_id,
                manifest,
                UploadRefusedError(403, "the manifest names another agent"),
            )
        cameras = self.owners(agent_id)
        if cameras is not None and manifest.camera_id not in cameras:
            error = UploadRefusedError(
                403, f"camera {manifest.camera_id} is not one of agent {agent_id}'s cameras"
            )
            raise self._refuse(agent_id, manifest, error)
        if manifest.size > self.max_bytes:
            error = UploadRefusedError(
                413, f"clip of {manifest.size} bytes is over the limit of {self.max_bytes}"
            )
            raise self._refuse(agent_id, manifest, error)
        kept = await conn.fetchval(
            "SELECT size FROM evidence_clips WHERE clip_id = $1", manifest.clip_id
        )
        if kept is not None:
            return manifest.clip_id, int(kept)
        try:
            alert = uuid.UUID(manifest.alert_id)
        except ValueError:
            raise UploadRefusedError(422, f"alert id {manifest.alert_id!r} is not a UUID") from None
        source = await conn.fetchval("SELECT source_id FROM alerts WHERE id = $1", alert)
        if source is None:
            raise UploadRefusedError(422, f"alert {manifest.alert_id} does not exist")
        if source != manifest.camera_id:
            error = UploadRefusedError(
                422, f"alert {manifest.alert_id} is of {source}, not camera {manifest.camera_id}"
            )
            raise self._refuse(agent_id, manifest, error)
        meta, part = self._paths(manifest.clip_id)
        if meta.exists() and meta.read_bytes() != body:
            raise self._refuse(
                agent_id,
                manifest,
                UploadRefusedError(409, "an upload of this clip with another manifest is open"),
            )
        meta.write_bytes(body)
        part.touch()
        return manifest.clip_id, part.stat().st_size

    def _manifest(self, clip_id: str) -> ClipManifest:
        meta, _ = self._paths(clip_id)
        try:
            return CLIP_MANIFEST.decode(meta.read_bytes())
        except FileNotFoundError:
            raise UploadRefusedError(404, f"no upload of clip {clip_id} is open") from None

    def offset(self, agent_id: str, clip_id: str) -> int:
        manifest = self._manifest(clip_id)
        if manifest.agent_id != agent_id:
            raise UploadRefusedError(404, f"no upload of clip {clip_id} is open")
        return self._paths(clip_id)[1].stat().st_size

    def append(self, agent_id: str, clip_id: str, offset: int, chunk: bytes) -> tuple[int, bool]:
        """Write ``chunk`` at ``offset`` (which must be where the upload stands); the new
        offset and whether the clip is complete."""
        manifest = self._manifest(clip_id)
        if manifest.agent_id != agent_id:
            raise UploadRefusedError(404, f"no upload of clip {clip_id} is open")
        part = self._paths(clip_id)[1]
        have = part.stat().st_size
        if offset != have:
            raise UploadRefusedError(409, f"upload stands at {have}, not {offset}", final=False)
        if have + len(chunk) > manifest.size:
            raise UploadRefusedError(413, "more bytes than the manifest's size", final=False)
        with part.open("ab") as out:
            out.write(chunk)
        have += len(chunk)
        return have, have == manifest.size

    async def finish(self, conn: Connection, agent_id: str, clip_id: str) -> ClipRecord:
        """Check the complete upload and keep it (inside the caller's transaction)."""
        manifest = self._manifest(clip_id)
        meta, part = self._paths(clip_id)
        data = part.read_bytes()
        sha256 = hashlib.sha256(data).hexdigest()
        if sha256 != manifest.sha256:
            error = UploadRefusedError(
                422, f"SHA-256 of the bytes is {sha256}, the manifest says {manifest.sha256}"
            )
            raise self._refuse(agent_id, manifest, error)
        try:
            facts = await asyncio.to_thread(probe_mp4, data)
        except NotAClipError as exc:
            error = UploadRefusedError(415, f"not a playable H.264 MP4: {exc.reason}")
            raise self._refuse(agent_id, manifest, error) from exc
        received = datetime.now(UTC)
        key = f"{received:%Y/%m/%d}/{clip_id}.mp4"
        record = ClipRecord(
            clip_id,
            manifest.alert_id,
            manifest.camera_id,
            len(data),
            sha256,
            hashlib.sha1(data, usedforsecurity=False).hexdigest(),  # CAP 1.2's digest
            key,
        )
        await asyncio.to_thread(self.store.put, key, part)
        kind = await conn.fetchval(
            "SELECT kind FROM alerts WHERE id = $1", uuid.UUID(manifest.alert_id)
        )
        await conn.execute(
            """INSERT INTO evidence_clips (clip_id, alert_id, camera_id, agent_id, kind,
                   event_at, started_at, ended_at, frames, size, sha256, sha1, storage_key,
                   received_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)""",
            clip_id,
            uuid.UUID(manifest.alert_id),
            manifest.camera_id,
            agent_id,
            kind,
            _utc(manifest.event_at),
            _utc(manifest.started_at),
            _utc(manifest.ended_at),
            facts.frames,
            record.size,
            sha256,
            record.sha1,
            key,
            received,
        )
        cut: Detail = {
            "agent": agent_id,
            "camera": manifest.camera_id,
            "started_at": manifest.started_at,
            "ended_at": manifest.ended_at,
            "event_at": manifest.event_at,
            "sha256": manifest.sha256,
        }
        await append_custody(
            conn, clip_id, CustodyAction.CUT, agent_id, cut, at=_utc(manifest.cut_at)
        )
        await append_custody(
            conn, clip_id, CustodyAction.RECEIVED, "centre", {"size": record.size}, at=received
        )
        await append_custody(
            conn,
            clip_id,
            CustodyAction.VERIFIED,
            "centre",
            {"sha256": sha256, "sha1": record.sha1, "frames": facts.frames, "store": key},
        )
        meta.unlink(missing_ok=True)
        part.unlink(missing_ok=True)
        logger.info(
            "evidence: clip %s of alert %s kept (%d bytes)", clip_id, record.alert_id, record.size
        )
        return record


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)

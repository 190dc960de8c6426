"""Reading clips: the list of an alert's clips with their digests, one clip's bytes (which
writes a custody entry naming who), and the holds that keep an incident from retention."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from datetime import datetime
from typing import Literal

import asyncpg
import msgspec

from store import Connection

from ._custody import CustodyAction, Detail, append_custody
from ._storage import ClipStore


class ClipNotFoundError(LookupError):
    def __init__(self, clip_id: str) -> None:
        super().__init__(f"clip {clip_id} does not exist (or was deleted by retention)")
        self.clip_id = clip_id


class ClipTamperedError(RuntimeError):
    """The stored bytes no longer match the digest recorded on arrival."""

    def __init__(self, clip_id: str) -> None:
        super().__init__(f"clip {clip_id}: stored bytes do not match its SHA-256")
        self.clip_id = clip_id


class ClipView(msgspec.Struct, frozen=True, kw_only=True):
    clip_id: str
    alert_id: str
    camera_id: str
    agent_id: str
    event_at: datetime
    started_at: datetime
    ended_at: datetime
    received_at: datetime
    frames: int
    size: int
    sha256: str
    sha1: str
    mime_type: str = "video/mp4"
    url: str = ""
    """Where the console downloads it (with the caller's token)."""


CLIP_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
"""Clip ids, like every identifier of the protocol."""

_COLUMNS = """clip_id, alert_id::text AS alert_id, camera_id, agent_id, event_at, started_at,
    ended_at, received_at, frames, size, sha256, sha1"""


def _view(record: asyncpg.Record) -> ClipView:
    fields = dict(record.items())
    return ClipView(**fields, url=f"/api/v1/evidence/clips/{fields['clip_id']}/file")


async def alert_clips(conn: Connection, alert_id: str) -> list[ClipView]:
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM evidence_clips
            WHERE alert_id = $1 AND deleted_at IS NULL ORDER BY started_at""",
        uuid.UUID(alert_id),
    )
    return [_view(r) for r in rows]


async def get_clip(conn: Connection, clip_id: str) -> ClipView:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM evidence_clips WHERE clip_id = $1 AND deleted_at IS NULL",
        clip_id,
    )
    if row is None:
        raise ClipNotFoundError(clip_id)
    return _view(row)


async def read_clip(
    conn: Connection,
    store: ClipStore,
    clip_id: str,
    *,
    actor: str,
    action: Literal["viewed", "exported"],
    detail: Detail | None = None,
) -> tuple[ClipView, bytes]:
    """The clip's bytes, checked against its SHA-256, and a custody entry saying who read
    them and why (in the caller's transaction: no bytes leave without their entry)."""
    clip = await get_clip(conn, clip_id)
    data = await asyncio.to_thread(store.read, await _key(conn, clip_id))
    if hashlib.sha256(data).hexdigest() != clip.sha256:
        raise ClipTamperedError(clip_id)
    await append_custody(conn, clip_id, CustodyAction(action), actor, detail)
    return clip, data


async def _key(conn: Connection, clip_id: str) -> str:
    key: str = await conn.fetchval(
        "SELECT storage_key FROM evidence_clips WHERE clip_id = $1", clip_id
    )
    return key


async def hold_incident(conn: Connection, alert_id: str, who: str, reason: str) -> None:
    """Mark an incident as evidence: its clips stay past retention until released."""
    await conn.execute(
        """INSERT INTO evidence_holds (alert_id, held_by, reason) VALUES ($1, $2, $3)
           ON CONFLICT (alert_id) DO NOTHING""",
        uuid.UUID(alert_id),
        who,
        reason,
    )
    for clip in await alert_clips(conn, alert_id):
        await append_custody(conn, clip.clip_id, CustodyAction.HELD, who, {"reason": reason})


async def release_incident(conn: Connection, alert_id: str, who: str) -> None:
    await conn.execute("DELETE FROM evidence_holds WHERE alert_id = $1", uuid.UUID(alert_id))
    for clip in await alert_clips(conn, alert_id):
        await append_custody(conn, clip.clip_id, CustodyAction.RELEASED, who)

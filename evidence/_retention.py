"""Retention: clips older than their kind's days go, unless their incident is on hold.
Each deletion removes the bytes and leaves the row (with ``deleted_at``) and a ``deleted``
custody entry, so the record of what existed and who saw it outlives the video."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta

from store import Connection

from ._custody import CustodyAction, append_custody
from ._storage import ClipStore


async def apply_retention(
    conn: Connection,
    store: ClipStore,
    *,
    now: datetime,
    days: Mapping[str, float],
    default_days: float = 30.0,
) -> list[str]:
    """Delete the clips past retention (per kind, ``default_days`` for the others); the ids."""
    rows = await conn.fetch(
        """SELECT c.clip_id, c.kind, c.received_at, c.storage_key FROM evidence_clips c
           WHERE c.deleted_at IS NULL
             AND NOT EXISTS (SELECT 1 FROM evidence_holds h WHERE h.alert_id = c.alert_id)"""
    )
    deleted: list[str] = []
    for row in rows:
        keep = timedelta(days=days.get(row["kind"], default_days))
        if row["received_at"] + keep > now:
            continue
        async with conn.transaction():
            await append_custody(
                conn,
                row["clip_id"],
                CustodyAction.DELETED,
                "retention",
                {"kind": row["kind"], "days": keep.days},
            )
            await conn.execute(
                "UPDATE evidence_clips SET deleted_at = $2 WHERE clip_id = $1", row["clip_id"], now
            )
        await asyncio.to_thread(store.delete, row["storage_key"])
        deleted.append(row["clip_id"])
    return deleted

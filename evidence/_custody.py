"""The chain of custody: an append-only log per clip in which every entry carries the hash
of the one before it.

An entry's hash is SHA-256 over the previous hash and the entry's canonical JSON (clip,
sequence number, UTC time to the microsecond, action, actor, detail), so changing, removing
or reordering any entry breaks every hash after it; the first entry's previous hash is 64
zeros. Appends lock the clip's row, so two writers cannot both extend the same tail.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from store import Connection

GENESIS = "0" * 64


class CustodyAction(StrEnum):
    CUT = "cut"
    RECEIVED = "received"
    VERIFIED = "verified"
    VIEWED = "viewed"
    EXPORTED = "exported"
    DELIVERED = "delivered"
    HELD = "held"
    RELEASED = "released"
    DELETED = "deleted"


Detail = Mapping[str, str | int | float | None]


@dataclass(frozen=True, slots=True)
class CustodyEntry:
    clip_id: str
    seq: int
    at: datetime
    action: str
    actor: str
    detail: str
    """Canonical JSON of the entry's facts (hash, agent, endpoint...)."""
    prev_hash: str
    hash: str

    def expected_hash(self) -> str:
        return entry_hash(
            self.prev_hash,
            clip_id=self.clip_id,
            seq=self.seq,
            at=self.at,
            action=self.action,
            actor=self.actor,
            detail=self.detail,
        )


def canonical(detail: Detail) -> str:
    return json.dumps(dict(detail), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(
    prev_hash: str,
    *,
    clip_id: str,
    seq: int,
    at: datetime,
    action: str,
    actor: str,
    detail: str,
) -> str:
    body = canonical(
        {
            "clip": clip_id,
            "seq": seq,
            "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
            "action": action,
            "actor": actor,
            "detail": detail,
        }
    )
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


async def append_custody(
    conn: Connection,
    clip_id: str,
    action: CustodyAction,
    actor: str,
    detail: Detail | None = None,
    *,
    at: datetime | None = None,
) -> CustodyEntry:
    """Add one entry at the tail of the clip's chain (inside the caller's transaction)."""
    await conn.execute("SELECT 1 FROM evidence_clips WHERE clip_id = $1 FOR UPDATE", clip_id)
    tail = await conn.fetchrow(
        "SELECT seq, hash FROM evidence_custody WHERE clip_id = $1 ORDER BY seq DESC LIMIT 1",
        clip_id,
    )
    seq = 1 if tail is None else tail["seq"] + 1
    prev = GENESIS if tail is None else tail["hash"]
    moment = (at or datetime.now(UTC)).astimezone(UTC)
    text = canonical(detail or {})
    entry = CustodyEntry(
        clip_id,
        seq,
        moment,
        str(action),
        actor,
        text,
        prev,
        entry_hash(
            prev, clip_id=clip_id, seq=seq, at=moment, action=str(action), actor=actor, detail=text
        ),
    )
    await conn.execute(
        """INSERT INTO evidence_custody (clip_id, seq, at, action, actor, detail, prev_hash, hash)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        entry.clip_id,
        entry.seq,
        entry.at,
        entry.action,
        entry.actor,
        entry.detail,
        entry.prev_hash,
        entry.hash,
    )
    return entry


async def custody_log(conn: Connection, clip_id: str) -> list[CustodyEntry]:
    rows = await conn.fetch(
        """SELECT clip_id, seq, at, action, actor, detail, prev_hash, hash
           FROM evidence_custody WHERE clip_id = $1 ORDER BY seq""",
        clip_id,
    )
    return [CustodyEntry(**dict(r)) for r in rows]


def chain_breaks(entries: Sequence[CustodyEntry]) -> list[str]:
    """Each place where the chain does not hold, named; empty when it is whole."""
    problems: list[str] = []
    prev = GENESIS
    for expected_seq, entry in enumerate(entries, start=1):
        where = f"custody entry {entry.seq} ({entry.action})"
        if entry.seq != expected_seq:
            problems.append(f"{where}: expected sequence {expected_seq} (an entry is missing)")
        if entry.prev_hash != prev:
            problems.append(f"{where}: does not follow the entry before it")
        if entry.expected_hash() != entry.hash:
            problems.append(f"{where}: its content does not match its hash (edited)")
        prev = entry.hash
    if not entries:
        problems.append("the custody log is empty")
    return problems

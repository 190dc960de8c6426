"""`ioc evidence verify`: every clip's bytes against its SHA-256, every custody chain."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field

from store import Connection

from ._custody import CustodyEntry, chain_breaks
from ._storage import ClipStore


@dataclass(frozen=True, slots=True)
class Finding:
    clip_id: str
    problem: str


@dataclass(slots=True)
class VerifyReport:
    clips: int = 0
    entries: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


async def verify_evidence(conn: Connection, store: ClipStore) -> VerifyReport:
    report = VerifyReport()
    clips = await conn.fetch(
        "SELECT clip_id, sha256, storage_key, deleted_at FROM evidence_clips ORDER BY clip_id"
    )
    rows = await conn.fetch(
        """SELECT clip_id, seq, at, action, actor, detail, prev_hash, hash
           FROM evidence_custody ORDER BY clip_id, seq"""
    )
    chains: dict[str, list[CustodyEntry]] = {}
    for row in rows:
        chains.setdefault(row["clip_id"], []).append(CustodyEntry(**dict(row)))
    known = {c["clip_id"] for c in clips}
    for orphan in sorted(set(chains) - known):
        report.findings.append(Finding(orphan, "custody entries of a clip that has no record"))
    for clip in clips:
        clip_id = clip["clip_id"]
        report.clips += 1
        chain = chains.get(clip_id, [])
        report.entries += len(chain)
        report.findings += [Finding(clip_id, p) for p in chain_breaks(chain)]
        if clip["deleted_at"] is not None:
            if not chain or chain[-1].action != "deleted":
                report.findings.append(Finding(clip_id, "deleted without a custody entry"))
            continue
        try:
            data = await asyncio.to_thread(store.read, clip["storage_key"])
        except FileNotFoundError:
            report.findings.append(Finding(clip_id, "the clip's file is missing"))
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest != clip["sha256"]:
            report.findings.append(
                Finding(clip_id, f"bytes changed: SHA-256 {digest}, recorded {clip['sha256']}")
            )
        cut = next((e for e in chain if e.action == "cut"), None)
        if cut is not None and f'"sha256":"{clip["sha256"]}"' not in cut.detail:
            report.findings.append(Finding(clip_id, "recorded SHA-256 differs from the edge's"))
    return report

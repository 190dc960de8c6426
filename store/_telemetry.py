"""Idempotent bulk writes of Wi-Fi telemetry: samples, visitor hashes, the latest AP state.

A batch is identified by (source, seq). Its rows are written in the same transaction that
records the batch in ``ingest_batches``; a batch already recorded is skipped, so a
redelivery never duplicates rows. Visitor hashes (salted, rotated daily at the edge) are
kept once per AP and hour as 64-bit integers, for distinct-visitor counts; never a MAC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from protocol import TelemetryBatch

from ._bulk import (
    COLUMNS,
    Row,
    WriteMode,
    claim_batches,
    insert_ignoring_duplicates,
    insert_rolled_up,
    load,
)
from ._pool import Connection

_SIGN = 1 << 63


@dataclass(frozen=True, slots=True)
class WriteResult:
    batches: int
    duplicate_batches: int
    rows: int


def telemetry_source(ap_id: str) -> str:
    return f"wifi:{ap_id}"


def visitor_key(visitor_hash: str) -> int:
    """A 16-hex-digit hash as a signed bigint (same bits, half the storage of text)."""
    value = int(visitor_hash, 16)
    return value - (1 << 64) if value >= _SIGN else value


async def write_telemetry(
    conn: Connection, batches: Sequence[TelemetryBatch], mode: WriteMode
) -> WriteResult:
    unique: dict[tuple[str, int], TelemetryBatch] = {}
    for batch in batches:
        unique.setdefault((telemetry_source(batch.ap_id), batch.seq), batch)
    async with conn.transaction():
        fresh = await claim_batches(
            conn, [(key[0], key[1], len(b.samples)) for key, b in unique.items()]
        )
        rows: list[Row] = []
        visitors: set[tuple[int, str, int]] = set()
        latest: dict[str, tuple[float, Row]] = {}
        for key in sorted(fresh):
            batch = unique[key]
            ap = batch.ap_id
            for s in batch.samples:
                ts = datetime.fromtimestamp(s.ts, UTC)
                rows.append(
                    (
                        ap,
                        ts,
                        s.clients,
                        s.rx_bytes,
                        s.tx_bytes,
                        s.channel_util,
                        s.up,
                        len(s.visitors),
                    )
                )
                if s.visitors:
                    hour = int(s.ts // 3600) * 3600
                    visitors.update((hour, ap, visitor_key(v)) for v in s.visitors)
                if ap not in latest or s.ts >= latest[ap][0]:
                    latest[ap] = (s.ts, (ap, s.up, s.clients, s.channel_util, ts))
        await insert_rolled_up(conn, "wifi_samples", rows, mode)
        await insert_ignoring_duplicates(
            conn,
            "wifi_visitors",
            [(datetime.fromtimestamp(h, UTC), ap, v) for h, ap, v in sorted(visitors)],
            mode,
            "ap_id, hour, visitor",
        )
        await load(
            conn,
            "ap_status",
            [latest[ap][1] for ap in sorted(latest)],
            use_copy=False,
            columns=COLUMNS["ap_status"],
            suffix=""" ON CONFLICT (ap_id) DO UPDATE SET up = EXCLUDED.up,
                clients = EXCLUDED.clients, channel_util = EXCLUDED.channel_util,
                reported_at = EXCLUDED.reported_at
                WHERE ap_status.reported_at <= EXCLUDED.reported_at""",
        )
    return WriteResult(len(fresh), len(batches) - len(fresh), len(rows))

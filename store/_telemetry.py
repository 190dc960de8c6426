"""Idempotent bulk writes of Wi-Fi telemetry.

A batch is identified by (source, seq). Its rows are written in the same transaction that
records the batch in ``ingest_batches``; a batch already recorded is skipped, so a
redelivery never duplicates rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from protocol import TelemetryBatch

from ._pool import Connection

WIFI_COLUMNS = ("ap_id", "ts", "clients", "rx_bytes", "tx_bytes", "channel_util", "up", "visitors")
_INSERT_UNNEST = """
    INSERT INTO wifi_samples (ap_id, ts, clients, rx_bytes, tx_bytes, channel_util, up, visitors)
    SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int[], $4::bigint[], $5::bigint[],
                         $6::real[], $7::bool[], $8::int[])
"""
_UNNEST_CHUNK = 1_000  # rows per statement where COPY is unavailable (keeps parameters small)


@dataclass(frozen=True, slots=True)
class WriteResult:
    batches: int
    duplicate_batches: int
    rows: int


def telemetry_source(ap_id: str) -> str:
    return f"wifi:{ap_id}"


def _rows(batch: TelemetryBatch) -> list[tuple[object, ...]]:
    return [
        (
            batch.ap_id,
            datetime.fromtimestamp(s.ts, UTC),
            s.clients,
            s.rx_bytes,
            s.tx_bytes,
            s.channel_util,
            s.up,
            len(s.visitors),
        )
        for s in batch.samples
    ]


async def write_telemetry(
    conn: Connection, batches: Sequence[TelemetryBatch], *, use_copy: bool = True
) -> WriteResult:
    unique: dict[tuple[str, int], TelemetryBatch] = {}
    for batch in batches:
        unique.setdefault((telemetry_source(batch.ap_id), batch.seq), batch)
    keys = list(unique)
    async with conn.transaction():
        fresh = await conn.fetch(
            """INSERT INTO ingest_batches (source, seq, rows)
               SELECT * FROM unnest($1::text[], $2::bigint[], $3::int[])
               ON CONFLICT DO NOTHING RETURNING source, seq""",
            [k[0] for k in keys],
            [k[1] for k in keys],
            [len(unique[k].samples) for k in keys],
        )
        rows: list[tuple[object, ...]] = []
        for record in fresh:
            rows.extend(_rows(unique[(record["source"], record["seq"])]))
        if rows:
            await insert_rows(conn, rows, use_copy=use_copy)
    return WriteResult(len(fresh), len(batches) - len(fresh), len(rows))


async def insert_rows(conn: Connection, rows: list[tuple[object, ...]], *, use_copy: bool) -> None:
    if use_copy:
        await conn.copy_records_to_table("wifi_samples", records=rows, columns=WIFI_COLUMNS)
        return
    for start in range(0, len(rows), _UNNEST_CHUNK):
        chunk = rows[start : start + _UNNEST_CHUNK]
        await conn.execute(_INSERT_UNNEST, *(list(col) for col in zip(*chunk, strict=True)))

"""Bulk loading shared by the writers: COPY or chunked ``unnest`` inserts, a staging table
for the plain path's rollups, and the (source, seq) ledger that makes batches idempotent.

Engines that cannot take COPY (PGlite) or large statements get ``unnest`` inserts in chunks
of at most 1,000 rows and about 48 KB of parameters; which way to write is configuration
(:class:`WriteMode`), never guessed from the server.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ._migrations import Flavor, applied_flavor
from ._pool import Connection, StoreConfig
from ._rollups import rollups_of

Row = tuple[object, ...]

COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "wifi_samples": (
        ("ap_id", "text"),
        ("ts", "timestamptz"),
        ("clients", "int"),
        ("rx_bytes", "bigint"),
        ("tx_bytes", "bigint"),
        ("channel_util", "real"),
        ("up", "bool"),
        ("visitors", "int"),
    ),
    "wifi_visitors": (("hour", "timestamptz"), ("ap_id", "text"), ("visitor", "bigint")),
    "traffic_counts": (
        ("camera_id", "text"),
        ("line_id", "text"),
        ("ts", "timestamptz"),
        ("forward", "int"),
        ("backward", "int"),
    ),
    "traffic_intervals": (
        ("camera_id", "text"),
        ("ts", "timestamptz"),
        ("seconds", "float8"),
        ("frames", "int"),
        ("congested_s", "float8"),
    ),
    "traffic_speeds": (
        ("camera_id", "text"),
        ("ts", "timestamptz"),
        ("seconds", "float8"),
        ("vehicles", "int"),
        ("mean_kmh", "real"),
        ("p85_kmh", "real"),
    ),
    "zone_occupancy": (
        ("camera_id", "text"),
        ("zone_id", "text"),
        ("ts", "timestamptz"),
        ("occupancy", "real"),
        ("congested", "bool"),
    ),
    "ap_status": (
        ("ap_id", "text"),
        ("up", "bool"),
        ("clients", "int"),
        ("channel_util", "real"),
        ("reported_at", "timestamptz"),
    ),
}
MAX_CHUNK_ROWS = 1_000
MAX_CHUNK_BYTES = 48_000


@dataclass(frozen=True, slots=True)
class WriteMode:
    """How to write to this store: the schema's flavor (read from the database) and whether
    COPY is allowed (configuration)."""

    flavor: Flavor
    use_copy: bool = True

    @property
    def maintains_rollups(self) -> bool:
        """Plain PostgreSQL: the writer keeps the rollup tables current. TimescaleDB's
        continuous aggregates keep themselves."""
        return self.flavor is Flavor.PLAIN


async def write_mode(conn: Connection, config: StoreConfig) -> WriteMode:
    return WriteMode(await applied_flavor(conn), config.use_copy)


def _row_bytes(row: Row) -> int:
    """Roughly what one row weighs as binary array parameters (4-byte length + value)."""
    return sum(4 + (len(v) if isinstance(v, str) else 8) for v in row)


def chunks(rows: Sequence[Row]) -> Iterable[Sequence[Row]]:
    if not rows:
        return
    per_chunk = max(1, min(MAX_CHUNK_ROWS, MAX_CHUNK_BYTES // max(1, _row_bytes(rows[0]))))
    for start in range(0, len(rows), per_chunk):
        yield rows[start : start + per_chunk]


def unnest_insert(table: str, columns: tuple[tuple[str, str], ...], suffix: str = "") -> str:
    names = ", ".join(c for c, _ in columns)
    arrays = ", ".join(f"${i}::{t}[]" for i, (_, t) in enumerate(columns, start=1))
    return f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}){suffix}"


async def load(
    conn: Connection,
    table: str,
    rows: Sequence[Row],
    *,
    use_copy: bool,
    columns: tuple[tuple[str, str], ...] | None = None,
    suffix: str = "",
) -> None:
    """Append ``rows`` to ``table`` (COPY, or unnest chunks followed by ``suffix``)."""
    spec = columns or COLUMNS[table]
    if not rows:
        return
    if use_copy and not suffix:
        await conn.copy_records_to_table(table, records=rows, columns=[c for c, _ in spec])
        return
    statement = unnest_insert(table, spec, suffix)
    for chunk in chunks(rows):
        await conn.execute(statement, *(list(col) for col in zip(*chunk, strict=True)))


async def insert_rolled_up(
    conn: Connection, table: str, rows: Sequence[Row], mode: WriteMode
) -> None:
    """Store raw rows and, on the plain path, merge their aggregate into the rollups.

    The batch goes to a staging table first so each rollup aggregates exactly the new rows,
    in the same transaction that stores them."""
    rollups = rollups_of(table) if mode.maintains_rollups else ()
    if not rows:
        return
    if not rollups:
        await load(conn, table, rows, use_copy=mode.use_copy)
        return
    stage = f"stage_{table}"
    await conn.execute(f"CREATE TEMP TABLE {stage} (LIKE {table}) ON COMMIT DROP")
    await load(conn, stage, rows, use_copy=mode.use_copy, columns=COLUMNS[table])
    await conn.execute(f"INSERT INTO {table} SELECT * FROM {stage}")
    for rollup in rollups:
        await conn.execute(rollup.upsert_from(stage))


async def insert_ignoring_duplicates(
    conn: Connection, table: str, rows: Sequence[Row], mode: WriteMode, key: str
) -> None:
    """Insert rows whose ``key`` may already be stored (visitor hashes seen before)."""
    if not rows:
        return
    conflict = f" ON CONFLICT ({key}) DO NOTHING"
    if not mode.use_copy:
        await load(conn, table, rows, use_copy=False, suffix=conflict)
        return
    stage = f"stage_{table}"
    await conn.execute(f"CREATE TEMP TABLE {stage} (LIKE {table}) ON COMMIT DROP")
    await load(conn, stage, rows, use_copy=True, columns=COLUMNS[table])
    await conn.execute(f"INSERT INTO {table} SELECT * FROM {stage} ORDER BY {key}{conflict}")


async def claim_batches(
    conn: Connection, batches: Sequence[tuple[str, int, int]]
) -> set[tuple[str, int]]:
    """Record (source, seq, rows) batches; return those not seen before (to be written now)."""
    fresh: set[tuple[str, int]] = set()
    ordered = sorted(batches)
    for chunk in chunks(ordered):
        records = await conn.fetch(
            """INSERT INTO ingest_batches (source, seq, rows)
               SELECT * FROM unnest($1::text[], $2::bigint[], $3::int[])
               ON CONFLICT DO NOTHING RETURNING source, seq""",
            [b[0] for b in chunk],
            [b[1] for b in chunk],
            [b[2] for b in chunk],
        )
        fresh.update((r["source"], r["seq"]) for r in records)
    return fresh

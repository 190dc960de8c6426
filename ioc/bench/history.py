"""``ioc bench history``: planner queries from the rollups against the raw table.

Loads ``days`` of minute-level traffic for ``cameras`` cameras with two counting lines each
into a fresh PostgreSQL (plain path), generated on the server and rolled up with the very
statements the writer uses for each batch (one day per batch). Then times, best of
``repeat``, the planners' two questions through :mod:`store.history` (hourly vehicles of
all the cameras over the whole range; daily vehicles per district) and the same answers
computed from the raw table. The hourly series of every camera apart (200 x 720 rows) is
timed too, for information: it is dominated by moving 144,000 rows into Python.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from store import ALL_MIGRATIONS, LOCAL_TIMEZONE, migrate, sync_registry
from store import history as h
from store._rollups import rollups_of

from ..servers import PostgresCluster
from .synthetic import synthetic_province

logger = logging.getLogger(__name__)
_STAGE = "stage_traffic_counts"


def _progress(message: str) -> None:
    sys.stderr.write(f"[bench history] {message}\n")
    sys.stderr.flush()


async def load(conn: asyncpg.Connection, start: datetime, days: int) -> int:
    """Generate each day on the server, store it and roll it up; return the rows loaded."""
    end = start + timedelta(days=days)
    for table in ("traffic_counts", *(r.name for r in rollups_of("traffic_counts"))):
        await conn.execute("SELECT ioc_create_partitions($1, $2, $3)", table, start, end)
    loaded = 0
    for day in range(days):
        lo = start + timedelta(days=day)
        async with conn.transaction():
            await conn.execute(f"CREATE TEMP TABLE {_STAGE} (LIKE traffic_counts) ON COMMIT DROP")
            status = await conn.execute(
                f"""INSERT INTO {_STAGE} (camera_id, line_id, ts, forward, backward)
                SELECT c.id, l.value->>'id', m,
                       (extract(epoch FROM m)::bigint / 60 * 31 + length(c.id) * 17
                        + ascii(right(c.id, 1))) % 23,
                       (extract(epoch FROM m)::bigint / 60 * 13 + ascii(right(c.id, 2))) % 19
                FROM cameras c, jsonb_array_elements(c.lines) AS l,
                     generate_series($1::timestamptz, $1::timestamptz + INTERVAL '1 day'
                                     - INTERVAL '1 minute', INTERVAL '1 minute') AS m""",
                lo,
            )
            await conn.execute(f"INSERT INTO traffic_counts SELECT * FROM {_STAGE}")
            for rollup in rollups_of("traffic_counts"):
                await conn.execute(rollup.upsert_from(_STAGE))
        loaded += int(status.split()[-1])
        _progress(f"day {day + 1}/{days}: {loaded:,} rows")
    await conn.execute("VACUUM ANALYZE")
    return loaded


async def _best(repeat: int, query: Callable[[], Awaitable[int]]) -> tuple[float, int]:
    times, rows = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        rows = await query()
        times.append((time.perf_counter() - started) * 1000)
    return min(times), rows


async def measure(
    conn: asyncpg.Connection, start: datetime, days: int, repeat: int
) -> dict[str, Any]:
    end = start + timedelta(days=days)
    hourly = h.Period.of(start, end, h.Bucket.HOUR)
    daily = h.Period.of(start, end, h.Bucket.DAY)

    async def hourly_rollup() -> int:
        return len(await h.traffic_totals(conn, hourly, by=h.TrafficGrouping.PROVINCE))

    async def per_camera_rollup() -> int:
        return len(await h.traffic_totals(conn, hourly, by=h.TrafficGrouping.CAMERA))

    async def daily_rollup() -> int:
        return len(await h.traffic_totals(conn, daily, by=h.TrafficGrouping.DISTRICT))

    async def hourly_raw() -> int:
        rows = await conn.fetch(
            """SELECT date_trunc('hour', t.ts) AS bucket,
                      sum(t.forward + t.backward)::bigint AS vehicles
               FROM traffic_counts t JOIN cameras c ON c.id = t.camera_id
               WHERE t.ts >= $1 AND t.ts < $2 GROUP BY 1""",
            hourly.start,
            hourly.end,
        )
        return len(rows)

    async def daily_raw() -> int:
        rows = await conn.fetch(
            f"""SELECT c.district_id, date_trunc('day', t.ts, '{LOCAL_TIMEZONE}') AS bucket,
                       sum(t.forward + t.backward)::bigint AS vehicles
                FROM traffic_counts t JOIN cameras c ON c.id = t.camera_id
                WHERE t.ts >= $1 AND t.ts < $2 GROUP BY 1, 2""",
            daily.start,
            daily.end,
        )
        return len(rows)

    results: dict[str, Any] = {}
    for name, query, times in (
        ("hourly_rollup", hourly_rollup, repeat),
        ("daily_rollup", daily_rollup, repeat),
        ("per_camera_hourly_rollup", per_camera_rollup, max(1, repeat // 3)),
        ("hourly_raw", hourly_raw, max(1, repeat // 3)),
        ("daily_raw", daily_raw, max(1, repeat // 3)),
    ):
        ms, rows = await _best(times, query)
        results[f"{name}_ms"] = round(ms, 1)
        results[f"{name}_rows"] = rows
        _progress(f"{name}: {ms:,.1f} ms, {rows:,} rows")
    return results


async def run(cameras: int, days: int, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ioc-bench-history-") as tmp:
        # A throw-away cluster: fsync off only speeds the load, not the timed queries.
        cluster = PostgresCluster(Path(tmp) / "postgres", durable=False)
        _progress("starting PostgreSQL")
        await asyncio.to_thread(cluster.start)
        try:
            conn = await asyncpg.connect(cluster.url)
            try:
                await migrate(conn, ALL_MIGRATIONS)
                await sync_registry(conn, synthetic_province(cameras=cameras))
                today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
                start = today - timedelta(days=days)
                loaded = await load(conn, start, days)
                timings = await measure(conn, start, days, repeat)
            finally:
                await conn.close()
        finally:
            await asyncio.to_thread(cluster.stop)
    rollup_ms = timings["hourly_rollup_ms"] + timings["daily_rollup_ms"]
    raw_ms = timings["hourly_raw_ms"] + timings["daily_raw_ms"]
    return {
        "rollup_ms": round(rollup_ms, 1),
        "raw_ms": round(raw_ms, 1),
        "ratio": round(raw_ms / rollup_ms, 1),
        "rows_loaded": loaded,
        **timings,
        "cameras": cameras,
        "days": days,
    }


def main(cameras: int, days: int, repeat: int) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    result = asyncio.run(run(cameras, days, repeat))
    sys.stdout.write(json.dumps(result) + "\n")

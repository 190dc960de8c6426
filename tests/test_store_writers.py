"""The writers on the plain path: idempotent batches, rollups equal to the raw rows they
summarise (COPY and unnest alike), visitor hashes, device states."""

from __future__ import annotations

import asyncpg
import pytest

from ioc.bench.synthetic import synthetic_province, telemetry_stream, traffic_stream
from protocol import CameraState, EdgeState
from store import (
    ROLLUPS,
    Flavor,
    StoreConfig,
    WriteMode,
    sync_registry,
    visitor_key,
    write_camera_states,
    write_edge_states,
    write_telemetry,
    write_traffic,
)

pytestmark = [pytest.mark.postgres]
START = 1_767_200_400.0  # 2025-12-31 17:00 UTC, midnight local: day buckets get exercised


async def _rollup_mismatches(db: asyncpg.Connection) -> dict[str, int]:
    """Rows where a rollup differs from the aggregate of its raw table, per rollup."""
    mismatches = {}
    for r in ROLLUPS:
        fresh = r.upsert_from(r.source).split(") AS batch")[0].split("SELECT * FROM (", 1)[1]
        cols = ", ".join(["bucket", *r.keys, *(m.column for m in r.measures)])
        count = await db.fetchval(
            f"""SELECT count(*) FROM (
                    (SELECT {cols} FROM ({fresh}) a EXCEPT SELECT {cols} FROM {r.name})
                    UNION ALL
                    (SELECT {cols} FROM {r.name} EXCEPT SELECT {cols} FROM ({fresh}) b)) d"""
        )
        mismatches[r.name] = count
    return mismatches


@pytest.mark.parametrize("use_copy", [True, False], ids=["copy", "unnest"])
async def test_rollups_equal_their_raw_rows_across_many_batches(
    db: asyncpg.Connection, use_copy: bool
) -> None:
    mode = WriteMode(Flavor.PLAIN, use_copy)
    province = synthetic_province(cameras=8, access_points=5)
    traffic = list(traffic_stream(province, START, 150, seconds=20))
    telemetry = list(telemetry_stream(province, START, 30, visitors_per_sample=1.5))
    for i in range(0, len(traffic), 97):  # batches that straddle buckets
        await write_traffic(db, traffic[i : i + 97], mode)
    for i in range(0, len(telemetry), 7):
        await write_telemetry(db, telemetry[i : i + 7], mode)
    assert await _rollup_mismatches(db) == {r.name: 0 for r in ROLLUPS}
    lines = sum(len(m.line_counts) for m in traffic)
    assert await db.fetchval("SELECT count(*) FROM traffic_counts") == lines
    assert await db.fetchval("SELECT count(*) FROM traffic_intervals") == len(traffic)
    samples = sum(len(b.samples) for b in telemetry)
    assert await db.fetchval("SELECT count(*) FROM wifi_samples") == samples

    # Everything again, as a broker would redeliver it: nothing changes.
    again = await write_traffic(db, traffic[:200], mode)
    assert (again.batches, again.duplicate_batches, again.rows) == (0, 200, 0)
    assert (await write_telemetry(db, telemetry, mode)).rows == 0
    assert await db.fetchval("SELECT count(*) FROM wifi_samples") == samples
    assert await _rollup_mismatches(db) == {r.name: 0 for r in ROLLUPS}


async def test_visitors_are_kept_once_per_ap_and_hour_and_ap_status_is_the_latest(
    db: asyncpg.Connection,
) -> None:
    mode = WriteMode(Flavor.PLAIN, True)
    province = synthetic_province(cameras=1, access_points=3)
    batches = list(telemetry_stream(province, START, 40, visitors_per_sample=2))
    for i in range(0, len(batches), 10):
        await write_telemetry(db, batches[i : i + 10], mode)
    expected = {
        (int(s.ts // 3600), b.ap_id, visitor_key(v))
        for b in batches
        for s in b.samples
        for v in s.visitors
    }
    rows = await db.fetch("SELECT hour, ap_id, visitor FROM wifi_visitors")
    assert {(int(r["hour"].timestamp()) // 3600, r["ap_id"], r["visitor"]) for r in rows} == (
        expected
    )
    for ap in province.access_points:
        last = max((s for b in batches if b.ap_id == ap.id for s in b.samples), key=lambda s: s.ts)
        row = await db.fetchrow("SELECT * FROM ap_status WHERE ap_id = $1", ap.id)
        assert row is not None
        assert (row["clients"], row["up"], row["reported_at"].timestamp()) == (
            last.clients,
            last.up,
            last.ts,
        )


async def test_device_status_follows_arrival_order_and_history_keeps_each_report(
    db: asyncpg.Connection, database: StoreConfig
) -> None:
    birth = EdgeState(agent_id="edge-1", status="online", reported_at=START + 5)
    # The last will was composed at connect time, before the birth: older, yet it wins.
    will = EdgeState(agent_id="edge-1", status="offline", reported_at=START + 4)
    await write_edge_states(db, [birth, will, will])
    row = await db.fetchrow("SELECT status FROM edge_status WHERE agent_id = 'edge-1'")
    assert row is not None
    assert row["status"] == "offline"
    assert await db.fetchval("SELECT count(*) FROM edge_states") == 2

    states = [
        CameraState(camera_id="cam-1", status="online", fps=5, reported_at=START + i)
        for i in range(3)
    ] + [
        CameraState(
            camera_id="cam-1",
            status="degraded",
            fps=1.5,
            reported_at=START + 3,
            last_frame_at=START + 2.5,
            dropped_frames=7,
            detail="low light",
        )
    ]
    await write_camera_states(db, states)
    await write_camera_states(db, states[-1:])  # retained message seen again
    status = await db.fetchrow("SELECT * FROM camera_status WHERE camera_id = 'cam-1'")
    assert status is not None
    assert (status["status"], status["fps"], status["dropped_frames"], status["detail"]) == (
        "degraded",
        1.5,
        7,
        "low light",
    )
    assert await db.fetchval("SELECT count(*) FROM camera_states") == 4


async def test_registry_sync_with_synthetic_province(db: asyncpg.Connection) -> None:
    province = synthetic_province(cameras=10, access_points=4)
    await sync_registry(db, province)
    assert await db.fetchval("SELECT count(*) FROM cameras WHERE road IS NOT NULL") == 8

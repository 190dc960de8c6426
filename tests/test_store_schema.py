"""Migrations on both paths: the plain path runs here; the TimescaleDB path is rendered and
parsed by PostgreSQL's own parser (pglast), and runs for real in test_timescale.py."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pglast
import pytest

from store import ALL_MIGRATIONS, ROLLUPS, Flavor, StoreConfig, applied_flavor, maintain, migrate
from store.schema.timeseries import TIME_TABLES

pytestmark = [pytest.mark.postgres]


def _timescale_sql() -> list[str]:
    return [s for m in ALL_MIGRATIONS for s in m.statements(Flavor.TIMESCALE)]


def test_timescale_ddl_is_valid_sql() -> None:
    statements = [stmt for sql in _timescale_sql() for stmt in pglast.split(sql)]
    assert statements
    for stmt in statements:
        pglast.parse_sql(stmt)
    text = "\n".join(statements)
    for table in TIME_TABLES:
        assert f"create_hypertable('{table.name}'" in text
        if table.retain:
            assert f"add_retention_policy('{table.name}'" in text
    for rollup in ROLLUPS:
        assert f"CREATE MATERIALIZED VIEW IF NOT EXISTS {rollup.name}" in text
        assert f"add_continuous_aggregate_policy('{rollup.name}'" in text
    assert "add_compression_policy('wifi_samples'" in text
    assert "PARTITION BY" not in text


def test_plain_ddl_is_valid_sql_and_has_no_timescale_calls() -> None:
    sql = [s for m in ALL_MIGRATIONS for s in m.statements(Flavor.PLAIN)]
    for stmt in (stmt for s in sql for stmt in pglast.split(s)):
        pglast.parse_sql(stmt)
    text = "\n".join(sql)
    assert "timescaledb" not in text
    assert "time_bucket" not in text


def test_rollup_is_one_definition_for_both_paths() -> None:
    for rollup in ROLLUPS:
        view = pglast.parse_sql(rollup.continuous_aggregate())
        upsert = pglast.parse_sql(rollup.upsert_from(f"stage_{rollup.source}"))
        assert view
        assert upsert
        for measure in rollup.measures:
            assert measure.aggregate in rollup.continuous_aggregate()
            assert measure.aggregate in rollup.upsert_from("x")


async def test_migrations_take_the_plain_path_and_are_idempotent(
    db: asyncpg.Connection,
) -> None:
    assert await applied_flavor(db) is Flavor.PLAIN
    assert await migrate(db, ALL_MIGRATIONS) == []
    partitioned = {
        r["relname"] for r in await db.fetch("SELECT relname FROM pg_class WHERE relkind = 'p'")
    }
    assert {t.name for t in TIME_TABLES} | {r.name for r in ROLLUPS} <= partitioned
    brin = await db.fetchval(
        """SELECT count(*) FROM pg_indexes
           WHERE tablename = 'wifi_samples' AND indexdef ILIKE '%USING brin%'"""
    )
    assert brin == 1


async def _partitions(db: asyncpg.Connection, parent: str) -> list[str]:
    rows = await db.fetch(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = $1::regclass ORDER BY 1""",
        parent,
    )
    return [r["relname"] for r in rows]


async def test_maintenance_creates_ahead_moves_early_rows_and_drops_expired(
    db: asyncpg.Connection,
) -> None:
    at = datetime(2031, 3, 10, 12, tzinfo=UTC)
    # A row written before its partition existed waits in the DEFAULT partition.
    await db.execute(
        "INSERT INTO wifi_samples VALUES ('ap-1', $1, 3, 0, 0, 0.1, true, 0)",
        at + timedelta(days=2),
    )
    report = await maintain(db, at=at)
    assert report is not None
    assert report.partitions_created > 0
    parts = await _partitions(db, "wifi_samples")
    for day in ("20310309", "20310310", "20310313"):
        assert f"wifi_samples_p{day}" in parts
    assert await db.fetchval("SELECT count(*) FROM wifi_samples_default") == 0
    assert await db.fetchval("SELECT count(*) FROM wifi_samples_p20310312") == 1
    assert "traffic_1h_p20310301" in await _partitions(db, "traffic_1h")

    # 40 days on, the 35-day retention drops those days (and the row with them).
    later = await maintain(db, at=at + timedelta(days=40))
    assert later is not None
    assert later.partitions_dropped > 0
    parts = await _partitions(db, "wifi_samples")
    assert "wifi_samples_p20310312" not in parts
    assert "wifi_samples_p20310418" in parts
    assert await db.fetchval("SELECT count(*) FROM wifi_samples") == 0
    # Rollups without retention keep their partitions.
    assert "traffic_1h_p20310301" in await _partitions(db, "traffic_1h")


async def test_expired_batch_ids_are_forgotten(db: asyncpg.Connection) -> None:
    await db.execute(
        """INSERT INTO ingest_batches (source, seq, rows, received_at)
           VALUES ('wifi:a', 1, 1, now() - INTERVAL '30 days'), ('wifi:a', 2, 1, now())"""
    )
    report = await maintain(db)
    assert report is not None
    assert report.batch_ids_forgotten == 1
    assert await db.fetchval("SELECT array_agg(seq) FROM ingest_batches") == [2]


async def test_store_maintain_command(database: StoreConfig) -> None:
    env = {
        **os.environ,
        "IOC_MQTT_URL": "mqtt://127.0.0.1:1",  # not contacted by this command
        "IOC_DATABASE_URL": database.url,
        "IOC_PROVINCE": str(Path(__file__).parent / "data" / "clips.yaml"),
        "IOC_LOG_LEVEL": "WARNING",
    }
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "ioc", "store", "maintain"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["flavor"] == "plain"
    assert report["partitions_created"] >= 0

"""The TimescaleDB path for real: PostgreSQL 17.5 + TimescaleDB 2.23 (PGlite, WebAssembly)
over the wire. Migrations take the Timescale path (read back from TimescaleDB's own
information views), the writers work without COPY and without a statement cache, the
history queries run, and every planner query answers exactly as on plain PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from _pglite import PgliteServer

from ingest import IngestService
from ioc.bench.synthetic import synthetic_province, telemetry_stream, traffic_stream
from protocol import (
    TELEMETRY,
    TRAFFIC,
    UNBOUNDED,
    MqttEndpoint,
    Province,
    TelemetryBatch,
    Topics,
    TrafficMetrics,
)
from store import (
    ALL_MIGRATIONS,
    ROLLUPS,
    Flavor,
    StoreConfig,
    WriteMode,
    applied_flavor,
    connect,
    migrate,
    sync_registry,
    write_telemetry,
    write_traffic,
)
from store import history as h
from store.schema.timeseries import TIME_TABLES

pytestmark = [pytest.mark.postgres, pytest.mark.timescale, pytest.mark.mosquitto]
# Recent data: nothing here meets a retention policy.
START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=30)


async def _migrate(store: StoreConfig) -> list[int]:
    conn = await connect(store)
    try:
        return await migrate(conn, ALL_MIGRATIONS)
    finally:
        conn.terminate()


@pytest.fixture(scope="module")
def pglite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgliteServer]:
    server = PgliteServer(tmp_path_factory.mktemp("pglite") / "server.log")
    server.start()
    asyncio.run(_migrate(server.store))
    yield server
    crashed = server.crashed
    server.stop()
    if crashed:
        pytest.fail(f"the PGlite server died during the tests:\n{server.output()}")


@pytest.fixture
async def ts(pglite: PgliteServer) -> AsyncIterator[asyncpg.Connection]:
    if pglite.crashed:
        pytest.fail(f"the PGlite server died in an earlier test:\n{pglite.output()}")
    conn = await connect(pglite.store)
    yield conn
    conn.terminate()  # PGlite never answers a connection's goodbye


async def test_migrations_take_the_timescale_path(ts: asyncpg.Connection) -> None:
    assert await applied_flavor(ts) is Flavor.TIMESCALE
    assert await migrate(ts, ALL_MIGRATIONS) == []  # idempotent
    hypertables = {
        r["hypertable_name"]: r["compression_enabled"]
        for r in await ts.fetch(
            "SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables"
        )
    }
    for table in TIME_TABLES:
        assert table.name in hypertables
        assert hypertables[table.name] is bool(table.segment_by)
    views = {
        r["view_name"]: r["materialized_only"]
        for r in await ts.fetch(
            "SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates"
        )
    }
    assert views == {r.name: False for r in ROLLUPS}  # real-time: as current as the plain path
    jobs = {
        (r["proc_name"], r["hypertable_name"])
        for r in await ts.fetch(
            "SELECT proc_name, hypertable_name FROM timescaledb_information.jobs"
        )
    }
    for table in TIME_TABLES:
        if table.retain:
            assert ("policy_retention", table.name) in jobs
        if table.segment_by:
            assert ("policy_compression", table.name) in jobs
    for rollup in ROLLUPS:
        assert ("policy_refresh_continuous_aggregate", rollup.name) in jobs
    assert ("policy_retention", "traffic_1m") in jobs
    # The plain path's machinery is absent.
    assert await ts.fetchval("SELECT to_regclass('partition_policies')") is None


async def _load(
    conn: asyncpg.Connection,
    mode: WriteMode,
    province: Province,
    traffic: list[TrafficMetrics],
    telemetry: list[TelemetryBatch],
) -> None:
    await sync_registry(conn, province)
    for i in range(0, len(traffic), 300):
        await write_traffic(conn, traffic[i : i + 300], mode)
    for i in range(0, len(telemetry), 40):
        await write_telemetry(conn, telemetry[i : i + 40], mode)


async def _refresh(conn: asyncpg.Connection) -> None:
    """Background jobs do not run in PGlite: materialise the aggregates by hand."""
    for rollup in ROLLUPS:
        await conn.execute(f"CALL refresh_continuous_aggregate('{rollup.name}', NULL, NULL)")


Query = Callable[[asyncpg.Connection], Awaitable[list[Any]]]


def _planner_queries() -> dict[str, Query]:
    """Every planner question, over a span with data, gaps and a local midnight."""
    end = START + timedelta(hours=30)
    hour = h.Period.of(START, end, h.Bucket.HOUR)
    day = h.Period.of(START, end, h.Bucket.DAY)
    minute = h.Period.of(START + timedelta(hours=2), START + timedelta(hours=4), "minute")
    queries: dict[str, Query] = {}
    for p in (minute, hour, day):
        w = p.bucket.value
        queries[f"counts/{w}"] = partial(h.traffic_counts, period=p)
        queries[f"counts/{w}/one"] = partial(h.traffic_counts, period=p, cameras=["cam-003"])
        for g in h.TrafficGrouping:
            queries[f"totals/{w}/{g}"] = partial(h.traffic_totals, period=p, by=g)
        queries[f"congestion/{w}"] = partial(h.congestion_minutes, period=p)
        if p.bucket is h.Bucket.MINUTE:
            queries["speeds"] = partial(h.traffic_speeds, period=p)
        for r in (h.Ranking.CAMERAS, h.Ranking.ROADS, h.Ranking.DISTRICTS):
            queries[f"top/{w}/{r}"] = partial(h.busiest, period=p, what=r, limit=5)
    for p in (hour, day):
        w = p.bucket.value
        for wg in h.WifiGrouping:
            queries[f"wifi/{w}/{wg}"] = partial(h.wifi_usage, period=p, by=wg)
            queries[f"visitors/{w}/{wg}"] = partial(h.distinct_visitors, period=p, by=wg)
        for r in (h.Ranking.ACCESS_POINTS, h.Ranking.SITES):
            queries[f"top/{w}/{r}"] = partial(h.busiest, period=p, what=r, limit=5)
    return queries


async def _answers(conn: asyncpg.Connection) -> dict[str, list[dict[str, Any]]]:
    return {
        name: [dataclasses.asdict(row) for row in await query(conn)]
        for name, query in _planner_queries().items()
    }


async def test_plain_postgresql_and_timescaledb_give_identical_answers(
    ts: asyncpg.Connection, db: asyncpg.Connection
) -> None:
    province = synthetic_province(cameras=9, access_points=6, districts=3, sites=3)
    quiet = province.cameras[-1].id  # registered, never reports: zeros on both paths
    traffic = [
        m
        for m in traffic_stream(province, START.timestamp() + 1800, 24 * 12, seconds=300)
        if m.camera_id != quiet
    ]
    telemetry = list(
        telemetry_stream(province, START.timestamp() + 3600, 80, samples_per_batch=6, period=60)
    )
    await _load(db, WriteMode(Flavor.PLAIN, use_copy=True), province, traffic, telemetry)
    await _load(ts, WriteMode(Flavor.TIMESCALE, use_copy=False), province, traffic, telemetry)

    plain = await _answers(db)
    assert sum(1 for rows in plain.values() if rows) == len(plain)  # every query has rows
    assert sum(r["vehicles"] for r in plain["totals/day/province"]) == sum(
        c.forward + c.backward for m in traffic for c in m.line_counts.values()
    )
    realtime = await _answers(ts)  # nothing materialised yet: real-time aggregation
    for name in plain:
        assert realtime[name] == plain[name], name
    await _refresh(ts)
    materialised = await _answers(ts)
    for name in plain:
        assert materialised[name] == plain[name], name
    assert await ts.fetchval("SELECT count(*) FROM _timescaledb_catalog.hypertable") > 0


async def test_compression_keeps_answers(ts: asyncpg.Connection) -> None:
    """Chunks compressed by hand (the policy's work) still answer the history queries."""
    before = await _answers(ts)
    chunks = await ts.fetch(
        """SELECT format('%I.%I', chunk_schema, chunk_name) AS chunk
           FROM timescaledb_information.chunks
           WHERE hypertable_name = 'traffic_counts' AND NOT is_compressed"""
    )
    assert chunks, "the differential test loads data first"
    for c in chunks:
        await ts.execute("SELECT compress_chunk($1::regclass)", c["chunk"])
    assert await ts.fetchval(
        """SELECT bool_and(is_compressed) FROM timescaledb_information.chunks
           WHERE hypertable_name = 'traffic_counts'"""
    )
    assert await _answers(ts) == before


def test_server_script_is_present() -> None:
    assert (Path(__file__).parent / "pglite" / "package-lock.json").is_file()


async def test_ingest_service_writes_through_the_engine_settings(
    ts: asyncpg.Connection, pglite: PgliteServer, mqtt: MqttEndpoint, topics: Topics
) -> None:
    """The service as production runs it behind PgBouncer or on such an engine: no
    statement cache, no COPY, one connection shared by its writers."""
    province = synthetic_province(cameras=2, access_points=3)
    later = START + timedelta(days=2)
    # Sequence numbers of their own: the differential test stored these devices' first ones.
    batches = [
        msgspec.structs.replace(b, seq=b.seq + 10_000)
        for b in telemetry_stream(province, later.timestamp(), 4, samples_per_batch=30)
    ]
    metrics = [
        msgspec.structs.replace(m, seq=m.seq + 10_000)
        for m in traffic_stream(province, later.timestamp(), 5)
    ]
    ts.terminate()  # the engine takes one connection at a time: the service's
    async with IngestService(
        mqtt, pglite.store, topics=topics, identifier="ingest-pglite", time_window=UNBOUNDED
    ) as ingest:
        await ingest.wait_until_subscribed()
        async with mqtt.client("publisher-pglite") as client:
            for b in batches:
                await client.publish(topics.telemetry(b.ap_id), TELEMETRY.encode(b), qos=1)
            for m in metrics:
                await client.publish(topics.traffic(m.camera_id), TRAFFIC.encode(m), qos=1)
            await client.publish(topics.telemetry("ap-x"), b"not json", qos=1)
        await asyncio.wait_for(ingest.wait_for_messages(len(batches) + len(metrics) + 1), 60)
    conn = await connect(pglite.store)
    try:
        lo, hi = later, later + timedelta(days=1)
        samples = await conn.fetchval(
            "SELECT count(*) FROM wifi_samples WHERE ts >= $1 AND ts < $2", lo, hi
        )
        assert samples == sum(len(b.samples) for b in batches)
        lines = await conn.fetchval(
            "SELECT count(*) FROM traffic_counts WHERE ts >= $1 AND ts < $2", lo, hi
        )
        assert lines == sum(len(m.line_counts) for m in metrics)
        assert await conn.fetchval("SELECT count(*) FROM dead_letters WHERE topic LIKE '%ap-x%'")
    finally:
        conn.terminate()

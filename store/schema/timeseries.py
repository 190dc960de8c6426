"""Time-series tables: Wi-Fi telemetry and visitors, traffic metrics, camera and edge health
(versions 100-199), with both store paths' DDL side by side.

TimescaleDB: hypertables, compression and retention policies, continuous aggregates.
Plain PostgreSQL: range partitions created ahead and dropped for retention by
``ioc_maintain_partitions()`` (see :mod:`store.schema.partitions`), BRIN on time, and rollup
tables the writer keeps current (:mod:`store._rollups`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .._migrations import Flavor, Migration
from .._rollups import ROLLUPS, Rollup
from .partitions import PARTITION_FUNCTIONS


@dataclass(frozen=True, slots=True)
class TimeTable:
    """A table partitioned (plain) or chunked (TimescaleDB) by ``time_column``."""

    name: str
    time_column: str
    step: str
    """Partition or chunk width: day, week or month."""
    retain: str | None
    """Rows older than this are dropped; None keeps them."""
    segment_by: str | None = None
    """Compression: the column rows are grouped by (TimescaleDB); None: not compressed."""
    compress_after: str = "7 days"


RAW_TABLES: tuple[TimeTable, ...] = (
    TimeTable("wifi_samples", "ts", "day", "35 days", "ap_id"),
    # Pseudonymous visitor hashes: personal data under Decree 13/2023, kept only briefly.
    TimeTable("wifi_visitors", "hour", "day", "35 days"),
    TimeTable("traffic_counts", "ts", "day", "90 days", "camera_id"),
    TimeTable("traffic_intervals", "ts", "day", "90 days", "camera_id"),
    TimeTable("zone_occupancy", "ts", "day", "35 days", "camera_id"),
    TimeTable("camera_states", "reported_at", "week", "180 days", "camera_id", "14 days"),
    TimeTable("edge_states", "reported_at", "month", "365 days", "agent_id", "30 days"),
)
SPEED_TABLE = TimeTable("traffic_speeds", "ts", "day", "90 days", "camera_id")
"""Vehicles timed by speed gates per camera and interval (migration 111)."""
TIME_TABLES: tuple[TimeTable, ...] = (*RAW_TABLES, SPEED_TABLE)
"""Every table partitioned (plain) or chunked (TimescaleDB) by time, whichever migration
made it (RAW_TABLES are migration 100's)."""
ROLLUP_RETENTION = {
    "traffic_1m": "180 days",
    "congestion_1m": "730 days",
    "traffic_1h": None,
    "traffic_1d": None,
    "vehicles_1h": None,
    "vehicles_1d": None,
    "wifi_1h": None,
    "wifi_1d": None,
}
ROLLUP_STEP = "month"
INGEST_BATCH_RETENTION = "14 days"
"""Batch ids are kept long enough to recognise any redelivery (MQTT sessions last a day)."""

_STEP_INTERVAL = {"day": "1 day", "week": "7 days", "month": "1 month"}


def _interval(step: str) -> str:
    return _STEP_INTERVAL[step]


def _time_table(table: TimeTable, flavor: Flavor) -> str:
    """Turn a table created ``PARTITION BY RANGE`` (plain) or plainly (Timescale) into a
    partitioned table or a hypertable with its policies."""
    t, col = table.name, table.time_column
    if flavor is Flavor.TIMESCALE:
        sql = [
            f"SELECT create_hypertable('{t}', by_range('{col}', "
            f"INTERVAL '{_interval(table.step)}'));"
        ]
        if table.segment_by:
            sql += [
                f"ALTER TABLE {t} SET (timescaledb.compress, "
                f"timescaledb.compress_segmentby = '{table.segment_by}', "
                f"timescaledb.compress_orderby = '{col}');",
                f"SELECT add_compression_policy('{t}', INTERVAL '{table.compress_after}');",
            ]
        if table.retain:
            sql.append(f"SELECT add_retention_policy('{t}', INTERVAL '{table.retain}');")
        return "\n".join(sql)
    retain = f"INTERVAL '{table.retain}'" if table.retain else "NULL"
    return (
        f"CREATE TABLE {t}_default PARTITION OF {t} DEFAULT;\n"
        f"CREATE INDEX {t}_{col}_brin ON {t} USING brin ({col});\n"
        "INSERT INTO partition_policies (parent, time_column, step, retain)"
        f" VALUES ('{t}', '{col}', '{table.step}', {retain});"
    )


def _partitioned(flavor: Flavor, time_column: str) -> str:
    return "" if flavor is Flavor.TIMESCALE else f" PARTITION BY RANGE ({time_column})"


def _v100_timeseries(flavor: Flavor) -> str:
    p = {t.name: _partitioned(flavor, t.time_column) for t in RAW_TABLES}
    plain = flavor is Flavor.PLAIN
    tables = f"""
    {PARTITION_FUNCTIONS if plain else ""}
    -- (source, seq) of every batch stored: a redelivered batch is recognised and skipped.
    CREATE TABLE ingest_batches (
        source text NOT NULL,
        seq bigint NOT NULL,
        rows integer NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (source, seq)
    );
    CREATE INDEX ingest_batches_received ON ingest_batches USING brin (received_at);

    CREATE TABLE wifi_samples (
        ap_id text NOT NULL,
        ts timestamptz NOT NULL,
        clients integer NOT NULL,
        rx_bytes bigint NOT NULL,
        tx_bytes bigint NOT NULL,
        channel_util real NOT NULL,
        up boolean NOT NULL,
        visitors integer NOT NULL
    ){p["wifi_samples"]};
    -- No per-AP b-tree: it cost more than half of each insert. History reads the rollups;
    -- raw reads prune to a day's partition (chunk) and a time range (BRIN / chunk index).

    -- One row per salted, daily-rotated visitor hash per AP and hour; never a MAC.
    CREATE TABLE wifi_visitors (
        hour timestamptz NOT NULL,
        ap_id text NOT NULL,
        visitor bigint NOT NULL,
        PRIMARY KEY (ap_id, hour, visitor)
    ){p["wifi_visitors"]};

    CREATE TABLE traffic_counts (
        camera_id text NOT NULL,
        line_id text NOT NULL,
        ts timestamptz NOT NULL,
        forward integer NOT NULL,
        backward integer NOT NULL
    ){p["traffic_counts"]};
    CREATE INDEX traffic_counts_camera_ts ON traffic_counts (camera_id, ts);

    CREATE TABLE traffic_intervals (
        camera_id text NOT NULL,
        ts timestamptz NOT NULL,
        seconds double precision NOT NULL,
        frames integer NOT NULL,
        congested_s double precision NOT NULL
    ){p["traffic_intervals"]};
    CREATE INDEX traffic_intervals_camera_ts ON traffic_intervals (camera_id, ts);

    CREATE TABLE zone_occupancy (
        camera_id text NOT NULL,
        zone_id text NOT NULL,
        ts timestamptz NOT NULL,
        occupancy real NOT NULL,
        congested boolean NOT NULL
    ){p["zone_occupancy"]};

    CREATE TABLE camera_states (
        camera_id text NOT NULL,
        reported_at timestamptz NOT NULL,
        status text NOT NULL,
        fps real NOT NULL,
        last_frame_at timestamptz,
        dropped_frames bigint NOT NULL,
        detail text,
        PRIMARY KEY (camera_id, reported_at, status)
    ){p["camera_states"]};

    CREATE TABLE edge_states (
        agent_id text NOT NULL,
        reported_at timestamptz NOT NULL,
        status text NOT NULL,
        version text NOT NULL,
        cameras text[] NOT NULL,
        access_points text[] NOT NULL,
        PRIMARY KEY (agent_id, reported_at, status)
    ){p["edge_states"]};

    -- Latest state per device, for the console (one row each, newest report wins).
    CREATE TABLE camera_status (
        camera_id text PRIMARY KEY,
        status text NOT NULL,
        fps real NOT NULL,
        last_frame_at timestamptz,
        reported_at timestamptz NOT NULL,
        dropped_frames bigint NOT NULL,
        detail text
    );
    CREATE TABLE edge_status (
        agent_id text PRIMARY KEY,
        status text NOT NULL,
        reported_at timestamptz NOT NULL
    );
    CREATE TABLE ap_status (
        ap_id text PRIMARY KEY,
        up boolean NOT NULL,
        clients integer NOT NULL,
        channel_util real NOT NULL,
        reported_at timestamptz NOT NULL
    );
    """
    return tables + "\n".join(_time_table(t, flavor) for t in RAW_TABLES)


def _rollup_table(r: Rollup) -> str:
    retain = ROLLUP_RETENTION[r.name]
    return (
        f"{r.table()};\n"
        f"CREATE TABLE {r.name}_default PARTITION OF {r.name} DEFAULT;\n"
        "INSERT INTO partition_policies (parent, time_column, step, retain)"
        f" VALUES ('{r.name}', 'bucket', '{ROLLUP_STEP}', "
        f"{f'INTERVAL {chr(39)}{retain}{chr(39)}' if retain else 'NULL'});"
    )


def _v110_rollups(flavor: Flavor) -> list[str]:
    if flavor is Flavor.PLAIN:
        return [
            "\n".join(_rollup_table(r) for r in ROLLUPS),
            "SELECT count(*) FROM ioc_maintain_partitions()",
        ]
    statements = []
    for r in ROLLUPS:
        statements += [r.continuous_aggregate(), r.refresh_policy()]
        retain = ROLLUP_RETENTION[r.name]
        if retain:
            statements.append(
                f"SELECT add_retention_policy('{r.name}', INTERVAL '{retain}', "
                "if_not_exists => true)"
            )
    return statements


def _v111_traffic_speeds(flavor: Flavor) -> list[str]:
    table = f"""
    -- Per camera and traffic-metrics interval: the vehicles its speed gates timed, their
    -- mean and 85th-percentile speed (km/h). Intervals that timed nobody have no row.
    CREATE TABLE traffic_speeds (
        camera_id text NOT NULL,
        ts timestamptz NOT NULL,
        seconds double precision NOT NULL,
        vehicles integer NOT NULL,
        mean_kmh real NOT NULL,
        p85_kmh real NOT NULL
    ){_partitioned(flavor, SPEED_TABLE.time_column)};
    CREATE INDEX traffic_speeds_camera_ts ON traffic_speeds (camera_id, ts);
    {_time_table(SPEED_TABLE, flavor)}
    """
    if flavor is Flavor.TIMESCALE:
        return [table]
    return [table, "SELECT count(*) FROM ioc_maintain_partitions()"]


MIGRATIONS = [
    Migration(100, "time-series tables", _v100_timeseries),
    Migration(
        110,
        "rollups",
        _v110_rollups,
        outside_transaction=frozenset({Flavor.TIMESCALE}),
    ),
    Migration(111, "traffic speeds per interval", _v111_traffic_speeds),
]

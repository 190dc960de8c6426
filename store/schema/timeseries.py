"""Time-series tables: Wi-Fi telemetry and traffic metrics (versions 100-199)."""

from __future__ import annotations

from .._migrations import Flavor, Migration


def _time_partitioned(table: str, time_column: str, flavor: Flavor, chunk: str) -> str:
    """Make ``table`` a hypertable (TimescaleDB) or give it a default partition (plain)."""
    if flavor is Flavor.TIMESCALE:
        return (
            f"SELECT create_hypertable('{table}', by_range('{time_column}', INTERVAL '{chunk}'));"
        )
    return (
        f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT;\n"
        f"CREATE INDEX {table}_{time_column}_brin ON {table} USING brin ({time_column});"
    )


def _partitioned(flavor: Flavor, time_column: str) -> str:
    return "" if flavor is Flavor.TIMESCALE else f"PARTITION BY RANGE ({time_column})"


def _v100_telemetry(flavor: Flavor) -> str:
    return f"""
    CREATE TABLE ingest_batches (
        source text NOT NULL,
        seq bigint NOT NULL,
        rows integer NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (source, seq)
    );
    CREATE TABLE wifi_samples (
        ap_id text NOT NULL,
        ts timestamptz NOT NULL,
        clients integer NOT NULL,
        rx_bytes bigint NOT NULL,
        tx_bytes bigint NOT NULL,
        channel_util real NOT NULL,
        up boolean NOT NULL,
        visitors integer NOT NULL
    ) {_partitioned(flavor, "ts")};
    {_time_partitioned("wifi_samples", "ts", flavor, "1 day")}
    CREATE INDEX wifi_samples_ap_ts ON wifi_samples (ap_id, ts);
    """


MIGRATIONS = [Migration(100, "wifi telemetry", _v100_telemetry)]

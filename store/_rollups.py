"""Rollups of the time-series tables, defined once and rendered for both store paths.

A :class:`Rollup` names its source, its time bucket, its keys and its measures. From that
one definition come the TimescaleDB continuous aggregate, the plain-PostgreSQL rollup table,
and the upsert that keeps that table current from each batch the writer stores (never a
full refresh). Every measure is a sum, a count or a max, so a batch's partial aggregate
merges into a stored row exactly; both paths then expose the same relation with the same
columns, and one query layer reads either.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ._migrations import Flavor

LOCAL_TIMEZONE = "Asia/Ho_Chi_Minh"
"""Day buckets are local days here (the province's zone; visitor hashes rotate at its
midnight). Minute and hour buckets are the same in every whole-hour zone."""


class Width(StrEnum):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"


class Merge(StrEnum):
    SUM = "sum"
    MAX = "max"


@dataclass(frozen=True, slots=True)
class Measure:
    column: str
    aggregate: str
    """SQL aggregate over the source rows, e.g. ``sum(forward)``; its type is the column's."""
    sql_type: str
    merge: Merge = Merge.SUM


@dataclass(frozen=True, slots=True)
class Rollup:
    name: str
    source: str
    time_column: str
    width: Width
    keys: tuple[str, ...]
    measures: tuple[Measure, ...]
    where: str | None = None
    refresh_lag: str = "1 minute"
    """How far behind now the refresh policy stops (TimescaleDB)."""
    refresh_window: str = "3 days"
    """How far back the refresh policy looks for late data (TimescaleDB)."""

    def bucket(self, flavor: Flavor, column: str | None = None) -> str:
        ts = column or self.time_column
        if flavor is Flavor.TIMESCALE:
            if self.width is Width.DAY:
                return f"time_bucket(INTERVAL '1 day', {ts}, '{LOCAL_TIMEZONE}')"
            return f"time_bucket(INTERVAL '1 {self.width}', {ts})"
        if self.width is Width.DAY:
            return f"date_trunc('day', {ts}, '{LOCAL_TIMEZONE}')"
        return f"date_trunc('{self.width}', {ts})"

    def _select(self, flavor: Flavor, source: str) -> str:
        columns = ", ".join(
            [f"{self.bucket(flavor)} AS bucket", *self.keys]
            + [f"{m.aggregate} AS {m.column}" for m in self.measures]
        )
        where = f" WHERE {self.where}" if self.where else ""
        group = ", ".join(["1", *(str(i + 2) for i in range(len(self.keys)))])
        return f"SELECT {columns} FROM {source}{where} GROUP BY {group}"

    def continuous_aggregate(self) -> str:
        """TimescaleDB: the view, real-time so it answers like the always-current table."""
        return (
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {self.name}\n"
            "WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS\n"
            f"{self._select(Flavor.TIMESCALE, self.source)}\nWITH NO DATA"
        )

    def refresh_policy(self) -> str:
        return (
            f"SELECT add_continuous_aggregate_policy('{self.name}', "
            f"start_offset => INTERVAL '{self.refresh_window}', "
            f"end_offset => INTERVAL '{self.refresh_lag}', "
            f"schedule_interval => INTERVAL '{self.refresh_lag}', if_not_exists => true)"
        )

    def table(self) -> str:
        """Plain PostgreSQL: the rollup table, range-partitioned by bucket."""
        columns = ",\n    ".join(
            ["bucket timestamptz NOT NULL"]
            + [f"{k} text NOT NULL" for k in self.keys]
            + [f"{m.column} {m.sql_type} NOT NULL" for m in self.measures]
        )
        key = ", ".join([*self.keys, "bucket"])
        return (
            f"CREATE TABLE {self.name} (\n    {columns},\n    PRIMARY KEY ({key})\n)"
            " PARTITION BY RANGE (bucket)"
        )

    def upsert_from(self, source: str) -> str:
        """Plain PostgreSQL: merge the aggregate of ``source`` (a batch's new rows) into the
        table. Rows are sorted by key so concurrent writers lock them in one order."""
        conflict = ", ".join([*self.keys, "bucket"])
        merges = ", ".join(
            f"{m.column} = {self.name}.{m.column} + EXCLUDED.{m.column}"
            if m.merge is Merge.SUM
            else f"{m.column} = greatest({self.name}.{m.column}, EXCLUDED.{m.column})"
            for m in self.measures
        )
        return (
            f"INSERT INTO {self.name} AS {self.name} SELECT * FROM ("
            f"{self._select(Flavor.PLAIN, source)}) AS batch ORDER BY {conflict}\n"
            f"ON CONFLICT ({conflict}) DO UPDATE SET {merges}"
        )


_TRAFFIC = (
    Measure("forward", "sum(forward)", "bigint"),
    Measure("backward", "sum(backward)", "bigint"),
)
_VEHICLES = (Measure("vehicles", "sum(forward + backward)", "bigint"),)
_CONGESTION = (Measure("congested_s", "sum(congested_s)", "double precision"),)
_WIFI = (
    Measure("samples", "count(*)", "bigint"),
    Measure("clients_sum", "sum(clients)", "bigint"),
    Measure("clients_max", "max(clients)", "integer", Merge.MAX),
    Measure("up_samples", "sum(CASE WHEN up THEN 1 ELSE 0 END)", "bigint"),
    Measure("arrivals", "sum(visitors)", "bigint"),
)


def _traffic(name: str, width: Width, lag: str) -> Rollup:
    return Rollup(
        name, "traffic_counts", "ts", width, ("camera_id", "line_id"), _TRAFFIC, None, lag
    )


def _wifi(name: str, width: Width, lag: str) -> Rollup:
    return Rollup(name, "wifi_samples", "ts", width, ("ap_id",), _WIFI, None, lag)


ROLLUPS: tuple[Rollup, ...] = (
    _traffic("traffic_1m", Width.MINUTE, "1 minute"),
    _traffic("traffic_1h", Width.HOUR, "10 minutes"),
    _traffic("traffic_1d", Width.DAY, "1 hour"),
    # Both directions of every line in one number per camera: half the rows of the per-line
    # rollups, for totals per camera, road, district and the province.
    Rollup(
        "vehicles_1h",
        "traffic_counts",
        "ts",
        Width.HOUR,
        ("camera_id",),
        _VEHICLES,
        None,
        "10 minutes",
    ),
    Rollup(
        "vehicles_1d", "traffic_counts", "ts", Width.DAY, ("camera_id",), _VEHICLES, None, "1 hour"
    ),
    Rollup(
        "congestion_1m",
        "traffic_intervals",
        "ts",
        Width.MINUTE,
        ("camera_id",),
        _CONGESTION,
        "congested_s > 0",
        "1 minute",
    ),
    _wifi("wifi_1h", Width.HOUR, "10 minutes"),
    _wifi("wifi_1d", Width.DAY, "1 hour"),
)


def rollups_of(source: str) -> tuple[Rollup, ...]:
    return tuple(r for r in ROLLUPS if r.source == source)


def rollup(name: str) -> Rollup:
    for r in ROLLUPS:
        if r.name == name:
            return r
    raise KeyError(name)

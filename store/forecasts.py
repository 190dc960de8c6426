"""Forecasts and their backtest errors in the store (tables of migration 400), and the
observed hourly series they are made from: read by the forecast service and the console."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from . import history as h
from ._pool import Connection


class SeriesKind(StrEnum):
    LINE = "line"  # a camera's counting line, both directions: id "camera_id/line_id"
    ROAD = "road"
    DISTRICT = "district"
    SITE = "site"  # a tourist site's Wi-Fi: mean connected clients


class Resolution(StrEnum):
    HOUR = "hour"
    DAY = "day"


@dataclass(frozen=True, slots=True)
class SeriesKey:
    kind: SeriesKind
    id: str


@dataclass(frozen=True, slots=True)
class BandPoint:
    t: datetime
    value: float
    low80: float
    high80: float
    low95: float
    high95: float


@dataclass(frozen=True, slots=True)
class StoredSkill:
    issued_at: datetime
    model: str
    fallback: str | None
    mae: float | None
    mape: float | None
    coverage_80: float | None
    coverage_95: float | None
    naive_mae: float | None
    skill_vs_naive: float | None
    points: int


async def observed_hourly(
    conn: Connection, period: h.Period
) -> dict[SeriesKey, dict[datetime, float]]:
    """Every counting line, road, district and site with its values per bucket of
    ``period`` (hour or day), from the rollups as they are: a bucket nobody reported is
    absent, never a zero (the planners' queries fill zeros; a forecast must not learn them).
    """
    suffix = {h.Bucket.HOUR: "1h", h.Bucket.DAY: "1d"}[period.bucket]
    found: dict[SeriesKey, dict[datetime, float]] = defaultdict(dict)
    traffic = await conn.fetch(
        f"""SELECT r.camera_id, r.line_id, r.bucket, (r.forward + r.backward)::float8 AS n,
                   c.road, c.district_id
            FROM traffic_{suffix} r LEFT JOIN cameras c ON c.id = r.camera_id
            WHERE r.bucket >= $1 AND r.bucket < $2""",
        period.start,
        period.end,
    )
    for row in traffic:
        t, n = row["bucket"], row["n"]
        found[SeriesKey(SeriesKind.LINE, f"{row['camera_id']}/{row['line_id']}")][t] = n
        for kind, group in (
            (SeriesKind.ROAD, row["road"]),
            (SeriesKind.DISTRICT, row["district_id"]),
        ):
            if group is not None:
                points = found[SeriesKey(kind, group)]
                points[t] = points.get(t, 0.0) + n
    wifi = await conn.fetch(
        f"""SELECT a.site_id, r.bucket, sum(r.clients_sum::float8 / r.samples) AS clients
            FROM wifi_{suffix} r JOIN access_points a ON a.id = r.ap_id
            WHERE r.bucket >= $1 AND r.bucket < $2 AND r.samples > 0
              AND a.site_id IS NOT NULL
            GROUP BY 1, 2""",
        period.start,
        period.end,
    )
    for row in wifi:
        found[SeriesKey(SeriesKind.SITE, row["site_id"])][row["bucket"]] = row["clients"]
    return dict(found)


async def registered_series(conn: Connection) -> list[SeriesKey]:
    """Every line, road, district and site the registry knows, observed or not yet."""
    rows = await conn.fetch(
        """SELECT 'line' AS kind, c.id || '/' || (l.value->>'id') AS id
           FROM cameras c, jsonb_array_elements(c.lines) AS l
           UNION SELECT 'road', road FROM cameras WHERE road IS NOT NULL
           UNION SELECT 'district', district_id FROM cameras WHERE district_id IS NOT NULL
           UNION SELECT 'site', site_id FROM access_points WHERE site_id IS NOT NULL
           ORDER BY 1, 2"""
    )
    return [SeriesKey(SeriesKind(r["kind"]), r["id"]) for r in rows]


async def read_band(
    conn: Connection, key: SeriesKey, resolution: Resolution, start: datetime, end: datetime
) -> list[BandPoint]:
    """The newest forecast band of a series for target times in ``[start, end)``."""
    rows = await conn.fetch(
        """SELECT target_time, value, low80, high80, low95, high95 FROM forecasts
           WHERE series_kind = $1 AND series_id = $2 AND resolution = $3
             AND target_time >= $4 AND target_time < $5
           ORDER BY target_time""",
        key.kind.value,
        key.id,
        resolution.value,
        start,
        end,
    )
    return [
        BandPoint(r["target_time"], r["value"], r["low80"], r["high80"], r["low95"], r["high95"])
        for r in rows
    ]


async def read_skill(
    conn: Connection, key: SeriesKey, resolution: Resolution
) -> StoredSkill | None:
    """The series' latest backtest errors, or None if it was never forecast."""
    row = await conn.fetchrow(
        """SELECT issued_at, model, fallback, mae, mape, coverage_80, coverage_95, naive_mae,
                  skill_vs_naive, points
           FROM forecast_skill WHERE series_kind = $1 AND series_id = $2 AND resolution = $3""",
        key.kind.value,
        key.id,
        resolution.value,
    )
    return None if row is None else StoredSkill(**dict(row))


async def forecast_series(conn: Connection, resolution: Resolution) -> list[SeriesKey]:
    rows = await conn.fetch(
        """SELECT series_kind, series_id FROM forecast_skill WHERE resolution = $1
           ORDER BY 1, 2""",
        resolution.value,
    )
    return [SeriesKey(SeriesKind(r["series_kind"]), r["series_id"]) for r in rows]


def utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class AnomalyRecord:
    event_id: str
    phase: str
    at: datetime
    series_kind: str
    series_id: str
    expected: float
    low95: float
    high95: float
    observed: float


async def record_anomaly(conn: Connection, record: AnomalyRecord) -> None:
    """Keep what made an anomaly event (idempotent: a replayed hour writes nothing new)."""
    await conn.execute(
        """INSERT INTO forecast_anomalies (event_id, phase, at, series_kind, series_id,
               expected, low95, high95, observed)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING""",
        record.event_id,
        record.phase,
        record.at,
        record.series_kind,
        record.series_id,
        record.expected,
        record.low95,
        record.high95,
        record.observed,
    )


async def read_anomalies(conn: Connection, since: datetime, limit: int) -> list[AnomalyRecord]:
    rows = await conn.fetch(
        """SELECT event_id, phase, at, series_kind, series_id, expected, low95, high95, observed
           FROM forecast_anomalies WHERE at >= $1 ORDER BY at DESC, event_id LIMIT $2""",
        since,
        limit,
    )
    return [AnomalyRecord(**dict(r)) for r in rows]

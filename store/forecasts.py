"""Forecasts and their backtest errors in the store (tables of migration 400), and the
observed hourly series they are made from: read by the forecast service and the console."""

from __future__ import annotations

import math
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
    """Every counting line, road, district and site with its hourly values in ``period``
    (an hour bucket period). A site's hour without Wi-Fi samples is NaN, not zero."""
    found: dict[SeriesKey, dict[datetime, float]] = defaultdict(dict)
    for row in await h.traffic_counts(conn, period):
        key = SeriesKey(SeriesKind.LINE, f"{row.camera_id}/{row.line_id}")
        found[key][row.bucket] = float(row.forward + row.backward)
    for kind, grouping in (
        (SeriesKind.ROAD, h.TrafficGrouping.ROAD),
        (SeriesKind.DISTRICT, h.TrafficGrouping.DISTRICT),
    ):
        for total in await h.traffic_totals(conn, period, by=grouping):
            found[SeriesKey(kind, total.group_id)][total.bucket] = float(total.vehicles)
    for usage in await h.wifi_usage(conn, period, by=h.WifiGrouping.SITE):
        if usage.group_id is not None:
            value = usage.clients_avg if usage.samples else math.nan
            found[SeriesKey(SeriesKind.SITE, usage.group_id)][usage.bucket] = value
    return dict(found)


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

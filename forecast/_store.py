"""Reading observed series from the store and writing forecasts and their errors back."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import numpy as np

from store import Connection
from store import history as h

from ._model import Forecast
from ._series import HOUR, Series, from_observations


class SeriesKind(StrEnum):
    LINE = "line"  # a camera's counting line, both directions
    ROAD = "road"
    DISTRICT = "district"
    SITE = "site"  # a tourist site's Wi-Fi: mean connected clients


class Resolution(StrEnum):
    HOUR = "hour"
    DAY = "day"


@dataclass(frozen=True, slots=True)
class SeriesKey:
    kind: SeriesKind
    id: str  # a line is "camera_id/line_id"


@dataclass(frozen=True, slots=True)
class BandPoint:
    t: datetime
    value: float
    low80: float
    high80: float
    low95: float
    high95: float


def _series(points: dict[datetime, float]) -> Series:
    times = sorted(points)
    return from_observations(times, [points[t] for t in times], HOUR)


async def load_hourly(conn: Connection, until: datetime, days: int) -> dict[SeriesKey, Series]:
    """Hourly history of every counting line, road, district and site: ``days`` days
    before ``until`` (at most the store's 92-day limit for hourly buckets)."""
    end = until.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    period = h.Period.of(end - timedelta(days=min(days, 90)), end, h.Bucket.HOUR)
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
            # An hour with no samples from any AP is unobserved, not zero visitors.
            value = usage.clients_avg if usage.samples else math.nan
            found[SeriesKey(SeriesKind.SITE, usage.group_id)][usage.bucket] = value
    return {key: _series(points) for key, points in found.items() if points}


async def write_forecast(
    conn: Connection,
    key: SeriesKey,
    resolution: Resolution,
    forecast: Forecast,
    issued_at: datetime,
) -> None:
    """Store a forecast's band and its backtest errors, replacing the previous issue's."""
    times = forecast.times()
    if times and times[0].tzinfo is None:
        times = [t.replace(tzinfo=UTC) for t in times]
    async with conn.transaction():
        await conn.execute(
            """DELETE FROM forecasts WHERE series_kind = $1 AND series_id = $2
               AND resolution = $3 AND target_time >= $4""",
            key.kind.value,
            key.id,
            resolution.value,
            times[0] if times else issued_at,
        )
        await conn.execute(
            """INSERT INTO forecasts (series_kind, series_id, resolution, target_time,
                   issued_at, value, low80, high80, low95, high95)
               SELECT $1, $2, $3, t, $4, v, l8, h8, l9, h9
               FROM unnest($5::timestamptz[], $6::float8[], $7::float8[], $8::float8[],
                           $9::float8[], $10::float8[]) AS u(t, v, l8, h8, l9, h9)""",
            key.kind.value,
            key.id,
            resolution.value,
            issued_at,
            times,
            *(
                np.nan_to_num(a, nan=0.0).astype(float).tolist()
                for a in (
                    forecast.value,
                    forecast.low80,
                    forecast.high80,
                    forecast.low95,
                    forecast.high95,
                )
            ),
        )
        skill = forecast.skill
        await conn.execute(
            """INSERT INTO forecast_skill AS s (series_kind, series_id, resolution, issued_at,
                   model, fallback, mae, mape, coverage_80, coverage_95, naive_mae,
                   skill_vs_naive, points)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
               ON CONFLICT (series_kind, series_id, resolution) DO UPDATE SET
                   issued_at = excluded.issued_at, model = excluded.model,
                   fallback = excluded.fallback, mae = excluded.mae, mape = excluded.mape,
                   coverage_80 = excluded.coverage_80, coverage_95 = excluded.coverage_95,
                   naive_mae = excluded.naive_mae, skill_vs_naive = excluded.skill_vs_naive,
                   points = excluded.points""",
            key.kind.value,
            key.id,
            resolution.value,
            issued_at,
            forecast.model,
            forecast.fallback,
            skill.mae if skill else None,
            skill.mape if skill else None,
            skill.coverage_80 if skill else None,
            skill.coverage_95 if skill else None,
            skill.naive_mae if skill else None,
            skill.skill_vs_naive if skill else None,
            skill.points if skill else 0,
        )


async def read_band(
    conn: Connection,
    key: SeriesKey,
    resolution: Resolution,
    start: datetime,
    end: datetime,
) -> list[BandPoint]:
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


async def read_skill(
    conn: Connection, key: SeriesKey, resolution: Resolution
) -> StoredSkill | None:
    row = await conn.fetchrow(
        """SELECT issued_at, model, fallback, mae, mape, coverage_80, coverage_95, naive_mae,
                  skill_vs_naive, points
           FROM forecast_skill WHERE series_kind = $1 AND series_id = $2 AND resolution = $3""",
        key.kind.value,
        key.id,
        resolution.value,
    )
    return None if row is None else StoredSkill(**dict(row))

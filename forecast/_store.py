"""Reading observed series from the store and writing forecasts and their errors back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from store import Connection
from store import history as h
from store.forecasts import Resolution, SeriesKey, observed_hourly, registered_series

from ._model import Forecast
from ._series import HOUR, Series, from_observations


def _series(points: dict[datetime, float]) -> Series:
    times = sorted(points)
    return from_observations(times, [points[t] for t in times], HOUR)


async def load_hourly(conn: Connection, until: datetime, days: int) -> dict[SeriesKey, Series]:
    """Hourly history of every counting line, road, district and site: ``days`` days
    before ``until`` (at most the store's 92-day limit for hourly buckets)."""
    end = until.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    period = h.Period.of(end - timedelta(days=min(days, 90)), end, h.Bucket.HOUR)
    found = await observed_hourly(conn, period)
    series = {key: _series(points) for key, points in found.items() if points}
    # Registered but never observed: one unobserved hour, so it gets the baseline's
    # fallback (and says so) instead of vanishing from the planners' list.
    for key in await registered_series(conn):
        if key not in series:
            series[key] = Series(period.end - HOUR, HOUR, np.full(1, np.nan))
    return series


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

"""The live forecast service: every hour, 48 hourly values per series; every night, 14
daily ones; for every counting line, road, district and tourist site in the store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from protocol import VisionEvent
from store import history as h
from store.forecasts import (
    AnomalyRecord,
    Resolution,
    SeriesKey,
    forecast_series,
    observed_hourly,
    read_band,
    record_anomaly,
)

from ._anomaly import AnomalyWatch
from ._calendar import Calendar
from ._model import DAILY, HOURLY, Forecast, Forecaster
from ._series import Series
from ._store import load_hourly, write_forecast

logger = logging.getLogger(__name__)

HOURLY_STEPS = 48
DAILY_STEPS = 14
HISTORY_DAYS = 90  # the store answers at most 92 days of hourly buckets


@dataclass(frozen=True, slots=True)
class RefreshReport:
    resolution: Resolution
    series: int
    fallbacks: int
    seconds: float


def _forecast_all(
    series: dict[SeriesKey, Series], resolution: Resolution, calendar: Calendar
) -> dict[SeriesKey, Forecast]:
    if resolution is Resolution.HOUR:
        hourly = Forecaster(calendar, HOURLY)
        return {key: hourly.forecast(s, HOURLY_STEPS) for key, s in series.items()}
    daily = Forecaster(calendar, DAILY)
    local = calendar.timezone
    out: dict[SeriesKey, Forecast] = {}
    for key, s in series.items():
        # Local days: move the start into local time before cutting days.
        moved = Series(s.start.astimezone(local), s.step, s.values)
        out[key] = daily.forecast(moved.daily(), DAILY_STEPS)
    return out


async def refresh(
    pool: asyncpg.Pool, resolution: Resolution, calendar: Calendar, now: datetime | None = None
) -> RefreshReport:
    """Forecast every series from its history before ``now`` and store band and errors."""
    now = now or datetime.now(UTC)
    started = time.perf_counter()
    async with pool.acquire() as conn:
        series = await load_hourly(conn, now, HISTORY_DAYS)
    # Fitting is CPU work: off the event loop, so the process keeps serving.
    forecasts = await asyncio.to_thread(_forecast_all, series, resolution, calendar)
    async with pool.acquire() as conn:
        for key, forecast in forecasts.items():
            await write_forecast(conn, key, resolution, forecast, now)
    report = RefreshReport(
        resolution,
        len(forecasts),
        sum(f.fallback is not None for f in forecasts.values()),
        time.perf_counter() - started,
    )
    logger.info(
        "forecast refresh (%s): %d series, %d on the baseline, %.1f s",
        resolution.value,
        report.series,
        report.fallbacks,
        report.seconds,
    )
    return report


Publish = Callable[[VisionEvent], Awaitable[None]]


async def check_anomalies(
    pool: asyncpg.Pool, watch: AnomalyWatch, publish: Publish, now: datetime | None = None
) -> int:
    """Compare the last whole hour's observed values with the band forecast for it; publish
    the anomaly events this makes. Returns how many were published."""
    end = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=1)
    async with pool.acquire() as conn:
        keys = set(await forecast_series(conn, Resolution.HOUR))
        observed = await observed_hourly(conn, h.Period.of(start, end, h.Bucket.HOUR))
        bands = {
            key: await read_band(conn, key, Resolution.HOUR, start, end)
            for key in keys
            if key in observed
        }
    sent = 0
    for key, band in bands.items():
        value = observed[key].get(band[0].t) if band else None
        if value is None or math.isnan(value):  # unobserved hour: no verdict
            continue
        event = watch.observe(key, band[0].t, value, band[0])
        if event is None:
            continue
        async with pool.acquire() as conn:
            await record_anomaly(
                conn,
                AnomalyRecord(
                    event.event_id,
                    event.phase,
                    band[0].t,
                    key.kind.value,
                    key.id,
                    band[0].value,
                    band[0].low95,
                    band[0].high95,
                    value,
                ),
            )
        await publish(event)
        sent += 1
    return sent


def _next(now: datetime, resolution: Resolution, local: ZoneInfo) -> datetime:
    """Five minutes past the next hour; the daily one at 00:30 local time."""
    if resolution is Resolution.HOUR:
        return now.replace(minute=5, second=0, microsecond=0) + timedelta(hours=1)
    here = now.astimezone(local)
    return (
        here.replace(hour=0, minute=30, second=0, microsecond=0) + timedelta(days=1)
    ).astimezone(UTC)


async def _schedule(
    pool: asyncpg.Pool,
    resolution: Resolution,
    calendar: Calendar,
    anomalies: tuple[AnomalyWatch, Publish] | None,
    reports: asyncio.Queue[RefreshReport],
) -> None:
    while True:
        try:
            if anomalies is not None and resolution is Resolution.HOUR:
                await check_anomalies(pool, *anomalies)
            reports.put_nowait(await refresh(pool, resolution, calendar))
        except (OSError, asyncpg.PostgresError) as exc:
            logger.warning("forecast refresh (%s) failed, next at its time: %s", resolution, exc)
        now = datetime.now(UTC)
        await asyncio.sleep((_next(now, resolution, calendar.timezone) - now).total_seconds())


@contextlib.asynccontextmanager
async def forecast_service(
    pool: asyncpg.Pool, calendar: Calendar, anomalies: tuple[AnomalyWatch, Publish] | None = None
) -> AsyncIterator[asyncio.Queue[RefreshReport]]:
    """Runs the hourly and nightly refreshes (one at start each) until the block ends; with
    ``anomalies``, each hour first checks the last hour against its band and publishes.
    Yields the queue of finished refreshes' reports (two a day and one an hour)."""
    reports: asyncio.Queue[RefreshReport] = asyncio.Queue()
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(
                _schedule(pool, r, calendar, anomalies, reports), name=f"forecast-{r.value}"
            )
            for r in Resolution
        ]
        try:
            yield reports
        finally:
            for task in tasks:
                task.cancel()

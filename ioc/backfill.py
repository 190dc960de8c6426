"""History for a new demo: 90 days of hourly counts for every counting line and of Wi-Fi
use at every access point, written once into an empty store so planners see a season.

The shape is real: the hour-of-week profile and the day-to-day variation of a real highway
counter (data/traffic, derived from I-94 counts, CC BY 4.0, see SOURCES.md there), laid on
the province's local week, scaled per road class, lowered on Vietnam's public holidays
(Tết, 30/4-1/5, 2/9, from the ``holidays`` package) where sites fill up instead. Rows go
through the store's own bulk path (COPY into a staging table, rollups merged from it; on
TimescaleDB the continuous aggregates are refreshed over the span). The rollups are merged
after the raw rows are committed, each in its own transaction, several at once: a demo
stopped half-way keeps raw rows whose rollups are short, which only a demo can afford.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
import numpy as np
import numpy.typing as npt

from protocol import Province
from store import Connection, Rollup, StoreConfig, connect, load, rollups_of, write_mode

from .settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

PROFILE_DIR = PROJECT_ROOT / "data" / "traffic"
DAYS = 90
BASE_PER_LINE = 900.0
"""Vehicles in an average hour over one counting line of an expressway (scaled per road)."""
ROAD_SCALE = {"ct01": 1.0, "ql1a": 0.9, "ql60": 0.7, "ql50": 0.5, "ql30": 0.4, "dt864": 0.25}
"""Share of the expressway's volume by road; other roads and car parks: OTHER_SCALE."""
OTHER_SCALE = 0.08
HOLIDAY_TRAFFIC = 0.7
"""Through traffic on a public holiday, against the same weekday's usual."""
HOLIDAY_VISITORS = 2.2
"""Visitors at tourist sites on a public holiday (festival days), against usual."""
TET_VISITORS = 3.0
PARALLEL_ROLLUPS = 3


@dataclass(frozen=True, slots=True)
class Profile:
    hour_of_week: npt.NDArray[np.float64]
    """168 shares (Monday 00:00 first); 1.0 is an average hour."""
    daily: npt.NDArray[np.float64]
    """Day factors of the source, in their order (the variation from day to day)."""


def load_profile(folder: Path = PROFILE_DIR) -> Profile:
    week = np.zeros(168)
    with (folder / "i94_hour_of_week.csv").open() as f:
        for row in csv.DictReader(f):
            week[int(row["weekday"]) * 24 + int(row["hour"])] = float(row["share"])
    with (folder / "i94_daily_factors.csv").open() as f:
        daily = np.array([float(row["factor"]) for row in csv.DictReader(f)])
    # A day the counter was half out (the source's faults) is not a day of half the traffic.
    return Profile(week, np.clip(daily, 0.6, 1.25))


@dataclass(frozen=True, slots=True)
class BackfillReport:
    days: int
    traffic_rows: int
    wifi_rows: int
    seconds: float


def _hours(end: datetime, days: int, tz: ZoneInfo) -> tuple[list[datetime], npt.NDArray[np.int_]]:
    """The UTC hour starts of the ``days`` before ``end``, and each one's local hour of week."""
    start = end - timedelta(days=days)
    hours = [start + timedelta(hours=i) for i in range(days * 24)]
    local = [h.astimezone(tz) for h in hours]
    return hours, np.array([t.weekday() * 24 + t.hour for t in local])


def _day_factors(
    hours: list[datetime], tz: ZoneInfo, profile: Profile, seed: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per hour: the traffic factor (source day variation, holidays lower) and the visitor
    factor (holidays and Tết higher)."""
    local_days = [h.astimezone(tz).date() for h in hours]
    first, last = local_days[0], local_days[-1]
    vn = holidays.country_holidays("VN", years=range(first.year, last.year + 1))
    rnd = np.random.default_rng(seed)
    offset = int(rnd.integers(0, len(profile.daily)))
    days = sorted(set(local_days))
    traffic: dict[date, float] = {}
    visitors: dict[date, float] = {}
    for i, day in enumerate(days):
        variation = float(profile.daily[(offset + i) % len(profile.daily)])
        name = vn.get(day)
        tet = name is not None and ("Lunar" in name or "Tết" in name)
        traffic[day] = variation * (HOLIDAY_TRAFFIC if name else 1.0)
        visitors[day] = variation * (TET_VISITORS if tet else HOLIDAY_VISITORS if name else 1.0)
    return (
        np.array([traffic[d] for d in local_days]),
        np.array([visitors[d] for d in local_days]),
    )


def _visitor_curve(hour_of_week: npt.NDArray[np.int_]) -> npt.NDArray[np.float64]:
    """0..1 busyness of a tourist site by local hour of week (as the simulator's APs)."""
    hour = (hour_of_week % 24).astype(np.float64) + 0.5
    day = np.exp(-((hour - 10.5) ** 2) / 8) + 0.9 * np.exp(-((hour - 19) ** 2) / 6)
    weekend = np.where(hour_of_week // 24 >= 5, 1.4, 1.0)
    return np.minimum(1.0, 0.05 + 0.6 * day * weekend)


def traffic_rows(
    province: Province, end: datetime, days: int = DAYS, profile: Profile | None = None
) -> list[tuple[str, str, datetime, int, int]]:
    """Hourly (camera, line, hour, forward, backward) rows for every counting line."""
    profile = profile or load_profile()
    tz = ZoneInfo(province.timezone)
    hours, how = _hours(end, days, tz)
    day_factor, _ = _day_factors(hours, tz, profile, seed=2021)
    shape = profile.hour_of_week[how] * day_factor
    rnd = np.random.default_rng(94)
    rows: list[tuple[str, str, datetime, int, int]] = []
    for camera in province.cameras:
        scale = ROAD_SCALE.get(camera.road or "", OTHER_SCALE) * BASE_PER_LINE
        for line in camera.lines:
            mean = shape * scale * rnd.uniform(0.8, 1.2)
            forward = rnd.poisson(mean * 0.5)
            backward = rnd.poisson(mean * 0.5)
            rows += zip(
                [camera.id] * len(hours),
                [line.id] * len(hours),
                hours,
                forward.tolist(),
                backward.tolist(),
                strict=True,
            )
    return rows


def wifi_rows(
    province: Province, end: datetime, days: int = DAYS, profile: Profile | None = None
) -> list[tuple[str, datetime, int, int, int, float, bool, int]]:
    """One sample per access point and hour: its mean clients and the hour's arrivals."""
    profile = profile or load_profile()
    tz = ZoneInfo(province.timezone)
    hours, how = _hours(end, days, tz)
    _, visitor_factor = _day_factors(hours, tz, profile, seed=2021)
    load = _visitor_curve(how) * visitor_factor
    rnd = np.random.default_rng(13)
    rows: list[tuple[str, datetime, int, int, int, float, bool, int]] = []
    for ap in province.access_points:
        clients = np.minimum(
            ap.capacity * 1.3, ap.capacity * load * rnd.uniform(0.6, 1.0, len(hours))
        ).astype(np.int64)
        arrivals = rnd.poisson(clients * 6.0)  # ten-minute dwell: six arrivals per client-hour
        rx = np.cumsum(clients * 40_000 * 1800)
        tx = np.cumsum(clients * 120_000 * 1800)
        util = np.minimum(1.0, clients / (ap.capacity * 1.5))
        rows += zip(
            [ap.id] * len(hours),
            hours,
            clients.tolist(),
            rx.tolist(),
            tx.tolist(),
            util.tolist(),
            [True] * len(hours),
            arrivals.tolist(),
            strict=True,
        )
    return rows


async def is_empty(conn: Connection) -> bool:
    return not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM traffic_counts) OR EXISTS (SELECT 1 FROM wifi_samples)"
    )


async def _copy(store: StoreConfig, table: str, rows: list[tuple[object, ...]]) -> None:
    conn = await connect(store)
    try:
        mode = await write_mode(conn, store)
        async with conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = off")
            await load(conn, table, rows, use_copy=mode.use_copy)
    finally:
        await conn.close()


async def _roll_up(store: StoreConfig, rollup: Rollup, end: datetime) -> None:
    """Bring one rollup up to date with the backfilled rows (those before ``end``: the
    table was empty, and the services write only from ``end`` on). On TimescaleDB, refresh
    the continuous aggregate over the span."""
    conn = await connect(store)
    try:
        mode = await write_mode(conn, store)
        if mode.maintains_rollups:
            ours = f"(SELECT * FROM {rollup.source} WHERE ts < $1) AS backfilled"
            async with conn.transaction():
                await conn.execute("SET LOCAL synchronous_commit = off")
                await conn.execute(rollup.upsert_from(ours), end)
        else:
            await conn.execute(f"CALL refresh_continuous_aggregate('{rollup.name}', NULL, $1)", end)
    finally:
        await conn.close()


async def _bounded(limit: asyncio.Semaphore, work: Awaitable[None]) -> None:
    async with limit:
        await work


async def backfill(
    store: StoreConfig, province: Province, *, days: int = DAYS, end: datetime | None = None
) -> BackfillReport | None:
    """Write ``days`` of history ending at the current hour, if the store holds no time
    series yet (else None: a demo's second start keeps what it has)."""
    started = time.monotonic()
    end = end or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    conn = await connect(store)
    try:
        if not await is_empty(conn):
            return None
    finally:
        await conn.close()
    traffic = traffic_rows(province, end, days)
    wifi = wifi_rows(province, end, days)
    # Raw rows first, both tables at once; then every rollup of them, a few at a time, each
    # on its own connection (the server's cores aggregate side by side).
    await asyncio.gather(
        _copy(store, "traffic_counts", list(traffic)), _copy(store, "wifi_samples", list(wifi))
    )
    limit = asyncio.Semaphore(PARALLEL_ROLLUPS)
    await asyncio.gather(
        *(
            _bounded(limit, _roll_up(store, rollup, end))
            for table in ("traffic_counts", "wifi_samples")
            for rollup in rollups_of(table)
        )
    )
    report = BackfillReport(days, len(traffic), len(wifi), time.monotonic() - started)
    logger.info(
        "history backfilled: %d days, %d traffic rows, %d Wi-Fi rows in %.1f s",
        report.days,
        report.traffic_rows,
        report.wifi_rows,
        report.seconds,
    )
    return report

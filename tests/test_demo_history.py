"""The demo's first-start history: 90 days through the store's bulk path, shaped like the
real counts it comes from."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from conftest import ROOT

from ioc.backfill import backfill
from ioc.runtime import DEMO_DATABASE_FILE, NotConfigured, database_url
from ioc.settings import Settings
from protocol import Province, load_province
from store import StoreConfig, connect, sync_registry
from store.history import Bucket, Period, traffic_totals, wifi_usage

SOURCE = (
    ROOT.parent.parent / "shared" / "data" / "traffic" / "i94_westbound_hourly_2012-10_2018-06.csv"
)
END = datetime(2026, 5, 4, tzinfo=UTC)  # 90 days back reach Tết's end, 30/4 and 1/5


def _source_profile() -> np.ndarray:
    """Mean volume per (weekday, hour) of the real counts (the copy in data/traffic when the
    shared source is not on this machine)."""
    if not SOURCE.exists():
        with (ROOT / "data/traffic/i94_hour_of_week.csv").open() as f:
            return np.array([float(r["share"]) for r in csv.DictReader(f)])
    volumes: dict[str, int] = {}
    with SOURCE.open() as f:
        for row in csv.DictReader(f):
            volumes[row["date_time"]] = int(row["traffic_volume"])
    sums: defaultdict[int, list[int]] = defaultdict(list)
    for when, volume in volumes.items():
        t = datetime.fromisoformat(when)
        sums[t.weekday() * 24 + t.hour].append(volume)
    return np.array([np.mean(sums[i]) for i in range(168)])


def _province() -> Province:
    province = load_province(ROOT / "config" / "province.yaml")
    traffic = [c for c in province.cameras if c.road in ("ql1a", "dt864")][:12]
    return province.model_copy(
        update={"cameras": traffic, "access_points": province.access_points[:40]}
    )


async def test_backfill_gives_planners_90_days_with_the_source_weekly_shape(
    database: StoreConfig,
) -> None:
    province = _province()
    conn = await connect(database)
    try:
        await sync_registry(conn, province)
        report = await backfill(database, province, end=END)
        assert report is not None
        assert report.traffic_rows == 90 * 24 * sum(len(c.lines) for c in province.cameras)
        assert report.wifi_rows == 90 * 24 * len(province.access_points)
        # A second start keeps what is there.
        assert await backfill(database, province, end=END) is None

        hours = Period.of(END - timedelta(days=90), END, Bucket.HOUR)
        rows = await traffic_totals(conn, hours, by="province")
        assert len(rows) == 90 * 24
        assert all(r.vehicles > 0 for r in rows)
        tz = ZoneInfo(province.timezone)
        by_hour: defaultdict[int, list[int]] = defaultdict(list)
        for r in rows:
            local = r.bucket.astimezone(tz)
            by_hour[local.weekday() * 24 + local.hour].append(r.vehicles)
        ours = np.array([np.mean(by_hour[i]) for i in range(168)])
        source = _source_profile()
        weekdays = slice(0, 5 * 24)
        correlation = np.corrcoef(ours[weekdays], source[weekdays])[0, 1]
        assert correlation >= 0.9, correlation

        days = Period.of(END - timedelta(days=90), END, Bucket.DAY)
        usage = await wifi_usage(conn, days)
        assert len({u.bucket for u in usage if u.samples > 0}) >= 90
    finally:
        await conn.close()


def test_ioc_commands_find_the_running_demos_database(tmp_path: Path) -> None:
    """`ioc users add` and friends without IOC_DATABASE_URL: the demo's URL file in the state
    folder while it runs; without one, an error that says where it looked."""
    settings = Settings(state_dir=tmp_path, database_url=None)
    with pytest.raises(NotConfigured, match=str(tmp_path)):
        database_url(settings)
    (tmp_path / DEMO_DATABASE_FILE).write_text("postgresql://ioc:pw@127.0.0.1:5999/ioc\n")
    assert database_url(settings) == "postgresql://ioc:pw@127.0.0.1:5999/ioc"
    configured = Settings(state_dir=tmp_path, database_url="postgresql://elsewhere/db")
    assert database_url(configured) == "postgresql://elsewhere/db"

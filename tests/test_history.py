"""Planner queries against data written through the writers, checked against the same
data aggregated in Python; gaps are zeros, ranges are validated."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from ioc.bench.synthetic import synthetic_province, telemetry_stream, traffic_stream
from protocol import Province, TelemetryBatch, TrafficMetrics
from store import LOCAL_TIMEZONE, Flavor, WriteMode, sync_registry, write_telemetry, write_traffic
from store import history as h

pytestmark = [pytest.mark.postgres]
MIDNIGHT = datetime(2026, 1, 1, tzinfo=ZoneInfo(LOCAL_TIMEZONE))
START = MIDNIGHT - timedelta(minutes=90)
TZ = ZoneInfo(LOCAL_TIMEZONE)


def _hour(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch // 3600 * 3600, UTC)


def _day(epoch: float) -> datetime:
    local = datetime.fromtimestamp(epoch, TZ)
    return datetime(local.year, local.month, local.day, tzinfo=TZ).astimezone(UTC)


@pytest.fixture
async def loaded(
    db: asyncpg.Connection,
) -> tuple[asyncpg.Connection, Province, list[TrafficMetrics], list[TelemetryBatch]]:
    province = synthetic_province(cameras=7, access_points=5, districts=3, sites=2)
    await sync_registry(db, province)
    quiet = province.cameras[-1].id
    traffic = [
        m
        for m in traffic_stream(province, START.timestamp(), 180, seconds=60)
        if m.camera_id != quiet
    ]
    telemetry = list(telemetry_stream(province, START.timestamp(), 240, samples_per_batch=3))
    mode = WriteMode(Flavor.PLAIN, True)
    for i in range(0, len(traffic), 200):
        await write_traffic(db, traffic[i : i + 200], mode)
    for i in range(0, len(telemetry), 50):
        await write_telemetry(db, telemetry[i : i + 50], mode)
    return db, province, traffic, telemetry


Loaded = tuple[asyncpg.Connection, Province, list[TrafficMetrics], list[TelemetryBatch]]


async def test_traffic_counts_per_line_and_hour_with_gaps_as_zeros(loaded: Loaded) -> None:
    db, province, traffic, _ = loaded
    period = h.Period.of(START, START + timedelta(hours=4), h.Bucket.HOUR)
    rows = await h.traffic_counts(db, period)
    expected: Counter[tuple[str, str, datetime, str]] = Counter()
    for m in traffic:
        for line, c in m.line_counts.items():
            expected[(m.camera_id, line, _hour(m.interval_start), "f")] += c.forward
            expected[(m.camera_id, line, _hour(m.interval_start), "b")] += c.backward
    assert period.start == _hour(START.timestamp())
    assert (period.end - period.start) == timedelta(hours=5)  # widened to whole hours
    assert len(rows) == len(province.cameras) * 2 * 5  # every camera, line and hour
    for r in rows:
        assert r.forward == expected[(r.camera_id, r.line_id, r.bucket, "f")]
        assert r.backward == expected[(r.camera_id, r.line_id, r.bucket, "b")]
    quiet = [r for r in rows if r.camera_id == province.cameras[-1].id]
    assert quiet
    assert all(r.forward == r.backward == 0 for r in quiet)
    assert rows[-1].bucket == period.end - timedelta(hours=1)
    one = await h.traffic_counts(db, period, cameras=["cam-001"])
    assert {r.camera_id for r in one} == {"cam-001"}


async def test_traffic_totals_per_road_and_local_day(loaded: Loaded) -> None:
    db, province, traffic, _ = loaded
    road = {c.id: c.road for c in province.cameras}
    period = h.Period.of(START, START + timedelta(hours=3), h.Bucket.DAY)
    assert period.start == MIDNIGHT - timedelta(days=1)
    assert period.end == MIDNIGHT + timedelta(days=1)
    expected: Counter[tuple[str, datetime]] = Counter()
    for m in traffic:
        if road[m.camera_id]:
            vehicles = sum(c.forward + c.backward for c in m.line_counts.values())
            expected[(str(road[m.camera_id]), _day(m.interval_start))] += vehicles
    rows = await h.traffic_totals(db, period, by=h.TrafficGrouping.ROAD)
    roads = {c.road for c in province.cameras if c.road}
    assert {(r.group_id, r.bucket) for r in rows} == {
        (rd, day) for rd in roads for day in (period.start, MIDNIGHT)
    }
    for r in rows:
        assert r.vehicles == expected[(r.group_id, r.bucket)]
    province_total = await h.traffic_totals(db, period, by="province")
    assert sum(r.vehicles for r in province_total) == sum(
        c.forward + c.backward for m in traffic for c in m.line_counts.values()
    )


async def test_congestion_minutes_per_road(loaded: Loaded) -> None:
    db, province, traffic, _ = loaded
    road = {c.id: c.road for c in province.cameras}
    minutes: defaultdict[tuple[str, datetime], set[float]] = defaultdict(set)
    for m in traffic:
        if m.congested_zones and road[m.camera_id]:
            minutes[(str(road[m.camera_id]), _hour(m.interval_start))].add(m.interval_start)
    period = h.Period.of(START, START + timedelta(hours=3), h.Bucket.HOUR)
    rows = await h.congestion_minutes(db, period)
    assert any(r.minutes for r in rows)
    for r in rows:
        assert r.minutes == len(minutes[(r.road, r.bucket)])


async def test_wifi_usage_and_distinct_visitors(loaded: Loaded) -> None:
    db, province, _, telemetry = loaded
    site = {a.id: a.site for a in province.access_points}
    period = h.Period.of(START, START + timedelta(hours=3), h.Bucket.HOUR)
    usage = await h.wifi_usage(db, period, by=h.WifiGrouping.ACCESS_POINT)
    samples: defaultdict[tuple[str, datetime], list[int]] = defaultdict(list)
    seen: defaultdict[tuple[str, datetime], set[str]] = defaultdict(set)
    seen_day: defaultdict[tuple[str, datetime], set[str]] = defaultdict(set)
    for b in telemetry:
        for s in b.samples:
            samples[(b.ap_id, _hour(s.ts))].append(s.clients)
            seen[(site[b.ap_id], _hour(s.ts))].update(s.visitors)
            seen_day[(site[b.ap_id], _day(s.ts))].update(s.visitors)
    assert len(usage) == len(province.access_points) * 4
    for u in usage:
        clients = samples[(u.group_id, u.bucket)]
        assert u.samples == len(clients)
        assert u.clients_avg == pytest.approx(sum(clients) / max(1, len(clients)), abs=1e-3)
        assert u.clients_peak == max(clients, default=0)
    assert any(u.samples == 0 for u in usage)  # hours without data are zeros
    visitors = await h.distinct_visitors(db, period, by="site")
    assert len(visitors) == 2 * 4
    for v in visitors:
        assert v.visitors == len(seen[(v.group_id, v.bucket)])
    daily = await h.distinct_visitors(
        db, h.Period.of(START, START + timedelta(hours=3), "day"), by="site"
    )
    for v in daily:
        assert v.visitors == len(seen_day[(v.group_id, v.bucket)])
    assert sum(v.visitors for v in daily) < sum(len(s) for s in seen.values())


async def test_busiest_cameras_and_sites(loaded: Loaded) -> None:
    db, _, traffic, telemetry = loaded
    period = h.Period.of(START, START + timedelta(hours=3), h.Bucket.HOUR)
    per_camera: Counter[str] = Counter()
    for m in traffic:
        per_camera[m.camera_id] += sum(c.forward + c.backward for c in m.line_counts.values())
    top = await h.busiest(db, period, h.Ranking.CAMERAS, limit=3)
    assert [(r.id, r.total) for r in top] == sorted(
        per_camera.items(), key=lambda kv: (-kv[1], kv[0])
    )[:3]
    assert top[0].name.startswith("Camera ")
    sites = await h.busiest(db, period, "sites", limit=5)
    assert len(sites) == 2
    assert sum(r.total for r in sites) == sum(len(s.visitors) for b in telemetry for s in b.samples)


@pytest.mark.parametrize(
    ("start", "end", "bucket", "message"),
    [
        (datetime(2026, 1, 1), datetime(2026, 1, 2, tzinfo=UTC), "hour", "no time zone"),
        (MIDNIGHT, MIDNIGHT, "hour", "is not before"),
        (MIDNIGHT, MIDNIGHT + timedelta(days=3), "minute", "at most 2 days"),
        (MIDNIGHT, MIDNIGHT + timedelta(days=100), "hour", "at most 92 days"),
        (MIDNIGHT, MIDNIGHT + timedelta(days=1), "week", "bucket must be one of"),
    ],
)
def test_ranges_are_validated(start: datetime, end: datetime, bucket: str, message: str) -> None:
    with pytest.raises(h.HistoryError, match=message):
        h.Period.of(start, end, bucket)


async def test_wifi_and_visitor_limits(db: asyncpg.Connection) -> None:
    minute = h.Period.of(MIDNIGHT, MIDNIGHT + timedelta(hours=1), "minute")
    with pytest.raises(h.HistoryError, match="not minutes"):
        await h.wifi_usage(db, minute)
    long = h.Period.of(MIDNIGHT, MIDNIGHT + timedelta(days=40), "day")
    with pytest.raises(h.HistoryError, match="at most 35 days"):
        await h.distinct_visitors(db, long)
    with pytest.raises(h.HistoryError, match="limit"):
        await h.busiest(db, long, "cameras", limit=0)

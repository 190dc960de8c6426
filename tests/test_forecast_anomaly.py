"""Anomaly alerts: a spike outside the forecast's 95% band opens a ``traffic_anomaly``
alert through the ordinary alerts path (real Mosquitto, PostgreSQL and alerts engine), and
it clears and resolves once the counts are back inside. Also the store round trip of a
forecast and its errors, and the API that shows them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
import pytest
from test_alerts_engine import Setup, harness, province, setup  # noqa: F401  # fixtures

from alerts import list_alerts
from forecast import Calendar, Forecast, Forecaster, from_observations
from forecast._anomaly import AnomalySettings, AnomalyWatch
from forecast._service import check_anomalies, forecast_service, refresh
from forecast._store import write_forecast
from protocol import EventKind, Province, VisionEvent
from store import StoreConfig, close_pool, create_pool, sync_registry
from store.forecasts import (
    BandPoint,
    Resolution,
    SeriesKey,
    SeriesKind,
    forecast_series,
    read_anomalies,
    read_band,
    read_skill,
)

LINE = SeriesKey(SeriesKind.LINE, "indoor-room/count-1")
# Recent hours: the alerts engine refuses edge times more than a day old (protocol.TimeWindow).
START = (datetime.now(UTC) - timedelta(hours=12)).replace(minute=0, second=0, microsecond=0)


def _band(hour: int) -> BandPoint:
    return BandPoint(START + timedelta(hours=hour), 100.0, 80.0, 120.0, 70.0, 130.0)


def test_one_hour_outside_is_not_an_anomaly_two_are() -> None:
    watch = AnomalyWatch(AnomalySettings(open_after_hours=2, close_after_hours=1))
    seen = [watch.observe(LINE, _band(h).t, v, _band(h)) for h, v in enumerate([300, 100])]
    assert seen == [None, None]  # a one-hour blip
    events = [
        watch.observe(LINE, _band(h).t, v, _band(h))
        for h, v in enumerate([300, 310, 320, 100], start=2)
    ]
    assert [e.phase if e else None for e in events] == [None, "start", "update", "end"]
    start = events[1]
    assert start is not None
    assert (start.kind, start.camera_id, start.line_id) == (
        EventKind.TRAFFIC_ANOMALY,
        "indoor-room",
        "count-1",
    )
    assert start.detail == "expected 100 (95%: 70-130), observed 310"
    site = AnomalyWatch(AnomalySettings(open_after_hours=1))
    event = site.observe(SeriesKey(SeriesKind.SITE, "pier"), START, 5.0, _band(0))
    assert event is not None
    assert (event.kind, event.camera_id) == (EventKind.VISITOR_ANOMALY, "pier")


@pytest.mark.mosquitto
@pytest.mark.postgres
async def test_spike_opens_an_alert_that_resolves_after_it(
    setup: Setup,  # noqa: F811  # the alerts engine tests' fixture
    db: asyncpg.Connection,
) -> None:
    rules = setup.rules({"auto_resolve_seconds": 0})
    watch = AnomalyWatch(AnomalySettings(open_after_hours=2, close_after_hours=2))
    normal = [100, 95, 300, 320, 290, 105, 98, 101]  # the injected spike: hours 2-4
    async with harness(setup, rules) as h:
        phases = []
        for hour, value in enumerate(normal):
            event = watch.observe(LINE, _band(hour).t, value, _band(hour))
            if event is not None:
                phases.append(event.phase)
                await h.send(event)
        assert phases == ["start", "update", "end"]
        _, opened = await h.next_alert()
        assert (opened.kind, opened.change, opened.district) == (
            "traffic_anomaly",
            "opened",
            "my-tho",
        )
        _, repeated = await h.next_alert()
        assert repeated.change == "repeated"
        _, cleared = await h.next_alert()
        assert (cleared.change, cleared.state) == ("cleared", "open")
        assert await h.engine.sweep() == 1
        _, resolved = await h.next_alert()
        assert (resolved.change, resolved.state) == ("resolved", "resolved")
        [alert] = await list_alerts(db)
        assert (alert.kind, alert.source_id) == ("traffic_anomaly", "indoor-room")
        score = await db.fetchval("SELECT max(score) FROM events WHERE kind = 'traffic_anomaly'")
        assert score == pytest.approx(3.2, rel=1e-3)  # observed / expected, kept with the event


@pytest.mark.postgres
async def test_forecast_and_errors_round_trip_through_the_store(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    hours = 24 * 7 * 6
    t = np.arange(hours)
    values = 100 + 80 * np.sin(2 * np.pi * (t % 24) / 24) + (t % 7)
    times = [START - timedelta(hours=hours - i) for i in range(hours)]
    series = from_observations(times, values.tolist())
    fc = Forecaster(Calendar("VN")).forecast(series, 48)
    assert fc.fallback is None
    assert fc.skill is not None
    await write_forecast(db, LINE, Resolution.HOUR, fc, START)
    await write_forecast(db, LINE, Resolution.HOUR, fc, START)  # a refresh replaces
    band = await read_band(db, LINE, Resolution.HOUR, START, START + timedelta(days=3))
    assert [b.t for b in band] == [START + timedelta(hours=i) for i in range(48)]
    assert all(b.low95 <= b.low80 <= b.value <= b.high80 <= b.high95 for b in band)
    skill = await read_skill(db, LINE, Resolution.HOUR)
    assert skill is not None
    assert skill.model == fc.model
    assert skill.points > 0
    assert skill.mae == pytest.approx(fc.skill.mae)


@pytest.mark.postgres
async def test_refresh_forecasts_every_registered_series(
    database: StoreConfig,
    db: asyncpg.Connection,
    province: Province,  # noqa: F811  # the alerts engine tests' fixture
) -> None:
    await sync_registry(db, province)
    pool = await create_pool(database)
    try:
        report = await refresh(pool, Resolution.HOUR, Calendar("VN"))
        daily = await refresh(pool, Resolution.DAY, Calendar("VN"))
    finally:
        await close_pool(pool)
    lines = await forecast_series(db, Resolution.HOUR)
    assert report.series == len(lines) >= 1
    assert SeriesKey(SeriesKind.SITE, "pier") in lines
    # No history yet: every series says it is on the baseline, none is invented.
    assert report.fallbacks == report.series
    assert daily.series == report.series
    key = lines[0]
    skill = await read_skill(db, key, Resolution.HOUR)
    assert skill is not None
    assert skill.fallback is not None
    assert (
        len(
            await read_band(
                db, key, Resolution.DAY, START - timedelta(days=400), START + timedelta(days=400)
            )
        )
        == 14
    )


@pytest.mark.postgres
async def test_service_refreshes_at_start_and_stops_cleanly(
    database: StoreConfig,
    db: asyncpg.Connection,
    province: Province,  # noqa: F811  # the alerts engine tests' fixture
) -> None:
    await sync_registry(db, province)
    published: list[VisionEvent] = []

    async def publish(event: VisionEvent) -> None:
        published.append(event)

    pool = await create_pool(database)
    try:
        async with forecast_service(pool, Calendar("VN"), (AnomalyWatch(), publish)) as done:
            async with asyncio.timeout(120):
                first, second = await done.get(), await done.get()
        assert {first.resolution, second.resolution} == set(Resolution)
    finally:
        await close_pool(pool)
    assert await forecast_series(db, Resolution.HOUR)
    assert published == []  # no history, no band: nothing to call unusual


@pytest.mark.postgres
async def test_hourly_check_reads_the_store_and_keeps_expected_and_observed(
    database: StoreConfig,
    db: asyncpg.Connection,
    province: Province,  # noqa: F811  # the alerts engine tests' fixture
) -> None:
    await sync_registry(db, province)
    line = SeriesKey(SeriesKind.LINE, "indoor-room/count-1")
    t0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
    hours = 5
    band = [
        BandPoint(t0 + timedelta(hours=i), 100.0, 80.0, 120.0, 70.0, 130.0) for i in range(hours)
    ]
    values = np.array([b.value for b in band])
    fc = Forecast(
        start=t0,
        step_hours=1.0,
        value=values,
        low80=values - 20,
        high80=values + 20,
        low95=values - 30,
        high95=values + 30,
        model="profile",
    )
    await write_forecast(db, line, Resolution.HOUR, fc, t0)
    observed = [100, 400, 420, 100, 100]  # the spike: hours 1 and 2
    await db.executemany(
        """INSERT INTO traffic_1h (camera_id, line_id, bucket, forward, backward)
           VALUES ($1, $2, $3, $4, 0)""",
        [("indoor-room", "count-1", t0 + timedelta(hours=i), v) for i, v in enumerate(observed)],
    )
    published: list[VisionEvent] = []

    async def publish(event: VisionEvent) -> None:
        published.append(event)

    watch = AnomalyWatch(AnomalySettings(open_after_hours=2, close_after_hours=1))
    pool = await create_pool(database)
    try:
        for i in range(hours):
            await check_anomalies(pool, watch, publish, now=t0 + timedelta(hours=i + 1))
        async with pool.acquire() as conn:
            records = await read_anomalies(conn, t0, 10)
    finally:
        await close_pool(pool)
    assert [e.phase for e in published] == ["start", "end"]
    assert published[0].detail == "expected 100 (95%: 70-130), observed 420"
    assert [(r.phase, r.expected, r.observed) for r in reversed(records)] == [
        ("start", 100.0, 420.0),
        ("end", 100.0, 100.0),
    ]

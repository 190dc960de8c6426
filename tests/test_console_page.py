"""The operations-room page in headless Chromium (Debian's, driven by Playwright), used as a
person uses it: an operator signs in, sees an alert arrive as an incident, opens it with its
evidence, acknowledges and resolves it, in both languages, with the camera wall's pictures
from an edge on a real broker; a planner draws an interactive chart; everything from our
origin, no error in the browser's console; a screenshot at 1600x1000."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from console_support import (
    SnapshotEdge,
    console,
    create_latest_state_tables,
    raise_alert,
    seed_registry,
    store_evidence,
    tiny_jpeg,
)
from page_support import (
    ARTIFACTS,
    PAGE_MARKS,
    VISIBLE_TEXTS,
    chromium,
    incident_of,
    open_page,
    row,
)
from playwright.async_api import Page

from console_api import Role
from forecast import Calendar, Forecaster, from_observations
from forecast._store import write_forecast
from protocol import EventKind, LineCount, MqttEndpoint, Topics, TrafficMetrics
from store import StoreConfig, write_mode, write_traffic
from store.forecasts import Resolution, SeriesKey, SeriesKind

pytestmark = PAGE_MARKS
LABELS = Path(__file__).resolve().parent.parent / "console_api" / "static" / "i18n.js"
# Server ids that must never reach the screen as they are.
RAW_IDS = {
    *(k.value for k in EventKind),
    *("open", "acknowledged", "assigned", "resolved", "acknowledge", "assign", "resolve"),
    *("auto_resolve", "escalate", "mute", "unmute", "system"),
    *("operator", "police", "planner", "admin", "critical", "major", "minor", "info"),
    *("shoulder", "restricted", "online", "stale", "unknown", "free", "busy", "congested"),
}


async def _natural_width(page: Page, selector: str) -> int:
    """Wait until the image is shown and decoded; its width in pixels."""
    await page.locator(f"{selector}:not([hidden])").wait_for()
    await page.wait_for_function(
        "s => document.querySelector(s).complete && document.querySelector(s).naturalWidth > 0",
        arg=selector,
    )
    width: int = await page.eval_on_selector(selector, "img => img.naturalWidth")
    return width


async def _some_traffic(database: StoreConfig, db: asyncpg.Connection) -> None:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    metrics = [
        TrafficMetrics(
            camera_id="cam-a",
            interval_start=(hour + timedelta(minutes=i)).timestamp(),
            interval_end=(hour + timedelta(minutes=i + 1)).timestamp(),
            seq=i,
            line_counts={"count-nb": LineCount(forward=3, backward=1)},
        )
        for i in range(30)
    ]
    await write_traffic(db, metrics, await write_mode(db, database))


SITE = SeriesKey(SeriesKind.SITE, "vinh-trang")


async def _site_forecast(db: asyncpg.Connection, key: SeriesKey = SITE) -> None:
    """A 48-hour forecast (by default of the seeded site's visitors), as the forecast
    service writes it."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    hours = 24 * 7 * 6
    values = [50 + 40 * math.sin(2 * math.pi * (i % 24) / 24) + 3 * (i % 5) for i in range(hours)]
    series = from_observations([now - timedelta(hours=hours - i) for i in range(hours)], values)
    fc = Forecaster(Calendar("VN")).forecast(series, 48)
    await write_forecast(db, key, Resolution.HOUR, fc, now)


async def _untranslated(page: Page, lang: str) -> list[str]:
    """Texts on screen that are raw server ids, or the other language's labels, or keys
    the translation table lacks."""
    missing: list[str] = await page.evaluate("[...window.iocMissing]")
    other: dict[str, str] = await page.evaluate(
        "lang => Object.fromEntries(Object.entries(LABELS[lang]).filter(([k, v]) =>"
        " LABELS[lang === 'vi' ? 'en' : 'vi'][k] !== v))",
        "en" if lang == "vi" else "vi",
    )
    foreign = set(other.values())
    found = list(missing)
    for text in await page.evaluate(VISIBLE_TEXTS):
        if text in foreign:
            found.append(f"{lang}: other language: {text!r}")
        # English words may be ids too ("restricted"): there, a text that IS an id, or an
        # id with an underscore, gives one away; Vietnamese has no such words.
        tokens = re.split(r"[\s·,:;()/—]+", text)
        found.extend(
            f"{lang}: raw id {token!r} in {text!r}"
            for token in tokens
            if token in RAW_IDS and (lang == "vi" or "_" in token or token == text)
        )
    return found


async def test_an_operator_works_an_incident_in_both_languages(
    database: StoreConfig, db: asyncpg.Connection, mqtt: MqttEndpoint, topics: Topics
) -> None:
    await seed_registry(db)
    await create_latest_state_tables(db)
    await db.execute(
        "INSERT INTO camera_status VALUES ('cam-a', 'online', 5, now(), now(), 0, NULL)"
    )
    async with (
        SnapshotEdge(mqtt, topics) as edge,
        console(database, db, mqtt=mqtt, topics=topics) as c,
        chromium() as browser,
    ):
        await c.user(Role.OPERATOR)
        watched = await open_page(browser, c.url, "operator-1")
        page = watched.page
        await page.locator("#link[data-state=live]").wait_for()
        assert await page.inner_text("#who") == "operator-1 · Điều hành viên"
        assert await page.locator(".incident-row").count() == 0
        # The wall shows the cameras' pictures, from the edge, through the API.
        assert await _natural_width(page, '#wall [data-camera-id="cam-a"] img') == 64
        assert edge.requests["cam-a"] >= 1
        assert await page.inner_text('#wall [data-camera-id="cam-a"] .note') == ""

        alert_id, _ = await raise_alert(db)
        incident = await incident_of(db, alert_id)
        line = row(page, incident)
        await line.wait_for()
        text = await line.inner_text()
        assert "Xâm nhập khu vực cấm" in text
        assert "lề đường" in text  # the zone, translated
        opened = await db.fetchval("SELECT opened_at FROM alerts WHERE id = $1", alert_id)
        assert f"{opened.year}" in text  # dates with their year
        assert await page.inner_text("#severity-counts") == (
            "Khẩn cấp 0\nCao 1\nTrung bình 0\nThông tin 0"
        ) or "Cao 1" in await page.inner_text("#severity-counts")

        # Its detail: evidence, live picture, audit in words, no CAP yet.
        await store_evidence(db, alert_id, tiny_jpeg(96, 72))
        await line.locator(".title").click()
        assert await _natural_width(page, "#evidence") == 96
        assert await _natural_width(page, "#live-picture") == 64
        audit = page.locator('#detail-audit li[data-action="open"]')
        await audit.wait_for()
        assert "Mở · Hệ thống" in await audit.inner_text()
        await page.locator("#detail-cap li", has_text="Chưa gửi công an.").wait_for()
        assert await _untranslated(page, "vi") == []

        await line.locator("button.ack").click()
        await row(page, incident, '[data-state="acknowledged"]').wait_for()
        stored = await db.fetchrow(
            "SELECT state, acknowledged_by FROM alerts WHERE id = $1", alert_id
        )
        assert tuple(stored or ()) == ("acknowledged", "operator-1")
        await page.locator('#detail-audit li[data-action="acknowledge"]').wait_for()

        await page.click("#lang")
        assert await page.inner_text("h1") == "Operations centre"
        assert await page.inner_text("#who") == "operator-1 · Operator"
        text = await line.inner_text()
        assert "Intrusion into a restricted zone" in text
        assert "Acknowledged" in text
        # The detail's audit and CAP lists come again from the API, in English.
        await page.locator('#detail-audit li[data-action="open"]', has_text="Opened").wait_for()
        await page.locator("#detail-cap li", has_text="Not sent to the police.").wait_for()
        assert await _untranslated(page, "en") == []

        await line.locator("button.resolve").click()
        await line.wait_for(state="detached")
        assert watched.problems == []
        local_origins = (c.url, f"ws://{c.host}", f"blob:{c.url}")
        assert all(url.startswith(local_origins) for url in watched.requests), watched.requests


async def test_a_planner_hovers_and_compares_in_an_interactive_chart(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    await create_latest_state_tables(db)
    await _some_traffic(database, db)
    # cam-a's counting line: its observed hour (from _some_traffic), then its forecast.
    await _site_forecast(db, SeriesKey(SeriesKind.LINE, "cam-a/count-nb"))
    async with console(database, db) as c, chromium() as browser:
        await c.user(Role.PLANNER)
        watched = await open_page(browser, c.url, "planner-1")
        page = watched.page
        await page.locator("#history-panel:not([hidden])").wait_for()
        # At once, with no click: the site's forecast after its observed line, with its
        # 80% and 95% bands, and its backtest error beside it.
        await page.locator("#chart .uplot canvas").wait_for()
        assert await page.input_value("#history-compare") == "forecast"
        drawn = await page.evaluate(
            "() => ({bands: planner.plot.bands.map(b => b.series),"
            " observed: planner.plot.data[1].filter(v => v !== null).length,"
            " forecast: planner.plot.data[2].filter(v => v !== null).length,"
            " band: planner.plot.data.slice(3).map(c => c.filter(v => v !== null).length)})"
        )
        assert drawn == {
            "bands": [[4, 3], [6, 5]],
            "observed": 1,
            "forecast": 48,
            "band": [48] * 4,
        }
        legend = await page.inner_text("#chart .u-legend")
        for label in ("Thực tế", "Dự báo", "Cao 95%"):
            assert label in legend, legend
        skill = await page.inner_text("#forecast-skill")
        for part in ("MAE", "MAPE", "Độ phủ 80%", "Tốt hơn dự báo tuần trước"):
            assert part in skill, skill
        assert await _untranslated(page, "vi") == []
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=ARTIFACTS / "planner-forecast.png")
        # No websocket for planners, so no badge that would say "offline".
        assert await page.locator("#link").is_hidden()
        assert await page.locator("#incidents-panel").is_hidden()
        await page.locator('#map .camera-marker[data-camera-id="cam-a"]').wait_for()
        await page.select_option("#history-compare", "traffic-district")
        await page.select_option("#history-items", ["my-tho", "go-cong"])
        await page.click("#history-form button[type=submit]")
        await page.wait_for_function("() => planner.answer.comparison === 'traffic-district'")
        assert await page.locator("#forecast-skill").is_hidden()
        legend = await page.inner_text("#chart .u-legend")
        assert "TP. Mỹ Tho" in legend
        assert await page.evaluate("planner.plot.axes[1].label") == "Số xe"  # in Vietnamese
        # Hovering shows the values of that hour.
        box = await page.locator("#chart .u-over").bounding_box()
        assert box is not None
        await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        await page.wait_for_function(
            "() => [...document.querySelectorAll('#chart .u-legend .u-value')]"
            ".some(v => /\\d/.test(v.textContent))"
        )
        assert any(
            "/api/v1/history/traffic?" in r and "district=go-cong" in r and "format=json" in r
            for r in watched.requests
        )
        assert watched.problems == []


async def test_an_operator_sees_a_visitor_anomalys_forecast_band_in_the_detail(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    await create_latest_state_tables(db)
    await _site_forecast(db)
    alert_id, _ = await raise_alert(
        db, camera="vinh-trang", kind=EventKind.VISITOR_ANOMALY, zone=None
    )
    incident = await incident_of(db, alert_id)
    async with console(database, db) as c, chromium() as browser:
        await c.user(Role.OPERATOR)
        watched = await open_page(browser, c.url, "operator-1")
        page = watched.page
        await row(page, incident).locator(".title").click()
        await page.locator("#detail-forecast .uplot canvas").wait_for()
        bands = await page.evaluate("() => detailPlot.bands.map(b => b.series)")
        assert bands == [[4, 3], [6, 5]]
        caption = await page.inner_text("#detail-forecast-skill")
        assert "Điểm du lịch: Chùa Vĩnh Tràng" in caption
        assert "MAE" in caption
        assert await _untranslated(page, "vi") == []


async def test_the_operator_screen_fits_1600x1000(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    await create_latest_state_tables(db)
    for zone in ("shoulder", "gate", "lot"):
        await raise_alert(db, zone=zone)
    await raise_alert(db, camera="cam-b", district="go-cong", kind=EventKind.CROWD, zone=None)
    async with console(database, db) as c, chromium() as browser:
        await c.user(Role.OPERATOR)
        page = (await open_page(browser, c.url, "operator-1")).page
        await page.locator("#link[data-state=live]").wait_for()
        # cam-a's three zones are one incident (same source); cam-b's crowd is another.
        await page.locator(".incident-row").nth(1).wait_for()
        assert await page.locator(".incident-row").count() == 2
        size = await page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
        )
        assert size == [1600, 1000], "the operator's screen must not scroll"
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / "operator-1600x1000.png"
        await page.screenshot(path=path)
        print(f"screenshot: {path}")
        # A narrow window stacks the panels: the map under the list, the wall under the map.
        await page.set_viewport_size({"width": 900, "height": 1000})
        boxes = {}
        for panel in ("incidents-panel", "map-panel", "wall-panel"):
            box = await page.locator(f"#{panel}").bounding_box()
            assert box is not None
            boxes[panel] = box
        assert (
            boxes["map-panel"]["y"]
            >= boxes["incidents-panel"]["y"] + boxes["incidents-panel"]["height"]
        )
        assert boxes["wall-panel"]["y"] >= boxes["map-panel"]["y"] + boxes["map-panel"]["height"]
        assert all(b["width"] > 800 for b in boxes.values())

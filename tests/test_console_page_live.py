"""The page's map and its live incidents, across browsers and roles: cameras and incidents
at their coordinates, an acknowledgement and an assignment in one operator's browser seen
in another's within a second, the police seeing only their incidents, and the incident's
evidence clip playing in the detail."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import asyncpg
from console_support import (
    console,
    create_latest_state_tables,
    raise_alert,
    route_to_police,
    seed_registry,
)
from page_support import PAGE_MARKS, chromium, incident_of, open_page, row
from playwright.async_api import Page
from test_console_page import _untranslated
from test_evidence_centre import agent_http, centre_console, manifest_for, mp4, upload

from console_api import Role
from edge import CitySimulator, ClipLibrary
from protocol import EventKind, MqttEndpoint, Topics, parse_province
from store import StoreConfig

pytestmark = PAGE_MARKS
__all__ = ["mp4"]  # the clip fixture, shared with the evidence centre's tests
ROOT = Path(__file__).resolve().parent.parent

# Where a marker is drawn, and where the map puts the coordinates it should be at (pixels
# in the map's container); they agree when the marker stands at its place.
_MARKER_AT = """([selector, lat, lon]) => {
  const map = window.iocMap.map;
  const box = document.querySelector(selector).getBoundingClientRect();
  const origin = map.getContainer().getBoundingClientRect();
  const want = map.latLngToContainerPoint([lat, lon]);
  return [box.x + box.width / 2 - origin.x, box.y + box.height / 2 - origin.y, want.x, want.y];
}"""


_FIT = """() => {
  const map = window.iocMap.map;
  const b = window.iocMap.bounds;
  const size = map.getSize();
  const ne = map.latLngToContainerPoint(b.getNorthEast());
  const sw = map.latLngToContainerPoint(b.getSouthWest());
  return {inside: map.getBounds().contains(b), zoom: map.getZoom(),
          width: (ne.x - sw.x) / size.x, height: (sw.y - ne.y) / size.y};
}"""
_OFF_CENTRE = """(at) => {
  const map = window.iocMap.map;
  const p = map.latLngToContainerPoint(at);
  const size = map.getSize();
  return [p.x - size.x / 2, p.y - size.y / 2];
}"""
# Answers the page expects and explains, which the browser still logs as errors: 503 for
# the wall's first picture without a broker (the page then stops asking and says why), 404
# for an incident without an evidence snapshot (the detail says there is none).
EXPECTED = ("status of 503", "status of 404")


def _problems(problems: list[str]) -> list[str]:
    return [p for p in problems if not any(e in p for e in EXPECTED)]


async def _assert_at(page: Page, selector: str, lat: float, lon: float) -> None:
    await page.locator(selector).first.wait_for()
    x, y, want_x, want_y = await page.evaluate(_MARKER_AT, [selector, lat, lon])
    assert abs(x - want_x) < 1.5, (selector, x, want_x)
    assert abs(y - want_y) < 1.5, (selector, y, want_y)


async def test_the_map_shows_cameras_and_incidents_at_their_coordinates(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    await create_latest_state_tables(db)
    alert_id, _ = await raise_alert(db, camera="cam-b", district="go-cong", zone=None)
    incident = await incident_of(db, alert_id)
    async with console(database, db) as c, chromium() as browser:
        await c.user(Role.OPERATOR)
        watched = await open_page(browser, c.url, "operator-1", lang="en")
        page = watched.page
        await row(page, incident).wait_for()
        for camera, lat, lon in await db.fetch("SELECT id, lat, lon FROM cameras"):
            await _assert_at(page, f'.camera-marker[data-camera-id="{camera}"]', lat, lon)
        marker = f'.incident-marker[data-incident-id="{incident}"]'
        await _assert_at(page, marker, 10.3601, 106.6712)  # cam-b's place
        # The map opens fitted to the province: all of it in view, filling the map's width
        # or its height (not a small province in a dark field).
        fit = await page.evaluate(_FIT)
        assert fit["inside"], fit
        assert max(fit["width"], fit["height"]) > 0.6, fit
        # Unacknowledged: it pulses; selecting it in the list centres the map on it.
        assert "pulse" in (await page.get_attribute(marker, "class") or "")
        await row(page, incident).locator(".title").click()
        assert await page.evaluate("window.iocMap.map.getZoom()") == fit["zoom"]  # no jump
        # At the province's zoom the centre is the incident's place to the pixel.
        off = await page.evaluate(_OFF_CENTRE, [10.3601, 106.6712])
        assert max(abs(off[0]), abs(off[1])) <= 1, off
        await page.locator(f'#detail[data-incident-id="{incident}"]').wait_for()
        assert _problems(watched.problems) == []


async def test_an_acknowledgement_and_an_assignment_reach_another_operator_within_a_second(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    await create_latest_state_tables(db)
    alert_id, _ = await raise_alert(db)
    incident = await incident_of(db, alert_id)
    async with console(database, db) as c, chromium() as browser:
        await c.user(Role.OPERATOR)
        await c.user(Role.OPERATOR, "operator-2")
        one = (await open_page(browser, c.url, "operator-1")).page
        two = (await open_page(browser, c.url, "operator-2")).page
        for page in (one, two):
            await row(page, incident).wait_for()

        started = time.monotonic()
        await row(one, incident).locator("button.ack").click()
        await row(two, incident, '[data-state="acknowledged"]').wait_for(timeout=1000)
        assert time.monotonic() - started < 1.0

        await row(one, incident).locator("button.assign").click()
        assignee = one.locator("#assignee")
        if await assignee.evaluate("e => e.tagName") == "SELECT":
            await assignee.select_option("operator-2")
        else:
            await assignee.fill("operator-2")
        started = time.monotonic()
        await one.click("#menu-save")
        await row(two, incident, '[data-state="assigned"]').wait_for(timeout=1000)
        assert time.monotonic() - started < 1.0
        assert "operator-2" in await row(two, incident).inner_text()
        stored = await db.fetchval("SELECT assigned_to FROM alerts WHERE id = $1", alert_id)
        assert stored == "operator-2"


async def test_police_see_only_their_incidents_with_their_cap_history(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    await create_latest_state_tables(db)
    routing = await route_to_police(db)
    theirs_alert, _ = await raise_alert(db, routing=routing)
    others_alert, _ = await raise_alert(
        db,
        camera="cam-b",
        district="go-cong",
        kind=EventKind.CONGESTION,
        zone=None,
        routing=routing,
    )
    theirs = await incident_of(db, theirs_alert)
    others = await incident_of(db, others_alert)
    async with console(database, db) as c, chromium() as browser:
        await c.user(Role.OPERATOR)
        await c.user(Role.POLICE)
        operator = (await open_page(browser, c.url, "operator-1")).page
        await operator.locator(f'.incident-marker[data-incident-id="{others}"]').wait_for()
        watched = await open_page(browser, c.url, "police-1")
        page = watched.page
        await page.locator(f'.incident-marker[data-incident-id="{theirs}"]').wait_for()
        markers = await page.eval_on_selector_all(
            ".incident-marker", "ms => ms.map(m => m.dataset.incidentId)"
        )
        assert markers == [theirs]
        assert await page.locator(".incident-row").count() == 1
        # The detail is never blank: their incident, with the CAP message sent about it.
        await page.locator('#detail-cap li[data-msg-type="Alert"]').wait_for()
        assert await page.locator("#wall-panel").is_hidden()
        assert await page.locator("#detail-actions button").count() == 0
        box = await page.locator("#map-panel").bounding_box()
        assert box is not None
        assert box["height"] > 800  # the map takes the wall's place too
        assert _problems(watched.problems) == []


async def test_the_camera_wall_shows_the_simulators_pictures(
    database: StoreConfig, db: asyncpg.Connection, mqtt: MqttEndpoint, topics: Topics
) -> None:
    """The demo's simulator answers the wall's snapshot requests over Mosquitto: real
    pictures from its clips, at the width the API asks (640) or the clip's own."""
    await seed_registry(db)
    await create_latest_state_tables(db)
    province = parse_province(
        {
            "cameras": [
                {
                    "id": "cam-a",
                    "name": "cam-a",
                    "kind": "traffic",
                    "district": "my-tho",
                    "lat": 10.3571,
                    "lon": 106.3712,
                    "fps": 5,
                    "source": "data/video/parking_lot_overhead_768x432.mp4",
                },
                {
                    "id": "cam-b",
                    "name": "cam-b",
                    "kind": "security",
                    "district": "go-cong",
                    "lat": 10.3601,
                    "lon": 106.6712,
                    "fps": 5,
                    "source": "data/video/highway_cctv_osd_320x240.avi",
                },
            ]
        }
    )
    simulator = CitySimulator(province, mqtt, ClipLibrary(base=ROOT), topics=topics)
    async with (
        simulator,
        console(database, db, mqtt=mqtt, topics=topics) as c,
        chromium() as browser,
    ):
        await c.user(Role.OPERATOR)
        watched = await open_page(browser, c.url, "operator-1")
        page = watched.page
        widths = {}
        for camera in ("cam-a", "cam-b"):
            img = f'#wall [data-camera-id="{camera}"] img'
            await page.locator(f"{img}:not([hidden])").wait_for(timeout=20_000)
            await page.wait_for_function("s => document.querySelector(s).naturalWidth > 0", arg=img)
            widths[camera] = await page.eval_on_selector(img, "i => i.naturalWidth")
            note = f'#wall [data-camera-id="{camera}"] .note'
            assert await page.inner_text(note) == ""  # never a picture and "no picture"
        assert widths == {"cam-a": 640, "cam-b": 320}
        assert simulator.stats.snapshots_answered >= 2
        assert _problems(watched.problems) == []


_PLAYING = """() => {
  const video = document.querySelector("#clip");
  return video.readyState >= 2 && video.duration > 0 && video.src.startsWith("blob:");
}"""


async def test_the_detail_plays_the_incidents_evidence_clip(
    database: StoreConfig, db: asyncpg.Connection, tmp_path: Path, mp4: bytes
) -> None:
    """Operators play the clip in the detail (fetched with their token, played from a blob:
    URL, its SHA-256 checked in the browser) and export it; police play their own."""
    await seed_registry(db)
    await create_latest_state_tables(db)
    routing = await route_to_police(db)
    alert_id, _ = await raise_alert(db, routing=routing)
    incident = await incident_of(db, alert_id)
    sha256 = hashlib.sha256(mp4).hexdigest()
    async with (
        centre_console(database, db, tmp_path) as (c, _centre),
        agent_http(c) as agent,
        chromium() as browser,
    ):
        assert (await upload(agent, manifest_for(mp4, alert_id), mp4)).status_code == 201
        await c.user(Role.OPERATOR)
        await c.user(Role.POLICE)
        for username in ("operator-1", "police-1"):
            watched = await open_page(browser, c.url, username)
            page = watched.page
            await row(page, incident).locator(".title").click()
            await page.locator("#clip-figure:not([hidden])").wait_for()
            await page.wait_for_function(_PLAYING)
            await page.locator('#clip-figure[data-verified="true"]').wait_for()
            assert await page.inner_text("#clip-sha") == f"SHA-256 {sha256}"
            assert "SHA-256 khớp" in await page.inner_text("#clip-note")
            assert _problems(watched.problems) == []
        async with page.expect_download() as download:
            await page.click("#clip-export")
        assert (await download.value).suggested_filename == "clip-1.mp4"
        actions = await db.fetch(
            "SELECT actor, action FROM evidence_custody WHERE clip_id = 'clip-1'"
            " AND action IN ('viewed', 'exported') ORDER BY seq"
        )
        assert [tuple(a) for a in actions] == [
            ("operator-1", "viewed"),
            ("police-1", "viewed"),
            ("police-1", "exported"),
        ]


async def test_an_operator_enters_a_hotline_report_through_the_page(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    """The hotline form: a service, the place by a click on the map, a description and the
    caller's number, posted to the Open311 hotline path; the citizen_report incident comes
    back in the list and on the map with its own marker."""
    await seed_registry(db)
    await create_latest_state_tables(db)
    async with console(database, db) as c, chromium() as browser:
        await c.user(Role.OPERATOR)
        watched = await open_page(browser, c.url, "operator-1")
        page = watched.page
        await page.locator("#link[data-state=live]").wait_for()
        await page.click("#hotline-open")
        await page.locator("#hotline-service option[value=noise]").wait_for(state="attached")
        await page.select_option("#hotline-service", "noise")
        # The place: a click on the map, about 55 m from cam-a.
        x, y = await page.evaluate(
            "() => { const p = window.iocMap.map.latLngToContainerPoint([10.3575, 106.3715]);"
            " return [p.x, p.y]; }"
        )
        await page.locator("#map").click(position={"x": x, "y": y})
        assert abs(float(await page.input_value("#hotline-lat")) - 10.3575) < 0.001
        assert abs(float(await page.input_value("#hotline-lon")) - 106.3715) < 0.001
        await page.fill("#hotline-description", "Karaoke quá to sau 23 giờ")
        await page.fill("#hotline-caller", "0909000111")
        await page.click("#hotline-form button[type=submit]")
        done = page.locator("#hotline-done:not([hidden])")
        await done.wait_for()
        request_id = int(await done.get_attribute("data-request-id") or "0")
        stored = await db.fetchrow(
            "SELECT description, alert_id FROM open311_requests WHERE id = $1", request_id
        )
        assert stored is not None
        assert stored["description"] == "Karaoke quá to sau 23 giờ"
        incident = await incident_of(db, str(stored["alert_id"]))
        line = row(page, incident)
        await line.wait_for()
        assert "Người dân phản ánh" in await line.inner_text()
        assert f"Phản ánh #{request_id}" in await line.inner_text()
        marker = page.locator(f'.incident-marker.citizen-marker[data-incident-id="{incident}"]')
        await marker.wait_for()
        # Camera incidents keep the plain marker.
        assert await page.locator(".incident-marker:not(.citizen-marker)").count() == 0
        # Its audit in words: who (a citizen), which report, its service and channel.
        await line.locator(".title").click()
        opened = page.locator('#detail-audit li[data-action="open"]')
        await opened.wait_for()
        text = await opened.inner_text()
        assert f"Mở · Người dân — phản ánh #{request_id} (" in text, text
        assert "đường dây nóng)" in text, text
        assert "noise" not in text, text
        assert await _untranslated(page, "vi") == []
        await page.click("#lang")
        await page.locator('#detail-audit li[data-action="open"]', has_text="Citizen").wait_for()
        assert f"Opened · Citizen — report #{request_id} (" in await opened.inner_text()
        assert await _untranslated(page, "en") == []
        assert _problems(watched.problems) == []

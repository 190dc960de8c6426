"""Open311 GeoReport v2 as a client written to the spec sees it: every endpoint in JSON and
XML with the spec's field lists, the error arrays, keys, photos, rate limits; and reports in
the operations room: joined to camera alerts both ways, duplicates grouped, escalation past
the target, police over CAP marked citizen-reported."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from console_support import console, raise_alert, route_to_police, seed_registry
from console_support import tiny_jpeg as jpeg
from lxml import etree

from citizens import (
    DemoCitizen,
    add_key,
    escalate_overdue,
    join_new_alerts,
    load_catalogue,
    revoke_key,
)
from citizens._keys import key_owner
from citizens._limits import RateLimited, SlidingWindow
from console_api import Role
from protocol import ConfigError, EventKind
from store import StoreConfig

pytestmark = pytest.mark.postgres
V2 = "/open311/v2"
SERVICE_FIELDS = [
    "service_code",
    "service_name",
    "description",
    "metadata",
    "type",
    "keywords",
    "group",
]
REQUEST_FIELDS = [
    "service_request_id", "status", "status_notes", "service_name", "service_code",
    "description", "agency_responsible", "service_notice", "requested_datetime",
    "updated_datetime", "expected_datetime", "address", "address_id", "zipcode", "lat", "long",
    "media_url",
]  # fmt: skip
ATTRIBUTE_FIELDS = [
    "variable", "code", "datatype", "required", "datatype_description", "order", "description",
    "values",
]  # fmt: skip
NEAR_CAM_A = {"lat": "10.3575", "long": "106.3715"}  # ~55 m from cam-a


def _xml(response: httpx.Response) -> etree._Element:
    assert response.headers["content-type"].startswith("text/xml")
    return etree.fromstring(response.content)


async def _report(http: httpx.AsyncClient, key: str, **fields: str) -> httpx.Response:
    form = {"api_key": key, "service_code": "traffic-accident"} | NEAR_CAM_A | fields
    if form["service_code"] == "traffic-accident":
        form["attribute[injured]"] = "no"
    return await http.post(f"{V2}/requests.json", data=form)


async def test_services_discovery_and_definitions_in_both_formats(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    async with console(database, db) as c, c.http() as http:
        services = (await http.get(f"{V2}/services.json")).json()
        assert len(services) == 10
        assert all(list(s) == SERVICE_FIELDS for s in services)
        assert {s["type"] for s in services} == {"realtime"}
        assert services[0]["keywords"] == "accident, crash, tai nạn"  # one text, as the spec
        answer = await http.get(f"{V2}/services.xml")
        assert answer.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
        root = _xml(answer)
        assert root.tag == "services"
        assert [e.tag for e in root[0]] == SERVICE_FIELDS
        assert len(root.findall("service")) == 10

        definition = (await http.get(f"{V2}/services/traffic-accident.json")).json()
        assert definition["service_code"] == "traffic-accident"
        injured = definition["attributes"][0]
        assert list(injured) == ATTRIBUTE_FIELDS
        assert injured["datatype"] == "singlevaluelist"
        assert injured["required"] is True
        assert {v["key"] for v in injured["values"]} == {"yes", "no", "unknown"}
        root = _xml(await http.get(f"{V2}/services/traffic-accident.xml"))
        assert root.tag == "service_definition"
        assert root.findtext("attributes/attribute/values/value/key") == "yes"

        missing = await http.get(f"{V2}/services/no-such.xml")
        assert missing.status_code == 404
        assert _xml(missing).findtext("error/code") == "404"

        discovery = (await http.get(f"{V2}/discovery.json")).json()
        endpoint = discovery["endpoints"][0]
        assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
        assert endpoint["url"].endswith("/open311/v2")
        assert (
            _xml(await http.get(f"{V2}/discovery.xml")).findtext(
                "endpoints/endpoint/formats/format"
            )
            == "text/xml"
        )
        assert (await http.get(f"{V2}/services.yaml")).status_code == 404


async def test_post_follow_and_close_a_report_with_a_photo(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    key = await add_key(db, "city-app")
    async with console(database, db) as c, c.http() as http:
        upload = await http.post(
            f"{V2}/media.json",
            data={"api_key": key},
            files={"media": ("p.jpg", jpeg(), "image/jpeg")},
        )
        assert upload.status_code == 201, upload.text
        media_url = upload.json()[0]["media_url"]
        photo = await http.get(media_url)
        assert photo.content == jpeg()
        assert photo.headers["content-type"] == "image/jpeg"

        description = "<script>alert(1)</script> xe tải lật & chắn đường"
        posted = await http.post(
            f"{V2}/requests.xml",
            data={
                "api_key": key,
                "service_code": "flooding",
                "attribute[depth]": "knee",
                "lat": "10.3640",
                "long": "106.3900",
                "description": description,
                "media_url": media_url,
                "email": "citizen@example.org",
                "phone": "0912345678",
            },
        )
        assert posted.status_code == 201, posted.text
        created = _xml(posted)
        assert created.tag == "service_requests"
        request_id = created.findtext("request/service_request_id")
        token = created.findtext("request/token")
        assert request_id
        assert token

        tokens = (await http.get(f"{V2}/tokens/{token}.json")).json()
        assert tokens == [{"service_request_id": request_id, "token": token}]
        assert (
            _xml(await http.get(f"{V2}/tokens/{token}.xml")).findtext("request/service_request_id")
            == request_id
        )

        got = (await http.get(f"{V2}/requests/{request_id}.json")).json()
        assert len(got) == 1
        assert list(got[0]) == REQUEST_FIELDS
        one = got[0]
        assert one["status"] == "open"
        assert one["description"] == description
        assert one["media_url"] == media_url
        assert one["service_code"] == "flooding"
        assert "example.org" not in str(got)
        assert "0912345678" not in str(got)
        requested = datetime.fromisoformat(one["requested_datetime"])
        assert datetime.fromisoformat(one["expected_datetime"]) - requested == timedelta(hours=4)
        root = _xml(await http.get(f"{V2}/requests/{request_id}.xml"))
        assert [e.tag for e in root[0]] == REQUEST_FIELDS
        assert root.findtext("request/description") == description  # text, escaped

        # An operator resolves the alert that handles it: the citizen sees it closed.
        alert_id = await db.fetchval(
            "SELECT alert_id::text FROM open311_requests WHERE id = $1", int(request_id)
        )
        operator = await c.as_role(Role.OPERATOR)
        async with operator:
            done = await operator.post(
                f"/api/v1/alerts/{alert_id}/resolve", json={"note": "pumped out"}
            )
            assert done.status_code == 200, done.text
        closed = (await http.get(f"{V2}/requests/{request_id}.json?extensions=true")).json()[0]
        assert closed["status"] == "closed"
        assert [n["type"] for n in closed["notes"]] == ["opened", "closed"]
        listed = (await http.get(f"{V2}/requests.json?status=closed")).json()
        assert [r["service_request_id"] for r in listed] == [request_id]
        assert (await http.get(f"{V2}/requests.json?status=open")).json() == []
        assert _xml(await http.get(f"{V2}/requests.xml")).findtext("request/status") == "closed"
        # By default a list covers the last 90 days (the spec's); by id, any request.
        await db.execute("UPDATE open311_requests SET requested_at = now() - interval '100 days'")
        assert (await http.get(f"{V2}/requests.json")).json() == []
        assert len((await http.get(f"{V2}/requests/{request_id}.json")).json()) == 1


async def test_bad_input_gets_the_spec_error_array(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    key = await add_key(db, "city-app")
    async with console(database, db) as c, c.http() as http:
        no_key = await http.post(f"{V2}/requests.json", data={"service_code": "noise"})
        assert no_key.status_code == 403
        assert no_key.json()[0]["code"] == 403
        bad = await http.post(
            f"{V2}/requests.json",
            data={
                "api_key": key,
                "service_code": "traffic-accident",
                "lat": "north",
                "long": "106.37",
                "description": "x" * 4001,
                "attribute[injured]": "maybe",
            },
        )
        assert bad.status_code == 400
        described = " ".join(e["description"] for e in bad.json())
        for field in ("lat", "description", "attribute[injured]"):
            assert field in described, described
        assert all(e["code"] == 400 for e in bad.json())
        xml_bad = await http.post(
            f"{V2}/requests.xml", data={"api_key": key, "service_code": "nope"}
        )
        assert xml_bad.status_code == 400
        assert _xml(xml_bad).tag == "errors"
        outside = await _report(http, key, lat="21.03", long="105.85")  # Hà Nội
        assert outside.status_code == 400
        assert "outside the province" in outside.json()[0]["description"]
        by_address = await _report(
            http, key, lat="", long="", address_string="12 Nguyễn Huệ, Gò Công", device_id="addr"
        )
        assert by_address.status_code == 201, by_address.text
        not_image = await http.post(
            f"{V2}/media.json",
            data={"api_key": key},
            files={"media": ("x.jpg", b"<svg onload=alert(1)>", "image/jpeg")},
        )
        assert not_image.status_code == 400
        too_big = await http.post(
            f"{V2}/media.json",
            data={"api_key": key},
            files={"media": ("x.jpg", b"\xff\xd8\xff" + b"0" * 61_000, "image/jpeg")},
        )
        assert too_big.status_code == 413
        assert (await http.get(f"{V2}/requests/999999.json")).status_code == 404
        assert (await http.get(f"{V2}/requests.json?status=maybe")).status_code == 400
        for odd in ({"end_date": "0001-01-01T00:00:00+00:00"}, {"service_code": "a\x00b"}):
            answer = await http.get(f"{V2}/requests.json", params=odd)
            assert answer.status_code == 400, (odd, answer.text)
        assert (await http.get(f"{V2}/tokens/not-a-token.xml")).status_code == 404

        assert await revoke_key(db, "city-app")
        revoked = await _report(http, key)
        assert revoked.status_code == 403


async def test_rate_limits_per_device_answer_429_with_retry_after(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    key = await add_key(db, "city-app")
    async with console(database, db) as c, c.http() as http:
        for _ in range(5):
            ok = await _report(http, key, service_code="noise", device_id="phone-1")
            assert ok.status_code == 201, ok.text
        limited = await _report(http, key, service_code="noise", device_id="phone-1")
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.json()[0]["code"] == 429
        other = await _report(http, key, service_code="noise", device_id="phone-2")
        assert other.status_code == 201


async def _alert_of(db: asyncpg.Connection, request_id: str) -> str:
    value: str = await db.fetchval(
        "SELECT alert_id::text FROM open311_requests WHERE id = $1", int(request_id)
    )
    return value


async def test_reports_join_camera_alerts_both_ways_and_duplicates_group(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    routing = await route_to_police(db)
    key = await add_key(db, "city-app")
    catalogue = load_catalogue()
    stopped, _ = await raise_alert(db, kind=EventKind.STOPPED_VEHICLE, routing=routing)
    async with console(database, db) as c, c.http() as http:
        # A report near an open camera alert of a matching kind joins it.
        first = (await _report(http, key, device_id="a")).json()[0]["service_request_id"]
        assert await _alert_of(db, first) == stopped
        seen = (await http.get(f"{V2}/requests/{first}.json")).json()[0]
        assert "already on it" in seen["status_notes"]

        # Far from the camera: its own alert, of the service's severity, to the police.
        far = {"lat": "10.3700", "long": "106.3500"}
        own = (await _report(http, key, device_id="b", service_code="security", **far)).json()[0][
            "service_request_id"
        ]
        own_alert = await _alert_of(db, own)
        row = await db.fetchrow(
            "SELECT kind, severity, zone_id FROM alerts WHERE id = $1::uuid", own_alert
        )
        assert row is not None
        assert dict(row) == {"kind": "citizen_report", "severity": "major", "zone_id": "security"}
        cap = await db.fetchval(
            "SELECT body FROM cap_messages WHERE alert_id = $1::uuid", own_alert
        )
        assert cap is not None
        assert "citizen-reported" in cap
        assert "10.37000,106.35000" in cap  # the CAP circle is where the citizen was
        async with await c.as_role(Role.OPERATOR) as operator:
            geo = (await operator.get("/api/v1/geo/alerts")).json()
        (feature,) = [f for f in geo["features"] if f["properties"].get("kind") == "citizen_report"]
        assert feature["geometry"]["coordinates"] == [106.35, 10.37]

        # The same service nearby: a duplicate joins the first report's alert.
        near = {"lat": "10.3702", "long": "106.3502"}
        dup = (await _report(http, key, device_id="c", service_code="security", **near)).json()[0][
            "service_request_id"
        ]
        assert await _alert_of(db, dup) == own_alert
        assert await db.fetchval("SELECT count FROM alerts WHERE id = $1::uuid", own_alert) == 2
        assert (
            "Already reported"
            in (await http.get(f"{V2}/requests/{dup}.json")).json()[0]["status_notes"]
        )

        # The reverse: a camera alert opens near an open report of a matching service.
        report = (
            await _report(
                http,
                key,
                device_id="d",
                service_code="stalled-vehicle",
                lat="10.3603",
                long="106.6714",
            )
        ).json()[0]["service_request_id"]
        assert (
            "already on it"
            not in (await http.get(f"{V2}/requests/{report}.json")).json()[0]["status_notes"]
        )
        await raise_alert(
            db, kind=EventKind.STOPPED_VEHICLE, camera="cam-b", district="go-cong", zone=None
        )
        # The API's own sweep may have linked it already: either way, linked once.
        assert await join_new_alerts(db, catalogue) in {0, 1}
        assert await join_new_alerts(db, catalogue) == 0
        links = await db.fetchval(
            "SELECT count(*) FROM open311_links WHERE request_id = $1 AND reason = 'camera'",
            int(report),
        )
        assert links == 1
        assert (
            "already on it"
            in (await http.get(f"{V2}/requests/{report}.json")).json()[0]["status_notes"]
        )


async def test_the_demo_citizen_reports_near_a_camera_alert_and_joins_it(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    key = await add_key(db, "demo-citizen-app")
    async with (
        console(database, db) as c,
        DemoCitizen(database, c.url, key, reports=1) as citizen,
    ):
        stopped, _ = await raise_alert(db, kind=EventKind.STOPPED_VEHICLE)
        await asyncio.wait_for(citizen.reported.wait(), 30)
        (request_id,) = citizen.posted
        assert await _alert_of(db, request_id) == stopped


async def test_a_report_past_its_target_escalates_once(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    key = await add_key(db, "city-app")
    async with console(database, db) as c, c.http() as http:
        posted = await _report(http, key, service_code="noise", device_id="x")
        request_id = posted.json()[0]["service_request_id"]
    alert_id = await _alert_of(db, request_id)
    assert await escalate_overdue(db) == []  # its target is a day away
    later = datetime.now(UTC) + timedelta(days=1, minutes=1)
    escalated = await escalate_overdue(db, now=later)
    assert [a.id for a in escalated] == [alert_id]
    assert escalated[0].escalation_level == 1
    assert await escalate_overdue(db, now=later) == []
    actions = await db.fetch(
        "SELECT action FROM alert_audit WHERE alert_id = $1::uuid ORDER BY id", alert_id
    )
    assert [a["action"] for a in actions] == ["open", "escalate"]


async def test_planners_get_reports_per_service_district_day_and_median_time_to_close(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    key = await add_key(db, "city-app")
    async with console(database, db) as c, c.http() as http:
        ids = [
            (await _report(http, key, service_code="noise", device_id=d, lat=lat)).json()[0][
                "service_request_id"
            ]
            for d, lat in (("a", "10.3575"), ("b", "10.3800"), ("c", "10.3400"))
        ]
        operator = await c.as_role(Role.OPERATOR)
        async with operator:
            for request_id in ids[:2]:
                alert_id = await _alert_of(db, request_id)
                done = await operator.post(f"/api/v1/alerts/{alert_id}/resolve", json={})
                assert done.status_code == 200, done.text
        # Fixed times (midday in Việt Nam, one local day): two came in 30 and 50 minutes
        # before they were closed at 05:00 UTC; the third came in at 04:00 and is open.
        closed_at = datetime(2026, 6, 1, 5, 0, tzinfo=UTC)
        for request_id, minutes in zip(ids, (30, 50, 60), strict=True):
            await db.execute(
                "UPDATE open311_requests SET requested_at = $2 WHERE id = $1",
                int(request_id),
                closed_at - timedelta(minutes=minutes),
            )
            await db.execute(
                """UPDATE alerts SET resolved_at = $2 FROM open311_requests r
                   WHERE r.id = $1 AND alerts.id = r.alert_id AND alerts.state = 'resolved'""",
                int(request_id),
                closed_at,
            )
        window = {"since": "2026-06-01T00:00:00+07:00", "until": "2026-06-02T00:00:00+07:00"}
        planner = await c.as_role(Role.PLANNER)
        async with planner:
            answer = (await planner.get("/api/v1/history/citizen-reports", params=window)).json()
            (day,) = answer["days"]
            assert day["service_code"] == "noise"
            assert day["district_id"] == "my-tho"
            assert (day["reports"], day["closed"]) == (3, 2)
            assert day["day"] == "2026-06-01"
            assert day["median_minutes_to_close"] == 40.0
            table = await planner.get(
                "/api/v1/history/citizen-reports", params={**window, "format": "csv"}
            )
            assert table.headers["content-type"].startswith("text/csv")
            header, row = table.text.strip().split("\n")
            assert header == ("day,service_code,district_id,reports,closed,median_minutes_to_close")
            assert row.split(",")[1:5] == ["noise", "my-tho", "3", "2"]


async def test_hotline_reports_keep_the_callers_number_for_admins_only(
    database: StoreConfig, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOC_OPEN311_CALLER_KEY", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
    await seed_registry(db)
    async with console(database, db) as c:
        operator = await c.as_role(Role.OPERATOR)
        async with operator:
            posted = await operator.post(
                f"{V2}/hotline/requests.json",
                data={"service_code": "noise", "caller_number": "0909000111", **NEAR_CAM_A},
            )
            assert posted.status_code == 201, posted.text
            request_id = posted.json()[0]["service_request_id"]
            denied = await operator.get(f"{V2}/hotline/requests/{request_id}/caller")
            assert denied.status_code == 403
        stored = await db.fetchval(
            "SELECT caller_number_enc FROM open311_requests WHERE id = $1", int(request_id)
        )
        assert b"0909000111" not in stored
        admin = await c.as_role(Role.ADMIN)
        async with admin:
            shown = await admin.get(f"{V2}/hotline/requests/{request_id}/caller")
            assert shown.json() == {"caller_number": "0909000111"}
        async with c.http() as anonymous:
            hotline = await anonymous.post(f"{V2}/hotline/requests.json", data={})
            assert hotline.status_code == 401


async def test_ioc_open311_key_commands_print_once_store_hashed_and_revoke(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    env["IOC_DATABASE_URL"] = database.url

    def ioc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ioc", "open311", "key", *args],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    added = await asyncio.to_thread(ioc, "add", "city-app")
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip()
    assert len(key) >= 40
    assert await key_owner(db, key) == "city-app"
    stored = await db.fetchval("SELECT key_hash FROM open311_keys WHERE name = 'city-app'")
    assert key.encode() not in stored
    assert (await asyncio.to_thread(ioc, "revoke", "city-app")).returncode == 0
    assert await key_owner(db, key) is None
    listed = await asyncio.to_thread(ioc, "list")
    assert "city-app" in listed.stdout
    assert "revoked" in listed.stdout
    assert (await asyncio.to_thread(ioc, "add", "Bad Name")).returncode == 2


def test_an_invalid_catalogue_is_refused_with_every_problem(tmp_path: object) -> None:
    from citizens import parse_catalogue

    with pytest.raises(ConfigError) as caught:
        parse_catalogue(
            {
                "jurisdiction_id": "x",
                "contact": "y",
                "services": [
                    {"code": "Bad Code", "name": "n", "description": "d", "group": "g",
                     "severity": "loud", "target_minutes": 10, "agency_responsible": "a"},
                ],
            }
        )  # fmt: skip
    text = str(caught.value)
    assert "services[0] (Bad Code).code" in text
    assert "services[0] (Bad Code).severity" in text


def test_the_sliding_window_counts_per_name_and_says_when_to_retry() -> None:
    now = [1000.0]
    window = SlidingWindow("api_key", 3, 60.0, clock=lambda: now[0])
    for _ in range(3):
        window.check("app-a")
    with pytest.raises(RateLimited) as caught:
        window.check("app-a")
    assert caught.value.retry_after == 60
    window.check("app-b")  # another key has its own budget
    now[0] += 59.5
    with pytest.raises(RateLimited) as caught:
        window.check("app-a")
    assert caught.value.retry_after == 1
    now[0] += 0.6  # the first three hits leave the window
    window.check("app-a")

"""Alerts over REST: filters and their bounds, transitions with notes, the audit trail, what
police may see (what was routed to them), CAP messages with delivery states, evidence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import msgspec
import pytest
from console_support import (
    console,
    raise_alert,
    route_to_police,
    seed_registry,
    store_evidence,
    tiny_jpeg,
)
from lxml import etree

from alerts import CAP_NS
from alerts._routing import RouteSpec
from console_api import Role
from protocol import EventKind
from store import StoreConfig

pytestmark = pytest.mark.postgres
CAP_MESSAGES = "urn:x-ioc:console:cap-messages:1"
CAP_XSD = Path(__file__).parent / "data" / "cap" / "CAP-v1.2.xsd"


async def test_filters_bounds_transitions_and_audit(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    intrusion, _ = await raise_alert(db)
    offline, _ = await raise_alert(db, kind=EventKind.CAMERA_OFFLINE, zone=None)
    elsewhere, _ = await raise_alert(db, camera="cam-b", district="go-cong", zone=None)
    # One alert from last month, outside the default window of a week.
    old, _ = await raise_alert(db, zone="old")
    await db.execute("UPDATE alerts SET opened_at = now() - interval '30 days' WHERE id = $1", old)
    async with console(database, db) as c:
        http = await c.as_role(Role.OPERATOR)
        async with http:

            async def ids(**params: str | int | list[str]) -> list[str]:
                response = await http.get("/api/v1/alerts", params=params)
                assert response.status_code == 200, response.text
                return [a["id"] for a in response.json()]

            assert await ids() == [elsewhere, offline, intrusion]  # newest first
            assert await ids(district="go-cong") == [elsewhere]
            assert await ids(kind=["intrusion", "camera_offline"], district="my-tho") == [
                offline,
                intrusion,
            ]
            assert await ids(state="acknowledged") == []
            since = (datetime.now(UTC) - timedelta(days=40)).isoformat()
            assert old in await ids(since=since)
            assert await ids(limit=1) == [elsewhere]
            assert set(await ids(since=since)) == {
                a["id"] for a in (await http.get("/api/v1/alerts/open")).json()
            }

            # Bounds, each refusal naming its field.
            bad: list[tuple[dict[str, str | int], str]] = [
                ({"since": "2026-01-01T00:00:00"}, "since"),  # no UTC offset
                ({"since": "2025-01-01T00:00:00Z", "until": "2025-06-01T00:00:00Z"}, "since"),
                ({"since": "2025-02-01T00:00:00Z", "until": "2025-01-01T00:00:00Z"}, "since"),
                ({"limit": 0}, "limit"),
                ({"limit": 5000}, "limit"),
                ({"kind": "earthquake"}, "kind"),
                ({"district": "DROP TABLE"}, "district"),
            ]
            for params, field in bad:
                response = await http.get("/api/v1/alerts", params=params)
                assert response.status_code == 422, (params, response.text)
                assert response.json()["detail"][0]["loc"][:2] == ["query", field], params

            # acknowledge -> assign -> resolve, each with a note; a repeat is a conflict.
            acked = await http.post(
                f"/api/v1/alerts/{intrusion}/acknowledge", json={"note": "đang xem"}
            )
            assert acked.json()["state"] == "acknowledged"
            assert acked.json()["acknowledged_by"] == "operator-1"
            again = await http.post(f"/api/v1/alerts/{intrusion}/acknowledge")
            assert again.status_code == 409
            assert "acknowledged" in again.json()["detail"]
            no_assignee = await http.post(f"/api/v1/alerts/{intrusion}/assign", json={})
            assert no_assignee.status_code == 422
            assert no_assignee.json()["detail"][0]["loc"] == ["body", "assignee"]
            assigned = await http.post(
                f"/api/v1/alerts/{intrusion}/assign",
                json={"assignee": "patrol-7", "note": "nearest unit"},
            )
            assert assigned.json()["assigned_to"] == "patrol-7"
            resolved = await http.post(
                f"/api/v1/alerts/{intrusion}/resolve", json={"note": "false alarm: a dog"}
            )
            assert resolved.json()["state"] == "resolved"
            long_note = await http.post(
                f"/api/v1/alerts/{offline}/resolve", json={"note": "x" * 3000}
            )
            assert long_note.status_code == 422
            # PostgreSQL cannot store NUL: refused up front rather than failing there.
            nul = await http.post(f"/api/v1/alerts/{offline}/resolve", json={"note": "a\u0000b"})
            assert nul.status_code == 422
            trail = (await http.get(f"/api/v1/alerts/{intrusion}/audit")).json()
            assert [(e["action"], e["actor"], e["note"]) for e in trail] == [
                ("open", "system", trail[0]["note"]),
                ("acknowledge", "operator-1", "đang xem"),
                ("assign", "operator-1", "nearest unit"),
                ("resolve", "operator-1", "false alarm: a dog"),
            ]
            one = (await http.get(f"/api/v1/alerts/{intrusion}")).json()
            assert (one["state"], one["assigned_to"]) == ("resolved", "patrol-7")
            assert intrusion not in [
                a["id"] for a in (await http.get("/api/v1/alerts/open")).json()
            ]

            unknown = "00000000-0000-0000-0000-000000000000"
            assert (await http.get(f"/api/v1/alerts/{unknown}")).status_code == 404
            assert (await http.post(f"/api/v1/alerts/{unknown}/resolve")).status_code == 404
            assert (await http.get("/api/v1/alerts/not-a-uuid")).status_code == 422


async def test_police_see_what_was_routed_to_them(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    routing = await route_to_police(db)
    incident, _ = await raise_alert(db, kind=EventKind.WRONG_WAY, zone=None, routing=routing)
    # Kinds the police route does not take stay the operators' alone.
    stopped, _ = await raise_alert(db, kind=EventKind.STOPPED_VEHICLE, zone=None, routing=routing)
    offline, _ = await raise_alert(db, kind=EventKind.CAMERA_OFFLINE, zone=None, routing=routing)
    # Even if the rules sent a Wi-Fi alert to the police, the console shows them no Wi-Fi.
    everything = msgspec.structs.replace(routing, police=RouteSpec())
    wifi, _ = await raise_alert(
        db, kind=EventKind.AP_OVERLOAD, camera="ap-1", zone=None, routing=everything
    )
    assert await db.fetchval("SELECT count(DISTINCT alert_id) FROM cap_messages") == 2
    async with console(database, db) as c:
        police = await c.as_role(Role.POLICE)
        async with police:
            listed = (await police.get("/api/v1/alerts")).json()
            assert [a["id"] for a in listed] == [incident]
            # The limit counts their incidents, not the alerts they may not see.
            one = (await police.get("/api/v1/alerts", params={"limit": 1})).json()
            assert [a["id"] for a in one] == [incident]
            assert (await police.get("/api/v1/alerts", params={"kind": "ap_overload"})).json() == []
            assert [a["id"] for a in (await police.get("/api/v1/alerts/open")).json()] == [incident]
            assert (await police.get(f"/api/v1/alerts/{incident}")).status_code == 200
            assert (await police.get(f"/api/v1/alerts/{incident}/audit")).status_code == 200
            for hidden in (stopped, offline, wifi):
                for path in ("", "/audit", "/cap", "/evidence.jpg"):
                    response = await police.get(f"/api/v1/alerts/{hidden}{path}")
                    assert response.status_code == 404, (hidden, path)
            acting = await police.post(f"/api/v1/alerts/{incident}/acknowledge")
            assert acting.status_code == 403
            feed = (await police.get("/api/v1/fiware/Alert")).json()
            assert [e["id"] for e in feed] == [f"urn:ngsi-ld:Alert:{incident}"]


def _cap_messages(xml: bytes) -> list[etree._Element]:
    root = etree.fromstring(xml)
    assert root.tag == f"{{{CAP_MESSAGES}}}capMessages"
    return list(root)


async def test_cap_messages_of_an_incident_with_their_delivery_states(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    routing = await route_to_police(db)
    incident, _ = await raise_alert(db, kind=EventKind.INTRUSION, routing=routing)
    local, _ = await raise_alert(db, kind=EventKind.CAMERA_OFFLINE, zone=None, routing=routing)
    schema = etree.XMLSchema(etree.parse(str(CAP_XSD)))
    async with console(database, db) as c:
        operator = await c.as_role(Role.OPERATOR)
        police = await c.as_role(Role.POLICE)
        async with operator, police:
            # The operator's acknowledgement is an Update for the police (the routing the
            # alerts service published is followed by the console's transitions too).
            acked = await operator.post(f"/api/v1/alerts/{incident}/acknowledge", json={})
            assert acked.status_code == 200
            await db.execute(
                """UPDATE police_deliveries
                   SET status = 'delivered', attempts = 1, last_status = 200,
                       delivered_at = now()
                   WHERE identifier = $1""",
                f"{incident}.1",
            )
            response = await police.get(f"/api/v1/alerts/{incident}/cap")
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/xml"
            messages = _cap_messages(response.content)
            assert [(m.get("identifier"), m.get("msgType")) for m in messages] == [
                (f"{incident}.1", "Alert"),
                (f"{incident}.2", "Update"),
            ]
            states = [
                [(d.get("endpoint"), d.get("status"), d.get("attempts")) for d in m[:-1]]
                for m in messages
            ]
            assert states == [[("dispatch", "delivered", "1")], [("dispatch", "pending", "0")]]
            assert messages[0][0].get("lastStatus") == "200"
            assert messages[1][0].get("nextAttemptAt", "").endswith("+07:00")
            for m in messages:
                cap = m[-1]
                assert cap.tag == f"{{{CAP_NS}}}alert"
                schema.assertValid(etree.ElementTree(cap))
                stored = await db.fetchval(
                    "SELECT body FROM cap_messages WHERE identifier = $1", m.get("identifier")
                )
                # c14n2: libxml2's c14n 1.0 of a subtree misplaces default namespaces.
                assert etree.tostring(cap, method="c14n2") == etree.tostring(
                    etree.fromstring(stored.encode()), method="c14n2"
                )
            # Never routed to the police: operators get an empty list, police a 404.
            empty = _cap_messages((await operator.get(f"/api/v1/alerts/{local}/cap")).content)
            assert empty == []
            assert (await police.get(f"/api/v1/alerts/{local}/cap")).status_code == 404


async def test_evidence_snapshot_of_an_alert(database: StoreConfig, db: asyncpg.Connection) -> None:
    await seed_registry(db)
    routing = await route_to_police(db)
    incident, _ = await raise_alert(db, kind=EventKind.INTRUSION, routing=routing)
    bare, _ = await raise_alert(db, kind=EventKind.CROWD, zone=None, routing=routing)
    jpeg = tiny_jpeg()
    await store_evidence(db, incident, jpeg)
    async with console(database, db) as c:
        for role in (Role.OPERATOR, Role.POLICE, Role.ADMIN):
            http = await c.as_role(role)
            async with http:
                response = await http.get(f"/api/v1/alerts/{incident}/evidence.jpg")
                assert response.status_code == 200, role
                assert response.headers["content-type"] == "image/jpeg"
                assert response.content == jpeg
                missing = await http.get(f"/api/v1/alerts/{bare}/evidence.jpg")
                assert missing.status_code == 404
                assert "no evidence snapshot" in missing.json()["detail"]
        planner = await c.as_role(Role.PLANNER)
        async with planner:
            refused = await planner.get(f"/api/v1/alerts/{incident}/evidence.jpg")
            assert refused.status_code == 403

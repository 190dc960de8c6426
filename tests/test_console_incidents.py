"""Incidents over the console API against a real server and database: the list as operators
work it (order, filters), the detail, actions on every alert of an incident (audited, on the
websocket), notes, the operators to assign to, police scope and the other roles' 403."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import asyncpg
import pytest
from console_support import console, route_to_police, seed_registry
from websockets.asyncio.client import ClientConnection

from alerts import Observation, Routing, notify
from alerts._repository import observe
from console_api import Role, add_user
from protocol import EventKind, Severity
from store import StoreConfig

pytestmark = pytest.mark.postgres
_counter = iter(range(1, 1_000_000))


async def _raise(
    db: asyncpg.Connection,
    routing: Routing,
    source: str,
    kind: EventKind,
    *,
    zone: str | None = "shoulder",
    district: str = "my-tho",
    severity: Severity = Severity.MAJOR,
) -> str:
    """An alert opened as the engine opens it (every channel staged); returns its id."""
    obs = Observation(
        event_id=f"{source}:{kind}:{next(_counter)}",
        kind=kind,
        source_id=source,
        zone_id=zone,
        phase="start",
        at=time.time(),
    )
    async with db.transaction():
        result = await observe(db, obs, district, severity)
        assert result is not None
        await notify(db, *result, routing)
    return result[0].id


async def _scene(db: asyncpg.Connection) -> dict[str, str]:
    """cam-a: an intrusion (police) and a congestion (not police), one incident by source;
    cam-b, far away: a critical intrusion (police); ap-1 at the temple: overload (Wi-Fi)."""
    await seed_registry(db)
    routing = await route_to_police(db)
    return {
        "a-intrusion": await _raise(db, routing, "cam-a", EventKind.INTRUSION),
        "a-congestion": await _raise(db, routing, "cam-a", EventKind.CONGESTION, zone="lane"),
        "b-intrusion": await _raise(
            db,
            routing,
            "cam-b",
            EventKind.INTRUSION,
            district="go-cong",
            severity=Severity.CRITICAL,
        ),
        "ap": await _raise(db, routing, "ap-1", EventKind.AP_OVERLOAD, zone=None),
    }


async def _changes(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    """The next ``count`` change messages (with a deadline)."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while len(out) < count:
            message = json.loads(await ws.recv())
            if message["type"] == "change":
                out.append(message["alert"])
    return out


async def test_the_list_is_ordered_and_filtered_and_the_detail_has_alerts_and_audit(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    ids = await _scene(db)
    async with console(database, db) as c, await c.as_role(Role.OPERATOR) as http:
        listed = (await http.get("/api/v1/incidents")).json()
        assert [i["source_ids"] for i in listed] == [["cam-b"], ["cam-a"], ["ap-1"]]
        critical, camera, wifi = listed
        assert critical["severity"] == "critical"
        assert camera["alert_ids"] == [ids["a-intrusion"], ids["a-congestion"]]
        assert camera["kinds"] == ["congestion", "intrusion"]
        assert camera["alert_count"] == 2
        assert (camera["state"], camera["unacknowledged"]) == ("open", True)
        assert (camera["lat"], camera["lon"]) == (10.3571, 106.3712)
        for query, expected in (
            ("district=go-cong", [critical["id"]]),
            ("kind=ap_overload", [wifi["id"]]),
            ("kind=congestion&kind=ap_overload", [camera["id"], wifi["id"]]),
            ("severity=critical", [critical["id"]]),
            ("state=open", [i["id"] for i in listed]),
            ("state=acknowledged", []),
        ):
            found = (await http.get(f"/api/v1/incidents?{query}")).json()
            assert [i["id"] for i in found] == expected, query
        assert (await http.get("/api/v1/incidents?state=nonsense")).status_code == 422

        detail = (await http.get(f"/api/v1/incidents/{camera['id']}")).json()
        assert detail["incident"] == camera
        assert [a["id"] for a in detail["alerts"]] == camera["alert_ids"]
        assert all(a["incident_id"] == camera["id"] for a in detail["alerts"])
        # Both are major: the title is the oldest one's, the intrusion.
        assert camera["title_en"] == detail["alerts"][0]["title_en"]
        assert camera["title_vi"] == detail["alerts"][0]["title_vi"]
        assert [(e["alert_id"], e["action"], e["reason"]) for e in detail["audit"]] == [
            (ids["a-intrusion"], "open", "new_incident"),
            (ids["a-congestion"], "open", "same_source"),
        ]
        missing = await http.get("/api/v1/incidents/00000000-0000-0000-0000-000000000000")
        assert missing.status_code == 404


async def test_actions_reach_every_alert_are_audited_and_streamed(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    ids = await _scene(db)
    async with console(database, db) as c:
        token = await c.user(Role.OPERATOR)
        await c.user(Role.OPERATOR, "operator-2")
        async with c.http(token) as http, c.live(token) as (ws, snapshot):
            assert snapshot["type"] == "snapshot"
            seen = {a["id"]: a for a in snapshot["alerts"]}
            camera = seen[ids["a-intrusion"]]["incident_id"]
            assert seen[ids["a-congestion"]]["incident_id"] == camera
            assert seen[ids["a-intrusion"]]["lat"] == 10.3571
            assert seen[ids["a-intrusion"]]["note_count"] == 0

            acked = await http.post(f"/api/v1/incidents/{camera}/acknowledge", json={})
            assert acked.status_code == 200, acked.text
            assert (acked.json()["state"], acked.json()["acknowledged_by"]) == (
                "acknowledged",
                "operator-1",
            )
            changes = await _changes(ws, 2)
            assert {a["id"] for a in changes} == {ids["a-intrusion"], ids["a-congestion"]}
            assert {(a["state"], a["incident_id"]) for a in changes} == {("acknowledged", camera)}
            again = await http.post(f"/api/v1/incidents/{camera}/acknowledge", json={})
            assert again.status_code == 409

            assigned = await http.post(
                f"/api/v1/incidents/{camera}/assign", json={"assignee": "operator-2"}
            )
            assert assigned.json()["state"] == "assigned"
            assert assigned.json()["assigned_to"] == "operator-2"
            changes = await _changes(ws, 2)
            assert {(a["state"], a["assigned_to"]) for a in changes} == {("assigned", "operator-2")}

            noted = await http.post(f"/api/v1/incidents/{camera}/note", json={"note": "xe cứu hộ"})
            assert noted.status_code == 200
            assert {a["note_count"] for a in await _changes(ws, 2)} == {1}
            one = await http.post(f"/api/v1/alerts/{ids['ap']}/note", json={"note": "kiểm tra"})
            assert (one.json()["note_count"], one.json()["state"]) == (1, "open")
            [change] = await _changes(ws, 1)
            assert (change["id"], change["note_count"]) == (ids["ap"], 1)
            empty = await http.post(f"/api/v1/alerts/{ids['ap']}/note", json={"note": ""})
            assert empty.status_code == 422

            resolved = await http.post(
                f"/api/v1/incidents/{camera}/resolve", json={"note": "cleared"}
            )
            assert resolved.json()["state"] == "resolved"
            assert {a["state"] for a in await _changes(ws, 2)} == {"resolved"}
            listed = [i["id"] for i in (await http.get("/api/v1/incidents")).json()]
            assert camera not in listed
            everything = (await http.get("/api/v1/incidents?state=all")).json()
            assert [i["state"] for i in everything if i["id"] == camera] == ["resolved"]
            assert (await http.post(f"/api/v1/incidents/{camera}/resolve")).status_code == 409

            trail = (await http.get(f"/api/v1/alerts/{ids['a-congestion']}/audit")).json()
            assert [(e["action"], e["actor"], e["to_state"], e["note"]) for e in trail] == [
                ("open", "system", "open", None),
                ("acknowledge", "operator-1", "acknowledged", None),
                ("assign", "operator-1", "assigned", None),
                ("note", "operator-1", "assigned", "xe cứu hộ"),
                ("resolve", "operator-1", "resolved", "cleared"),
            ]


async def test_police_see_only_their_incidents_and_other_roles_are_refused(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    ids = await _scene(db)
    async with console(database, db) as c:
        police = await c.as_role(Role.POLICE)
        planner = await c.as_role(Role.PLANNER)
        operator = await c.as_role(Role.OPERATOR)
        await add_user(db, "admin-1", Role.ADMIN, "correct horse battery")
        await add_user(db, "gone", Role.OPERATOR, "correct horse battery")
        await db.execute("UPDATE users SET disabled = true WHERE username = 'gone'")
        async with police, planner, operator:
            everything = {
                i["source_ids"][0]: i for i in (await operator.get("/api/v1/incidents")).json()
            }
            theirs = (await police.get("/api/v1/incidents")).json()
            assert [i["source_ids"] for i in theirs] == [["cam-b"], ["cam-a"]]
            # cam-a's congestion was not sent to the police: not in their incident.
            assert theirs[1]["alert_ids"] == [ids["a-intrusion"]]
            assert theirs[1]["kinds"] == ["intrusion"]
            detail = (await police.get(f"/api/v1/incidents/{theirs[1]['id']}")).json()
            assert [a["id"] for a in detail["alerts"]] == [ids["a-intrusion"]]
            assert {e["alert_id"] for e in detail["audit"]} == {ids["a-intrusion"]}
            wifi = everything["ap-1"]["id"]
            assert (await police.get(f"/api/v1/incidents/{wifi}")).status_code == 404

            for client in (police, planner):
                for action, body in (
                    ("acknowledge", {}),
                    ("assign", {"assignee": "x"}),
                    ("note", {"note": "x"}),
                    ("resolve", {}),
                ):
                    url = f"/api/v1/incidents/{theirs[0]['id']}/{action}"
                    assert (await client.post(url, json=body)).status_code == 403
                note = await client.post(f"/api/v1/alerts/{ids['ap']}/note", json={"note": "x"})
                assert note.status_code == 403
                assert (await client.get("/api/v1/operators")).status_code == 403
            assert (await planner.get("/api/v1/incidents")).status_code == 403

            operators = (await operator.get("/api/v1/operators")).json()
            assert operators == [
                {"username": "admin-1", "role": "admin"},
                {"username": "operator-1", "role": "operator"},
            ]

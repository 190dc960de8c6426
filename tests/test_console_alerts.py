"""Alerts over REST: filters and their bounds, transitions with notes, the audit trail, and
what police may see."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from console_support import console, raise_alert, seed_registry

from console_api import Role
from protocol import EventKind
from store import StoreConfig

pytestmark = pytest.mark.postgres


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


async def test_police_see_only_incidents(database: StoreConfig, db: asyncpg.Connection) -> None:
    await seed_registry(db)
    incident, _ = await raise_alert(db, kind=EventKind.STOPPED_VEHICLE, zone=None)
    offline, _ = await raise_alert(db, kind=EventKind.CAMERA_OFFLINE, zone=None)
    wifi, _ = await raise_alert(db, kind=EventKind.AP_OVERLOAD, camera="ap-1", zone=None)
    async with console(database, db) as c:
        police = await c.as_role(Role.POLICE)
        async with police:
            listed = (await police.get("/api/v1/alerts")).json()
            assert [a["id"] for a in listed] == [incident]
            assert (await police.get("/api/v1/alerts", params={"kind": "ap_overload"})).json() == []
            assert [a["id"] for a in (await police.get("/api/v1/alerts/open")).json()] == [incident]
            assert (await police.get(f"/api/v1/alerts/{incident}")).status_code == 200
            assert (await police.get(f"/api/v1/alerts/{incident}/audit")).status_code == 200
            for hidden in (offline, wifi):
                assert (await police.get(f"/api/v1/alerts/{hidden}")).status_code == 404
                assert (await police.get(f"/api/v1/alerts/{hidden}/audit")).status_code == 404
            acting = await police.post(f"/api/v1/alerts/{incident}/acknowledge")
            assert acting.status_code == 403

"""Cameras and access points with live state, counts per district, the registry for
administrators, sites, GeoJSON layers and FIWARE feeds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from console_support import (
    console,
    create_latest_state_tables,
    raise_alert,
    route_to_police,
    seed_registry,
)

from console_api import Role
from console_api._names import zone_name
from protocol import EventKind, LineCount, TrafficMetrics
from store import StoreConfig, write_mode, write_traffic

pytestmark = pytest.mark.postgres


async def _report_states(db: asyncpg.Connection) -> None:
    await create_latest_state_tables(db)
    await db.execute(
        """INSERT INTO camera_status VALUES
               ('cam-a', 'online', 4.9, now(), now(), 3, NULL),
               ('cam-b', 'online', 5.0, now() - interval '1 hour', now() - interval '1 hour',
                0, NULL);
           INSERT INTO ap_status VALUES
               ('ap-1', true, 42, 0.3, now()),
               ('ap-2', false, 0, 0.0, now());"""
    )


async def test_cameras_name_their_zones_lines_and_site(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    await db.execute("UPDATE cameras SET site_id = 'vinh-trang' WHERE id = 'cam-b'")
    async with console(database, db) as c, await c.as_role(Role.POLICE) as http:
        cams = {x["id"]: x for x in (await http.get("/api/v1/cameras")).json()}
    assert cams["cam-a"]["zones"] == [
        {
            "id": "shoulder",
            "kind": "restricted",
            "label_vi": "Lề đường",
            "label_en": "Road shoulder",
        }
    ]
    assert cams["cam-a"]["lines"] == ["count-nb"]
    assert (cams["cam-a"]["site_id"], cams["cam-a"]["site_name"]) == (None, None)
    assert (cams["cam-b"]["site_id"], cams["cam-b"]["site_name"]) == (
        "vinh-trang",
        "Chùa Vĩnh Tràng",
    )
    async with console(database, db) as c, await c.as_role(Role.OPERATOR) as http:
        aps = (await http.get("/api/v1/access-points")).json()
    assert {a["site_name"] for a in aps} == {"Chùa Vĩnh Tràng"}
    # A zone id the labels do not know is named by its kind.
    other = zone_name({"id": "gate-2", "kind": "crowd"})
    assert (other.label_vi, other.label_en) == ("Khu vực đông người gate-2", "Crowd area gate-2")


async def test_cameras_and_access_points_with_live_state(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    async with console(database, db) as c:
        http = await c.as_role(Role.OPERATOR)
        async with http:
            # Before any state is kept (or reported): the registry, state unknown.
            cams = (await http.get("/api/v1/cameras")).json()
            assert [(x["id"], x["state"]) for x in cams] == [("cam-a", None), ("cam-b", None)]
            await _report_states(db)
            cams = {x["id"]: x for x in (await http.get("/api/v1/cameras")).json()}
            assert cams["cam-a"]["state"]["status"] == "online"
            assert cams["cam-a"]["state"]["stale"] is False
            assert cams["cam-a"]["state"]["dropped_frames"] == 3
            assert cams["cam-b"]["state"]["stale"] is True  # its edge went quiet an hour ago
            one = (await http.get("/api/v1/cameras/cam-b")).json()
            assert (one["district_id"], one["lat"], one["lon"]) == ("go-cong", 10.3601, 106.6712)
            assert (await http.get("/api/v1/cameras/nope")).status_code == 404
            by_district = await http.get("/api/v1/cameras", params={"district": "go-cong"})
            assert [x["id"] for x in by_district.json()] == ["cam-b"]
            aps = {x["id"]: x["state"] for x in (await http.get("/api/v1/access-points")).json()}
            assert (aps["ap-1"]["up"], aps["ap-1"]["clients"]) == (True, 42)
            assert aps["ap-2"]["up"] is False
            sites = (await http.get("/api/v1/sites")).json()
            assert [(x["id"], x["name"]) for x in sites] == [("vinh-trang", "Chùa Vĩnh Tràng")]

            await raise_alert(db)
            await raise_alert(db, camera="cam-b", district="go-cong", zone=None)
            summary = {
                s["district_id"]: s for s in (await http.get("/api/v1/summary/districts")).json()
            }
            assert summary["my-tho"] == {
                "district_id": "my-tho",
                "name": "TP. Mỹ Tho",
                "cameras": 1,
                "cameras_online": 1,
                "access_points": 2,
                "access_points_up": 1,
                "wifi_clients": 42,
                "open_alerts": 1,
                "open_alerts_by_severity": {"major": 1},
            }
            assert summary["go-cong"]["cameras_online"] == 0  # stale is not online
        admin = await c.as_role(Role.ADMIN)
        async with admin:
            registry = (await admin.get("/api/v1/registry")).json()
            cam_a = next(x for x in registry["cameras"] if x["id"] == "cam-a")
            assert cam_a["lines"][0]["id"] == "count-nb"
            assert cam_a["zones"][0]["id"] == "shoulder"
            assert [s["id"] for s in registry["sites"]] == ["vinh-trang"]
            assert len(registry["access_points"]) == 2


def _check_feature_collection(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """RFC 7946: a FeatureCollection of Features, Point geometries as [lon, lat]."""
    assert doc["type"] == "FeatureCollection"
    assert set(doc) == {"type", "features"}
    for feature in doc["features"]:
        assert feature["type"] == "Feature"
        assert isinstance(feature["id"], str)
        assert isinstance(feature["properties"], dict)
        geometry = feature["geometry"]
        if geometry is not None:
            assert geometry["type"] == "Point"
            lon, lat = geometry["coordinates"]
            assert 105.0 < lon < 107.5  # the province's longitudes, not its latitudes
            assert 9.5 < lat < 11.0
    features: list[dict[str, Any]] = doc["features"]
    return features


async def test_geojson_layers(database: StoreConfig, db: asyncpg.Connection) -> None:
    await seed_registry(db)
    await _report_states(db)
    routing = await route_to_police(db)
    incident, _ = await raise_alert(db, kind=EventKind.WRONG_WAY, zone=None, routing=routing)
    await raise_alert(db, kind=EventKind.AP_DOWN, camera="ap-2", zone=None)
    await raise_alert(db, kind=EventKind.CAMERA_OFFLINE, camera="gone-cam", zone=None)
    async with console(database, db) as c:
        http = await c.as_role(Role.OPERATOR)
        async with http:
            response = await http.get("/api/v1/geo/cameras")
            assert response.headers["content-type"] == "application/geo+json"
            cams = _check_feature_collection(response.json())
            assert cams[0]["geometry"]["coordinates"] == [106.3712, 10.3571]
            assert {f["id"]: f["properties"]["status"] for f in cams} == {
                "cam-a": "online",
                "cam-b": "stale",
            }
            aps = _check_feature_collection((await http.get("/api/v1/geo/access-points")).json())
            assert {f["id"]: f["properties"]["up"] for f in aps} == {"ap-1": True, "ap-2": False}
            alerts = _check_feature_collection((await http.get("/api/v1/geo/alerts")).json())
            placed = {f["properties"]["source_id"]: f["geometry"] for f in alerts}
            assert placed["cam-a"]["coordinates"] == [106.3712, 10.3571]
            assert placed["ap-2"]["coordinates"] == [106.3782, 10.3642]
            assert placed["gone-cam"] is None  # not in the registry: unlocated
        police = await c.as_role(Role.POLICE)
        async with police:
            alerts = _check_feature_collection((await police.get("/api/v1/geo/alerts")).json())
            assert [f["id"] for f in alerts] == [incident]


def _check_ngsi_ld(entity: dict[str, Any], entity_type: str) -> None:
    """NGSI-LD normalized: urn id, type, @context, every attribute typed."""
    assert entity["id"].startswith(f"urn:ngsi-ld:{entity_type}:")
    assert entity["type"] == entity_type
    assert isinstance(entity["@context"], list)
    for name, attribute in entity.items():
        if name in ("id", "type", "@context"):
            continue
        assert attribute["type"] in ("Property", "GeoProperty", "Relationship"), name
        if attribute["type"] == "Property":
            assert "value" in attribute, name
        if attribute["type"] == "GeoProperty":
            assert attribute["value"]["type"] == "Point"
        if attribute["type"] == "Relationship":
            assert attribute["object"].startswith("urn:ngsi-ld:")


async def test_fiware_feeds(database: StoreConfig, db: asyncpg.Connection) -> None:
    await seed_registry(db)
    alert_id, _ = await raise_alert(db, kind=EventKind.CONGESTION, zone=None)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    # 30 vehicles over 30 minutes (every third one backward), as vision reports them.
    await write_traffic(
        db,
        [
            TrafficMetrics(
                camera_id="cam-a",
                interval_start=(hour + timedelta(minutes=i)).timestamp(),
                interval_end=(hour + timedelta(minutes=i + 1)).timestamp(),
                seq=i,
                line_counts={
                    "count-nb": LineCount(forward=int(i % 3 != 0), backward=int(i % 3 == 0))
                },
            )
            for i in range(1, 31)
        ],
        await write_mode(db, database),
    )
    async with console(database, db) as c:
        http = await c.as_role(Role.OPERATOR)
        async with http:
            response = await http.get("/api/v1/fiware/Alert", params={"lang": "en"})
            assert response.headers["content-type"] == "application/ld+json"
            (entity,) = response.json()
            _check_ngsi_ld(entity, "Alert")
            assert entity["id"] == f"urn:ngsi-ld:Alert:{alert_id}"
            assert entity["category"]["value"] == "traffic"
            assert entity["subCategory"]["value"] == "trafficJam"
            assert entity["severity"]["value"] == "high"
            assert entity["description"]["value"] == "Traffic congestion"
            assert entity["location"]["value"]["coordinates"] == [106.3712, 10.3571]
            assert entity["dateIssued"]["value"]["@type"] == "DateTime"
            assert entity["dateIssued"]["value"]["@value"].endswith("Z")
            assert entity["address"]["value"]["addressLocality"] == "TP. Mỹ Tho"
            vi = (await http.get("/api/v1/fiware/Alert")).json()[0]
            assert vi["description"]["value"] == "Ùn tắc giao thông"

            flows = (await http.get("/api/v1/fiware/TrafficFlowObserved")).json()
            for flow in flows:
                _check_ngsi_ld(flow, "TrafficFlowObserved")
            assert sum(f["intensity"]["value"] for f in flows) == 30
            assert {f["laneDirection"]["value"] for f in flows} == {"forward", "backward"}
            start, end = flows[0]["dateObserved"]["value"].split("/")
            assert start == flows[0]["dateObservedFrom"]["value"]["@value"]
            assert end == flows[0]["dateObservedTo"]["value"]["@value"]

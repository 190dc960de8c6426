"""GeoJSON layers (RFC 7946) of cameras, access points and open alerts, and the province
drawn from its reference data (``/geo/province``) for the page's map.

Each is a FeatureCollection of Point features in WGS 84 with coordinates in [lon, lat]
order, so QGIS, Leaflet or OpenLayers load the URL as it is. An alert is placed at its
source (camera or access point); one whose source is not in the registry has a null
geometry, which RFC 7946 allows for unlocated features.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any, Literal

import msgspec
from fastapi import APIRouter
from fastapi.responses import Response

from alerts import open_alerts
from store import Connection

from . import _live_state as live
from ._deps import AUTH_RESPONSES, Anyone, Cameras, Config, Incidents, Pool, Wifi
from ._openapi import documented, json_response
from ._scope import admit

router = APIRouter(prefix="/api/v1/geo", tags=["open data"], responses=AUTH_RESPONSES)
GEOJSON = "application/geo+json"


class Point(msgspec.Struct, frozen=True, tag_field="type", tag="Point"):
    coordinates: tuple[float, float]
    """[longitude, latitude] in degrees, WGS 84."""


class Feature(msgspec.Struct, frozen=True, tag_field="type", tag="Feature"):
    id: str
    geometry: Point | None
    properties: dict[str, Any]


class FeatureCollection(msgspec.Struct, frozen=True, tag_field="type", tag="FeatureCollection"):
    features: list[Feature]


def point(lon: float, lat: float) -> Point:
    # Six decimals is about 10 cm: RFC 7946 section 11.2 advises no more precision.
    return Point((round(lon, 6), round(lat, 6)))


def _collection(features: list[Feature]) -> Response:
    return json_response(FeatureCollection(features), media_type=GEOJSON)


def _state_of_camera(c: live.CameraInfo) -> str:
    if c.state is None:
        return "unknown"
    return "stale" if c.state.stale else c.state.status


@router.get("/cameras", responses=documented(FeatureCollection, GEOJSON))
async def cameras_layer(pool: Pool, who: Cameras) -> Response:
    async with pool.acquire() as conn:
        cams = await live.cameras(conn)
    return _collection(
        [
            Feature(
                id=c.id,
                geometry=point(c.lon, c.lat),
                properties={
                    "name": c.name,
                    "kind": c.kind,
                    "district_id": c.district_id,
                    "road": c.road,
                    "status": _state_of_camera(c),
                },
            )
            for c in cams
        ]
    )


@router.get("/access-points", responses=documented(FeatureCollection, GEOJSON))
async def access_points_layer(pool: Pool, who: Wifi) -> Response:
    async with pool.acquire() as conn:
        aps = await live.access_points(conn)
    return _collection(
        [
            Feature(
                id=a.id,
                geometry=point(a.lon, a.lat),
                properties={
                    "name": a.name,
                    "site_id": a.site_id,
                    "district_id": a.district_id,
                    "capacity": a.capacity,
                    "up": None if a.state is None or a.state.stale else a.state.up,
                    "clients": None if a.state is None else a.state.clients,
                },
            )
            for a in aps
        ]
    )


@router.get("/alerts", responses=documented(FeatureCollection, GEOJSON))
async def alerts_layer(pool: Pool, who: Incidents) -> Response:
    """Open (unresolved) alerts at their source's position."""
    async with pool.acquire() as conn:
        alerts = await admit(conn, who, await open_alerts(conn))
        places = await live.places(conn, (a.source_id for a in alerts))
    features = []
    for a in alerts:
        where = places.get(a.source_id)
        features.append(
            Feature(
                id=a.id,
                geometry=None if where is None else point(*where),
                properties={
                    "kind": a.kind,
                    "severity": a.severity,
                    "state": a.state,
                    "source_id": a.source_id,
                    "zone_id": a.zone_id,
                    "district_id": a.district_id,
                    "title_vi": a.title_vi,
                    "title_en": a.title_en,
                    "count": a.count,
                    "opened_at": a.opened_at.isoformat(),
                    "last_seen_at": a.last_seen_at.isoformat(),
                },
            )
        )
    return _collection(features)


# --- the province drawn from its own reference data (the map with no tile server) ---------


TrafficLevel = Literal["free", "busy", "congested", "unknown"]
TRAFFIC_WINDOW = timedelta(minutes=5)
"""How far back the road colours look: congested seconds over counted seconds."""


class MapPlace(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    lat: float
    lon: float
    district_id: str | None = None


class RoadSegment(msgspec.Struct, frozen=True, kw_only=True):
    """A stretch of road between two stops on it (districts, or cameras within one), at the
    worst traffic level its cameras reported over the last minutes."""

    cameras: tuple[str, ...]
    """The cameras whose counting lines give the level."""
    coordinates: tuple[tuple[float, float], tuple[float, float]]
    """[[lat, lon], [lat, lon]], the order Leaflet takes."""
    level: TrafficLevel


class Road(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    segments: list[RoadSegment]


class ProvinceMap(msgspec.Struct, frozen=True, kw_only=True):
    tiles: str | None
    """Raster tile URL template (IOC_MAP_TILES), or null: draw from this reference data."""
    districts: list[MapPlace]
    sites: list[MapPlace]
    roads: list[Road]


def traffic_level(congested_share: float | None) -> TrafficLevel:
    if congested_share is None:
        return "unknown"
    if congested_share >= 0.5:
        return "congested"
    return "busy" if congested_share >= 0.1 else "free"


def _along(points: list[tuple[float, float]]) -> list[int]:
    """Indexes of ``points`` (lat, lon) in order along the axis they spread most on."""
    lats = [p[0] for p in points]
    lons = [p[1] for p in points]
    axis = 0 if max(lats) - min(lats) > max(lons) - min(lons) else 1
    return sorted(range(len(points)), key=lambda i: points[i][axis])


def road_segments(
    cameras: list[tuple[str, str, float, float]], shares: dict[str, float]
) -> list[RoadSegment]:
    """One road's segments from its cameras (id, district, lat, lon): between the centres of
    its cameras in each district it passes, in order along the road (the reference data has
    no geometry of roads); a road within one district is one stretch between its end cameras."""
    by_district: dict[str, list[tuple[str, float, float]]] = {}
    for camera_id, district, lat, lon in cameras:
        by_district.setdefault(district, []).append((camera_id, lat, lon))
    if len(by_district) > 1:
        stops = [
            (
                tuple(c[0] for c in members),
                sum(c[1] for c in members) / len(members),
                sum(c[2] for c in members) / len(members),
            )
            for members in by_district.values()
        ]
    else:
        # Within one district: one stretch from end to end (cameras scatter around it).
        ends = _along([(c[2], c[3]) for c in cameras])
        ids = tuple(c[0] for c in cameras)
        stops = [(ids, cameras[i][2], cameras[i][3]) for i in (ends[0], ends[-1])]
    order = _along([(s[1], s[2]) for s in stops])
    segments = []
    for a, b in itertools.pairwise(order):
        ids = (*stops[a][0], *stops[b][0])
        known = [shares[c] for c in ids if c in shares]
        segments.append(
            RoadSegment(
                cameras=ids,
                coordinates=(
                    (round(stops[a][1], 6), round(stops[a][2], 6)),
                    (round(stops[b][1], 6), round(stops[b][2], 6)),
                ),
                level=traffic_level(max(known) if known else None),
            )
        )
    return segments


async def _congested_shares(conn: Connection) -> dict[str, float]:
    if not await live.has_table(conn, "traffic_intervals"):
        return {}
    records = await conn.fetch(
        """SELECT camera_id, sum(congested_s) / nullif(sum(seconds), 0) AS share
           FROM traffic_intervals WHERE ts >= now() - $1::interval GROUP BY camera_id""",
        TRAFFIC_WINDOW,
    )
    return {r["camera_id"]: r["share"] for r in records if r["share"] is not None}


@router.get("/province", responses=documented(ProvinceMap))
async def province_map(pool: Pool, config: Config, who: Anyone) -> Response:
    """Districts, tourist sites and roads (as segments between their cameras, coloured by
    recent traffic), for a map that makes sense with no tile server."""
    async with pool.acquire() as conn:
        districts = await live.districts(conn)
        sites = await conn.fetch("SELECT id, name, district_id, lat, lon FROM sites ORDER BY id")
        cams = await conn.fetch(
            "SELECT id, road, district_id, lat, lon FROM cameras WHERE road IS NOT NULL ORDER BY id"
        )
        shares = await _congested_shares(conn)
    by_road: dict[str, list[tuple[str, str, float, float]]] = {}
    for c in cams:
        by_road.setdefault(c["road"], []).append((c["id"], c["district_id"], c["lat"], c["lon"]))
    roads = [Road(id=r, segments=road_segments(cs, shares)) for r, cs in sorted(by_road.items())]
    return json_response(
        ProvinceMap(
            tiles=config.map_tiles,
            districts=[
                MapPlace(id=d.id, name=d.name, lat=d.lat, lon=d.lon, district_id=d.id)
                for d in districts
            ],
            sites=[
                MapPlace(
                    id=s["id"],
                    name=s["name"],
                    lat=s["lat"],
                    lon=s["lon"],
                    district_id=s["district_id"],
                )
                for s in sites
            ],
            roads=roads,
        )
    )

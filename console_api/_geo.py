"""GeoJSON layers (RFC 7946) of cameras, access points and open alerts.

Each is a FeatureCollection of Point features in WGS 84 with coordinates in [lon, lat]
order, so QGIS, Leaflet or OpenLayers load the URL as it is. An alert is placed at its
source (camera or access point); one whose source is not in the registry has a null
geometry, which RFC 7946 allows for unlocated features.
"""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter
from fastapi.responses import Response

from alerts import open_alerts

from . import _live_state as live
from ._deps import AUTH_RESPONSES, Cameras, Incidents, Pool, Wifi
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

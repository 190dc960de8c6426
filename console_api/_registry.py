"""Districts, cameras and access points with their live state; counts per district; the
registry's detail (zones and lines) for administrators."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.responses import Response

from . import _live_state as live
from ._bounds import IDENTIFIER, Ids
from ._deps import AUTH_RESPONSES, Admin, Cameras, Live, Pool, Wifi
from ._openapi import documented, json_response

router = APIRouter(prefix="/api/v1", responses=AUTH_RESPONSES)

Districts = Annotated[Ids, Query(max_length=20, description="District ids (repeat for several)")]


@router.get("/districts", tags=["registry"], responses=documented(list[live.District]))
async def list_districts(pool: Pool, who: Cameras) -> Response:
    async with pool.acquire() as conn:
        return json_response(await live.districts(conn))


@router.get("/cameras", tags=["registry"], responses=documented(list[live.CameraInfo]))
async def list_cameras(pool: Pool, who: Cameras, district: Districts = None) -> Response:
    """Every camera with its latest reported state (``state`` null: never reported)."""
    async with pool.acquire() as conn:
        return json_response(await live.cameras(conn, districts=district or ()))


@router.get(
    "/cameras/{camera_id}",
    tags=["registry"],
    responses={**documented(live.CameraInfo), 404: {"description": "No such camera"}},
)
async def one_camera(
    pool: Pool, who: Cameras, camera_id: Annotated[str, Path(pattern=IDENTIFIER)]
) -> Response:
    async with pool.acquire() as conn:
        found = await live.cameras(conn, ids=[camera_id])
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"camera {camera_id} does not exist")
    return json_response(found[0])


@router.get("/access-points", tags=["registry"], responses=documented(list[live.AccessPointInfo]))
async def list_access_points(pool: Pool, who: Wifi, district: Districts = None) -> Response:
    """Every Wi-Fi access point with its latest state (clients, channel use, up)."""
    async with pool.acquire() as conn:
        return json_response(await live.access_points(conn, districts=district or ()))


@router.get("/summary/districts", tags=["live"], responses=documented(list[live.DistrictSummary]))
async def summary(pool: Pool, who: Live) -> Response:
    """Per district: cameras online, access points up, Wi-Fi clients now, open alerts."""
    async with pool.acquire() as conn:
        return json_response(await live.district_summaries(conn))


class Site(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    district_id: str
    lat: float
    lon: float


class CameraDetail(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    kind: str
    district_id: str
    road: str | None
    lat: float
    lon: float
    fps: float
    zones: list[dict[str, Any]]
    lines: list[dict[str, Any]]


class Registry(msgspec.Struct, frozen=True, kw_only=True):
    districts: list[live.District]
    sites: list[Site]
    cameras: list[CameraDetail]
    access_points: list[live.AccessPointInfo]


@router.get("/sites", tags=["registry"], responses=documented(list[Site]))
async def list_sites(pool: Pool, who: Wifi) -> Response:
    """Tourist sites (groups of Wi-Fi access points), for choosing what to compare."""
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT id, name, district_id, lat, lon FROM sites ORDER BY id")
    return json_response([Site(**dict(r)) for r in rows])


_decode_shapes = msgspec.json.Decoder(list[dict[str, Any]])
_CAMERA_FIELDS = ("id", "name", "kind", "district_id", "road", "lat", "lon", "fps")


@router.get("/registry", tags=["admin"], responses=documented(Registry))
async def registry(pool: Pool, who: Admin) -> Response:
    """The whole registry as loaded from the province file, zones and lines included. It is
    changed by editing that file and running ``ioc migrate`` (one source of truth)."""
    async with pool.acquire() as conn:
        sites = await conn.fetch("SELECT id, name, district_id, lat, lon FROM sites ORDER BY id")
        cams = await conn.fetch(
            """SELECT id, name, kind, district_id, road, lat, lon, fps,
                      zones::text AS zones, lines::text AS lines
               FROM cameras ORDER BY id"""
        )
        result = Registry(
            districts=await live.districts(conn),
            sites=[Site(**dict(r)) for r in sites],
            cameras=[
                CameraDetail(
                    **{k: r[k] for k in _CAMERA_FIELDS},
                    zones=_decode_shapes.decode(r["zones"]),
                    lines=_decode_shapes.decode(r["lines"]),
                )
                for r in cams
            ],
            access_points=await live.access_points(conn),
        )
    return json_response(result)

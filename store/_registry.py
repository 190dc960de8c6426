"""The registry tables mirror the province configuration file."""

from __future__ import annotations

import json

from protocol import Province

from ._bulk import load
from ._pool import Connection

# Set-based upserts (unnest), not executemany: one statement per table, and engines that
# cannot take executemany (PGlite) work too.
_DISTRICTS = (
    ("id", "text"),
    ("name", "text"),
    ("kind", "text"),
    ("lat", "float8"),
    ("lon", "float8"),
)
_SITES = (
    ("id", "text"),
    ("name", "text"),
    ("district_id", "text"),
    ("lat", "float8"),
    ("lon", "float8"),
)
_CAMERAS = (
    ("id", "text"),
    ("name", "text"),
    ("kind", "text"),
    ("district_id", "text"),
    ("road", "text"),
    ("lat", "float8"),
    ("lon", "float8"),
    ("fps", "real"),
    ("zones", "jsonb"),
    ("lines", "jsonb"),
    ("site_id", "text"),
)
_ACCESS_POINTS = (
    ("id", "text"),
    ("name", "text"),
    ("site_id", "text"),
    ("district_id", "text"),
    ("lat", "float8"),
    ("lon", "float8"),
    ("capacity", "int"),
)


def _update(columns: tuple[tuple[str, str], ...], extra: str = "") -> str:
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c, _ in columns[1:])
    return f" ON CONFLICT (id) DO UPDATE SET {sets}{extra}"


async def sync_registry(conn: Connection, province: Province) -> None:
    """Make the registry equal to ``province`` (upsert what is there, delete what is not)."""
    async with conn.transaction():
        await load(
            conn,
            "districts",
            [(d.id, d.name, d.kind, d.lat, d.lon) for d in province.districts],
            use_copy=False,
            columns=_DISTRICTS,
            suffix=_update(_DISTRICTS),
        )
        await load(
            conn,
            "sites",
            [
                (s.id, s.name, province.district_id(s.district), s.lat, s.lon)
                for s in province.sites
            ],
            use_copy=False,
            columns=_SITES,
            suffix=_update(_SITES),
        )
        await load(
            conn,
            "cameras",
            [
                (
                    c.id,
                    c.name,
                    c.kind,
                    province.district_id(c.district),
                    c.road,
                    c.lat,
                    c.lon,
                    c.fps,
                    json.dumps([z.model_dump(mode="json") for z in c.zones]),
                    json.dumps([ln.model_dump(mode="json") for ln in c.lines]),
                    c.site,
                )
                for c in province.cameras
            ],
            use_copy=False,
            columns=_CAMERAS,
            suffix=_update(_CAMERAS, ", updated_at = now()"),
        )
        await load(
            conn,
            "access_points",
            [
                (a.id, a.name, a.site, province.district_id(a.district), a.lat, a.lon, a.capacity)
                for a in province.access_points
            ],
            use_copy=False,
            columns=_ACCESS_POINTS,
            suffix=_update(_ACCESS_POINTS),
        )
        for table, ids in (
            ("cameras", [c.id for c in province.cameras]),
            ("access_points", [a.id for a in province.access_points]),
            ("sites", [s.id for s in province.sites]),
            ("districts", [d.id for d in province.districts]),
        ):
            await conn.execute(f"DELETE FROM {table} WHERE NOT (id = ANY($1::text[]))", ids)

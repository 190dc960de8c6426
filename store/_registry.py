"""The registry tables mirror the province configuration file."""

from __future__ import annotations

import json

from protocol import Province

from ._pool import Connection


async def sync_registry(conn: Connection, province: Province) -> None:
    """Make the registry equal to ``province`` (upsert what is there, delete what is not)."""
    async with conn.transaction():
        await conn.executemany(
            """INSERT INTO districts (id, name, kind, lat, lon) VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind,
                   lat = EXCLUDED.lat, lon = EXCLUDED.lon""",
            [(d.id, d.name, d.kind, d.lat, d.lon) for d in province.districts],
        )
        await conn.executemany(
            """INSERT INTO sites (id, name, district_id, lat, lon) VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,
                   district_id = EXCLUDED.district_id, lat = EXCLUDED.lat, lon = EXCLUDED.lon""",
            [
                (s.id, s.name, province.district_id(s.district), s.lat, s.lon)
                for s in province.sites
            ],
        )
        await conn.executemany(
            """INSERT INTO cameras (id, name, kind, district_id, road, lat, lon, fps, zones, lines)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb)
               ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind,
                   district_id = EXCLUDED.district_id, road = EXCLUDED.road,
                   lat = EXCLUDED.lat, lon = EXCLUDED.lon, fps = EXCLUDED.fps,
                   zones = EXCLUDED.zones, lines = EXCLUDED.lines, updated_at = now()""",
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
                )
                for c in province.cameras
            ],
        )
        await conn.executemany(
            """INSERT INTO access_points (id, name, site_id, district_id, lat, lon, capacity)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, site_id = EXCLUDED.site_id,
                   district_id = EXCLUDED.district_id, lat = EXCLUDED.lat, lon = EXCLUDED.lon,
                   capacity = EXCLUDED.capacity""",
            [
                (a.id, a.name, a.site, province.district_id(a.district), a.lat, a.lon, a.capacity)
                for a in province.access_points
            ],
        )
        for table, ids in (
            ("cameras", [c.id for c in province.cameras]),
            ("access_points", [a.id for a in province.access_points]),
            ("sites", [s.id for s in province.sites]),
            ("districts", [d.id for d in province.districts]),
        ):
            await conn.execute(f"DELETE FROM {table} WHERE NOT (id = ANY($1::text[]))", ids)

"""Planners' history: bounded requests, gap-filled series, local-day buckets, CSV and PNG."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import asyncpg
import matplotlib.image
import pytest
from console_support import console, seed_registry

from console_api import Role
from store import StoreConfig

pytestmark = pytest.mark.postgres
DAY = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday; 07:00 local is 00:00 UTC


async def _crossings(db: asyncpg.Connection, times: list[tuple[datetime, str]]) -> None:
    await db.executemany(
        """INSERT INTO events (event_id, phase, kind, camera_id, line_id, direction,
                               started_at, score)
           VALUES ($1, 'instant', 'line_crossing', 'cam-a', 'count-nb', $2, $3, 1)""",
        [(f"x{i}", direction, t) for i, (t, direction) in enumerate(times)],
    )


async def test_traffic_counts_gap_filled_as_json_csv_and_png(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    await _crossings(
        db,
        [(DAY + timedelta(hours=1, minutes=m), "forward") for m in range(0, 60, 6)]  # 10
        + [(DAY + timedelta(hours=3, minutes=5), "backward")] * 2
        + [(DAY + timedelta(hours=6), "forward")],  # the window is [since, until)
    )
    window = {"since": DAY.isoformat(), "until": (DAY + timedelta(hours=6)).isoformat()}
    async with console(database, db) as c:
        http = await c.as_role(Role.PLANNER)
        async with http:
            answer = (await http.get("/api/v1/history/traffic", params=window)).json()
            assert (answer["metric"], answer["bucket"], answer["timezone"]) == (
                "vehicles",
                "hour",
                "Asia/Ho_Chi_Minh",
            )
            series = {s["key"]["direction"]: s for s in answer["series"]}
            assert series["forward"]["key"] == {
                "camera_id": "cam-a",
                "line_id": "count-nb",
                "direction": "forward",
            }
            assert [v for _, v in series["forward"]["points"]] == [0, 10, 0, 0, 0, 0]
            assert [v for _, v in series["backward"]["points"]] == [0, 0, 0, 2, 0, 0]
            assert series["forward"]["points"][1][0] == "2026-03-02T01:00:00Z"

            by_camera = await http.get(
                "/api/v1/history/traffic", params={**window, "group": "camera"}
            )
            (total,) = by_camera.json()["series"]
            assert total["key"] == {"camera_id": "cam-a"}
            assert sum(v for _, v in total["points"]) == 12

            # Days begin at local midnight: 2026-03-02 00:00 UTC is 07:00 local, so the
            # day bucket holding it starts at 2026-03-01 17:00 UTC.
            days = await http.get(
                "/api/v1/history/traffic",
                params={
                    "bucket": "day",
                    "group": "district",
                    "since": (DAY - timedelta(days=1)).isoformat(),
                    "until": (DAY + timedelta(days=1)).isoformat(),
                },
            )
            points = days.json()["series"][0]["points"]
            assert [p for p in points if p[1]] == [["2026-03-01T17:00:00Z", 13]]

            as_csv = await http.get("/api/v1/history/traffic", params={**window, "format": "csv"})
            assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
            assert "attachment" in as_csv.headers["content-disposition"]
            rows = list(csv.DictReader(io.StringIO(as_csv.text)))
            assert len(rows) == 12  # 2 series x 6 hours
            assert rows[7] == {  # backward's six hours come first, then forward's
                "bucket_start_utc": "2026-03-02T01:00:00Z",
                "bucket_start_local": "2026-03-02T08:00:00+07:00",
                "camera_id": "cam-a",
                "line_id": "count-nb",
                "direction": "forward",
                "vehicles": "10",
            }
            assert sum(int(r["vehicles"]) for r in rows) == 12

            png = await http.get("/api/v1/history/traffic", params={**window, "format": "png"})
            assert png.headers["content-type"] == "image/png"
            image = matplotlib.image.imread(io.BytesIO(png.content), format="png")
            assert image.shape[:2] == (600, 1200)
            assert image.std() > 0  # something is drawn


async def test_wifi_clients_per_site(database: StoreConfig, db: asyncpg.Connection) -> None:
    await seed_registry(db)
    await db.executemany(
        """INSERT INTO wifi_samples (ap_id, ts, clients, rx_bytes, tx_bytes, channel_util, up,
                                     visitors) VALUES ($1, $2, $3, 0, 0, 0.1, true, 0)""",
        [
            ("ap-1", DAY + timedelta(minutes=10), 10),
            ("ap-1", DAY + timedelta(minutes=20), 20),
            ("ap-2", DAY + timedelta(minutes=30), 5),
            ("ap-2", DAY + timedelta(hours=1, minutes=30), 7),
        ],
    )
    params = {
        "group": "site",
        "since": DAY.isoformat(),
        "until": (DAY + timedelta(hours=3)).isoformat(),
    }
    async with console(database, db) as c:
        http = await c.as_role(Role.PLANNER)
        async with http:
            (site,) = (await http.get("/api/v1/history/wifi", params=params)).json()["series"]
            assert site["key"] == {"site_id": "vinh-trang"}
            # Mean clients per AP in each hour, summed over the site's APs.
            assert [v for _, v in site["points"]] == [15 + 5, 7, 0]
            per_ap = await http.get("/api/v1/history/wifi", params={**params, "group": "ap"})
            assert [s["key"]["ap_id"] for s in per_ap.json()["series"]] == ["ap-1", "ap-2"]


async def test_requests_that_would_scan_too_much_are_refused(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    # Many cameras with lines: minute buckets over two days for all of them is too much.
    await db.executemany(
        """INSERT INTO cameras (id, name, kind, district_id, lat, lon, fps, lines)
           VALUES ($1, $1, 'traffic', 'my-tho', 10.3, 106.3, 5,
                   '[{"id": "a"}, {"id": "b"}, {"id": "c"}]')""",
        [(f"extra-{i}",) for i in range(30)],
    )
    async with console(database, db) as c:
        http = await c.as_role(Role.PLANNER)
        async with http:
            for params, field in [
                (
                    {
                        "bucket": "minute",
                        "since": "2026-03-01T00:00:00Z",
                        "until": "2026-03-04T00:00:00Z",
                    },
                    "since",
                ),
                (
                    {
                        "bucket": "hour",
                        "since": "2025-01-01T00:00:00Z",
                        "until": "2025-12-01T00:00:00Z",
                    },
                    "since",
                ),
                (
                    {
                        "bucket": "day",
                        "since": "2020-01-01T00:00:00Z",
                        "until": "2026-01-01T00:00:00Z",
                    },
                    "since",
                ),
                ({"since": "2026-03-01T00:00:00"}, "since"),
                ({"bucket": "second"}, "bucket"),
                ({"format": "xlsx"}, "format"),
                ({"camera": "Nope!"}, "camera"),
                (
                    {
                        "bucket": "minute",
                        "since": "2026-03-01T00:00:00Z",
                        "until": "2026-03-03T00:00:00Z",
                    },
                    "bucket",
                ),
            ]:
                response = await http.get("/api/v1/history/traffic", params=params)
                assert response.status_code == 422, (params, response.text)
                detail = response.json()["detail"][0]
                assert detail["loc"][:2] == ["query", field], (params, detail)
            too_many = await http.get(
                "/api/v1/history/traffic",
                params={
                    "bucket": "minute",
                    "since": "2026-03-01T00:00:00Z",
                    "until": "2026-03-03T00:00:00Z",
                },
            )
            assert "series" in too_many.json()["detail"][0]["msg"]
            # Narrowed to one camera, the same range is fine.
            narrowed = await http.get(
                "/api/v1/history/traffic",
                params={
                    "bucket": "minute",
                    "since": "2026-03-01T00:00:00Z",
                    "until": "2026-03-03T00:00:00Z",
                    "camera": "cam-a",
                },
            )
            assert narrowed.status_code == 200
            assert len(narrowed.json()["series"][0]["points"]) == 2 * 24 * 60

"""Planners' history over the store's rollups: data written through the store's own writers,
read back through the API by every grouping and filter, as JSON, CSV and PNG; local-day
buckets; bounds refused with the field named."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import matplotlib.image
import pytest
from console_support import console, seed_registry

from console_api import Role
from protocol import LineCount, TelemetryBatch, TrafficMetrics, WifiSample
from store import StoreConfig, write_mode, write_telemetry, write_traffic

pytestmark = pytest.mark.postgres
DAY = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday; 07:00 local is 00:00 UTC
WINDOW = {"since": DAY.isoformat(), "until": (DAY + timedelta(hours=6)).isoformat()}
_seq = iter(range(1, 1_000_000))


def _interval(
    camera: str,
    start: datetime,
    counts: dict[str, LineCount] | None = None,
    congested: list[str] | None = None,
) -> TrafficMetrics:
    return TrafficMetrics(
        camera_id=camera,
        interval_start=start.timestamp(),
        interval_end=(start + timedelta(minutes=1)).timestamp(),
        seq=next(_seq),
        line_counts=counts or {},
        zone_occupancy={"lane": 0.9 if congested else 0.1},
        congested_zones=congested or [],
        frames=300,
    )


async def _traffic(database: StoreConfig, db: asyncpg.Connection) -> None:
    """cam-a (my-tho, road QL1A): 10 forward in hour 1, 2 backward in hour 3, 1 forward at
    hour 6 (outside WINDOW), congested 5 minutes of hour 2. cam-c (go-cong, road dt864):
    5 forward in hour 2, congested 3 minutes of hour 2. cam-b has no counting line."""
    await seed_registry(db)
    await db.execute(
        """INSERT INTO cameras (id, name, kind, district_id, road, lat, lon, fps, lines)
           VALUES ('cam-c', 'ĐT864 ferry', 'traffic', 'go-cong', 'dt864', 10.35, 106.6, 5,
                   '[{"id": "count-1"}]')"""
    )
    metrics = [
        *(
            _interval("cam-a", DAY + timedelta(hours=1, minutes=m), {"count-nb": LineCount(2, 0)})
            for m in range(0, 5)
        ),
        _interval("cam-a", DAY + timedelta(hours=3, minutes=5), {"count-nb": LineCount(0, 2)}),
        _interval("cam-a", DAY + timedelta(hours=6), {"count-nb": LineCount(1, 0)}),
        *(
            _interval("cam-a", DAY + timedelta(hours=2, minutes=m), congested=["lane"])
            for m in range(5)
        ),
        _interval("cam-c", DAY + timedelta(hours=2, minutes=30), {"count-1": LineCount(5, 0)}),
        *(
            _interval("cam-c", DAY + timedelta(hours=2, minutes=m), congested=["lane"])
            for m in range(10, 13)
        ),
    ]
    await write_traffic(db, metrics, await write_mode(db, database))


def _values(series: dict[str, Any]) -> list[float]:
    return [v for _, v in series["points"]]


async def _series(http: httpx.AsyncClient, path: str, **params: Any) -> dict[str, list[float]]:
    """Each series of an answer by its key values joined with '/'."""
    response = await http.get(path, params=params)
    assert response.status_code == 200, response.text
    return {"/".join(s["key"].values()): _values(s) for s in response.json()["series"]}


async def test_traffic_by_every_grouping_and_filter(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await _traffic(database, db)
    async with console(database, db) as c:
        http = await c.as_role(Role.PLANNER)
        async with http:
            answer = (await http.get("/api/v1/history/traffic", params=WINDOW)).json()
            assert (answer["metric"], answer["bucket"], answer["group"], answer["timezone"]) == (
                "vehicles",
                "hour",
                "line",
                "Asia/Ho_Chi_Minh",
            )
            assert answer["series"][1]["key"] == {
                "camera_id": "cam-a",
                "line_id": "count-nb",
                "direction": "forward",
            }
            assert answer["series"][1]["points"][1] == ["2026-03-02T01:00:00Z", 10]
            path = "/api/v1/history/traffic"
            assert await _series(http, path, **WINDOW) == {
                "cam-a/count-nb/backward": [0, 0, 0, 2, 0, 0],
                "cam-a/count-nb/forward": [0, 10, 0, 0, 0, 0],
                "cam-c/count-1/backward": [0] * 6,
                "cam-c/count-1/forward": [0, 0, 5, 0, 0, 0],
            }
            # Cameras: the counting ones (cam-b has no line and counted nothing).
            assert await _series(http, path, group="camera", **WINDOW) == {
                "cam-a": [0, 10, 0, 2, 0, 0],
                "cam-c": [0, 0, 5, 0, 0, 0],
            }
            for narrowing in ({"camera": "cam-c"}, {"district": "go-cong"}, {"road": "dt864"}):
                assert await _series(http, path, group="camera", **narrowing, **WINDOW) == {
                    "cam-c": [0, 0, 5, 0, 0, 0]
                }, narrowing
            assert list(await _series(http, path, road="QL1A", **WINDOW)) == [
                "cam-a/count-nb/backward",
                "cam-a/count-nb/forward",
            ]
            assert await _series(http, path, group="road", **WINDOW) == {
                "QL1A": [0, 10, 0, 2, 0, 0],
                "dt864": [0, 0, 5, 0, 0, 0],
            }
            assert list(await _series(http, path, group="road", road="dt864", **WINDOW)) == [
                "dt864"
            ]
            assert await _series(http, path, group="district", **WINDOW) == {
                "go-cong": [0, 0, 5, 0, 0, 0],
                "my-tho": [0, 10, 0, 2, 0, 0],
            }
            assert await _series(http, path, group="province", **WINDOW) == {
                "province": [0, 10, 5, 2, 0, 0]
            }
            # A camera that does not exist has no series; a filter the grouping cannot
            # apply is refused, naming it.
            assert await _series(http, path, camera="nowhere", **WINDOW) == {}
            refused = await http.get(path, params={"group": "road", "camera": "cam-a", **WINDOW})
            assert refused.status_code == 422
            assert refused.json()["detail"][0]["loc"] == ["query", "camera"]

            # Days begin at local midnight: 2026-03-02 00:00 UTC is 07:00 local, so the
            # day holding WINDOW (and hour 6) starts at 2026-03-01 17:00 UTC.
            days = await http.get(
                path,
                params={
                    "bucket": "day",
                    "group": "district",
                    "since": (DAY - timedelta(days=1)).isoformat(),
                    "until": (DAY + timedelta(days=1)).isoformat(),
                },
            )
            my_tho = next(s for s in days.json()["series"] if s["key"]["district_id"] == "my-tho")
            assert [p for p in my_tho["points"] if p[1]] == [["2026-03-01T17:00:00Z", 13]]
            # The answer says the range it covers: the request widened to whole buckets.
            assert days.json()["since"] == "2026-02-28T17:00:00Z"

            # A range that does not start on an hour is widened to whole hours.
            widened = await http.get(
                path, params={**WINDOW, "since": (DAY + timedelta(minutes=30)).isoformat()}
            )
            assert widened.json()["since"] == "2026-03-02T00:00:00Z"


async def test_traffic_as_csv_and_png(database: StoreConfig, db: asyncpg.Connection) -> None:
    await _traffic(database, db)
    async with console(database, db) as c:
        http = await c.as_role(Role.PLANNER)
        async with http:
            as_csv = await http.get("/api/v1/history/traffic", params={**WINDOW, "format": "csv"})
            assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
            assert "attachment" in as_csv.headers["content-disposition"]
            rows = list(csv.DictReader(io.StringIO(as_csv.text)))
            assert len(rows) == 4 * 6  # 2 lines x 2 directions x 6 hours
            assert rows[7] == {  # cam-a backward's six hours come first, then forward's
                "bucket_start_utc": "2026-03-02T01:00:00Z",
                "bucket_start_local": "2026-03-02T08:00:00+07:00",
                "camera_id": "cam-a",
                "line_id": "count-nb",
                "direction": "forward",
                "vehicles": "10",
            }
            assert sum(int(r["vehicles"]) for r in rows) == 17

            # A comparison chart: two districts as two series.
            png = await http.get(
                "/api/v1/history/traffic",
                params={**WINDOW, "group": "district", "format": "png"},
            )
            assert png.headers["content-type"] == "image/png"
            image = matplotlib.image.imread(io.BytesIO(png.content), format="png")
            assert image.shape[:2] == (600, 1200)
            assert image.std() > 0  # something is drawn


async def test_congestion_minutes_per_road(database: StoreConfig, db: asyncpg.Connection) -> None:
    await _traffic(database, db)
    async with console(database, db) as c:
        http = await c.as_role(Role.OPERATOR)
        async with http:
            path = "/api/v1/history/congestion"
            assert await _series(http, path, **WINDOW) == {
                "QL1A": [0, 0, 5, 0, 0, 0],
                "dt864": [0, 0, 3, 0, 0, 0],
            }
            assert await _series(http, path, road="dt864", **WINDOW) == {
                "dt864": [0, 0, 3, 0, 0, 0]
            }
            minutes = await _series(
                http,
                path,
                bucket="minute",
                road="QL1A",
                since=(DAY + timedelta(hours=2)).isoformat(),
                until=(DAY + timedelta(hours=2, minutes=10)).isoformat(),
            )
            assert minutes == {"QL1A": [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]}
            as_csv = await http.get(path, params={**WINDOW, "format": "csv"})
            assert as_csv.text.splitlines()[0] == (
                "bucket_start_utc,bucket_start_local,road,congested_minutes"
            )


def _sample(at: datetime, clients: int, visitors: list[str]) -> WifiSample:
    return WifiSample(
        ts=at.timestamp(),
        clients=clients,
        rx_bytes=0,
        tx_bytes=0,
        channel_util=0.1,
        up=True,
        visitors=visitors,
    )


async def test_wifi_clients_and_visitors(database: StoreConfig, db: asyncpg.Connection) -> None:
    await seed_registry(db)
    a, b, v = "00000000000000aa", "00000000000000bb", "00000000000000cc"
    batches = [
        TelemetryBatch(
            ap_id="ap-1",
            seq=1,
            samples=[
                _sample(DAY + timedelta(minutes=10), 10, [a, b]),
                _sample(DAY + timedelta(minutes=20), 20, []),
            ],
        ),
        TelemetryBatch(
            ap_id="ap-2",
            seq=1,
            samples=[
                _sample(DAY + timedelta(minutes=30), 5, [b, v]),
                _sample(DAY + timedelta(hours=1, minutes=30), 7, []),
            ],
        ),
    ]
    await write_telemetry(db, batches, await write_mode(db, database))
    window = {"since": DAY.isoformat(), "until": (DAY + timedelta(hours=3)).isoformat()}
    async with console(database, db) as c:
        http = await c.as_role(Role.PLANNER)
        async with http:
            path = "/api/v1/history/wifi"
            # Mean clients per AP in each hour, summed over the site's APs.
            assert await _series(http, path, group="site", **window) == {
                "vinh-trang": [15 + 5, 7, 0]
            }
            assert await _series(http, path, group="ap", **window) == {
                "ap-1": [15, 0, 0],
                "ap-2": [5, 7, 0],
            }
            assert await _series(http, path, group="ap", ap="ap-2", **window) == {"ap-2": [5, 7, 0]}
            assert await _series(http, path, group="district", district="go-cong", **window) == {}
            peaks = await _series(http, path, group="site", metric="peak_clients", **window)
            assert peaks == {"vinh-trang": [20 + 5, 7, 0]}
            arrivals = await _series(http, path, group="site", metric="arrivals", **window)
            assert arrivals == {"vinh-trang": [4, 0, 0]}
            # A phone seen at both APs of the site counts once for the site.
            visitors = await _series(http, path, group="site", metric="visitors", **window)
            assert visitors == {"vinh-trang": [3, 0, 0]}
            per_ap = await _series(http, path, group="ap", metric="visitors", **window)
            assert per_ap == {"ap-1": [2, 0, 0], "ap-2": [2, 0, 0]}
            daily = await _series(
                http, path, group="district", metric="visitors", bucket="day", **window
            )
            assert daily == {"my-tho": [3]}

            for params, field in [
                ({"bucket": "minute"}, "bucket"),  # Wi-Fi rollups are hourly and daily
                (
                    {
                        "metric": "visitors",
                        "bucket": "day",
                        "since": "2026-01-01T00:00:00Z",
                        "until": "2026-03-01T00:00:00Z",
                    },
                    "since",  # visitor hashes are kept 35 days
                ),
                ({"metric": "mac_addresses"}, "metric"),
                ({"site": "Not An Id"}, "site"),
            ]:
                response = await http.get(path, params=params)
                assert response.status_code == 422, (params, response.text)
                assert response.json()["detail"][0]["loc"][:2] == ["query", field], params


async def test_busiest_places_as_json_csv_and_png(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await _traffic(database, db)
    window = {"since": DAY.isoformat(), "until": (DAY + timedelta(days=1)).isoformat()}
    async with console(database, db) as c:
        http = await c.as_role(Role.PLANNER)
        async with http:
            path = "/api/v1/history/busiest"
            answer = (await http.get(path, params=window)).json()
            assert (answer["what"], answer["measure"]) == ("cameras", "vehicles")
            assert answer["ranking"] == [
                {"rank": 1, "id": "cam-a", "name": "QL1A bridge", "total": 13},
                {"rank": 2, "id": "cam-c", "name": "ĐT864 ferry", "total": 5},
            ]
            roads = (await http.get(path, params={"what": "roads", "limit": 1, **window})).json()
            assert [(r["id"], r["total"]) for r in roads["ranking"]] == [("QL1A", 13)]
            districts = await http.get(
                path, params={"what": "districts", "format": "csv", **window}
            )
            assert districts.text.splitlines() == [
                "rank,id,name,vehicles",
                "1,my-tho,TP. Mỹ Tho,13",
                "2,go-cong,TX. Gò Công,5",
            ]
            png = await http.get(path, params={"format": "png", **window})
            assert png.headers["content-type"] == "image/png"
            image = matplotlib.image.imread(io.BytesIO(png.content), format="png")
            assert image.shape[:2] == (600, 1200)
            sites = (await http.get(path, params={"what": "sites", **window})).json()
            assert (sites["measure"], sites["ranking"]) == ("arrivals", [])
            too_many = await http.get(path, params={"limit": 1000, **window})
            assert too_many.json()["detail"][0]["loc"] == ["query", "limit"]


async def test_requests_that_would_read_too_much_are_refused(
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
    two_days = {"since": "2026-03-01T00:00:00Z", "until": "2026-03-03T00:00:00Z"}
    async with console(database, db) as c:
        http = await c.as_role(Role.PLANNER)
        async with http:
            for params, field in [
                ({"bucket": "minute", **two_days, "until": "2026-03-04T00:00:00Z"}, "since"),
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
                # 92 days asked, but not on whole hours: the widened range is over.
                (
                    {
                        "bucket": "hour",
                        "since": "2026-01-01T00:30:00Z",
                        "until": "2026-04-03T00:15:00Z",
                    },
                    "since",
                ),
                ({"since": "2026-03-01T00:00:00"}, "since"),
                ({"bucket": "second"}, "bucket"),
                ({"format": "xlsx"}, "format"),
                ({"camera": "Nope!"}, "camera"),
                ({"bucket": "minute", **two_days}, "bucket"),
            ]:
                response = await http.get("/api/v1/history/traffic", params=params)
                assert response.status_code == 422, (params, response.text)
                detail = response.json()["detail"][0]
                assert detail["loc"][:2] == ["query", field], (params, detail)
            too_many = await http.get(
                "/api/v1/history/traffic", params={"bucket": "minute", **two_days}
            )
            assert "series" in too_many.json()["detail"][0]["msg"]
            # Narrowed to one camera, the same range is fine; so is the whole province.
            for narrowed in ({"camera": "cam-a"}, {"group": "province"}):
                answer = await http.get(
                    "/api/v1/history/traffic", params={"bucket": "minute", **two_days, **narrowed}
                )
                assert answer.status_code == 200, narrowed
                assert len(answer.json()["series"][0]["points"]) == 2 * 24 * 60

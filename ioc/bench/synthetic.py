"""Deterministic synthetic province data for the store's benchmarks and tests: a registry of
cameras (two counting lines each, on named roads) and access points, and the traffic
metrics and Wi-Fi telemetry they would send."""

from __future__ import annotations

import random
from collections.abc import Iterator

from protocol import (
    AccessPoint,
    Camera,
    District,
    Line,
    LineCount,
    Province,
    Site,
    TelemetryBatch,
    TrafficMetrics,
    WifiSample,
)

ROADS = ("ql1a", "ql50", "ql60", "dt864", "dt870", "dt879")


def synthetic_province(
    *, cameras: int = 200, access_points: int = 60, districts: int = 11, sites: int = 20
) -> Province:
    d = [
        District(id=f"d{i:02d}", name=f"District {i}", lat=10.3 + i / 100, lon=106.3)
        for i in range(districts)
    ]
    s = [
        Site(id=f"s{i:02d}", name=f"Site {i}", district=d[i % districts].id, lat=10.3, lon=106.3)
        for i in range(sites)
    ]
    lines = [
        Line(id="nb", points=((0.1, 0.5), (0.9, 0.5))),
        Line(id="sb", points=((0.1, 0.7), (0.9, 0.7))),
    ]
    c = [
        Camera(
            id=f"cam-{i:03d}",
            name=f"Camera {i}",
            kind="traffic",
            district=d[i % districts].id,
            road=ROADS[i % len(ROADS)] if i % 7 else None,
            lat=10.3,
            lon=106.3,
            source="synthetic",
            lines=lines,
        )
        for i in range(cameras)
    ]
    a = [
        AccessPoint(
            id=f"ap-{i:03d}",
            name=f"AP {i}",
            site=s[i % sites].id,
            district=s[i % sites].district,
            lat=10.3,
            lon=106.3,
        )
        for i in range(access_points)
    ]
    return Province(districts=d, sites=s, cameras=c, access_points=a)


def traffic_stream(
    province: Province, start: float, intervals: int, *, seconds: float = 60.0, seed: int = 1
) -> Iterator[TrafficMetrics]:
    """Each camera's metrics for ``intervals`` consecutive intervals; some congested, some
    intervals missing (gaps the queries must fill)."""
    rnd = random.Random(seed)
    timed = random.Random(seed + 1)  # speeds apart, so the counts stay as they were
    for n in range(intervals):
        t = start + n * seconds
        for cam in province.cameras:
            if rnd.random() < 0.05:
                continue  # a gap
            congested = ["road"] if rnd.random() < 0.1 else []
            vehicles, mean, p85 = _speeds(timed)
            yield TrafficMetrics(
                camera_id=cam.id,
                interval_start=t,
                interval_end=t + seconds,
                seq=n,
                line_counts={
                    line.id: LineCount(forward=rnd.randrange(30), backward=rnd.randrange(30))
                    for line in cam.lines
                },
                zone_occupancy={"road": round(rnd.random(), 3)},
                congested_zones=congested,
                frames=int(seconds * 5),
                speeds=vehicles,
                speed_mean_kmh=mean,
                speed_p85_kmh=p85,
            )


def _speeds(rnd: random.Random) -> tuple[int, float | None, float | None]:
    """Vehicles timed by speed gates in an interval, their mean and 85th-percentile speed
    (some intervals time nobody)."""
    vehicles = rnd.randrange(-3, 20)
    if vehicles <= 0:
        return 0, None, None
    mean = round(rnd.uniform(25.0, 70.0), 1)
    return vehicles, mean, round(mean * rnd.uniform(1.05, 1.3), 1)


def telemetry_stream(
    province: Province,
    start: float,
    batches: int,
    *,
    samples_per_batch: int = 6,
    period: float = 10.0,
    visitors_per_sample: float = 0.5,
    seed: int = 2,
) -> Iterator[TelemetryBatch]:
    """Each AP's batches of samples every ``period`` seconds; visitor hashes drawn from a
    small per-day pool so that the same visitor is seen repeatedly and at several APs."""
    rnd = random.Random(seed)
    pool = [f"{rnd.getrandbits(64):016x}" for _ in range(500)]
    for b in range(batches):
        for ap in province.access_points:
            samples = []
            for k in range(samples_per_batch):
                ts = start + (b * samples_per_batch + k) * period
                n = int(visitors_per_sample) + (rnd.random() < visitors_per_sample % 1)
                samples.append(
                    WifiSample(
                        ts=ts,
                        clients=rnd.randrange(200),
                        rx_bytes=rnd.randrange(10**9),
                        tx_bytes=rnd.randrange(10**9),
                        channel_util=round(rnd.random(), 3),
                        up=rnd.random() > 0.02,
                        visitors=[pool[rnd.randrange(len(pool))] for _ in range(n)],
                    )
                )
            yield TelemetryBatch(ap_id=ap.id, seq=b, samples=samples)

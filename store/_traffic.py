"""Idempotent writes of per-interval traffic metrics from the vision workers.

A :class:`protocol.TrafficMetrics` message is one camera's interval: vehicles crossing each
counting line by direction, each zone's occupancy, the zones judged congested, and the
vehicles its speed gates timed with their mean and 85th-percentile speed. (camera_id,
seq) identifies it, so a redelivered message is skipped as a whole. A camera is congested
for the interval's length when any of its zones is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from protocol import TrafficMetrics

from ._bulk import Row, WriteMode, claim_batches, insert_rolled_up
from ._pool import Connection
from ._telemetry import WriteResult


def traffic_source(camera_id: str) -> str:
    return f"traffic:{camera_id}"


async def write_traffic(
    conn: Connection, metrics: Sequence[TrafficMetrics], mode: WriteMode
) -> WriteResult:
    unique: dict[tuple[str, int], TrafficMetrics] = {}
    for m in metrics:
        unique.setdefault((traffic_source(m.camera_id), m.seq), m)
    async with conn.transaction():
        fresh = await claim_batches(
            conn, [(key[0], key[1], len(m.line_counts)) for key, m in unique.items()]
        )
        counts: list[Row] = []
        intervals: list[Row] = []
        zones: list[Row] = []
        speeds: list[Row] = []
        for key in sorted(fresh):
            m = unique[key]
            ts = datetime.fromtimestamp(m.interval_start, UTC)
            seconds = max(0.0, m.interval_end - m.interval_start)
            congested = set(m.congested_zones)
            counts.extend(
                (m.camera_id, line, ts, c.forward, c.backward)
                for line, c in sorted(m.line_counts.items())
            )
            intervals.append((m.camera_id, ts, seconds, m.frames, seconds if congested else 0.0))
            zones.extend(
                (m.camera_id, zone, ts, occupancy, zone in congested)
                for zone, occupancy in sorted(m.zone_occupancy.items())
            )
            if m.speeds and m.speed_mean_kmh is not None and m.speed_p85_kmh is not None:
                speeds.append(
                    (m.camera_id, ts, seconds, m.speeds, m.speed_mean_kmh, m.speed_p85_kmh)
                )
        await insert_rolled_up(conn, "traffic_counts", counts, mode)
        await insert_rolled_up(conn, "traffic_intervals", intervals, mode)
        await insert_rolled_up(conn, "zone_occupancy", zones, mode)
        await insert_rolled_up(conn, "traffic_speeds", speeds, mode)
    return WriteResult(len(fresh), len(metrics) - len(fresh), len(counts))

"""Planners' view of citizen reports: per service, district and local day, how many came in,
how many are closed, and the median time to close."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime

import msgspec

from store import Connection

TIMEZONE = "Asia/Ho_Chi_Minh"


class ReportDay(msgspec.Struct, frozen=True, kw_only=True):
    day: date
    """Local day (Asia/Ho_Chi_Minh) the reports came in."""
    service_code: str
    district_id: str
    reports: int
    closed: int
    median_minutes_to_close: float | None
    """Over the closed ones; None when none is closed yet."""


async def report_stats(conn: Connection, since: datetime, until: datetime) -> list[ReportDay]:
    """Reports that came in within ``[since, until)``, grouped; ordered by day, service,
    district."""
    records = await conn.fetch(
        """SELECT (r.requested_at AT TIME ZONE $3)::date AS day, r.service_code, r.district_id,
                  count(*) AS reports, count(a.resolved_at) AS closed,
                  percentile_cont(0.5) WITHIN GROUP (
                      ORDER BY extract(epoch FROM a.resolved_at - r.requested_at) / 60.0
                  ) FILTER (WHERE a.resolved_at IS NOT NULL) AS median_minutes
           FROM open311_requests r LEFT JOIN alerts a
                ON a.id = r.alert_id AND a.state = 'resolved'
           WHERE r.requested_at >= $1 AND r.requested_at < $2
           GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""",
        since,
        until,
        TIMEZONE,
    )
    return [
        ReportDay(
            day=r["day"],
            service_code=r["service_code"],
            district_id=r["district_id"],
            reports=r["reports"],
            closed=r["closed"],
            median_minutes_to_close=None
            if r["median_minutes"] is None
            else round(float(r["median_minutes"]), 1),
        )
        for r in records
    ]


def stats_csv(rows: list[ReportDay]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ReportDay.__struct_fields__)
    for row in rows:
        writer.writerow(
            [
                row.day.isoformat(),
                row.service_code,
                row.district_id,
                row.reports,
                row.closed,
                "" if row.median_minutes_to_close is None else row.median_minutes_to_close,
            ]
        )
    return out.getvalue()

"""What a history query is asked: a validated time range in whole buckets, and groupings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from ._rollups import LOCAL_TIMEZONE

_TZ = ZoneInfo(LOCAL_TIMEZONE)


class HistoryError(ValueError):
    """A history request that cannot be answered as asked; the message says why."""


class Bucket(StrEnum):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"


MAX_SPAN = {
    Bucket.MINUTE: timedelta(days=2),
    Bucket.HOUR: timedelta(days=92),
    Bucket.DAY: timedelta(days=3 * 366),
}
VISITOR_SPAN = timedelta(days=35)
"""Visitor hashes are kept 35 days (``wifi_visitors`` retention); older days have none."""
MAX_TOP = 100


class TrafficGrouping(StrEnum):
    CAMERA = "camera"
    ROAD = "road"
    DISTRICT = "district"
    PROVINCE = "province"


class WifiGrouping(StrEnum):
    ACCESS_POINT = "access_point"
    SITE = "site"
    DISTRICT = "district"


class Ranking(StrEnum):
    CAMERAS = "cameras"
    ROADS = "roads"
    DISTRICTS = "districts"
    ACCESS_POINTS = "access_points"
    SITES = "sites"


@dataclass(frozen=True, slots=True)
class Period:
    """``[start, end)`` in ``bucket`` steps; widened outwards to whole buckets."""

    start: datetime
    end: datetime
    bucket: Bucket

    @classmethod
    def of(cls, start: datetime, end: datetime, bucket: Bucket | str) -> Period:
        try:
            width = Bucket(bucket)
        except ValueError as exc:
            raise HistoryError(
                f"bucket must be one of {', '.join(Bucket)}, not {bucket!r}"
            ) from exc
        for name, value in (("start", start), ("end", end)):
            if value.tzinfo is None:
                raise HistoryError(f"{name} {value.isoformat()} has no time zone")
        if start >= end:
            raise HistoryError(f"start {start.isoformat()} is not before end {end.isoformat()}")
        lo, hi = _floor(start, width), _ceil(end, width)
        if hi - lo > MAX_SPAN[width]:
            raise HistoryError(
                f"{width} buckets cover at most {MAX_SPAN[width].days} days; asked for "
                f"{(hi - lo).total_seconds() / 86400:.1f}"
            )
        return cls(lo, hi, width)


def _floor(t: datetime, width: Bucket) -> datetime:
    if width is Bucket.DAY:
        return datetime.combine(t.astimezone(_TZ).date(), time(0), _TZ).astimezone(UTC)
    step = 60 if width is Bucket.MINUTE else 3600
    return datetime.fromtimestamp(int(t.timestamp() // step) * step, UTC)


def _ceil(t: datetime, width: Bucket) -> datetime:
    floor = _floor(t, width)
    if floor == t:
        return floor
    if width is Bucket.DAY:
        local = floor.astimezone(_TZ).date() + timedelta(days=1)
        return datetime.combine(local, time(0), _TZ).astimezone(UTC)
    return floor + (timedelta(minutes=1) if width is Bucket.MINUTE else timedelta(hours=1))

"""Calendar covariates: the season slot of each time, with public holidays as Sundays."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays as holiday_calendars
import numpy as np
import numpy.typing as npt

from ._series import HOUR

IntArray = npt.NDArray[np.int64]
_SUNDAY = 6


class UnknownCountry(ValueError):
    def __init__(self, code: str) -> None:
        super().__init__(f"unknown holiday country code {code!r} (ISO 3166-1, such as VN, US)")
        self.code = code


@lru_cache(maxsize=16)
def _country_dates(country: str, first_year: int, last_year: int) -> frozenset[date]:
    try:
        calendar = holiday_calendars.country_holidays(
            country, years=range(first_year, last_year + 1)
        )
    except NotImplementedError as exc:
        raise UnknownCountry(country) from exc
    return frozenset(calendar.keys())


class Calendar:
    """Maps times to season slots. Hourly: ``weekday * 24 + hour`` (168 slots); daily:
    ``weekday`` (7 slots). A public holiday takes Sunday's slot: it looks like a Sunday
    on roads and at sites, and is kept out of its own weekday's profile."""

    def __init__(
        self,
        country: str | None = "VN",
        extra: Iterable[date] = (),
        timezone: str = "Asia/Ho_Chi_Minh",
    ) -> None:
        self.country = country.upper() if country else None
        self._extra = frozenset(extra)
        #: Where weekdays and hours are counted for times that carry an offset (the
        #: store's UTC); times without one are taken as local already (CSV files).
        self.timezone = ZoneInfo(timezone)

    def holiday_dates(self, first: date, last: date) -> frozenset[date]:
        found = set(self._extra)
        if self.country:
            found |= _country_dates(self.country, first.year, last.year)
        return frozenset(found)

    def slots(self, start: datetime, step: timedelta, count: int) -> tuple[IntArray, IntArray]:
        """(calendar slot, effective slot) for ``count`` times from ``start``: they differ
        on holidays, whose effective slot is Sunday's."""
        if start.tzinfo is not None:
            start = start.astimezone(self.timezone)
        offsets = np.arange(count, dtype=np.int64)
        day0 = start.date()
        if step == HOUR:
            hours = start.hour + offsets
            day_index = hours // 24
            hour = hours % 24
        else:
            day_index = offsets * round(step / timedelta(days=1))
            hour = np.zeros(count, dtype=np.int64)
        weekday = (day0.weekday() + day_index) % 7
        last = day0 + timedelta(days=int(day_index[-1]) if count else 0)
        dates = self.holiday_dates(day0, last)
        holiday_days = np.array(
            sorted((d - day0).days for d in dates if day0 <= d <= last), dtype=np.int64
        )
        is_holiday = np.isin(day_index, holiday_days)
        effective = np.where(is_holiday, _SUNDAY, weekday)
        if step == HOUR:
            return (weekday * 24 + hour).astype(np.int64), (effective * 24 + hour).astype(np.int64)
        return weekday.astype(np.int64), effective.astype(np.int64)

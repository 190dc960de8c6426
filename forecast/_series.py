"""Observed series on a regular grid, read from a CSV with every fault named by its line.

Gaps stay NaN (nothing is invented); an hour that appears on several rows (the I-94 file
repeats an hour once per weather condition) is kept once, as the mean of its rows."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

_TIME_COLUMNS = ("date_time", "time")
_VALUE_COLUMNS = ("traffic_volume", "value")
#: The I-94 file's columns besides time and volume; any other column is refused.
_KNOWN_EXTRA = frozenset(
    {"holiday", "temp", "rain_1h", "snow_1h", "clouds_all", "weather_main", "weather_description"}
)

FloatArray = npt.NDArray[np.float64]


class SeriesError(ValueError):
    """A CSV that cannot be read as a series: which file, which line, what is wrong."""

    def __init__(self, path: Path | str, line: int | None, reason: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")
        self.path = str(path)
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class Series:
    """Values at ``start + i * step``; NaN where nothing was observed."""

    start: datetime
    step: timedelta
    values: FloatArray
    #: Dates the source itself marks as holidays (the I-94 ``holiday`` column).
    marked_holidays: frozenset[date] = frozenset()
    #: The source has a holiday column: its marks are the calendar, not a default country.
    marks_holidays: bool = False

    def __len__(self) -> int:
        return len(self.values)

    def time_at(self, index: int) -> datetime:
        return self.start + index * self.step

    @property
    def end(self) -> datetime:
        """The time of the last slot."""
        return self.time_at(len(self.values) - 1)

    @property
    def observed(self) -> int:
        return int(np.count_nonzero(~np.isnan(self.values)))

    def tail(self, count: int) -> Series:
        """The last ``count`` slots (all of them if the series is shorter)."""
        cut = max(0, len(self.values) - count)
        return Series(
            self.time_at(cut),
            self.step,
            self.values[cut:],
            self.marked_holidays,
            self.marks_holidays,
        )

    def head(self, count: int) -> Series:
        return Series(
            self.start, self.step, self.values[:count], self.marked_holidays, self.marks_holidays
        )

    def daily(self) -> Series:
        """Daily totals of an hourly series; a day missing any hour stays NaN."""
        if self.step != HOUR:
            raise ValueError("daily totals need an hourly series")
        first = self.start.replace(hour=0, minute=0, second=0, microsecond=0)
        lead = int((self.start - first) / HOUR)
        padded = np.concatenate([np.full(lead, np.nan), self.values])
        padded = np.concatenate([padded, np.full((-len(padded)) % 24, np.nan)])
        totals = padded.reshape(-1, 24).sum(axis=1)  # NaN if any hour is missing
        return Series(first, DAY, totals, self.marked_holidays, self.marks_holidays)


def from_observations(times: list[datetime], values: list[float], step: timedelta = HOUR) -> Series:
    """A regular series from sorted observation times (repeats averaged, gaps NaN)."""
    if not times:
        raise ValueError("no observations")
    start = times[0]
    offsets = np.array([round((t - start) / step) for t in times], dtype=np.int64)
    size = int(offsets[-1]) + 1
    sums = np.bincount(offsets, weights=np.asarray(values, dtype=np.float64), minlength=size)
    counts = np.bincount(offsets, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        grid = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return Series(start, step, grid.astype(np.float64))


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.strip())
    if moment.minute or moment.second or moment.microsecond:
        raise ValueError(f"time {text!r} is not on the hour")
    return moment


@dataclass(frozen=True)
class _Columns:
    names: list[str]
    time: int
    value: int
    holiday: int | None


def _columns(path: Path, header: list[str]) -> _Columns:
    names = [name.strip() for name in header]
    time_col = next((c for c in _TIME_COLUMNS if c in names), None)
    value_col = next((c for c in _VALUE_COLUMNS if c in names), None)
    unknown = [n for n in names if n not in _KNOWN_EXTRA and n not in (time_col, value_col)]
    if time_col is None or value_col is None or unknown:
        raise SeriesError(
            path,
            1,
            f"columns {names} are neither `time,value` nor the I-94 format"
            " (date_time, traffic_volume, holiday, weather)"
            + (f"; unknown: {unknown}" if unknown else ""),
        )
    holiday = names.index("holiday") if "holiday" in names else None
    return _Columns(names, names.index(time_col), names.index(value_col), holiday)


def _row(path: Path, line: int, row: list[str], cols: _Columns) -> tuple[datetime, float]:
    if len(row) != len(cols.names):
        raise SeriesError(path, line, f"{len(row)} fields, the header has {len(cols.names)}")
    try:
        moment = _parse_time(row[cols.time])
    except ValueError as exc:
        raise SeriesError(path, line, f"bad time {row[cols.time]!r}: {exc}") from exc
    try:
        value = float(row[cols.value])
    except ValueError as exc:
        raise SeriesError(path, line, f"bad value {row[cols.value]!r}") from exc
    if not math.isfinite(value):
        raise SeriesError(path, line, f"value {row[cols.value]!r} is not a finite number")
    if value < 0:
        raise SeriesError(path, line, f"negative count {value:g} refused")
    return moment, value


def read_csv(path: Path) -> Series:
    """Read the I-94 format (``date_time``, ``traffic_volume``, ``holiday``, weather) or a
    plain ``time,value`` file. Times must not go backwards; counts must not be negative."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise SeriesError(path, None, f"cannot open: {exc.strerror}") from exc
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise SeriesError(path, 1, "empty file: no header and no rows")
        cols = _columns(path, header)
        times: list[datetime] = []
        values: list[float] = []
        holidays: set[date] = set()
        for line, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            moment, value = _row(path, line, row, cols)
            if times and (moment.tzinfo is None) != (times[-1].tzinfo is None):
                raise SeriesError(path, line, "mixes times with and without a UTC offset")
            if times and moment < times[-1]:
                raise SeriesError(
                    path,
                    line,
                    f"time {moment.isoformat()} is before {times[-1].isoformat()}"
                    " on the line above: times out of order",
                )
            if cols.holiday is not None and row[cols.holiday].strip() not in ("", "None"):
                holidays.add(moment.date())
            times.append(moment)
            values.append(value)
    if not times:
        raise SeriesError(path, 2, "no usable rows after the header")
    series = from_observations(times, values)
    return Series(
        series.start, series.step, series.values, frozenset(holidays), cols.holiday is not None
    )

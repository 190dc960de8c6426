"""The ``ioc forecast predict`` contract and its refusals of bad files."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, run_ioc

from forecast import Calendar, Forecaster, SeriesError, read_csv

SLICE = DATA / "forecast" / "i94_2017-12_2018-04.csv"
I94_HEADER = (
    "holiday,temp,rain_1h,snow_1h,clouds_all,weather_main,weather_description,"
    "date_time,traffic_volume"
)


def _i94_file(path: Path, rows: list[tuple[str, int]], holiday_on: str = "") -> Path:
    lines = [I94_HEADER]
    for moment, value in rows:
        name = "New Years Day" if moment.startswith(holiday_on) and holiday_on else "None"
        lines.append(f"{name},270.1,0.0,0.0,90,Clouds,overcast clouds,{moment},{value}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _slice_rows(days: int) -> list[tuple[str, int]]:
    text = SLICE.read_text().splitlines()[1 : 1 + days * 24]
    return [(t, int(v)) for t, v in (line.split(",") for line in text)]


def test_predict_prints_exactly_h_lines_after_the_last_hour(tmp_path: Path) -> None:
    rows = _slice_rows(60)
    csv = _i94_file(tmp_path / "i94.csv", rows)
    done = run_ioc("forecast", "predict", "--csv", str(csv), "--horizon", "30", timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 30
    last = datetime.fromisoformat(rows[-1][0])
    for i, line in enumerate(lines):
        item = json.loads(line)
        assert set(item) == {"kind", "time", "value", "low", "high"}
        assert item["kind"] == "forecast"
        assert datetime.fromisoformat(item["time"]) == last + timedelta(hours=i + 1)
        assert 0 <= item["low"] <= item["value"] <= item["high"]
    # A weekday's 8 a.m. rush is forecast well above its 3 a.m.
    by_hour = {datetime.fromisoformat(json.loads(x)["time"]).hour: json.loads(x) for x in lines}
    assert by_hour[8]["value"] > 3 * by_hour[3]["value"]


def test_plain_time_value_file_with_the_same_series_gives_the_same_forecast(
    tmp_path: Path,
) -> None:
    rows = _slice_rows(60)
    plain = tmp_path / "plain.csv"
    plain.write_text("time,value\n" + "".join(f"{t},{v}\n" for t, v in rows))
    i94 = _i94_file(tmp_path / "i94.csv", rows)
    forecaster = Forecaster(Calendar("US"))
    a = forecaster.forecast(read_csv(plain), 24)
    b = forecaster.forecast(read_csv(i94), 24)
    np.testing.assert_allclose(a.value, b.value)


def test_repeated_hours_count_once_and_gaps_stay_gaps(tmp_path: Path) -> None:
    csv = tmp_path / "repeats.csv"
    csv.write_text(
        "time,value\n2018-01-01 00:00:00,10\n2018-01-01 00:00:00,10\n"
        "2018-01-01 01:00:00,20\n2018-01-01 04:00:00,40\n"
    )
    series = read_csv(csv)
    assert len(series) == 5
    assert series.observed == 3
    np.testing.assert_array_equal(np.isnan(series.values), [False, False, True, True, False])


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("time,value,speed\n2018-01-01 00:00:00,1,2\n", 1, "unknown: ['speed']"),
        ("when,count\n2018-01-01 00:00:00,1\n", 1, "neither"),
        ("time,value\n", 2, "no usable rows"),
        ("", 1, "empty file"),
        ("time,value\n2018-01-01 01:00:00,5\n2018-01-01 00:00:00,4\n", 3, "out of order"),
        ("time,value\n2018-01-01 00:00:00,5\n2018-01-01 01:00:00,-3\n", 3, "negative count"),
        ("time,value\n2018-01-01 00:00:00,five\n", 2, "bad value"),
        ("time,value\nyesterday,5\n", 2, "bad time"),
        ("time,value\n2018-01-01 00:30:00,5\n", 2, "not on the hour"),
        ("time,value\n2018-01-01 00:00:00,nan\n", 2, "not a finite number"),
    ],
)
def test_bad_files_are_refused_naming_the_line(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text(text)
    with pytest.raises(SeriesError) as caught:
        read_csv(csv)
    assert caught.value.line == line
    assert words in str(caught.value)
    assert f"bad.csv:{line}:" in str(caught.value)


def test_cli_refuses_a_negative_count_on_stderr_and_prints_nothing(tmp_path: Path) -> None:
    csv = tmp_path / "neg.csv"
    csv.write_text("time,value\n2018-01-01 00:00:00,5\n2018-01-01 01:00:00,-1\n")
    done = run_ioc("forecast", "predict", "--csv", str(csv), "--horizon", "3", timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "neg.csv:3: negative count" in done.stderr


def test_a_short_series_falls_back_to_the_baseline_and_says_so(tmp_path: Path) -> None:
    rows = _slice_rows(5)
    csv = tmp_path / "short.csv"
    csv.write_text("time,value\n" + "".join(f"{t},{v}\n" for t, v in rows))
    done = run_ioc(
        "forecast",
        "predict",
        "--csv",
        str(csv),
        "--horizon",
        "6",
        "--holidays",
        "US",
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 6
    assert "baseline forecast" in done.stderr
    series = read_csv(csv)
    fc = Forecaster(Calendar("US")).forecast(series, 6)
    assert fc.fallback is not None
    assert fc.skill is None


def test_unknown_holiday_country_is_refused(tmp_path: Path) -> None:
    csv = tmp_path / "ok.csv"
    csv.write_text("time,value\n2018-01-01 00:00:00,5\n")
    done = run_ioc(
        "forecast",
        "predict",
        "--csv",
        str(csv),
        "--horizon",
        "1",
        "--holidays",
        "XX",
        timeout=60,
    )
    assert done.returncode == 2
    assert "unknown holiday country code 'XX'" in done.stderr

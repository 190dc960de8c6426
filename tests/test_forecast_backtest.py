"""The models on a held-out slice of the real I-94 file (never used to tune them): 24-hour
forecasts made at every midnight of March and April 2018."""

from __future__ import annotations

from datetime import datetime

from conftest import DATA

from forecast import Calendar, read_csv
from forecast._backtest import held_out

SLICE = DATA / "forecast" / "i94_2017-12_2018-04.csv"


def test_held_out_day_ahead_beats_both_baselines_with_calibrated_intervals() -> None:
    series = read_csv(SLICE)
    result = held_out(
        series,
        datetime(2018, 3, 1),
        datetime(2018, 4, 29),
        horizon=24,
        every=24,
        calendar=Calendar("US"),
    )
    assert result.origins >= 55
    assert result.skill_vs_naive >= 0.25, result
    assert result.mae < result.median_mae, result  # beats the 8-week hour-of-week median
    assert 0.75 <= result.coverage_80 <= 0.85, result
    assert result.coverage_95 >= 0.88, result

"""Held-out evaluation: forecasts from rolling origins over a period the models never saw,
against both robust baselines (weekly seasonal naive, hour-of-week median of 8 weeks)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from ._calendar import Calendar
from ._model import Forecaster
from ._series import FloatArray, Series

WEEK = 168


@dataclass(frozen=True)
class HeldOut:
    """Errors of forecasts of ``horizon`` hours made at ``origins`` origins."""

    horizon: int
    origins: int
    points: int
    mae: float
    naive_mae: float
    median_mae: float
    coverage_80: float
    coverage_95: float
    models: dict[str, int]

    @property
    def skill_vs_naive(self) -> float:
        return 1.0 - self.mae / self.naive_mae

    @property
    def skill_vs_median(self) -> float:
        return 1.0 - self.mae / self.median_mae

    @property
    def median_skill_vs_naive(self) -> float:
        return 1.0 - self.median_mae / self.naive_mae

    def as_json(self) -> dict[str, object]:
        return {
            "horizon_hours": self.horizon,
            "origins": self.origins,
            "points": self.points,
            "mae": round(self.mae, 1),
            "naive_mae": round(self.naive_mae, 1),
            "median8_mae": round(self.median_mae, 1),
            "skill_vs_naive": round(self.skill_vs_naive, 3),
            "skill_vs_median8": round(self.skill_vs_median, 3),
            "median8_skill_vs_naive": round(self.median_skill_vs_naive, 3),
            "coverage_80": round(self.coverage_80, 3),
            "coverage_95": round(self.coverage_95, 3),
            "models": self.models,
        }


def _plain_median(values: FloatArray, origin: int, steps: int) -> FloatArray:
    """The baseline as planners know it: same hour of the week, last 8 weeks, no holidays."""
    window = values[origin - 8 * WEEK : origin].reshape(8, WEEK)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        medians = np.nanmedian(window, axis=0)
    return medians[np.arange(steps) % WEEK]


def held_out(
    series: Series,
    first: datetime,
    last: datetime,
    horizon: int,
    *,
    every: int = 24,
    calendar: Calendar | None = None,
    candidates: tuple[str, ...] | None = None,
) -> HeldOut:
    """Forecast ``horizon`` hours at every ``every``-th hour from ``first`` (an origin's
    hour-of-day follows ``first``) until ``last``, each from the history before it only."""
    forecaster = Forecaster(calendar or Calendar(None))
    if candidates:
        forecaster.models = candidates
    values = series.values
    begin = round((first - series.start) / series.step)
    end = round((last - series.start) / series.step)
    if begin < 8 * WEEK:
        raise ValueError("held-out period starts before 8 weeks of history")
    errs: list[FloatArray] = []
    naive: list[FloatArray] = []
    median: list[FloatArray] = []
    in80: list[npt.NDArray[np.bool_]] = []
    in95: list[npt.NDArray[np.bool_]] = []
    models: dict[str, int] = {}
    origins = 0
    for origin in range(begin, min(end, len(values) - horizon) + 1, every):
        truth = values[origin : origin + horizon]
        if np.isnan(truth).all():
            continue
        fc = forecaster.forecast(series.head(origin), horizon)
        models[fc.model] = models.get(fc.model, 0) + 1
        origins += 1
        base = values[origin - WEEK : origin - WEEK + horizon]
        keep = ~np.isnan(truth) & ~np.isnan(base)
        errs.append(np.abs(fc.value - truth)[keep])
        naive.append(np.abs(base - truth)[keep])
        median.append(np.abs(_plain_median(values, origin, horizon) - truth)[keep])
        in80.append(((truth >= fc.low80) & (truth <= fc.high80))[keep])
        in95.append(((truth >= fc.low95) & (truth <= fc.high95))[keep])
    if not origins:
        raise ValueError("no observed hours in the held-out period")
    return HeldOut(
        horizon=horizon,
        origins=origins,
        points=int(sum(len(e) for e in errs)),
        mae=float(np.concatenate(errs).mean()),
        naive_mae=float(np.concatenate(naive).mean()),
        median_mae=float(np.concatenate(median).mean()),
        coverage_80=float(np.concatenate(in80).mean()),
        coverage_95=float(np.concatenate(in95).mean()),
        models=models,
    )

"""What ``ioc forecast predict`` and ``ioc bench forecast`` do (the CLI only wires them)."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np

from ._calendar import Calendar
from ._model import Forecast, Forecaster
from ._series import Series, read_csv

logger = logging.getLogger(__name__)

_I94 = "shared/data/traffic/i94_westbound_hourly_2012-10_2018-06.csv"


def i94_file() -> Path:
    """The shared real file beside the project (``../shared``; a worktree sits one deeper)."""
    root = Path(__file__).resolve().parent.parent
    for base in (root.parent, root.parent.parent):
        if (base / _I94).is_file():
            return base / _I94
    raise FileNotFoundError(f"{_I94} is neither beside nor above {root}")


def forecast_lines(forecast: Forecast) -> Iterator[str]:
    """The contract's JSON lines: ``{"kind": "forecast", "time", "value", "low", "high"}``."""
    for i, moment in enumerate(forecast.times()):
        yield json.dumps(
            {
                "kind": "forecast",
                "time": moment.isoformat(),
                "value": round(float(forecast.value[i]), 2),
                "low": round(float(forecast.low80[i]), 2),
                "high": round(float(forecast.high80[i]), 2),
            }
        )


DEFAULT_COUNTRY = "VN"


def predict(path: Path, horizon: int, holidays: str | None) -> Forecast:
    """One hourly series from a CSV, forecast ``horizon`` hours after its last hour.

    Holidays: ``holidays`` (an ISO country) if given; else the file's own ``holiday``
    column if it has one (the I-94 format: its data knows its country); else Vietnam's."""
    series = read_csv(path)
    country = holidays or (None if series.marks_holidays else DEFAULT_COUNTRY)
    logger.info("holidays: %s", country or "the file's holiday column")
    forecaster = Forecaster(Calendar(country))
    forecast = forecaster.forecast(series, horizon)
    if forecast.fallback is None and forecast.skill is not None:
        logger.info(
            "model %s; backtest MAE %.1f, skill vs seasonal naive %.3f, 80%% coverage %.2f",
            forecast.model,
            forecast.skill.mae,
            forecast.skill.skill_vs_naive or 0.0,
            forecast.skill.coverage_80,
        )
    return forecast


def bench(series_count: int, days: int, source: Path, horizon: int = 24) -> dict[str, object]:
    """Fit and forecast ``series_count`` hourly series of ``days`` days, cut from the real
    I-94 file at midnights of its last two years and scaled, and score them on the day after.
    """
    full = read_csv(source)
    span = days * 24
    last = len(full) - horizon
    first = max(span, last - 2 * 365 * 24)
    rng = np.random.default_rng(14)
    midnights = [i for i in range(first, last) if full.time_at(i).hour == 0]
    ends = rng.choice(midnights, size=series_count, replace=len(midnights) < series_count)
    scales = rng.uniform(0.2, 3.0, size=series_count)
    cuts: list[tuple[Series, np.ndarray, np.ndarray]] = []
    for end, scale in zip(ends, scales, strict=True):
        part = full.head(int(end)).tail(span)
        part = Series(part.start, part.step, part.values * scale, full.marked_holidays)
        truth = full.values[int(end) : int(end) + horizon] * scale
        naive = full.values[int(end) - 168 : int(end) - 168 + horizon] * scale
        cuts.append((part, truth, naive))
    forecaster = Forecaster(Calendar(None))
    load_before = os.getloadavg()[0]
    started, cpu = time.perf_counter(), time.process_time()
    forecasts = [forecaster.forecast(part, horizon) for part, _, _ in cuts]
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    err, base, inside = [], [], []
    for fc, (_, truth, naive) in zip(forecasts, cuts, strict=True):
        keep = ~np.isnan(truth) & ~np.isnan(naive)
        err.append(np.abs(fc.value - truth)[keep])
        base.append(np.abs(naive - truth)[keep])
        inside.append(((truth >= fc.low80) & (truth <= fc.high80))[keep])
    return {
        "series": series_count,
        "days": days,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),  # this process's CPU: what a busy machine hides
        "mae_skill_vs_naive": round(
            1 - float(np.concatenate(err).mean() / np.concatenate(base).mean()), 3
        ),
        "coverage_80": round(float(np.concatenate(inside).mean()), 3),
        "load_1min": round(load_before, 2),
        "cpus": os.cpu_count(),
        "at": datetime.now().isoformat(timespec="seconds"),
    }

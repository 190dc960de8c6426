"""Forecasts with intervals, the model chosen per series by a rolling-origin backtest.

Candidates:
- ``seasonal_naive``: the value one season (a week) earlier;
- ``profile``: the median of the same hour of the week over the last 8 weeks, public
  holidays taking Sunday's slot (robust to gaps and outliers);
- ``profile_ar``: the profile scaled by the recent level: statsforecast's ARIMA fits an
  AR(1) to the daily log ratios observed/profile and an AR(2) to the hourly remainder,
  so a cold week or a busy festival day carries into tomorrow and fades as it should.

Each is scored at the same origins (one per block, in the phase of the final origin); the
one with the lowest MAE is chosen. Intervals come from its backtest errors on log scale per
horizon bucket (split-conformal), so their width is what the series has shown, not what a
textbook distribution promises. Gaps stay NaN: they are never scored, the profile is the
median of what was observed, and an unobserved hour enters the AR remainder as 0 (the
profile's own expectation), never as a made-up count.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from statsforecast.models import ARIMA

from ._calendar import Calendar, IntArray
from ._series import HOUR, FloatArray, Series

logger = logging.getLogger(__name__)

MODELS = ("seasonal_naive", "profile", "profile_ar")
#: Chosen among by backtest. The seasonal naive is the reference every skill is measured
#: against; as a candidate it lost 3.5 points of skill on the validation half-year
#: (2017-07..12): over 28 origins it wins by luck more often than by merit.
CANDIDATES = ("profile", "profile_ar")


@dataclass(frozen=True)
class ModelConfig:
    """Shapes of one kind of forecast (hourly or daily)."""

    season: int = 168  # slots in a season (a week of hours)
    block: int = 24  # steps in one level block (a day of hours)
    profile_seasons: int = 8  # weeks in the hour-of-week median
    level_blocks: int = 28  # days of history for the level and remainder models
    backtest_origins: int = 28  # rolling origins scored per series
    bucket_edges: tuple[int, ...] = (3, 12, 24)  # horizon buckets for the intervals


HOURLY = ModelConfig()
DAILY = ModelConfig(
    season=7, block=1, profile_seasons=8, level_blocks=28, backtest_origins=28, bucket_edges=(2, 7)
)


@dataclass(frozen=True)
class Skill:
    """A forecast's recent backtest error, to be shown next to it."""

    mae: float
    mape: float | None  # percent, over truths > 0
    coverage_80: float
    coverage_95: float
    naive_mae: float
    points: int  # scored (origin, step) pairs

    @property
    def skill_vs_naive(self) -> float | None:
        return None if self.naive_mae <= 0 else 1.0 - self.mae / self.naive_mae


@dataclass(frozen=True)
class Forecast:
    """Forecast values after the series' last slot, with 80% and 95% intervals."""

    start: datetime  # time of the first forecast slot
    step_hours: float
    value: FloatArray
    low80: FloatArray
    high80: FloatArray
    low95: FloatArray
    high95: FloatArray
    model: str
    skill: Skill | None = None
    #: Why the baseline was used without a backtest, or None.
    fallback: str | None = None
    scores: dict[str, float] = field(default_factory=dict)  # backtest MAE per candidate

    def times(self) -> list[datetime]:
        step = HOUR * self.step_hours
        return [self.start + i * step for i in range(len(self.value))]


def _profile(
    values: FloatArray, eff: IntArray, cal: IntArray, origin: int, cfg: ModelConfig
) -> FloatArray:
    """Median per slot over the ``profile_seasons`` seasons before ``origin``; holidays
    (effective slot != calendar slot) are kept out. Indexed by slot."""
    span = cfg.profile_seasons * cfg.season
    lo = origin - span
    start = max(lo, 0)
    window = np.full(span, np.nan)
    seen = values[start:origin].copy()
    seen[eff[start:origin] != cal[start:origin]] = np.nan
    window[start - lo :] = seen
    medians = _column_medians(window.reshape(cfg.profile_seasons, cfg.season))
    # Calendar slots advance by one per step, so column j is slot (cal[0] + lo + j).
    by_slot = np.empty(cfg.season)
    by_slot[(int(cal[0]) + lo + np.arange(cfg.season)) % cfg.season] = medians
    return _fill(by_slot, cfg)


def _column_medians(table: FloatArray) -> FloatArray:
    """``np.nanmedian(table, axis=0)`` without its slow masked path (NaN sorts last)."""
    ordered = np.sort(table, axis=0)
    count = np.count_nonzero(~np.isnan(table), axis=0)
    cols = np.arange(table.shape[1])
    low = ordered[np.maximum(count - 1, 0) // 2, cols]
    high = ordered[np.maximum(count, 1) // 2 - (count == 0), cols]
    return np.where(count > 0, (low + high) / 2.0, np.nan)


def _fill(by_slot: FloatArray, cfg: ModelConfig) -> FloatArray:
    """Slots never observed: same hour of other days, then the overall median, then 0."""
    missing = np.isnan(by_slot)
    if not missing.any():
        return by_slot
    if cfg.block > 1 and cfg.season % cfg.block == 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            per_hour = np.nanmedian(by_slot.reshape(-1, cfg.block), axis=0)
        by_slot = np.where(missing, np.tile(per_hour, cfg.season // cfg.block), by_slot)
    if np.isnan(by_slot).all():
        return np.zeros_like(by_slot)
    return np.where(np.isnan(by_slot), np.nanmedian(by_slot), by_slot)


def _ar_coefficients(series: FloatArray, order: int) -> FloatArray:
    """AR coefficients fitted by statsforecast (no mean: the profile is the mean)."""
    clean = series[~np.isnan(series)]
    if len(clean) < max(8, 4 * order):
        return np.zeros(order)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence notes on flat remainders
            fitted = ARIMA(order=(order, 0, 0), include_mean=False, method="CSS").fit(clean)
        coef = fitted.model_["coef"]
        phi = np.array([float(coef.get(f"ar{i + 1}", 0.0)) for i in range(order)])
    except (ValueError, np.linalg.LinAlgError, ArithmeticError) as exc:
        logger.debug("AR(%d) fit failed, level held at the profile: %s", order, exc)
        return np.zeros(order)
    if not np.isfinite(phi).all() or np.abs(phi).sum() >= 1.0:  # keep it mean-reverting
        return np.zeros(order)
    return phi


def _ar_path(history: FloatArray, phi: FloatArray, steps: int) -> FloatArray:
    """The AR recursion's forecast ``steps`` ahead from the last values of ``history``."""
    order = len(phi)
    state = list(history[-order:]) if len(history) >= order else [0.0] * order
    out = np.empty(steps)
    for i in range(steps):
        nxt = float(np.dot(phi, state[::-1][:order]))
        out[i] = nxt
        state.append(nxt)
        state = state[-order:]
    return out


@dataclass(frozen=True)
class _Context:
    values: FloatArray
    cal: IntArray
    eff: IntArray
    log_values: FloatArray
    cfg: ModelConfig


def _level_history(
    ctx: _Context, origin: int, profile: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """(block log ratios observed/profile, hourly remainder) over ``level_blocks`` blocks
    before ``origin``; blocks observed less than half the time are NaN."""
    cfg = ctx.cfg
    span = cfg.level_blocks * cfg.block
    lo = max(origin - span, 0)
    lo = origin - ((origin - lo) // cfg.block) * cfg.block
    y = ctx.values[lo:origin]
    p = profile[ctx.eff[lo:origin]]
    seen = ~np.isnan(y)
    ys = np.where(seen, y, 0.0).reshape(-1, cfg.block)
    ps = np.where(seen, p, 0.0).reshape(-1, cfg.block)
    enough = seen.reshape(-1, cfg.block).sum(axis=1) * 2 >= cfg.block
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log((ys.sum(axis=1) + 1.0) / (ps.sum(axis=1) + 1.0))
    blocks = np.where(enough, ratio, np.nan)
    remainder = ctx.log_values[lo:origin] - np.log1p(p) - np.repeat(blocks, cfg.block)
    return blocks, np.where(np.isnan(remainder), 0.0, remainder)


def _candidates(
    ctx: _Context, origin: int, steps: int, phi_level: FloatArray, phi_rest: FloatArray
) -> dict[str, FloatArray]:
    cfg = ctx.cfg
    profile = _profile(ctx.values, ctx.eff, ctx.cal, origin, cfg)
    ahead = profile[ctx.eff[origin : origin + steps]]
    naive_idx = origin - cfg.season + (np.arange(steps) % cfg.season)
    naive = np.where(naive_idx >= 0, ctx.values[np.clip(naive_idx, 0, None)], np.nan)
    blocks, remainder = _level_history(ctx, origin, profile)
    levels = blocks[~np.isnan(blocks)]
    n_blocks = math.ceil(steps / cfg.block)
    level = _ar_path(levels, phi_level, n_blocks) if len(levels) else np.zeros(n_blocks)
    z = np.repeat(level, cfg.block)[:steps]
    if cfg.block > 1 and len(remainder):
        z = z + _ar_path(remainder, phi_rest, steps)
    hybrid = np.clip(np.expm1(np.log1p(ahead) + z), 0.0, None)
    return {"seasonal_naive": naive, "profile": ahead, "profile_ar": hybrid}


def _bucket_of(steps: int, edges: tuple[int, ...]) -> IntArray:
    return np.searchsorted(np.array(edges), np.arange(steps), side="right").astype(np.int64)


def _quantiles(errors: FloatArray, buckets: IntArray, n_buckets: int) -> FloatArray:
    """Per bucket: log-error quantiles 2.5, 10, 90, 97.5. A bucket with too few errors
    borrows the nearest shorter bucket's (the first filled one for those before it)."""
    out = np.zeros((n_buckets, 4))
    filled = np.zeros(n_buckets, dtype=bool)
    for b in range(n_buckets):
        sample = errors[:, buckets == b].ravel()
        sample = sample[~np.isnan(sample)]
        if len(sample) >= 20:
            out[b] = np.quantile(sample, [0.025, 0.10, 0.90, 0.975])
            filled[b] = True
        elif b and filled[b - 1]:
            out[b], filled[b] = out[b - 1], True
    if filled.any():
        first = int(np.argmax(filled))
        out[:first] = out[first]
    return out


class Forecaster:
    """Fits and forecasts one series; the same code serves the CLI, the bench and the
    live service."""

    def __init__(
        self,
        calendar: Calendar,
        config: ModelConfig = HOURLY,
        models: tuple[str, ...] = CANDIDATES,
    ) -> None:
        self.calendar = calendar
        self.config = config
        self.models = models

    def minimum_history(self) -> int:
        """Slots a series needs for the backtest; shorter ones get the baseline."""
        cfg = self.config
        return 2 * cfg.season + cfg.backtest_origins * cfg.block // 2

    def forecast(self, series: Series, steps: int) -> Forecast:
        if steps < 1:
            raise ValueError(f"horizon must be at least 1, got {steps}")
        cfg = self.config
        keep = cfg.profile_seasons * cfg.season + (cfg.backtest_origins + 2) * cfg.block + steps
        series = series.tail(keep)
        n = len(series)
        cal, eff = self._slots(series, n + steps)
        values = np.concatenate([series.values, np.full(steps, np.nan)])
        ctx = _Context(values, cal, eff, np.log1p(values), cfg)
        start = series.time_at(n)
        step_hours = series.step / HOUR
        if series.observed < self.minimum_history():
            reason = (
                f"series has {series.observed} observed slots, fewer than the"
                f" {self.minimum_history()} a backtest needs: baseline forecast"
                " (median of the same slot of the week), intervals from its spread"
            )
            return self._fallback(ctx, n, steps, start=start, step_hours=step_hours, reason=reason)
        profile_now = _profile(values, eff, cal, n, cfg)
        blocks, remainder = _level_history(ctx, n, profile_now)
        phi_level = _ar_coefficients(blocks, 1)
        phi_rest = _ar_coefficients(remainder, 2) if cfg.block > 1 else np.zeros(2)
        errors, scores, skills = self._backtest(ctx, n, steps, phi_level, phi_rest)
        chosen = {m: scores[m] for m in self.models if m in scores}
        model = min(chosen, key=lambda m: chosen[m]) if chosen else "profile"
        point = _candidates(ctx, n, steps, phi_level, phi_rest)[model]
        if model == "seasonal_naive":  # a gap a week ago: fill from the profile
            point = np.where(np.isnan(point), profile_now[eff[n : n + steps]], point)
        buckets = _bucket_of(steps, cfg.bucket_edges)
        q = _quantiles(errors[model], buckets, len(cfg.bucket_edges) + 1)[buckets]
        return self._banded(
            start,
            step_hours,
            point,
            q,
            model=model,
            skill=skills.get(model),
            fallback=None,
            scores=scores,
        )

    def _slots(self, series: Series, count: int) -> tuple[IntArray, IntArray]:
        if series.marked_holidays:
            calendar = Calendar(
                self.calendar.country, series.marked_holidays, str(self.calendar.timezone)
            )
        else:
            calendar = self.calendar
        return calendar.slots(series.start, series.step, count)

    def _backtest(
        self, ctx: _Context, n: int, steps: int, phi_level: FloatArray, phi_rest: FloatArray
    ) -> tuple[dict[str, FloatArray], dict[str, float], dict[str, Skill]]:
        cfg = self.config
        horizon = min(steps, 2 * cfg.block if cfg.block > 1 else 14)
        first_k = max(1, math.ceil(horizon / cfg.block))
        origins = [
            n - k * cfg.block
            for k in range(first_k, first_k + cfg.backtest_origins)
            if n - k * cfg.block >= cfg.season
        ]
        truth = np.array([ctx.values[o : o + horizon] for o in origins])
        preds: dict[str, list[FloatArray]] = {m: [] for m in MODELS}
        for o in origins:
            for name, path in _candidates(ctx, o, horizon, phi_level, phi_rest).items():
                preds[name].append(path)
        arrays = {m: np.array(p) for m, p in preds.items()}
        scored = ~np.isnan(truth)
        for a in arrays.values():
            scored &= ~np.isnan(a)
        errors: dict[str, FloatArray] = {}
        scores: dict[str, float] = {}
        skills: dict[str, Skill] = {}
        if not scored.any():
            return {m: np.full((1, steps), np.nan) for m in MODELS}, {}, {}
        naive_mae = float(np.abs(arrays["seasonal_naive"] - truth)[scored].mean())
        buckets = _bucket_of(horizon, cfg.bucket_edges)
        for name, pred in arrays.items():
            err = np.where(scored, np.log1p(truth) - np.log1p(pred), np.nan)
            full = np.full((len(origins), steps), np.nan)
            full[:, :horizon] = err
            errors[name] = full
            scores[name] = float(np.abs(pred - truth)[scored].mean())
            q = _quantiles(err, buckets, len(cfg.bucket_edges) + 1)[buckets]
            skills[name] = _skill(truth, pred, q, scored, naive_mae)
        return errors, scores, skills

    def _fallback(
        self, ctx: _Context, n: int, steps: int, *, start: datetime, step_hours: float, reason: str
    ) -> Forecast:
        logger.warning("%s", reason)
        cfg = self.config
        profile = _profile(ctx.values, ctx.eff, ctx.cal, n, cfg)
        point = profile[ctx.eff[n : n + steps]]
        fitted = profile[ctx.eff[:n]]
        resid = ctx.log_values[:n] - np.log1p(fitted)
        resid = resid[~np.isnan(resid)]
        q = np.quantile(resid, [0.025, 0.10, 0.90, 0.975]) if len(resid) else np.zeros(4)
        band = np.tile(q, (steps, 1))
        return self._banded(
            start, step_hours, point, band, model="profile", skill=None, fallback=reason, scores={}
        )

    @staticmethod
    def _banded(
        start: datetime,
        step_hours: float,
        point: FloatArray,
        q: FloatArray,
        *,
        model: str,
        skill: Skill | None,
        fallback: str | None,
        scores: dict[str, float],
    ) -> Forecast:
        base = np.log1p(point)

        def bound(column: int) -> FloatArray:
            return np.clip(np.expm1(base + q[:, column]), 0.0, None)

        return Forecast(
            start=start,
            step_hours=step_hours,
            value=point,
            low95=np.minimum(bound(0), point),
            low80=np.minimum(bound(1), point),
            high80=np.maximum(bound(2), point),
            high95=np.maximum(bound(3), point),
            model=model,
            skill=skill,
            fallback=fallback,
            scores=scores,
        )


def _skill(
    truth: FloatArray, pred: FloatArray, q: FloatArray, scored: np.ndarray, naive_mae: float
) -> Skill:
    base = np.log1p(pred)
    inside = {}
    for name, lo, hi in (("80", 1, 2), ("95", 0, 3)):
        low = np.expm1(base + q[:, lo])
        high = np.expm1(base + q[:, hi])
        inside[name] = float(((truth >= low) & (truth <= high))[scored].mean())
    positive = scored & (truth > 0)
    mape = (
        float((np.abs(pred - truth)[positive] / truth[positive]).mean() * 100)
        if positive.any()
        else None
    )
    return Skill(
        mae=float(np.abs(pred - truth)[scored].mean()),
        mape=mape,
        coverage_80=inside["80"],
        coverage_95=inside["95"],
        naive_mae=naive_mae,
        points=int(scored.sum()),
    )

"""Forecasts and their backtest errors (versions 400-419, owned by ``forecast/``)."""

from __future__ import annotations

from .._migrations import Flavor, Migration


def _v400_forecasts(flavor: Flavor) -> str:
    # One row per series, resolution and target time: a refresh replaces the previous
    # issue's values for the times it covers, so a reader always gets the newest band.
    return """
    CREATE TABLE forecasts (
        series_kind text NOT NULL CHECK (series_kind IN ('line', 'road', 'district', 'site')),
        series_id text NOT NULL,
        resolution text NOT NULL CHECK (resolution IN ('hour', 'day')),
        target_time timestamptz NOT NULL,
        issued_at timestamptz NOT NULL,
        value double precision NOT NULL CHECK (value >= 0),
        low80 double precision NOT NULL,
        high80 double precision NOT NULL,
        low95 double precision NOT NULL,
        high95 double precision NOT NULL,
        PRIMARY KEY (series_kind, series_id, resolution, target_time),
        CHECK (low95 <= low80 AND low80 <= value AND value <= high80 AND high80 <= high95)
    );
    CREATE INDEX forecasts_target ON forecasts (resolution, target_time);
    -- The latest rolling-origin backtest of each series: shown next to its forecast.
    CREATE TABLE forecast_skill (
        series_kind text NOT NULL,
        series_id text NOT NULL,
        resolution text NOT NULL CHECK (resolution IN ('hour', 'day')),
        issued_at timestamptz NOT NULL,
        model text NOT NULL,
        fallback text,
        mae double precision,
        mape double precision,
        coverage_80 double precision,
        coverage_95 double precision,
        naive_mae double precision,
        skill_vs_naive double precision,
        points integer NOT NULL DEFAULT 0,
        PRIMARY KEY (series_kind, series_id, resolution)
    );
    """


MIGRATIONS = [Migration(400, "forecasts and their backtest errors", _v400_forecasts)]

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


def _v401_anomalies(flavor: Flavor) -> str:
    # The alert names the anomaly; this keeps what made it one: expected, band, observed.
    return """
    CREATE TABLE forecast_anomalies (
        event_id text NOT NULL,
        phase text NOT NULL CHECK (phase IN ('start', 'update', 'end')),
        at timestamptz NOT NULL,
        series_kind text NOT NULL,
        series_id text NOT NULL,
        expected double precision NOT NULL,
        low95 double precision NOT NULL,
        high95 double precision NOT NULL,
        observed double precision NOT NULL,
        PRIMARY KEY (event_id, at)
    );
    CREATE INDEX forecast_anomalies_at ON forecast_anomalies (at);
    """


MIGRATIONS = [
    Migration(400, "forecasts and their backtest errors", _v400_forecasts),
    Migration(401, "anomalies: expected and observed", _v401_anomalies),
]

"""Forecasts of counts per line, road, district and site, with intervals, their backtest
error, and anomaly events when reality leaves the band."""

from ._calendar import Calendar, UnknownCountry
from ._model import DAILY, HOURLY, Forecast, Forecaster, ModelConfig, Skill
from ._series import DAY, HOUR, Series, SeriesError, from_observations, read_csv

__all__ = [
    "DAILY",
    "DAY",
    "HOUR",
    "HOURLY",
    "Calendar",
    "Forecast",
    "Forecaster",
    "ModelConfig",
    "Series",
    "SeriesError",
    "Skill",
    "UnknownCountry",
    "from_observations",
    "read_csv",
]

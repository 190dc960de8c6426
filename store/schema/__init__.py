"""Every migration of the store, gathered from the areas that own them."""

from __future__ import annotations

from .._migrations import Migration
from . import alerting, citizens, console, core, evidence, forecasting, timeseries

ALL_MIGRATIONS: list[Migration] = [
    *core.MIGRATIONS,
    *timeseries.MIGRATIONS,
    *alerting.MIGRATIONS,
    *console.MIGRATIONS,
    *forecasting.MIGRATIONS,
    *evidence.MIGRATIONS,
    *citizens.MIGRATIONS,
]

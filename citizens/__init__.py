"""Citizen reports: Open311 GeoReport v2 (the citizen app and the 1022 hotline), the services
catalogue, report intake as a new source of alerts, and joining reports to incidents."""

from ._api import PUBLIC_PATHS, open311_router
from ._caller import KEY_VARIABLE as CALLER_KEY_VARIABLE
from ._catalogue import Catalogue, Service, load_catalogue, parse_catalogue
from ._demo import DemoCitizen
from ._intake import Accepted, NewReport, accept_report, escalate_overdue, join_new_alerts
from ._keys import ApiKey, KeyNameError, add_key, key_owner, list_keys, revoke_key
from ._stats import ReportDay, report_stats, stats_csv
from ._sweep import ReportSweep

__all__ = [
    "CALLER_KEY_VARIABLE",
    "PUBLIC_PATHS",
    "Accepted",
    "ApiKey",
    "Catalogue",
    "DemoCitizen",
    "KeyNameError",
    "NewReport",
    "ReportDay",
    "ReportSweep",
    "Service",
    "accept_report",
    "add_key",
    "escalate_overdue",
    "join_new_alerts",
    "key_owner",
    "list_keys",
    "load_catalogue",
    "open311_router",
    "parse_catalogue",
    "report_stats",
    "revoke_key",
    "stats_csv",
]

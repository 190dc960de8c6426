"""From vision events to alerts with a lifecycle, and the channels that carry them."""

from ._engine import AlertsEngine, AlertsStats
from ._feed import AlertFeed, Subscription
from ._model import AlertChange, AlertState, AlertView
from ._repository import changes_since, open_alerts

__all__ = [
    "AlertChange",
    "AlertFeed",
    "AlertState",
    "AlertView",
    "AlertsEngine",
    "AlertsStats",
    "Subscription",
    "changes_since",
    "open_alerts",
]

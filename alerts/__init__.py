"""From vision events to alerts with a lifecycle, and the channels that carry them."""

from ._engine import AlertsEngine, AlertsStats
from ._feed import AlertFeed, Subscription
from ._lifecycle import (
    Action,
    AlertNotFoundError,
    AuditEntry,
    TransitionError,
    audit_trail,
    get_alert,
    list_alerts,
    transition,
)
from ._model import AlertChange, AlertState, AlertView
from ._repository import changes_since, open_alerts

__all__ = [
    "Action",
    "AlertChange",
    "AlertFeed",
    "AlertNotFoundError",
    "AlertState",
    "AlertView",
    "AlertsEngine",
    "AlertsStats",
    "AuditEntry",
    "Subscription",
    "TransitionError",
    "audit_trail",
    "changes_since",
    "get_alert",
    "list_alerts",
    "open_alerts",
    "transition",
]

"""From vision events to alerts with a lifecycle, and the channels that carry them."""

from ._cap import CAP_NS, render_cap
from ._channels import Channel, ConsoleChannel, MqttChannel, Notice, PoliceChannel, notify
from ._delivery import DeliveryStats, DeliveryWorker, enable_endpoint
from ._engine import AlertsEngine, AlertsStats
from ._evidence import EvidenceCollector, get_evidence
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
from ._model import ALERT_COLUMNS, AlertChange, AlertState, AlertView, Observation, Reason
from ._mqtt_publisher import MqttPublisher
from ._repository import audit, changes_since, lock_change_log, open_alerts
from ._routing import RouteSpec, Routing, load_routing, publish_routing, routing_from
from ._rulebook import RuleBook
from ._rules import Endpoint, Rules, RulesError
from ._rules_file import check_secret, load_rules, parse_rules

__all__ = [
    "ALERT_COLUMNS",
    "CAP_NS",
    "Action",
    "AlertChange",
    "AlertFeed",
    "AlertNotFoundError",
    "AlertState",
    "AlertView",
    "AlertsEngine",
    "AlertsStats",
    "AuditEntry",
    "Channel",
    "ConsoleChannel",
    "DeliveryStats",
    "DeliveryWorker",
    "Endpoint",
    "EvidenceCollector",
    "MqttChannel",
    "MqttPublisher",
    "Notice",
    "Observation",
    "PoliceChannel",
    "Reason",
    "RouteSpec",
    "Routing",
    "RuleBook",
    "Rules",
    "RulesError",
    "Subscription",
    "TransitionError",
    "audit",
    "audit_trail",
    "changes_since",
    "check_secret",
    "enable_endpoint",
    "get_alert",
    "get_evidence",
    "list_alerts",
    "load_routing",
    "load_rules",
    "lock_change_log",
    "notify",
    "open_alerts",
    "parse_rules",
    "publish_routing",
    "render_cap",
    "routing_from",
    "transition",
]

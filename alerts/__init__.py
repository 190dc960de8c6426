"""From vision events to alerts with a lifecycle, and the channels that carry them."""

from ._cap import CAP_NS, CapResource, render_cap
from ._channels import (
    Channel,
    ConsoleChannel,
    MqttChannel,
    Notice,
    PoliceChannel,
    notify,
    stage_clip_update,
)
from ._delivery import DeliveryStats, DeliveryWorker, enable_endpoint
from ._engine import AlertsEngine, AlertsStats
from ._evidence import EvidenceCollector, get_evidence
from ._feed import AlertFeed, Subscription
from ._grouping import DEFAULT_GROUPING, IncidentGrouping, JoinReason
from ._incidents import (
    Incident,
    IncidentAction,
    IncidentActionError,
    IncidentNotFoundError,
    act_on_incident,
    alerts_of,
    group,
    incident_alerts,
    summarise,
)
from ._lifecycle import (
    Action,
    AlertNotFoundError,
    AuditEntry,
    TransitionError,
    add_note,
    audit_of,
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
    "DEFAULT_GROUPING",
    "Action",
    "AlertChange",
    "AlertFeed",
    "AlertNotFoundError",
    "AlertState",
    "AlertView",
    "AlertsEngine",
    "AlertsStats",
    "AuditEntry",
    "CapResource",
    "Channel",
    "ConsoleChannel",
    "DeliveryStats",
    "DeliveryWorker",
    "Endpoint",
    "EvidenceCollector",
    "Incident",
    "IncidentAction",
    "IncidentActionError",
    "IncidentGrouping",
    "IncidentNotFoundError",
    "JoinReason",
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
    "act_on_incident",
    "add_note",
    "alerts_of",
    "audit",
    "audit_of",
    "audit_trail",
    "changes_since",
    "check_secret",
    "enable_endpoint",
    "get_alert",
    "get_evidence",
    "group",
    "incident_alerts",
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
    "stage_clip_update",
    "summarise",
    "transition",
]

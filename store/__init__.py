"""The store's access layer: connections, migrations and the writes and reads other parts use.

``store.history`` holds the planners' queries (traffic, congestion, Wi-Fi, visitors)."""

from ._bulk import WriteMode, load, write_mode
from ._dead_letters import DeadLetter, record_dead_letters
from ._health import write_camera_states, write_edge_states
from ._maintenance import MaintenanceReport, maintain
from ._migrations import Flavor, Migration, applied_flavor, applied_versions, detect_flavor, migrate
from ._pool import (
    DB_ERRORS,
    Connection,
    StoreConfig,
    close_connection,
    close_pool,
    connect,
    create_pool,
)
from ._registry import sync_registry
from ._retention import Retention
from ._rollups import LOCAL_TIMEZONE, ROLLUPS, Rollup, rollups_of
from ._telemetry import WriteResult, telemetry_source, visitor_key, write_telemetry
from ._traffic import traffic_source, write_traffic
from .schema import ALL_MIGRATIONS

__all__ = [
    "ALL_MIGRATIONS",
    "DB_ERRORS",
    "LOCAL_TIMEZONE",
    "ROLLUPS",
    "Connection",
    "DeadLetter",
    "Flavor",
    "MaintenanceReport",
    "Migration",
    "Retention",
    "Rollup",
    "StoreConfig",
    "WriteMode",
    "WriteResult",
    "applied_flavor",
    "applied_versions",
    "close_connection",
    "close_pool",
    "connect",
    "create_pool",
    "detect_flavor",
    "load",
    "maintain",
    "migrate",
    "record_dead_letters",
    "rollups_of",
    "sync_registry",
    "telemetry_source",
    "traffic_source",
    "visitor_key",
    "write_camera_states",
    "write_edge_states",
    "write_mode",
    "write_telemetry",
    "write_traffic",
]

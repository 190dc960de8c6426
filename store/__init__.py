"""The store's access layer: connections, migrations and the writes and reads other parts use."""

from ._dead_letters import DeadLetter, record_dead_letters
from ._migrations import Flavor, Migration, applied_versions, detect_flavor, migrate
from ._pool import Connection, StoreConfig, connect, create_pool
from ._registry import sync_registry
from ._telemetry import WriteResult, telemetry_source, write_telemetry
from .schema import ALL_MIGRATIONS

__all__ = [
    "ALL_MIGRATIONS",
    "Connection",
    "DeadLetter",
    "Flavor",
    "Migration",
    "StoreConfig",
    "WriteResult",
    "applied_versions",
    "connect",
    "create_pool",
    "detect_flavor",
    "migrate",
    "record_dead_letters",
    "sync_registry",
    "telemetry_source",
    "write_telemetry",
]

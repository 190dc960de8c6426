"""Retention and partition upkeep, run by ``ioc store maintain`` and periodically by ingest.

Plain PostgreSQL: create the coming partitions, drop the expired ones (that is the
retention), clear expired rows from DEFAULT partitions. TimescaleDB: its own background
jobs apply the retention, compression and refresh policies, so there is nothing to do here
but the batch ledger, which both paths trim the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ._migrations import Flavor, applied_flavor
from ._pool import Connection
from ._retention import Retention, apply_retention
from .schema.timeseries import INGEST_BATCH_RETENTION

logger = logging.getLogger(__name__)
_LOCK_KEY = 0x10C_3A17  # advisory lock: one maintainer at a time


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    flavor: Flavor
    partitions_created: int
    partitions_dropped: int
    expired_rows: int
    batch_ids_forgotten: int
    retained: dict[str, int] = field(default_factory=dict)
    """Rows deleted per table by :class:`Retention` (dead letters, change log ...)."""


async def maintain(
    conn: Connection, *, at: datetime | None = None, retention: Retention | None = None
) -> MaintenanceReport | None:
    """Bring partitions and retention up to date as of ``at`` (default: now); None when
    another process is doing it right now (every ingest process runs this periodically)."""
    async with conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK_KEY):
            return None
        return await _maintain(conn, at or datetime.now(UTC), retention or Retention())


async def _maintain(conn: Connection, when: datetime, retention: Retention) -> MaintenanceReport:
    flavor = await applied_flavor(conn)
    created = dropped = expired = 0
    if flavor is Flavor.PLAIN:
        for row in await conn.fetch("SELECT * FROM ioc_maintain_partitions($1)", when):
            created += row["created"]
            dropped += row["dropped"]
            expired += row["expired_default"]
    status = await conn.execute(
        "DELETE FROM ingest_batches WHERE received_at < $1::timestamptz - $2::text::interval",
        when,
        INGEST_BATCH_RETENTION,
    )
    forgotten = int(status.split()[-1])
    retained = await apply_retention(conn, when, retention)
    report = MaintenanceReport(flavor, created, dropped, expired, forgotten, retained)
    logger.info(
        "store maintenance (%s): %d partitions created, %d dropped, %d expired rows, "
        "%d batch ids forgotten; retention deleted %s",
        flavor,
        created,
        dropped,
        expired,
        forgotten,
        retained,
    )
    return report

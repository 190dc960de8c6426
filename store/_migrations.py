"""Versioned, idempotent schema migrations, on TimescaleDB or plain PostgreSQL.

The path is chosen by detecting the ``timescaledb`` extension on the server, never by a
flag. A migration renders its SQL for a :class:`Flavor`, so both paths' DDL stand side by
side in one function. Version ranges keep areas apart: 1-99 the core, 100-199 the
time-series store, 200-299 alerts, 300-399 the console.

Some TimescaleDB DDL (creating or refreshing a continuous aggregate with data, some policy
calls) refuses to run inside a transaction block. A migration may therefore name the flavors
in ``outside_transaction``: there each rendered statement runs on its own, in order, and must be
idempotent (``IF NOT EXISTS``, ``if_not_exists => true``), because a crash half-way leaves
the version unrecorded and the next run starts the list again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import asyncpg

from ._pool import Connection

logger = logging.getLogger(__name__)
_LOCK_KEY = 0x10C_5C4E  # advisory lock: one migrator at a time


class Flavor(StrEnum):
    TIMESCALE = "timescale"
    PLAIN = "plain"


Rendered = str | Sequence[str]


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    render: Callable[[Flavor], Rendered]
    outside_transaction: frozenset[Flavor] = frozenset()
    """On these flavors run each rendered statement on its own, outside a transaction."""

    def statements(self, flavor: Flavor) -> list[str]:
        rendered = self.render(flavor)
        parts = [rendered] if isinstance(rendered, str) else list(rendered)
        return [p for p in parts if p.strip()]


async def detect_flavor(conn: asyncpg.Connection) -> Flavor:
    """TimescaleDB when the server has the extension installed or available to install."""
    available = await conn.fetchval(
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"
    )
    return Flavor.TIMESCALE if available else Flavor.PLAIN


async def applied_flavor(conn: Connection) -> Flavor:
    """The path the schema was built on, as recorded by :func:`migrate` (writers and
    queries ask the database, not a setting, so they cannot disagree with the schema)."""
    value = await conn.fetchval("SELECT flavor FROM schema_migrations ORDER BY version LIMIT 1")
    if value is None:
        raise RuntimeError("the store is not migrated: run `ioc migrate`")
    return Flavor(value)


async def applied_versions(conn: asyncpg.Connection) -> set[int]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return set()
    return {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}


async def migrate(conn: asyncpg.Connection, migrations: list[Migration]) -> list[int]:
    """Apply the migrations not yet applied, each in its own transaction; return them."""
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise ValueError(f"migration versions are not unique: {sorted(versions)}")
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        flavor = await detect_flavor(conn)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version int PRIMARY KEY,
                   name text NOT NULL,
                   flavor text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = await applied_versions(conn)
        applied = []
        for migration in sorted(migrations, key=lambda m: m.version):
            if migration.version in done:
                continue
            await _apply(conn, migration, flavor)
            logger.info("applied migration %d %s (%s)", migration.version, migration.name, flavor)
            applied.append(migration.version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


async def _apply(conn: asyncpg.Connection, migration: Migration, flavor: Flavor) -> None:
    record = "INSERT INTO schema_migrations (version, name, flavor) VALUES ($1, $2, $3)"
    args = (migration.version, migration.name, flavor.value)
    if flavor not in migration.outside_transaction:
        async with conn.transaction():
            for statement in migration.statements(flavor):
                await conn.execute(statement)
            await conn.execute(record, *args)
        return
    for statement in migration.statements(flavor):
        await conn.execute(statement)
    await conn.execute(record, *args)

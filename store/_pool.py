"""Connections to the store, configured once for every part that talks to it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

Connection: TypeAlias = "asyncpg.Connection | PoolConnectionProxy[Any]"
"""A connection of its own or one borrowed from a pool; store functions take either."""


@dataclass(frozen=True, slots=True)
class StoreConfig:
    url: str = field(repr=False)
    statement_cache_size: int = 100
    """0 disables asyncpg's prepared-statement cache (PgBouncer transaction mode, PGlite)."""
    use_copy: bool = True
    """Bulk writes through COPY; off for engines that cannot take it (writes use unnest)."""
    min_size: int = 1
    max_size: int = 10


async def create_pool(config: StoreConfig) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        config.url,
        min_size=config.min_size,
        max_size=config.max_size,
        statement_cache_size=config.statement_cache_size,
        command_timeout=60,
        server_settings={"application_name": "ioc", "timezone": "UTC"},
    )
    return pool


async def connect(config: StoreConfig) -> asyncpg.Connection:
    connection: asyncpg.Connection = await asyncpg.connect(
        config.url,
        statement_cache_size=config.statement_cache_size,
        server_settings={"application_name": "ioc", "timezone": "UTC"},
    )
    return connection


async def close_pool(pool: asyncpg.Pool, grace: float = 10.0) -> None:
    """Close gracefully, or drop the connections when the server does not answer the
    goodbye in time (a server gone away; PGlite never answers it)."""
    try:
        await asyncio.wait_for(pool.close(), grace)
    except TimeoutError:
        pool.terminate()


async def close_connection(conn: asyncpg.Connection, grace: float = 5.0) -> None:
    try:
        await asyncio.wait_for(conn.close(), grace)
    except TimeoutError:
        conn.terminate()

"""Connections to the store, configured once for every part that talks to it."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

_SEARCH_PATH = re.compile(r"[a-z_][a-z0-9_]*(\s*,\s*[a-z_][a-z0-9_]*)*")
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
    close_grace: float = 10.0
    """Seconds a closing pool waits for the server's goodbye before dropping connections."""
    acquire_timeout: float = 10.0
    """Seconds to wait for a free pooled connection before ``TimeoutError`` (an
    ``OSError``, so in :data:`DB_ERRORS`): a stuck holder never blocks everyone else."""
    search_path: str | None = None
    """Schemas to search, set on every connection and again on every pool acquire (a
    pool's RESET ALL drops it; PGlite then falls back to ``pg_catalog`` alone). None: the
    server's default."""

    def __post_init__(self) -> None:
        if not self.acquire_timeout > 0:
            raise ValueError("acquire_timeout must be positive")
        if self.search_path is not None and not _SEARCH_PATH.fullmatch(self.search_path):
            raise ValueError(f"search_path {self.search_path!r} is not a list of schema names")

    def server_settings(self) -> dict[str, str]:
        settings = {"application_name": "ioc", "timezone": "UTC"}
        if self.search_path is not None:
            settings["search_path"] = self.search_path
        return settings


class BoundedPool(asyncpg.Pool):
    """asyncpg's pool whose every acquire (``pool.acquire()``, ``pool.fetch(...)`` ...)
    waits at most ``acquire_timeout`` seconds unless the caller gives its own timeout."""

    def __init__(self, *args: Any, acquire_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=self.acquire_timeout if timeout is None else timeout)


async def create_pool(config: StoreConfig) -> asyncpg.Pool:
    async def restore_search_path(conn: PoolConnectionProxy[Any]) -> None:
        await conn.execute(f"SET search_path = {config.search_path}")

    pool = BoundedPool(
        config.url,
        acquire_timeout=config.acquire_timeout,
        min_size=config.min_size,
        max_size=config.max_size,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        statement_cache_size=config.statement_cache_size,
        command_timeout=60,
        server_settings=config.server_settings(),
        setup=restore_search_path if config.search_path is not None else None,
    )
    await pool
    return pool


async def connect(config: StoreConfig) -> asyncpg.Connection:
    connection: asyncpg.Connection = await asyncpg.connect(
        config.url,
        statement_cache_size=config.statement_cache_size,
        server_settings=config.server_settings(),
    )
    if config.search_path is not None:
        # Startup settings are not honoured everywhere (PGlite shares one session between
        # its clients, with what the previous one left): say it once connected.
        await connection.execute(f"SET search_path = {config.search_path}")
    return connection


async def close_pool(pool: asyncpg.Pool, grace: float = 10.0) -> None:
    """Close gracefully, or drop the connections when the server does not answer the
    goodbye in time (a server gone away; PGlite never answers it)."""
    try:
        await asyncio.wait_for(pool.close(), grace)
    except TimeoutError:
        pool.terminate()


DB_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # A connection the server dropped in the middle of an operation (a restart) can answer
    # the next call with "cannot switch to state ...; another operation is in progress".
    asyncpg.InternalClientError,
)
"""What a lost, restarting or refusing database raises: retry or reconnect, never die."""


async def close_connection(conn: Connection, grace: float = 5.0) -> None:
    """Close ``conn``; one that cannot close cleanly (too slow, or already broken) is aborted."""
    try:
        await asyncio.wait_for(conn.close(), grace)
    except DB_ERRORS:  # TimeoutError is an OSError
        conn.terminate()

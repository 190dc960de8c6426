"""A PostgreSQL cluster that survives the loss of its primary: one etcd, two Patroni nodes
(a primary and a streaming replica) and HAProxy in front, all on free 127.0.0.1 ports under
one folder. The tests, ``ioc bench failover-db`` and ``ioc soak --db-failover`` use it.

Services reach the primary in either of the two ways production may choose:
:attr:`PatroniCluster.url` goes through HAProxy (which asks Patroni's REST API who is
primary), :attr:`PatroniCluster.multi_host_url` lists both nodes with
``target_session_attrs=read-write`` (asyncpg tries each and keeps the writable one).
:attr:`PatroniCluster.read_url` reaches the replica through HAProxy, for planners' reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import asyncpg

from .haproxy import Backend, HAProxy, Server
from .patroni import Credentials, EtcdServer, PatroniNode
from .servers import ServerError

logger = logging.getLogger(__name__)

DATABASE = "ioc"
_POLL = 0.1
"""Seconds between looks at another process's state (Patroni's REST API): a readiness
poll of servers we started, never a test's synchronisation."""


class PatroniCluster:
    """etcd + ``nodes`` Patroni nodes + HAProxy, as an async context manager.

    ``synchronous``: Patroni's ``synchronous_mode`` (the replica confirms each commit before
    the client hears of it). ``durable=False`` turns fsync off, for tests."""

    def __init__(
        self, root: Path, *, synchronous: bool = True, durable: bool = True, nodes: int = 2
    ) -> None:
        self.root = root.resolve()
        self.synchronous = synchronous
        self.credentials = Credentials(secrets.token_urlsafe(18), secrets.token_urlsafe(18))
        self.etcd = EtcdServer(self.root / "etcd")
        self.nodes = [
            PatroniNode(
                self.root / f"node{i}",
                f"node{i}",
                self.etcd,
                self.credentials,
                synchronous=synchronous,
                durable=durable,
            )
            for i in range(1, nodes + 1)
        ]
        servers = tuple(Server(n.name, "127.0.0.1", n.pg_port, n.rest_port) for n in self.nodes)
        self.haproxy = HAProxy(
            self.root / "haproxy",
            [
                Backend("postgres_primary", servers, "patroni-primary"),
                Backend("postgres_replicas", servers, "patroni-replica"),
            ],
        )

    # -- addresses --------------------------------------------------------------------
    def _url(self, hosts: str, database: str, query: str = "") -> str:
        password = self.credentials.superuser_password
        return f"postgresql://ioc:{password}@{hosts}/{database}{query}"

    @property
    def url(self) -> str:
        """The primary, through HAProxy."""
        return self.url_for(DATABASE)

    def url_for(self, database: str) -> str:
        return self._url(f"127.0.0.1:{self.haproxy.port('postgres_primary')}", database)

    @property
    def read_url(self) -> str:
        """A streaming replica, through HAProxy (IOC_DATABASE_READ_URL)."""
        return self._url(f"127.0.0.1:{self.haproxy.port('postgres_replicas')}", DATABASE)

    def multi_host_url_for(self, database: str) -> str:
        hosts = ",".join(f"127.0.0.1:{n.pg_port}" for n in self.nodes)
        return self._url(hosts, database, "?target_session_attrs=read-write")

    @property
    def multi_host_url(self) -> str:
        """Every node, the writable one chosen by asyncpg."""
        return self.multi_host_url_for(DATABASE)

    # -- roles ------------------------------------------------------------------------
    def primary(self) -> PatroniNode | None:
        for node in self.nodes:
            status = node.status()
            if status and status.get("role") in ("master", "primary") and _running(status):
                return node
        return None

    def streaming_replicas(self) -> list[PatroniNode]:
        found = []
        for node in self.nodes:
            status = node.status()
            if status and status.get("role") == "replica" and _running(status):
                found.append(node)
        return found

    async def wait_for(self, what: str, ready: Callable[[], bool], within: float) -> None:
        """Poll ``ready()`` until it holds, else ServerError."""
        deadline = time.monotonic() + within
        while not await asyncio.to_thread(ready):
            dead = [n.name for n in self.nodes if n.started and not n.running]
            if dead or time.monotonic() > deadline:
                gone = f"{', '.join(dead)} exited; " if dead else ""
                raise ServerError(f"Patroni: {gone}no {what} in {within:.0f} s; see {self.root}")
            await asyncio.sleep(_POLL)

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self, within: float = 90.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.etcd.start)
        first, *others = self.nodes
        await asyncio.to_thread(first.start)
        await self.wait_for("primary", lambda: self.primary() is first, within)
        await self._create_database(first)
        for node in others:
            await asyncio.to_thread(node.start)
        await self.wait_for(
            "streaming replica",
            lambda: len(self.streaming_replicas()) == len(others),
            within,
        )
        if self.synchronous and others:
            await self.wait_for("synchronous standby", self._has_sync_standby, within)
        await asyncio.to_thread(self.haproxy.start)
        await self.wait_writable(within)

    def _has_sync_standby(self) -> bool:
        return any(
            (s := n.status()) is not None and s.get("sync_standby") is True for n in self.nodes
        )

    async def _create_database(self, node: PatroniNode) -> None:
        direct = self._url(f"127.0.0.1:{node.pg_port}", "postgres")
        conn = await asyncpg.connect(direct)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
                await conn.execute(f"CREATE DATABASE {DATABASE}")
        finally:
            await conn.close()

    async def wait_writable(self, within: float, url: str | None = None) -> float:
        """Seconds until a write through ``url`` (default: HAProxy) commits."""
        started = time.monotonic()
        deadline = started + within
        while True:
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn = await asyncpg.connect(url or self.url, timeout=2)
                try:
                    if not await conn.fetchval("SELECT pg_is_in_recovery()"):
                        await conn.execute("SELECT txid_current()")
                        return time.monotonic() - started
                finally:
                    await conn.close()
            if time.monotonic() > deadline:
                raise ServerError(f"no writable primary within {within:.0f} s; see {self.root}")
            await asyncio.sleep(_POLL)

    async def kill_primary(self) -> PatroniNode:
        """SIGKILL the primary's postmaster; Patroni promotes the replica. The dead node's
        Patroni brings its PostgreSQL back as a replica (pg_rewind) on its own."""
        node = await asyncio.to_thread(self.primary)
        if node is None:
            raise ServerError("no primary to kill")
        pid = node.kill_postmaster()
        logger.info("killed the primary %s (postmaster %d)", node.name, pid)
        return node

    async def wait_promoted(self, old: PatroniNode, within: float = 60.0) -> float:
        """Seconds until another node is primary and a write through HAProxy commits."""
        started = time.monotonic()
        await self.wait_for("new primary", lambda: self.primary() not in (None, old), within)
        await self.wait_writable(within)
        return time.monotonic() - started

    async def stop(self) -> None:
        await asyncio.to_thread(self.haproxy.stop)
        # Replicas first, so the primary does not wait for a synchronous standby that left.
        primary = await asyncio.to_thread(self.primary)
        for node in sorted(self.nodes, key=lambda n: n is primary):
            await asyncio.to_thread(node.stop)
        await asyncio.to_thread(self.etcd.stop)

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def _running(status: dict[str, object]) -> bool:
    return status.get("state") == "running"

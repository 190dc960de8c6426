"""A shard's lease: a PostgreSQL advisory lock held by one session, so that one worker
analyses the shard and standbys wait to take it over.

The worker that holds ``pg_try_advisory_lock(namespace, hashtext('i/n'))`` analyses shard
i/n; a standby tries the same lock every ``retry`` seconds. The lock belongs to the holder's
database session, and the session ends with the holder:
- the process dies (crash, SIGKILL, OOM): its kernel closes the connection and PostgreSQL
  ends the session at once;
- the machine dies or the network to it is cut (no FIN ever comes): the holder sends a
  heartbeat every ``timeout / 4`` seconds and its session runs with ``idle_session_timeout
  = timeout``, so PostgreSQL ends it ``timeout`` seconds after the last heartbeat; TCP
  keepalives (``tcp_keepalives_*``) bound the same from the socket side;
- the holder hangs (a stuck event loop, SIGSTOP): no heartbeat, the same timeout.
A standby therefore holds the shard within ``timeout + retry`` seconds of the holder's end.

A holder that loses its session (a database restart, a Patroni failover, or the timeout
after a pause) stops analysing at once and becomes a standby again: the lock may already be
another's. Why PostgreSQL rather than an etcd lease: see docs/vision.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

import asyncpg

logger = logging.getLogger(__name__)

NAMESPACE = 0x10C_715
"""First key of every vision shard lock (the second is ``hashtext('i/n')``)."""

LEASE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


class LeaseLost(RuntimeError):
    """The session holding the lease ended (or cannot be reached): the shard may be
    another's now. ``reason`` says what was seen."""

    def __init__(self, shard: str, reason: str) -> None:
        super().__init__(f"lost the lease of vision shard {shard}: {reason}")
        self.shard = shard
        self.reason = reason


class ShardLease:
    """``async with ShardLease(url, (i, n), instance=...)``; then :meth:`run_while_held`."""

    def __init__(
        self,
        url: str,
        shard: tuple[int, int],
        *,
        instance: str,
        timeout: float = 10.0,
        retry: float = 1.0,
    ) -> None:
        if timeout < 1.0:
            raise ValueError("the lease timeout must be at least 1 second")
        self.url = url
        self.shard = f"{shard[0]}/{shard[1]}"
        self.instance = instance
        self.timeout = timeout
        self.retry = retry
        self.heartbeat = timeout / 4
        self.takeovers = 0
        """Times this instance took the shard (the first start included)."""
        self._conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._drop()

    def _server_settings(self) -> dict[str, str]:
        idle = max(1, int(self.timeout / 2))
        interval = max(1, int(self.timeout / 6))
        return {
            "application_name": f"ioc-vision-lease {self.instance}",
            "idle_session_timeout": f"{int(self.timeout * 1000)}ms",
            "tcp_keepalives_idle": str(idle),
            "tcp_keepalives_interval": str(interval),
            "tcp_keepalives_count": "3",
        }

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()  # the session, and with it the lock, ends now

    async def try_acquire(self) -> bool:
        """One attempt: True when this instance now holds the shard."""
        if self._conn is None:
            self._conn = await asyncpg.connect(
                self.url, timeout=self.timeout, server_settings=self._server_settings()
            )
        held = await self._conn.fetchval(
            "SELECT pg_try_advisory_lock($1, hashtext($2))",
            NAMESPACE,
            self.shard,
            timeout=self.timeout,
        )
        return bool(held)

    async def attempt(self) -> bool:
        """:meth:`try_acquire`, with a database that cannot be reached logged as a failed
        attempt (the next one connects again)."""
        try:
            return await self.try_acquire()
        except LEASE_ERRORS as exc:
            logger.warning("vision shard %s: lease attempt failed (%s)", self.shard, exc)
            await self._drop()
            return False

    async def acquire(self) -> None:
        """Wait (a standby) until this instance holds the shard."""
        waiting_since = time.monotonic()
        said = False
        while not await self.attempt():
            if not said:
                logger.info(
                    "%s: standby for vision shard %s (another instance holds it)",
                    self.instance,
                    self.shard,
                )
                said = True
            await asyncio.sleep(self.retry)  # the standby's retry period
        self.takeovers += 1
        logger.info(
            "%s holds vision shard %s (waited %.1f s)",
            self.instance,
            self.shard,
            time.monotonic() - waiting_since,
        )

    async def still_held(self) -> bool:
        """Whether this instance's session holds the shard's lock (a database round trip)."""
        conn = self._conn
        if conn is None:
            return False
        held = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND pid = pg_backend_pid() AND classid = $1 AND objid = hashtext($2)::oid",
            NAMESPACE,
            self.shard,
            timeout=self.heartbeat,
        )
        return bool(held)

    async def hold(self) -> None:
        """Heartbeat until the session is lost; then raise :class:`LeaseLost`."""
        while True:
            await asyncio.sleep(self.heartbeat)  # the heartbeat period
            try:
                held = await self.still_held()
            except LEASE_ERRORS as exc:
                await self._drop()
                raise LeaseLost(self.shard, f"{type(exc).__name__}: {exc}") from exc
            if not held:
                await self._drop()
                raise LeaseLost(self.shard, "the session no longer holds the lock")

    async def run_while_held(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` whenever this instance holds the shard: wait as a standby, run it
        while the heartbeats hold, stop it when the lease is lost and wait again. Returns
        when ``work`` returns (the lease is then given up on exit)."""
        while not await self._held_through(work):
            pass

    async def _held_through(self, work: Callable[[], Awaitable[None]]) -> bool:
        """Acquire, then run ``work`` under heartbeats: True when it ended by itself,
        False when the lease was lost (and ``work`` cancelled)."""
        await self.acquire()
        ended = False
        try:
            async with asyncio.TaskGroup() as group:
                heartbeats = group.create_task(self.hold(), name="vision lease")
                await work()
                ended = True
                heartbeats.cancel()
        except* LeaseLost as lost:
            # Not an exception of ours to trace: the reason says what happened.
            logger.warning("%s stopped analysing: %s", self.instance, lost.exceptions[0])
        return ended

"""The alerts engine: vision events in, alerts with a lifecycle out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import aiomqtt
import asyncpg

from protocol import (
    EVENT,
    PROFILES,
    MqttEndpoint,
    PayloadError,
    Province,
    Topics,
    acknowledge,
    run_subscriber,
    stop_tasks,
)
from store import DeadLetter, StoreConfig, create_pool, record_dead_letters

from ._repository import observe, record_change, resolve_cleared

logger = logging.getLogger(__name__)
CONSUMER = "alerts"


@dataclass
class AlertsStats:
    events: int = 0
    changes: int = 0
    dead_letters: int = 0


class AlertsEngine:
    """Consumes ``events/+`` (QoS 1, acknowledged after commit) and keeps the alerts table."""

    def __init__(
        self,
        endpoint: MqttEndpoint,
        store: StoreConfig,
        province: Province,
        *,
        topics: Topics | None = None,
        identifier: str = "alerts-1",
        auto_resolve_seconds: float = 60.0,
        sweep_interval: float = 1.0,
    ) -> None:
        self.endpoint = endpoint
        self.store = store
        self.topics = topics or Topics()
        self.identifier = identifier
        self.auto_resolve_seconds = auto_resolve_seconds
        self.sweep_interval = sweep_interval
        self.districts = {c.id: province.district_id(c.district) for c in province.cameras}
        self.stats = AlertsStats()
        self._stack = contextlib.AsyncExitStack()
        self._pool: asyncpg.Pool | None = None
        self._progress = asyncio.Condition()
        self._subscribed = asyncio.Event()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError(f"{type(self).__name__} is used outside its 'async with'")
        return self._pool

    async def __aenter__(self) -> Self:
        self._pool = await create_pool(self.store)
        self._stack.push_async_callback(self._pool.close)
        group = await self._stack.enter_async_context(asyncio.TaskGroup())
        self._tasks = [
            group.create_task(
                run_subscriber(
                    self.endpoint,
                    self.identifier,
                    [(self.topics.all_events(), 1)],
                    self._on_message,
                    manual_ack=True,
                    on_connect=self._on_connect,
                ),
                name="alerts-subscriber",
            ),
            group.create_task(self._sweep_loop(), name="alerts-auto-resolve"),
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await stop_tasks(self._tasks)
        await self._stack.__aexit__(exc_type, exc, tb)

    async def _on_connect(self, client: aiomqtt.Client) -> None:
        self._subscribed.set()

    async def wait_until_subscribed(self) -> None:
        await self._subscribed.wait()

    async def _on_message(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        payload = message.payload if isinstance(message.payload, bytes) else b""
        async with self.pool.acquire() as conn:
            try:
                event = EVENT.decode(payload)
            except PayloadError as exc:
                logger.warning("dead letter on %s: %s", message.topic.value, exc.reason)
                await record_dead_letters(
                    conn, [DeadLetter(CONSUMER, message.topic.value, exc.reason, payload)]
                )
                acknowledge(client, message)
                async with self._progress:
                    self.stats.dead_letters += 1
                    self._progress.notify_all()
                return
            district = self.districts.get(event.camera_id, "unknown")
            async with conn.transaction():
                await conn.execute(
                    """INSERT INTO events (event_id, phase, kind, camera_id, zone_id, line_id,
                           direction, started_at, ended_at, score)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, to_timestamp($8), to_timestamp($9),
                               $10)""",
                    event.event_id,
                    event.phase,
                    str(event.kind),
                    event.camera_id,
                    event.zone_id,
                    event.line_id,
                    event.direction,
                    event.started_at,
                    event.ended_at,
                    event.score,
                )
                if event.phase != "instant":
                    alert = await observe(
                        conn, event, district, PROFILES[event.kind].default_severity
                    )
                    if alert is not None:
                        await record_change(conn, alert)
                        self.stats.changes += 1
        acknowledge(client, message)
        async with self._progress:
            self.stats.events += 1
            self._progress.notify_all()

    async def wait_for_events(self, handled: int) -> None:
        """Return once ``handled`` events (and dead letters) are committed."""
        async with self._progress:
            await self._progress.wait_for(
                lambda: self.stats.events + self.stats.dead_letters >= handled
            )

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    for alert in await resolve_cleared(conn, self.auto_resolve_seconds):
                        await record_change(conn, alert)
                        self.stats.changes += 1
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                logger.warning("auto-resolve sweep failed: %s", exc)

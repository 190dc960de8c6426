"""The console channel: alert changes in commit order, fanned out to live subscribers.

The change log in PostgreSQL is the source of truth; NOTIFY only wakes the feed, which
then reads every change after the last one it saw. A subscriber that falls behind by more
than its queue holds is marked lagging and dropped, rather than slowing the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType
from typing import Self

from protocol import backoff_delay, stop_tasks
from store import DB_ERRORS, Connection, StoreConfig, connect

from ._model import AlertChange
from ._repository import changes_since, last_change_seq

logger = logging.getLogger(__name__)


class Subscription:
    def __init__(self, capacity: int) -> None:
        self.queue: asyncio.Queue[AlertChange] = asyncio.Queue(capacity)
        self.lagging = False


class AlertFeed:
    def __init__(self, store: StoreConfig, *, subscriber_capacity: int = 1000) -> None:
        self.store = store
        self.capacity = subscriber_capacity
        self.last_seq = 0
        self._subscribers: set[Subscription] = set()
        self._wake = asyncio.Event()
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Self:
        self._conn = await self._listen()
        self._stack.push_async_callback(self._close)
        self.last_seq = await last_change_seq(self._conn)
        group = await self._stack.enter_async_context(asyncio.TaskGroup())
        self._task = group.create_task(self._pump(), name="alert-feed")
        return self

    async def _listen(self) -> Connection:
        conn = await connect(self.store)
        await conn.add_listener("alert_changes", self._on_notify)
        # A lost connection (a database restart) wakes the pump, which connects again.
        conn.add_termination_listener(self._on_lost)
        return conn

    async def _close(self) -> None:
        if not self._conn.is_closed():
            await self._conn.close()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await stop_tasks([self._task])
        await self._stack.__aexit__(exc_type, exc, tb)

    def _on_notify(self, conn: object, pid: int, channel: str, payload: object) -> None:
        self._wake.set()

    def _on_lost(self, conn: object) -> None:
        self._wake.set()

    def subscribe(self) -> Subscription:
        sub = Subscription(self.capacity)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    async def _pump(self) -> None:
        attempt = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                if self._conn.is_closed():
                    # Notifications sent meanwhile are lost with the connection; the log is
                    # read by sequence number, so nothing else is.
                    self._conn = await self._listen()
                    logger.info("alert feed: connected to the store again")
                while True:
                    changes = await changes_since(self._conn, self.last_seq)
                    if not changes:
                        break
                    for change in changes:
                        self._publish(change)
                    self.last_seq = changes[-1].seq
                attempt = 0
            except DB_ERRORS as exc:
                attempt += 1
                delay = backoff_delay(attempt)
                logger.warning("alert feed: store lost (%s); again in %.2f seconds", exc, delay)
                await asyncio.sleep(delay)
                self._wake.set()

    def _publish(self, change: AlertChange) -> None:
        for sub in list(self._subscribers):
            try:
                sub.queue.put_nowait(change)
            except asyncio.QueueFull:
                sub.lagging = True
                self._subscribers.discard(sub)
                logger.warning(
                    "dropping a console subscriber that fell %d changes behind", self.capacity
                )

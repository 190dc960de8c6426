"""Fan-out of alert changes to websocket clients.

One subscription to :class:`alerts.AlertFeed` serves every client of this process: each
change is encoded once and the same text is queued for every client whose filter admits it.
A client's queue is bounded; a client that lets it fill is marked too slow and dropped, so
it never holds up the others (it reconnects and resumes from its last sequence number).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection
from types import TracebackType
from typing import NamedTuple, Self

import msgspec

from alerts import AlertChange, AlertFeed, AlertView
from protocol import stop_tasks

from ._metrics import ConsoleMetrics

logger = logging.getLogger(__name__)
_json = msgspec.json.Encoder()


def change_message(seq: int, alert: AlertView) -> str:
    return _json.encode({"type": "change", "seq": seq, "alert": alert}).decode()


class Queued(NamedTuple):
    """A change waiting for one client: the text is shared by every client it is for."""

    seq: int
    alert_id: str
    text: str


class LiveClient:
    """One websocket's subscription: what it wants and what waits to be sent to it."""

    def __init__(self, districts: Collection[str], kinds: Collection[str], capacity: int) -> None:
        self.districts = frozenset(districts)
        self.kinds = frozenset(kinds)
        self.queue: asyncio.Queue[Queued] = asyncio.Queue(capacity)
        self.too_slow = asyncio.Event()

    def wants(self, alert: AlertView) -> bool:
        return (not self.districts or alert.district_id in self.districts) and (
            not self.kinds or alert.kind in self.kinds
        )


class ChangeHub:
    def __init__(self, feed: AlertFeed, metrics: ConsoleMetrics) -> None:
        self.feed = feed
        self.metrics = metrics
        self.position = 0
        """The last change sequence fanned out; later changes reach registered clients."""
        self._clients: set[LiveClient] = set()
        self._dropped = asyncio.Condition()
        self.slow_dropped = 0
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Self:
        self._subscription = self.feed.subscribe()
        self.position = self.feed.last_seq
        group = await self._stack.enter_async_context(asyncio.TaskGroup())
        self._task = group.create_task(self._pump(), name="console-change-hub")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await stop_tasks([self._task])
        await self._stack.__aexit__(exc_type, exc, tb)
        self.feed.unsubscribe(self._subscription)

    @property
    def alive(self) -> bool:
        return not self._task.done()

    def register(self, client: LiveClient) -> int:
        """Start queueing changes for ``client``; returns the position it starts after."""
        self._clients.add(client)
        self.metrics.ws_clients.set(len(self._clients))
        return self.position

    def unregister(self, client: LiveClient) -> None:
        self._clients.discard(client)
        self.metrics.ws_clients.set(len(self._clients))

    async def wait_for_drops(self, count: int) -> None:
        """Return once ``count`` clients have been dropped as too slow."""
        async with self._dropped:
            await self._dropped.wait_for(lambda: self.slow_dropped >= count)

    async def _pump(self) -> None:
        while True:
            change = await self._subscription.queue.get()
            dropped = self.slow_dropped
            self._dispatch(change)
            if self._subscription.lagging and self._subscription.queue.empty():
                self._resubscribe()
            if self.slow_dropped != dropped:
                async with self._dropped:
                    self._dropped.notify_all()
            # Let the clients' senders run between changes: a burst (a page of a thousand
            # changes after a sweep) must not fill every queue before anyone has sent.
            await asyncio.sleep(0)

    def _dispatch(self, change: AlertChange) -> None:
        started = time.perf_counter()
        text = change_message(change.seq, change.alert)
        item = Queued(change.seq, change.alert.id, text)
        queued = 0
        for client in list(self._clients):
            if not client.wants(change.alert):
                continue
            try:
                client.queue.put_nowait(item)
                queued += 1
            except asyncio.QueueFull:
                self._drop(client)
        self.metrics.ws_queued.inc(queued)
        self.position = change.seq
        self.metrics.last_seq.set(change.seq)
        self.metrics.ws_fanout.observe(time.perf_counter() - started)

    def _drop(self, client: LiveClient) -> None:
        self._clients.discard(client)
        client.too_slow.set()
        self.slow_dropped += 1
        self.metrics.ws_clients.set(len(self._clients))

    def _resubscribe(self) -> None:
        """The feed dropped this hub (the loop was starved for a whole queue of changes): the
        clients cannot be served in order any more; send them away to resume."""
        logger.warning(
            "change hub fell behind the feed; asking %d clients to resume", len(self._clients)
        )
        for client in list(self._clients):
            self._drop(client)
        self.feed.unsubscribe(self._subscription)
        self._subscription = self.feed.subscribe()
        self.position = self.feed.last_seq

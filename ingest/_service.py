"""The ingest service: telemetry, traffic metrics, device states and dead letters from MQTT
into the store, in batches.

Messages are acknowledged to the broker only after the transaction holding their rows has
committed, so a crash or a database outage loses nothing: the broker redelivers what was
not acknowledged, and the idempotent writers ignore what had already been stored. Memory is
bounded by MQTT 5's receive maximum: the broker sends at most that many unacknowledged
messages and keeps the rest. Several processes share telemetry and traffic through a shared
subscription; every process takes every device state (few, and order matters).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiomqtt
import asyncpg

from protocol import (
    Background,
    CameraState,
    EdgeState,
    MqttEndpoint,
    TelemetryBatch,
    TimeWindow,
    Topics,
    Work,
    acknowledge,
    backoff_delay,
    run_subscriber,
    shared,
)
from store import (
    DB_ERRORS,
    Retention,
    StoreConfig,
    WriteMode,
    close_pool,
    create_pool,
    maintain,
    write_mode,
)

from ._decode import Decoded, decode_message
from ._flush import STORE_ERRORS, FlushResult, is_transient, store_decoded, store_isolating_bad
from ._receipts import receipts_for, send_receipts

logger = logging.getLogger(__name__)


@dataclass
class IngestStats:
    messages: int = 0
    messages_committed: int = 0
    samples_written: int = 0
    traffic_rows_written: int = 0
    states_written: int = 0
    duplicate_batches: int = 0
    dead_letters: int = 0
    flushes: int = 0
    write_errors: int = 0
    maintenance_runs: int = 0
    connects: int = 0
    """Broker connections made (the first, then one per reconnect or failover)."""
    receipts_sent: int = 0
    receipts_lost: int = 0
    """Receipts the broker did not take (their batches come again and are ignored)."""
    started: float = field(default_factory=time.monotonic)
    data_age: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=100_000)
    )
    """Seconds from the newest sample of a telemetry message to its commit (recent ones):
    how stale the store is, the latency a benchmark reports."""


@dataclass(frozen=True, slots=True)
class _Received:
    client: aiomqtt.Client
    message: aiomqtt.Message
    decoded: Decoded


class IngestService(Background):
    def __init__(
        self,
        endpoint: MqttEndpoint,
        store: StoreConfig,
        *,
        topics: Topics | None = None,
        identifier: str = "ingest-1",
        shared_group: str | None = None,
        max_batch_samples: int = 20_000,
        max_delay: float = 0.25,
        receive_maximum: int = 1_000,
        writers: int = 2,
        maintenance_interval: float | None = 3_600.0,
        time_window: TimeWindow | None = None,
        retention: Retention | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.store = store
        self.topics = topics or Topics()
        self.identifier = identifier
        self.shared_group = shared_group
        self.max_batch_samples = max_batch_samples
        self.max_delay = max_delay
        self.receive_maximum = receive_maximum
        self.writers = writers
        self.maintenance_interval = maintenance_interval
        self.time_window = time_window or TimeWindow()
        """Edge times outside it make the message a dead letter."""
        self.retention = retention
        self.stats = IngestStats()
        # Never fuller than the broker's window of unacknowledged messages. Device states
        # have a queue and a writer of their own: their order decides the latest status,
        # while batches may be written by several writers at once, in any order.
        self._queue: asyncio.Queue[_Received] = asyncio.Queue(receive_maximum)
        self._states: asyncio.Queue[_Received] = asyncio.Queue(receive_maximum)
        self._client: aiomqtt.Client | None = None
        self._pool: asyncpg.Pool | None = None
        self._mode: WriteMode | None = None
        self._progress = asyncio.Condition()
        self._subscribed = asyncio.Event()

    async def wait_for_messages(self, committed: int) -> None:
        """Return once ``committed`` messages are stored (tests and benchmarks)."""
        await self.wait_until(lambda stats: stats.messages_committed >= committed)

    async def wait_until(self, predicate: Callable[[IngestStats], bool]) -> None:
        """Return once ``predicate(stats)`` holds; checked after every flush."""
        async with self._progress:
            await self._progress.wait_for(lambda: predicate(self.stats))

    async def wait_for_maintenance(self, runs: int = 1) -> None:
        async with self._progress:
            await self._progress.wait_for(lambda: self.stats.maintenance_runs >= runs)

    def _filter(self, topic_filter: str) -> str:
        return shared(self.shared_group, topic_filter) if self.shared_group else topic_filter

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError(f"{type(self).__name__} is used outside its 'async with'")
        return self._pool

    @property
    def mode(self) -> WriteMode:
        if self._mode is None:
            raise RuntimeError(f"{type(self).__name__} is used outside its 'async with'")
        return self._mode

    async def _start(self, stack: contextlib.AsyncExitStack) -> Work:
        self._pool = await create_pool(self.store)
        stack.push_async_callback(close_pool, self._pool, self.store.close_grace)
        async with self._pool.acquire() as conn:
            self._mode = await write_mode(conn, self.store)
        if self.maintenance_interval is not None:
            # Before the first write: today's partitions exist, expired data is gone.
            await self._maintain()
        t = self.topics
        subscriptions = [
            (self._filter(t.all_telemetry()), 1),
            (self._filter(t.all_traffic()), 1),
            (self._filter(t.all_dead_letters()), 1),
            (t.all_camera_states(), 1),
            (t.all_edge_states(), 1),
        ]
        work: Work = {
            f"ingest-writer-{i}": self._write_loop(self._queue) for i in range(self.writers)
        }
        work["ingest-state-writer"] = self._write_loop(self._states)
        work["ingest-subscriber"] = run_subscriber(
            self.endpoint,
            self.identifier,
            subscriptions,
            self._on_message,
            manual_ack=True,
            on_connect=self._on_connect,
            receive_maximum=self.receive_maximum,
        )
        if self.maintenance_interval is not None:
            work["ingest-upkeep"] = self._maintenance_loop(self.maintenance_interval)
        return work

    async def _on_connect(self, client: aiomqtt.Client) -> None:
        self._client = client
        self._subscribed.set()
        async with self._progress:
            self.stats.connects += 1
            self._progress.notify_all()
        logger.info("%s subscribed on %s", self.identifier, self.endpoint.redacted())

    async def wait_until_subscribed(self) -> None:
        await self._subscribed.wait()

    async def _on_message(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        self.stats.messages += 1
        decoded = decode_message(self.topics, message, self.time_window)
        if decoded.dead is not None:
            logger.warning("dead letter on %s: %s", decoded.dead.topic, decoded.dead.reason)
        queue = (
            self._states if isinstance(decoded.payload, CameraState | EdgeState) else self._queue
        )
        await queue.put(_Received(client, message, decoded))

    async def _write_loop(self, queue: asyncio.Queue[_Received]) -> None:
        while True:
            pending = [await queue.get()]
            samples = pending[0].decoded.weight
            deadline = time.monotonic() + self.max_delay
            while samples < self.max_batch_samples:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    break
                pending.append(item)
                samples += item.decoded.weight
            await self._flush(pending)

    async def _flush(self, pending: list[_Received]) -> None:
        decoded = [p.decoded for p in pending]
        mode = self.mode
        attempt = 0
        isolate = False
        while True:
            try:
                async with self.pool.acquire() as conn:
                    if isolate:
                        result = await store_isolating_bad(conn, decoded, mode)
                    else:
                        result = await store_decoded(conn, decoded, mode)
                break
            except STORE_ERRORS as exc:
                self.stats.write_errors += 1
                if not is_transient(exc) and not isolate:
                    # Something in the batch the database refuses (a value out of range
                    # ...): store message by message; the ones refused become dead letters.
                    logger.warning("store refused a batch (%s); isolating the bad messages", exc)
                    isolate = True
                    continue
                # Keep the batch and retry (also when isolating failed): nothing is
                # acknowledged until it is stored.
                attempt += 1
                delay = backoff_delay(attempt)
                logger.warning("store write failed (%s); retrying in %.2f seconds", exc, delay)
                await asyncio.sleep(delay)
        self._count(len(pending), result)
        committed = time.time()
        for item in pending:
            payload = item.decoded.payload
            if isinstance(payload, TelemetryBatch):
                self.stats.data_age.append(committed - payload.samples[-1].ts)
        async with self._progress:
            self._progress.notify_all()
        for item in pending:
            # A message from a connection that has since dropped is redelivered by the
            # broker; acknowledging its id on the new connection would ack another message.
            if item.client is self._client:
                acknowledge(item.client, item.message)
        await self._send_receipts(decoded)

    async def _send_receipts(self, committed: list[Decoded]) -> None:
        """Tell the edges which of their batches are now stored (see ``_receipts.py``)."""
        receipts = receipts_for(self.topics, committed)
        client = self._client
        if not receipts:
            return
        if client is None or not await send_receipts(client, self.topics, receipts):
            self.stats.receipts_lost += len(receipts)
        else:
            self.stats.receipts_sent += len(receipts)

    def _count(self, messages: int, result: FlushResult) -> None:
        s = self.stats
        s.flushes += 1
        s.messages_committed += messages
        s.samples_written += result.samples
        s.traffic_rows_written += result.traffic_rows
        s.states_written += result.states
        s.duplicate_batches += result.duplicate_batches
        s.dead_letters += result.dead_letters

    async def _maintain(self) -> None:
        try:
            async with self.pool.acquire() as conn:
                await maintain(conn, retention=self.retention)
        except DB_ERRORS as exc:
            logger.warning("store maintenance failed (%s); trying again later", exc)
        async with self._progress:
            self.stats.maintenance_runs += 1
            self._progress.notify_all()

    async def _maintenance_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self._maintain()

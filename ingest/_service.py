"""The ingest service: telemetry and dead letters from MQTT into the store, in batches.

Messages are acknowledged to the broker only after the transaction holding their rows has
committed, so a crash or a database outage loses nothing: the broker redelivers what was
not acknowledged, and the idempotent writer ignores what had already been stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import aiomqtt
import asyncpg

from protocol import (
    DEAD_LETTER,
    TELEMETRY,
    MqttEndpoint,
    PayloadError,
    TelemetryBatch,
    Topics,
    acknowledge,
    backoff_delay,
    run_subscriber,
    shared,
    stop_tasks,
)
from store import DeadLetter, StoreConfig, create_pool, record_dead_letters, write_telemetry

logger = logging.getLogger(__name__)
CONSUMER = "ingest"


@dataclass
class IngestStats:
    messages: int = 0
    messages_committed: int = 0
    samples_written: int = 0
    duplicate_batches: int = 0
    dead_letters: int = 0
    flushes: int = 0
    write_errors: int = 0
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class _Received:
    client: aiomqtt.Client
    message: aiomqtt.Message
    batch: TelemetryBatch | None
    dead: DeadLetter | None


class IngestService:
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
        queue_messages: int = 5_000,
    ) -> None:
        self.endpoint = endpoint
        self.store = store
        self.topics = topics or Topics()
        self.identifier = identifier
        self.shared_group = shared_group
        self.max_batch_samples = max_batch_samples
        self.max_delay = max_delay
        self.stats = IngestStats()
        self._queue: asyncio.Queue[_Received] = asyncio.Queue(queue_messages)
        self._client: aiomqtt.Client | None = None
        self._stack = contextlib.AsyncExitStack()
        self._pool: asyncpg.Pool | None = None
        self._progress = asyncio.Condition()
        self._subscribed = asyncio.Event()

    async def wait_for_messages(self, committed: int) -> None:
        """Return once ``committed`` messages are stored (tests and benchmarks)."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.stats.messages_committed >= committed)

    def _filter(self, topic_filter: str) -> str:
        return shared(self.shared_group, topic_filter) if self.shared_group else topic_filter

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
            group.create_task(self._write_loop(), name="ingest-writer"),
            group.create_task(
                run_subscriber(
                    self.endpoint,
                    self.identifier,
                    [
                        (self._filter(self.topics.all_telemetry()), 1),
                        (self._filter(self.topics.all_dead_letters()), 1),
                    ],
                    self._on_message,
                    manual_ack=True,
                    on_connect=self._on_connect,
                ),
                name="ingest-subscriber",
            ),
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
        self._client = client
        self._subscribed.set()

    async def wait_until_subscribed(self) -> None:
        await self._subscribed.wait()

    async def _on_message(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        self.stats.messages += 1
        topic = message.topic.value
        payload = message.payload if isinstance(message.payload, bytes) else b""
        batch: TelemetryBatch | None = None
        dead: DeadLetter | None = None
        try:
            if message.topic.matches(self.topics.all_dead_letters()):
                letter = DEAD_LETTER.decode(payload)
                dead = DeadLetter(letter.consumer, letter.topic, letter.reason, letter.payload)
            else:
                batch = TELEMETRY.decode(payload)
                source = self.topics.parse(topic).source_id
                if source != batch.ap_id:
                    raise PayloadError(f"ap_id {batch.ap_id!r} does not match the topic {topic!r}")
        except (PayloadError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, PayloadError) else str(exc)
            logger.warning("dead letter on %s: %s", topic, reason)
            dead = DeadLetter(CONSUMER, topic, reason, payload)
        await self._queue.put(_Received(client, message, batch, dead))

    async def _write_loop(self) -> None:
        while True:
            pending = [await self._queue.get()]
            samples = _samples(pending[0])
            deadline = time.monotonic() + self.max_delay
            while samples < self.max_batch_samples:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), timeout)
                except TimeoutError:
                    break
                pending.append(item)
                samples += _samples(item)
            await self._flush(pending)

    async def _flush(self, pending: list[_Received]) -> None:
        batches = [p.batch for p in pending if p.batch is not None]
        letters = [p.dead for p in pending if p.dead is not None]
        attempt = 0
        while True:
            try:
                async with self.pool.acquire() as conn:
                    result = await write_telemetry(conn, batches, use_copy=self.store.use_copy)
                    await record_dead_letters(conn, letters)
                break
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                # Keep the batch and retry: nothing is acknowledged until it is stored.
                attempt += 1
                self.stats.write_errors += 1
                delay = backoff_delay(attempt)
                logger.warning("store write failed (%s); retrying in %.2f seconds", exc, delay)
                await asyncio.sleep(delay)
        async with self._progress:
            self.stats.flushes += 1
            self.stats.messages_committed += len(pending)
            self.stats.samples_written += result.rows
            self.stats.duplicate_batches += result.duplicate_batches
            self.stats.dead_letters += len(letters)
            self._progress.notify_all()
        for item in pending:
            # A message from a connection that has since dropped is redelivered by the
            # broker; acknowledging its id on the new connection would ack another message.
            if item.client is self._client:
                acknowledge(item.client, item.message)


def _samples(item: _Received) -> int:
    return len(item.batch.samples) if item.batch is not None else 1

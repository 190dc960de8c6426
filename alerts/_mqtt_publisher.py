"""Drains the MQTT outbox: alert changes to ``{prefix}/alerts/{district}/{severity}``.

Rows are deleted only after the broker acknowledged them (QoS 1), so a crash or a broker
outage repeats a message rather than losing it; subscribers can tell a repeat by its
``alert_id`` and ``change_seq``. A NOTIFY at commit wakes the publisher: no polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import aiomqtt
import asyncpg

from protocol import Background, MqttEndpoint, Work, backoff_delay
from store import DB_ERRORS, StoreConfig, close_connection, connect

logger = logging.getLogger(__name__)
_LOST: tuple[type[Exception], ...] = (aiomqtt.MqttError, *DB_ERRORS)


@dataclass
class PublisherStats:
    published: int = 0


class MqttPublisher(Background):
    def __init__(
        self,
        endpoint: MqttEndpoint,
        store: StoreConfig,
        *,
        identifier: str = "alerts-publisher",
        batch: int = 500,
    ) -> None:
        self.endpoint = endpoint
        self.store = store
        self.identifier = identifier
        self.batch = batch
        self.stats = PublisherStats()
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()

    async def _start(self, stack: contextlib.AsyncExitStack) -> Work:
        return {"alerts-mqtt-publisher": self._run()}

    async def wait_for_published(self, count: int) -> None:
        async with self._progress:
            await self._progress.wait_for(lambda: self.stats.published >= count)

    def _on_notify(self, conn: object, pid: int, channel: str, payload: object) -> None:
        self._wake.set()

    async def _run(self) -> None:
        attempt = 0
        while not self._stopping:
            try:
                conn = await connect(self.store)
                try:
                    await conn.add_listener("mqtt_outbox", self._on_notify)
                    # A lost connection (a database restart) must wake the drain, whose next
                    # read then fails and reconnects; else it would wait for a NOTIFY forever.
                    conn.add_termination_listener(lambda _: self._wake.set())
                    async with self.endpoint.client(self.identifier) as client:
                        if attempt:
                            logger.info("%s reconnected", self.identifier)
                        attempt = 0
                        await self._drain(conn, client)
                finally:
                    await close_connection(conn)
            except _LOST as exc:
                attempt += 1
                delay = backoff_delay(attempt)
                logger.warning("%s: %s; reconnecting in %.2f seconds", self.identifier, exc, delay)
                await asyncio.sleep(delay)

    async def _drain(self, conn: asyncpg.Connection, client: aiomqtt.Client) -> None:
        while not self._stopping:
            self._wake.clear()  # before reading: a NOTIFY during the read wakes the next wait
            rows = await conn.fetch(
                "SELECT id, topic, payload FROM mqtt_outbox ORDER BY id LIMIT $1", self.batch
            )
            if not rows:
                await self._wake.wait()
                continue
            sent: list[int] = []
            for row in rows:
                if self._stopping:  # aiomqtt's publish may swallow a cancellation (3.11)
                    break
                await client.publish(row["topic"], row["payload"], qos=1)
                sent.append(row["id"])
            await conn.execute("DELETE FROM mqtt_outbox WHERE id = ANY($1::bigint[])", sent)
            async with self._progress:
                self.stats.published += len(sent)
                self._progress.notify_all()

"""Wi-Fi telemetry from collectors to the broker, through the on-disk spool.

:class:`WifiPipeline` polls each collector on its own period (a collector that fails is
retried with backoff and reported, never fatal) and every ``batch_period`` turns the samples
gathered per AP into one :class:`TelemetryBatch` with the AP's next sequence number, written
to the spool. :class:`SpoolForwarder` publishes the spool, oldest first, QoS 1, while a
broker connection lasts, and removes a batch when ingest's receipt for it arrives (see
``_spool.py``); a batch without a receipt goes again after ``resend_after`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiomqtt

from protocol import (
    STORED_RECEIPT,
    TELEMETRY,
    CollectorState,
    PayloadError,
    TelemetryBatch,
    Topics,
    WifiSample,
    backoff_delay,
)

from ._collectors import CollectorError, WifiCollector
from ._spool import Spool, SpoolEntry

logger = logging.getLogger(__name__)


class PublishRefusals:
    """Counts publishes the broker refused: an MQTT 5 PUBACK with a failure reason code
    (0x87 not authorized ...). aiomqtt 2.5 drops the reason code, so this listens to paho's
    callback underneath; with MQTT 3.1.1 a broker drops refused messages silently."""

    def __init__(self) -> None:
        self.count = 0
        self.last_reason: str | None = None

    def attach(self, client: aiomqtt.Client) -> None:
        paho = client._client
        forward = paho.on_publish

        def on_publish(*args: Any) -> None:
            reason = args[3] if len(args) > 3 else None
            if reason is not None and getattr(reason, "is_failure", False):
                self.count += 1
                self.last_reason = str(reason)
            if forward is not None:
                forward(*args)

        paho.on_publish = on_publish


@dataclass
class TelemetryStats:
    samples: int = 0
    batches: int = 0
    published: int = 0
    resent: int = 0
    """Publishes of batches that had been sent before without a receipt coming back."""
    refused: int = 0
    receipts: int = 0
    bad_receipts: int = 0


class WifiPipeline:
    """Collectors -> per-AP batches with durable sequence numbers -> the spool."""

    def __init__(
        self,
        collectors: Sequence[WifiCollector],
        spool: Spool,
        topics: Topics,
        agent_id: str,
        *,
        poll_period: float = 5.0,
        batch_period: float = 30.0,
        max_backoff: float = 60.0,
        on_spooled: Callable[[], None] = lambda: None,
    ) -> None:
        self.collectors = list(collectors)
        self.spool = spool
        self.topics = topics
        self.agent_id = agent_id
        self.poll_period = poll_period
        self.batch_period = batch_period
        self.max_backoff = max_backoff
        self.stats = TelemetryStats()
        self._on_spooled = on_spooled
        self._pending: dict[str, list[WifiSample]] = {}
        self._states = {c.name: CollectorState(name=c.name, status="starting") for c in collectors}
        self.changed = asyncio.Condition()

    @property
    def collector_states(self) -> list[CollectorState]:
        return list(self._states.values())

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate`` holds (it is checked after every poll and batch)."""
        async with self.changed:
            await self.changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def poll(self, collector: WifiCollector) -> None:
        """Poll one collector until cancelled."""
        failures = 0
        while True:
            started = time.monotonic()
            try:
                readings = await collector.collect(time.time())
            except Exception as exc:  # one bad source must never stop the agent
                failures += 1
                delay = self.poll_period + min(backoff_delay(failures), self.max_backoff)
                if isinstance(exc, CollectorError):
                    logger.warning("%s; retrying in %.1f seconds", exc, delay)
                    reason = exc.reason
                else:
                    logger.exception("%s failed; retrying in %.1f seconds", collector.name, delay)
                    reason = f"{type(exc).__name__}: {exc}"
                previous = self._states[collector.name]
                self._states[collector.name] = CollectorState(
                    name=collector.name,
                    status="failing",
                    access_points=len(collector.access_points),
                    failures=failures,
                    last_success_at=previous.last_success_at,
                    detail=reason[:500],
                )
            else:
                if failures:
                    logger.info("%s answers again after %d failures", collector.name, failures)
                failures = 0
                for reading in readings:
                    self._pending.setdefault(reading.ap_id, []).append(reading.sample)
                self.stats.samples += len(readings)
                missing = len(collector.access_points) - len({r.ap_id for r in readings})
                self._states[collector.name] = CollectorState(
                    name=collector.name,
                    status="ok",
                    access_points=len(collector.access_points),
                    last_success_at=time.time(),
                    detail=f"{missing} access points missing from the answer" if missing else None,
                )
                delay = max(0.0, self.poll_period - (time.monotonic() - started))
            await self._notify()
            await asyncio.sleep(delay)

    async def batch_forever(self) -> None:
        """Spool the gathered samples every ``batch_period`` until cancelled."""
        while True:
            await asyncio.sleep(self.batch_period)
            await self.flush()

    async def flush(self) -> int:
        """Spool what is pending now, one batch per AP; returns the number of batches."""
        pending, self._pending = self._pending, {}
        if not pending:
            return 0
        floor = int(time.time() * 1000)  # a lost spool file must not restart numbers at 1
        entries = []
        for ap_id, samples in pending.items():
            for start in range(0, len(samples), 10_000):  # the protocol's batch limit
                seq = self.spool.next_sequence(ap_id, floor)
                batch = TelemetryBatch(
                    ap_id=ap_id,
                    seq=seq,
                    samples=samples[start : start + 10_000],
                    agent_id=self.agent_id,
                )
                entries.append(
                    SpoolEntry(self.topics.telemetry(ap_id), TELEMETRY.encode(batch), ap_id, seq)
                )
        try:
            self.spool.append(entries)
        except sqlite3.Error:
            # Keep the samples for the next attempt (a full disk may clear).
            for ap_id, samples in pending.items():
                self._pending[ap_id] = samples + self._pending.get(ap_id, [])
            logger.exception(
                "cannot write the spool %s; keeping %d batches in memory",
                self.spool.path,
                len(entries),
            )
            return 0
        self.stats.batches += len(entries)
        self._on_spooled()
        await self._notify()
        return len(entries)

    async def run(self) -> None:
        """Poll every collector and batch, until cancelled."""
        async with asyncio.TaskGroup() as group:
            for collector in self.collectors:
                group.create_task(self.poll(collector), name=f"poll {collector.name}")
            group.create_task(self.batch_forever(), name="telemetry batches")


class SpoolForwarder:
    """Publishes the spool in order over a live connection; forgets what the centre's
    receipts name, and publishes again what waited ``resend_after`` seconds for one."""

    def __init__(
        self,
        spool: Spool,
        *,
        window: int = 200,
        resend_after: float = 30.0,
        receipts: bool = True,
    ) -> None:
        self.spool = spool
        self.receipts = receipts
        """False: forget a batch on the broker's acknowledgement, as a plain QoS 1 publisher
        does (only ``ioc bench broker`` does this, to measure what receipts save)."""
        self.window = window
        self.resend_after = resend_after
        self.stats = TelemetryStats()
        self.refusals = PublishRefusals()
        self._wake = asyncio.Event()
        self.changed = asyncio.Condition()

    def wake(self) -> None:
        self._wake.set()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate`` holds (checked after every window the broker took)."""
        async with self.changed:
            await self.changed.wait_for(predicate)

    async def receive(self, payload: bytes) -> None:
        """A receipt from ingest: forget the batches it names. A receipt we cannot read is
        logged and ignored (its batches go again; the centre ignores the repeat)."""
        try:
            receipt = STORED_RECEIPT.decode(payload)
        except PayloadError as exc:
            self.stats.bad_receipts += 1
            logger.warning("unreadable telemetry receipt ignored: %s", exc.reason)
            return
        self.stats.receipts += 1
        self.spool.confirm([(b.ap_id, b.seq) for b in receipt.batches])
        async with self.changed:
            self.changed.notify_all()

    async def _wait_for_work(self) -> None:
        """Until new batches are spooled or the oldest unconfirmed one is due again."""
        due_at = self.spool.next_due(self.resend_after)
        if due_at is None:
            await self._wake.wait()
            return
        due_in = due_at - time.time()
        if due_in > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(due_in):  # a deadline, not a poll
                    await self._wake.wait()

    async def run(self, client: aiomqtt.Client) -> None:
        """Forward until cancelled or the connection fails (an :class:`aiomqtt.MqttError`)."""
        self.refusals.attach(client)
        # A window of publishes in flight is the design here, not a leak worth a warning.
        client.pending_calls_threshold = max(client.pending_calls_threshold, 2 * self.window)
        # A new connection: what waited for a receipt goes again first, since the broker
        # that acknowledged it may have died before delivering it (or the receipt).
        self.spool.unsend_all()
        while True:
            self._wake.clear()
            messages = self.spool.due(self.window, now=time.time(), resend_after=self.resend_after)
            if not messages:
                await self._wait_for_work()
                continue
            resent = sum(1 for m in messages if m.sends)
            refused_before = self.refusals.count
            # Publish calls are made in order, so the broker receives them in order.
            await asyncio.gather(*(client.publish(m.topic, m.payload, qos=1) for m in messages))
            ids = [m.id for m in messages]
            self.stats.published += len(messages)
            self.stats.resent += resent
            refused = self.refusals.count - refused_before
            if not refused and self.receipts:
                self.spool.mark_sent(ids, time.time())
            elif not refused:
                self.spool.remove(ids)
            else:
                # Retrying cannot help (the ACL says no); keeping them would block the spool.
                self.spool.remove(ids)
                self.stats.refused += refused
                logger.error(
                    "the broker refused %d of %d telemetry messages (%s): check this agent's "
                    "ACL; they are dropped",
                    refused,
                    len(messages),
                    self.refusals.last_reason,
                )
            async with self.changed:
                self.changed.notify_all()

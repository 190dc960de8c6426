"""The alerts engine: vision events and Wi-Fi telemetry in, alerts with a lifecycle out.

Per event, one transaction: store the event, open or repeat the alert (severity and
auto-resolve time from the rules, muted by a maintenance window or an open camera
offline/tamper alert), log the change and stage its MQTT and police deliveries; then
acknowledge the MQTT message. A sweep resolves alerts whose condition stayed clear,
escalates unacknowledged ones, and notices a changed rules file.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiomqtt
import asyncpg

from protocol import (
    EVENT,
    TELEMETRY,
    Background,
    EventKind,
    MqttEndpoint,
    PayloadError,
    Province,
    TimeWindow,
    Topics,
    VisionEvent,
    Work,
    acknowledge,
    backoff_delay,
    run_subscriber,
    shared,
)
from store import DB_ERRORS, Connection, DeadLetter, StoreConfig, create_pool, record_dead_letters

from ._channels import notify
from ._evidence import EvidenceCollector
from ._model import AlertView, Observation
from ._mqtt_publisher import MqttPublisher
from ._repository import (
    escalate_due,
    inhibitor,
    lock_change_log,
    mute_others,
    observe,
    release_inhibited,
    resolve_cleared,
)
from ._routing import Routing, publish_routing, routing_from
from ._rulebook import RuleBook
from ._rules import INFRA_KINDS, ClipWindow, Rules
from ._rules_file import parse_rules
from ._wifi import AccessPointWatch

logger = logging.getLogger(__name__)
CONSUMER = "alerts"
EVENTS_IN_FLIGHT = 200
"""Unacknowledged events the broker may send (MQTT 5 receive maximum; a 3.1.1 broker uses
its own window, Mosquitto's is 20): the most one transaction takes."""


@dataclass(frozen=True, slots=True)
class OpenedAlert:
    """An alert a batch opened, with the evidence clip its rule orders."""

    alert: AlertView
    clip: ClipWindow


@dataclass
class AlertsStats:
    events: int = 0
    changes: int = 0
    dead_letters: int = 0
    telemetry_batches: int = 0
    sweeps: int = 0


class AlertsEngine(Background):
    """Consumes ``events/+`` (QoS 1, acknowledged after commit) and ``wifi/+/telemetry``
    (QoS 0: each batch restates the APs' conditions)."""

    def __init__(
        self,
        endpoint: MqttEndpoint,
        store: StoreConfig,
        province: Province,
        *,
        topics: Topics | None = None,
        identifier: str = "alerts-1",
        rules: RuleBook | None = None,
        sweep_interval: float = 1.0,
        watch_wifi: bool = True,
        wifi_group: str | None = None,
        evidence: EvidenceCollector | None = None,
        publish_mqtt: bool = True,
        time_window: TimeWindow | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.store = store
        self.topics = topics or Topics()
        self.identifier = identifier
        self.book = rules or RuleBook.fixed(parse_rules({}, province))
        self.sweep_interval = sweep_interval
        self.watch_wifi = watch_wifi
        self.wifi_group = wifi_group
        self.evidence = evidence
        self.time_window = time_window or TimeWindow()
        """Events and telemetry with an edge time outside it are refused (dead letters)."""
        self.publisher = (
            MqttPublisher(endpoint, store, identifier=f"{identifier}-publisher")
            if publish_mqtt
            else None
        )
        """Drains the MQTT outbox the engine's changes fill (off: another process does)."""
        self.districts = {c.id: province.district_id(c.district) for c in province.cameras}
        self.access_points = AccessPointWatch(province)
        self.stats = AlertsStats()
        self._pool: asyncpg.Pool | None = None
        self._progress = asyncio.Condition()
        self._subscribed = asyncio.Event()
        self._inbox: asyncio.Queue[tuple[aiomqtt.Client, aiomqtt.Message]] = asyncio.Queue()
        self._events_client: aiomqtt.Client | None = None
        self._routing_for: tuple[int, Routing] = (
            0,
            routing_from(self.book.rules, self.topics.prefix),
        )
        self._published_loads = 0

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError(f"{type(self).__name__} is used outside its 'async with'")
        return self._pool

    @property
    def rules(self) -> Rules:
        return self.book.rules

    @property
    def routing(self) -> Routing:
        loads, routing = self._routing_for
        if loads != self.book.loads:
            routing = routing_from(self.book.rules, self.topics.prefix)
            self._routing_for = (self.book.loads, routing)
        return routing

    async def _start(self, stack: contextlib.AsyncExitStack) -> Work:
        self._pool = await create_pool(self.store)
        stack.push_async_callback(self._pool.close)
        async with self._pool.acquire() as conn:
            await self._publish_routing(conn)
            await self.access_points.seed(conn)
        work: Work = {
            "alerts-events": run_subscriber(
                self.endpoint,
                self.identifier,
                [(self.topics.all_events(), 1)],
                self._on_event,
                manual_ack=True,
                on_connect=self._on_events_connect,
                receive_maximum=EVENTS_IN_FLIGHT,
            )
        }
        if self.watch_wifi:
            # Its own client (and optionally its own shared group) next to ingest's: every
            # telemetry batch reaches both, and ingest's acknowledgements are not ours. QoS 0
            # and a clean session: every batch restates each AP's condition, so a batch
            # missed while we were away is made good by the next one, and the broker keeps
            # no backlog or acknowledgements for us.
            wifi_filter = self.topics.all_telemetry()
            if self.wifi_group:
                wifi_filter = shared(self.wifi_group, wifi_filter)
            work["alerts-wifi"] = run_subscriber(
                self.endpoint,
                f"{self.identifier}-wifi",
                [(wifi_filter, 0)],
                lambda client, message: self._retry(lambda: self._on_telemetry(client, message)),
                persistent=False,
                on_connect=self._on_connect,
            )
        if self.publisher is not None:
            await stack.enter_async_context(self.publisher)
        self._expected_subscriptions = len(work)
        work["alerts-events-writer"] = self._event_loop()
        work["alerts-sweep"] = self._sweep_loop()
        return work

    async def _on_connect(self, client: aiomqtt.Client) -> None:
        self._expected_subscriptions -= 1
        if self._expected_subscriptions <= 0:
            self._subscribed.set()

    async def wait_until_subscribed(self) -> None:
        await self._subscribed.wait()

    async def _publish_routing(self, conn: Connection) -> None:
        loads = self.book.loads
        if loads != self._published_loads:
            await publish_routing(conn, self.routing)
            self._published_loads = loads

    async def _advance(self, **increments: int) -> None:
        async with self._progress:
            for name, n in increments.items():
                setattr(self.stats, name, getattr(self.stats, name) + n)
            self._progress.notify_all()

    async def wait_for(self, predicate: Callable[[AlertsStats], bool]) -> None:
        """Return once ``predicate(stats)`` holds (tests and benchmarks)."""
        async with self._progress:
            await self._progress.wait_for(lambda: predicate(self.stats))

    async def wait_for_events(self, handled: int) -> None:
        """Return once ``handled`` events (and dead letters) are committed."""
        await self.wait_for(lambda s: s.events + s.dead_letters >= handled)

    async def _retry(self, write: Callable[[], Awaitable[None]]) -> None:
        """``write``, retried with backoff while the store is away: its messages stay
        unacknowledged meanwhile, and the subscribers stay up."""
        attempt = 0
        while True:
            try:
                await write()
            except DB_ERRORS as exc:
                attempt += 1
                delay = backoff_delay(attempt)
                logger.warning("store write failed (%s); retrying in %.2f seconds", exc, delay)
                await asyncio.sleep(delay)
            else:
                return

    async def _on_events_connect(self, client: aiomqtt.Client) -> None:
        self._events_client = client
        await self._on_connect(client)

    async def _on_event(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        # At most EVENTS_IN_FLIGHT: the broker sends no more until some are acknowledged.
        self._inbox.put_nowait((client, message))

    async def _event_loop(self) -> None:
        """Events in the order they came, as many at a time as have arrived: one transaction
        and one commit for all of them, so a burst of incidents (a storm, a power cut) costs
        one disk flush instead of one per event."""
        while True:
            batch = [await self._inbox.get()]
            while not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            # A message held for a connection that has since dropped cannot be acknowledged:
            # the broker sends it again on the new session, where it is handled.
            batch = [(c, m) for c, m in batch if c is self._events_client]
            if batch:
                await self._retry(functools.partial(self._handle_isolating, batch))

    async def _handle_isolating(self, batch: list[tuple[aiomqtt.Client, aiomqtt.Message]]) -> None:
        """Handle the batch; when something other than the store fails, handle its events one
        by one, so the one the code cannot take becomes a dead letter and the rest go on."""
        try:
            await self._handle_events(batch)
        except DB_ERRORS:
            raise
        except Exception as exc:
            if len(batch) > 1:
                for item in batch:
                    await self._retry(functools.partial(self._handle_isolating, [item]))
                return
            client, message = batch[0]
            logger.exception("event on %s cannot be handled; dead letter", message.topic.value)
            payload = message.payload if isinstance(message.payload, bytes) else b""
            reason = f"cannot handle: {type(exc).__name__}: {exc}"
            letter = DeadLetter(CONSUMER, message.topic.value, reason, payload)
            async with self.pool.acquire() as conn:
                await record_dead_letters(conn, [letter])
            acknowledge(client, message)
            await self._advance(dead_letters=1)

    async def _handle_events(self, batch: list[tuple[aiomqtt.Client, aiomqtt.Message]]) -> None:
        events: dict[tuple[str, str], VisionEvent] = {}
        dead: list[DeadLetter] = []
        for _, message in batch:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            try:
                event = EVENT.decode(payload)
                self.time_window.check(event)
            except PayloadError as exc:
                logger.warning("dead letter on %s: %s", message.topic.value, exc.reason)
                dead.append(DeadLetter(CONSUMER, message.topic.value, exc.reason, payload))
            else:
                # The same event twice in one batch (an edge or worker resending what it was
                # unsure of) is one row: events are keyed by id, phase and transaction time.
                events.setdefault((event.event_id, event.phase), event)
        changes = 0
        opened: list[OpenedAlert] = []
        async with self.pool.acquire() as conn, conn.transaction():
            if dead:
                await record_dead_letters(conn, dead)
            # One statement for the batch (unnest, not executemany: every engine takes it).
            rows = list(events.values())
            if rows:
                await conn.execute(
                    """INSERT INTO events (event_id, phase, kind, camera_id, zone_id, line_id,
                           direction, started_at, ended_at, score)
                       SELECT i, p, k, c, z, l, d, to_timestamp(s), to_timestamp(e), sc
                       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                   $6::text[], $7::text[], $8::float8[], $9::float8[], $10::real[])
                            AS u(i, p, k, c, z, l, d, s, e, sc)""",
                    [e.event_id for e in rows],
                    [e.phase for e in rows],
                    [str(e.kind) for e in rows],
                    [e.camera_id for e in rows],
                    [e.zone_id for e in rows],
                    [e.line_id for e in rows],
                    [e.direction for e in rows],
                    [e.started_at for e in rows],
                    [e.ended_at for e in rows],
                    [e.score for e in rows],
                )
            for event in rows:
                if event.phase == "instant":
                    continue
                observation = Observation(
                    event_id=event.event_id,
                    kind=event.kind,
                    source_id=event.camera_id,
                    zone_id=event.zone_id or event.gate_id,
                    phase=event.phase,
                    at=(event.ended_at or event.started_at)
                    if event.phase == "end"
                    else event.started_at,
                    frame_captured_at=event.frame_captured_at or None,
                    speed_kmh=event.speed_kmh,
                    limit_kmh=event.limit_kmh,
                )
                district = self.districts.get(event.camera_id, "unknown")
                changes += await self.apply(conn, observation, district, opened)
        for new in opened:  # committed now: the evidence row may refer to it
            alert = new.alert
            if self.evidence is not None and alert.kind != EventKind.CAMERA_OFFLINE:
                self.evidence.request(
                    alert.source_id, alert.id, pre=new.clip.pre, post=new.clip.post
                )
        for client, message in batch:
            acknowledge(client, message)
        await self._advance(events=len(batch) - len(dead), changes=changes, dead_letters=len(dead))

    async def apply(
        self,
        conn: Connection,
        obs: Observation,
        district: str,
        opened: list[OpenedAlert] | None = None,
    ) -> int:
        """Turn one observation into alert changes, inside the caller's transaction; alerts
        it opens are appended to ``opened``."""
        await lock_change_log(conn)
        rules, routing = self.rules, self.routing
        over = None
        if obs.speed_kmh is not None and obs.limit_kmh is not None:
            over = obs.speed_kmh - obs.limit_kmh
        decision = rules.decide(
            obs.kind, obs.source_id, obs.zone_id, district, obs.at, over_limit_kmh=over
        )
        muted: str | None = None
        if obs.phase != "end":
            window = rules.maintenance(obs.source_id, obs.zone_id, obs.at)
            if window is not None:
                muted = f"maintenance:{window}"
            elif obs.kind not in INFRA_KINDS:
                by = await inhibitor(conn, obs.source_id)
                muted = None if by is None else f"inhibited:{by}"
        result = await observe(
            conn,
            obs,
            district,
            decision.severity,
            auto_resolve_seconds=decision.auto_resolve_seconds,
            rule=decision.rule,
            suppressed_by=muted,
            grouping=rules.spec.incidents,
        )
        if result is None:
            return 0
        alert, reason = result
        await notify(conn, alert, reason, routing)
        if reason == "opened" and opened is not None:
            opened.append(OpenedAlert(alert, decision.clip))
        changes = 1
        if reason == "opened" and alert.kind in INFRA_KINDS:
            for other in await mute_others(conn, alert):
                await notify(conn, other, "muted", routing)
                changes += 1
        return changes

    async def _on_telemetry(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        payload = message.payload if isinstance(message.payload, bytes) else b""
        try:
            batch = TELEMETRY.decode(payload)
            self.time_window.check(batch)
        except PayloadError as exc:
            # Ingest keeps the dead letter for this payload; one copy is enough.
            logger.debug("unreadable telemetry on %s: %s", message.topic.value, exc.reason)
            acknowledge(client, message)
            return
        observations, after = self.access_points.assess(batch, self.rules.spec.access_points)
        changes = 0
        if observations:
            district = self.access_points.district(batch.ap_id)
            async with self.pool.acquire() as conn, conn.transaction():
                for obs in observations:
                    changes += await self.apply(conn, obs, district)
        self.access_points.commit(batch.ap_id, after)
        acknowledge(client, message)
        await self._advance(telemetry_batches=1, changes=changes)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            self.book.reload_if_changed()
            try:
                changes = await self.sweep()
            except DB_ERRORS as exc:
                logger.warning("alerts sweep failed: %s", exc)
                changes = 0
            await self._advance(sweeps=1, changes=changes)

    async def sweep(self) -> int:
        """Publish changed routing, auto-resolve cleared alerts, escalate unacknowledged ones."""
        changes = 0
        async with self.pool.acquire() as conn:
            await self._publish_routing(conn)
            async with conn.transaction():
                await lock_change_log(conn)
                routing = self.routing
                for alert in await resolve_cleared(conn):
                    changes += await self._resolved(conn, alert, routing)
                escalation = self.rules.spec.escalation
                for alert in await escalate_due(
                    conn,
                    [str(s) for s in escalation.severities],
                    escalation.after_minutes,
                    escalation.max_level,
                ):
                    await notify(conn, alert, "escalated", routing)
                    changes += 1
        return changes

    async def _resolved(self, conn: Connection, alert: AlertView, routing: Routing) -> int:
        await notify(conn, alert, "resolved", routing)
        changes = 1
        if alert.kind in INFRA_KINDS:
            for released in await release_inhibited(conn, alert.id):
                await notify(conn, released, "unmuted", routing)
                changes += 1
        return changes

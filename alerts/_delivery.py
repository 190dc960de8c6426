"""The police delivery worker: sends staged CAP messages as Standard Webhooks.

Each endpoint has its own tasks (``concurrency`` slots), HTTP clients and timeouts, so an
endpoint that hangs or answers garbage delays only its own deliveries. Slots send different
incidents in parallel; an incident's messages go one after the other in staging order (an
Update never overtakes its Alert). Each attempt runs in a transaction that keeps the
delivery row locked while sending: another slot or worker process skips it, and a worker
killed mid-send leaves it pending, to be sent again with the same ``webhook-id``
(receivers deduplicate on it).

Failures back off exponentially with jitter, or as long as ``Retry-After`` says; a 410 Gone
disables the endpoint until :func:`enable_endpoint`. After N consecutive failures (or a 410)
a ``delivery_failed`` alert is raised for operators; it clears on the next success.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import asyncpg
import httpx
from standardwebhooks import Webhook

from protocol import EventKind, backoff_delay, stop_tasks
from store import DB_ERRORS, Connection, StoreConfig, close_connection, connect, create_pool

from ._channels import notify
from ._model import Observation
from ._repository import lock_change_log, observe
from ._retry import Outcome, backoff, retry_after_seconds
from ._routing import load_routing
from ._rulebook import RuleBook
from ._rules import Endpoint, Rules

logger = logging.getLogger(__name__)
CONTENT_TYPE = "application/xml; charset=utf-8"
_HEAD = """NOT EXISTS (SELECT 1 FROM police_deliveries e
                     WHERE e.endpoint_id = d.endpoint_id AND e.alert_id = d.alert_id
                       AND e.status = 'pending' AND e.seq < d.seq)"""
"""The delivery is the first pending message of its incident for its endpoint."""


@dataclass
class DeliveryStats:
    attempts: int = 0
    delivered: int = 0
    failures: int = 0
    endpoints_disabled: int = 0
    failure_alerts: int = 0


async def enable_endpoint(conn: Connection, endpoint_id: str) -> None:
    """Re-enable an endpoint disabled by a 410; its pending deliveries go out again."""
    await conn.execute(
        """UPDATE police_endpoints SET disabled_at = NULL, disabled_reason = NULL,
                  consecutive_failures = 0 WHERE id = $1""",
        endpoint_id,
    )
    await conn.execute("SELECT pg_notify('police_deliveries', '')")


@dataclass
class _Served:
    """An endpoint being served: its slots' tasks and wake-up events."""

    endpoint: Endpoint
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    wakes: list[asyncio.Event] = field(default_factory=list)

    def wake_all(self) -> None:
        for wake in self.wakes:
            wake.set()


class DeliveryWorker:
    def __init__(
        self,
        store: StoreConfig,
        rules: RuleBook,
        *,
        locked_retry_seconds: float = 5.0,
    ) -> None:
        self.store = store
        self.book = rules
        self.locked_retry_seconds = locked_retry_seconds
        self.stats = DeliveryStats()
        self._serving: dict[str, _Served] = {}
        self._progress = asyncio.Condition()
        self._stack = contextlib.AsyncExitStack()
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError(f"{type(self).__name__} is used outside its 'async with'")
        return self._pool

    async def __aenter__(self) -> Self:
        self._pool = await create_pool(self.store)
        self._stack.push_async_callback(self._pool.close)
        listener, lost = await self._listen()
        self._group = await self._stack.enter_async_context(asyncio.TaskGroup())
        self._listener = self._group.create_task(
            self._keep_listening(listener, lost), name="police-listener"
        )
        self._reconcile(self.book.rules)
        self.book.add_listener(self._reconcile)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.book.remove_listener(self._reconcile)
        await stop_tasks(
            [self._listener, *(task for served in self._serving.values() for task in served.tasks)]
        )
        await self._stack.__aexit__(exc_type, exc, tb)

    def _on_notify(self, conn: object, pid: int, channel: str, payload: object) -> None:
        for served in self._serving.values():
            served.wake_all()

    async def _listen(self) -> tuple[Connection, asyncio.Event]:
        lost = asyncio.Event()
        conn = await connect(self.store)
        conn.add_termination_listener(lambda _: lost.set())
        await conn.add_listener("police_deliveries", self._on_notify)
        return conn, lost

    async def _keep_listening(self, conn: Connection, lost: asyncio.Event) -> None:
        """Hold the LISTEN connection; when it is lost (a database restart), connect again
        and wake every slot: a slot with nothing due waits for a notification only, and
        those sent meanwhile were lost with the connection."""
        attempt = 0
        try:
            while True:
                await lost.wait()
                await close_connection(conn)
                while True:
                    try:
                        conn, lost = await self._listen()
                        break
                    except DB_ERRORS as exc:
                        attempt += 1
                        delay = backoff_delay(attempt)
                        logger.warning(
                            "police: cannot listen to the store (%s); again in %.2f s", exc, delay
                        )
                        await asyncio.sleep(delay)
                attempt = 0
                self._on_notify(conn, 0, "police_deliveries", "")
        finally:
            await close_connection(conn)

    def _reconcile(self, rules: Rules) -> None:
        """Serve exactly the endpoints the rules name (restarting any whose URL, secret or
        timeout changed)."""
        wanted = {e.id: e for e in rules.endpoints}
        for endpoint_id, served in list(self._serving.items()):
            if wanted.get(endpoint_id) != served.endpoint:
                for task in served.tasks:
                    task.cancel()
                del self._serving[endpoint_id]
        for endpoint_id, endpoint in wanted.items():
            if endpoint_id not in self._serving:
                served = _Served(endpoint)
                for slot in range(endpoint.concurrency):
                    wake = asyncio.Event()
                    served.wakes.append(wake)
                    served.tasks.append(
                        self._group.create_task(
                            self._serve(served, wake), name=f"police-{endpoint_id}-{slot}"
                        )
                    )
                self._serving[endpoint_id] = served

    async def wait_for(self, predicate: Callable[[DeliveryStats], bool]) -> None:
        async with self._progress:
            await self._progress.wait_for(lambda: predicate(self.stats))

    async def _count(self, **increments: int) -> None:
        async with self._progress:
            for name, n in increments.items():
                setattr(self.stats, name, getattr(self.stats, name) + n)
            self._progress.notify_all()

    async def _serve(self, served: _Served, wake: asyncio.Event) -> None:
        """One slot of an endpoint: takes due messages one at a time."""
        endpoint = served.endpoint
        signer = Webhook(endpoint.secret)
        timeout = httpx.Timeout(endpoint.timeout_seconds)
        db_failures = 0
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
            while True:
                wake.clear()  # before looking: a NOTIFY while we look wakes the next wait
                try:
                    delay = await self._attempt(endpoint, signer, http)
                    db_failures = 0
                except DB_ERRORS as exc:
                    db_failures += 1
                    delay = backoff_delay(db_failures)
                    logger.warning(
                        "police %s: store unavailable (%s); retrying in %.2f seconds",
                        endpoint.id,
                        exc,
                        delay,
                    )
                if delay == 0:
                    served.wake_all()  # a message of an incident others wait behind is out
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), delay)

    async def _attempt(
        self, endpoint: Endpoint, signer: Webhook, http: httpx.AsyncClient
    ) -> float | None:
        """Send the endpoint's oldest pending message if it is due. Returns 0 to go on at
        once, seconds to wait, or None to wait for new work."""
        async with self.pool.acquire() as conn, conn.transaction():
            # The oldest due message whose incident has no earlier message pending here;
            # the row stays locked while we send (another slot or worker skips it), and a
            # worker dying mid-send releases it still pending.
            row = await conn.fetchrow(
                f"""SELECT d.seq, d.webhook_id, d.attempts, m.body
                   FROM police_deliveries d JOIN cap_messages m USING (identifier)
                   WHERE d.endpoint_id = $1 AND d.status = 'pending'
                     AND d.next_attempt_at <= now() AND {_HEAD}
                   ORDER BY d.seq LIMIT 1
                   FOR UPDATE OF d SKIP LOCKED""",
                endpoint.id,
            )
            if row is None:
                wait: float | None = await conn.fetchval(
                    f"""SELECT extract(epoch FROM min(d.next_attempt_at) - now())::float8
                        FROM police_deliveries d
                        WHERE d.endpoint_id = $1 AND d.status = 'pending' AND {_HEAD}""",
                    endpoint.id,
                )
                if wait is None:
                    return None
                # Due but taken (another slot, another worker) or behind its incident's
                # earlier message: a sibling's finish wakes us; this bounds the wait.
                return wait if wait > 0 else self.locked_retry_seconds
            # Checked with the row locked, in a fresh snapshot: a slot that was just told
            # 410 Gone about this very row has committed, and we see it.
            disabled = await conn.fetchval(
                "SELECT disabled_at FROM police_endpoints WHERE id = $1", endpoint.id
            )
            if disabled is not None:
                return None
            outcome = await self._post(http, signer, endpoint, row["webhook_id"], row["body"])
            counts = await self._record(conn, endpoint, row["seq"], row["attempts"] + 1, outcome)
        await self._count(**counts)  # after the commit: whoever waits on these sees it stored
        return 0

    async def _post(
        self,
        http: httpx.AsyncClient,
        signer: Webhook,
        endpoint: Endpoint,
        webhook_id: str,
        body: str,
    ) -> Outcome:
        sent_at = datetime.fromtimestamp(int(time.time()), UTC)
        headers = {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": signer.sign(webhook_id, sent_at, body),
            "content-type": CONTENT_TYPE,
            "user-agent": "ioc-alerts",
        }
        await self._count(attempts=1)
        try:
            # httpx's timeout bounds each read; this bounds the whole exchange (a server
            # dripping one byte a second must not hold the endpoint's queue forever).
            async with (
                asyncio.timeout(endpoint.timeout_seconds),
                # Streamed and never read: only the status and headers count, so a receiver
                # answering with gigabytes costs nothing.
                http.stream(
                    "POST", endpoint.url, content=body.encode(), headers=headers
                ) as response,
            ):
                pass
        except TimeoutError:
            return Outcome(False, error=f"no answer within {endpoint.timeout_seconds:g} s")
        except httpx.HTTPError as exc:
            return Outcome(False, error=f"{type(exc).__name__}: {exc}"[:500])
        if 200 <= response.status_code < 300:
            return Outcome(True, response.status_code)
        return Outcome(
            False,
            response.status_code,
            f"HTTP {response.status_code}",
            retry_after_seconds(response.headers.get("retry-after"), time.time()),
        )

    async def _record(
        self, conn: Connection, endpoint: Endpoint, seq: int, attempts: int, outcome: Outcome
    ) -> dict[str, int]:
        """Store the outcome of one attempt; returns the stats it adds."""
        policy = self.book.rules.spec.police
        if outcome.delivered:
            await conn.execute(
                """UPDATE police_deliveries SET status = 'delivered', attempts = $2,
                          delivered_at = now(), last_status = $3, last_error = NULL
                   WHERE seq = $1""",
                seq,
                attempts,
                outcome.status,
            )
            failures_before = await conn.fetchval(
                """WITH before AS (SELECT consecutive_failures FROM police_endpoints
                                   WHERE id = $1)
                   INSERT INTO police_endpoints (id, last_success_at) VALUES ($1, now())
                   ON CONFLICT (id) DO UPDATE SET consecutive_failures = 0,
                                                  last_success_at = now()
                   RETURNING (SELECT consecutive_failures FROM before)""",
                endpoint.id,
            )
            if (failures_before or 0) >= policy.failures_before_alert:
                await self._failure_alert(conn, endpoint, "end", "delivered again")
            return {"delivered": 1}
        if outcome.gone:
            delay = 0.0
        elif outcome.retry_after is not None:
            delay = min(outcome.retry_after, policy.retry_after_max_seconds)
        else:
            delay = backoff(attempts, policy)
        await conn.execute(
            """UPDATE police_deliveries SET attempts = $2, last_status = $3, last_error = $4,
                      next_attempt_at = now() + make_interval(secs => $5)
               WHERE seq = $1""",
            seq,
            attempts,
            outcome.status,
            outcome.error,
            delay,
        )
        failures = await conn.fetchval(
            """INSERT INTO police_endpoints (id, consecutive_failures, last_failure_at,
                                             disabled_at, disabled_reason)
               VALUES ($1, 1, now(), CASE WHEN $2 THEN now() END,
                       CASE WHEN $2 THEN 'HTTP 410 Gone' END)
               ON CONFLICT (id) DO UPDATE SET
                   consecutive_failures = police_endpoints.consecutive_failures + 1,
                   last_failure_at = now(),
                   disabled_at = coalesce(police_endpoints.disabled_at, EXCLUDED.disabled_at),
                   disabled_reason = coalesce(police_endpoints.disabled_reason,
                                              EXCLUDED.disabled_reason)
               RETURNING consecutive_failures""",
            endpoint.id,
            outcome.gone,
        )
        logger.warning(
            "police %s: delivery %d failed (%s), attempt %d; next in %.1f s",
            endpoint.id,
            seq,
            outcome.error,
            attempts,
            delay,
        )
        counts = {"failures": 1, "endpoints_disabled": 1 if outcome.gone else 0}
        if outcome.gone:
            logger.error("police %s answered 410 Gone: endpoint disabled", endpoint.id)
        # Every N consecutive failures: raised the first time, repeated (or opened again if
        # an operator resolved it) while the endpoint keeps failing.
        if outcome.gone or failures % policy.failures_before_alert == 0:
            reason = "endpoint disabled (410 Gone)" if outcome.gone else outcome.error or ""
            if await self._failure_alert(conn, endpoint, "start", reason):
                counts["failure_alerts"] = 1
        return counts

    async def _failure_alert(
        self, conn: Connection, endpoint: Endpoint, phase: str, why: str
    ) -> bool:
        """Raise (or clear) the operators' delivery_failed alert for this endpoint."""
        now = time.time()
        rules = self.book.rules
        decision = rules.decide(EventKind.DELIVERY_FAILED, endpoint.id, None, "province", now)
        obs = Observation(
            event_id=f"{endpoint.id}:delivery:{now:.3f}",
            kind=EventKind.DELIVERY_FAILED,
            source_id=endpoint.id,
            zone_id=None,
            phase="start" if phase == "start" else "end",
            at=now,
        )
        await lock_change_log(conn)  # before the alert's row, as every alert change
        result = await observe(
            conn,
            obs,
            "province",
            decision.severity,
            auto_resolve_seconds=decision.auto_resolve_seconds,
            rule=decision.rule,
        )
        if result is None:
            return False
        await notify(conn, result[0], result[1], await load_routing(conn), note=why)
        return True

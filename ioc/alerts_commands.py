"""``ioc alerts run | send-test | enable-endpoint``: the alerts service and its tools."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from alerts import (
    AlertsEngine,
    DeliveryWorker,
    EvidenceCollector,
    Observation,
    RuleBook,
    Rules,
    RulesError,
    check_secret,
    enable_endpoint,
    load_rules,
    notify,
    parse_rules,
    publish_routing,
    routing_from,
    transition,
)
from alerts._repository import observe
from protocol import EventKind, Province, Severity, TimeWindow, load_province, stop_tasks
from store import StoreConfig, connect

from .runtime import Infrastructure, infrastructure, prepare_store, store_config, time_window
from .servers import PostgresCluster
from .settings import PROJECT_ROOT, Settings
from .status import StatusReporter, counters_of

logger = logging.getLogger(__name__)
SEND_TEST_ENDPOINT = "send-test"


class AlertsSettings(BaseSettings):
    """The alerts service's own ``IOC_*`` settings, next to the shared ones."""

    model_config = SettingsConfigDict(env_prefix="IOC_", extra="ignore", frozen=True)

    alert_rules: Path = Field(
        PROJECT_ROOT / "config" / "alert-rules.yaml", description="Alert rules (YAML)"
    )
    alerts_wifi_group: str | None = Field(
        None, description="Shared-subscription group for Wi-Fi telemetry (several alerts replicas)"
    )
    alerts_delivery: bool = Field(
        True, description="Run the police delivery worker in this process"
    )
    alerts_evidence_timeout: float = Field(
        5.0, gt=0, le=60, description="Seconds to wait for an edge's evidence snapshot"
    )


@contextlib.asynccontextmanager
async def alerts_service(
    infra: Infrastructure,
    book: RuleBook,
    *,
    delivery: bool = True,
    wifi_group: str | None = None,
    evidence_timeout: float = 5.0,
    time_window: TimeWindow | None = None,
) -> AsyncIterator[AlertsEngine]:
    """The engine (with its MQTT publisher) and evidence collector, and (optionally) the
    police delivery worker."""
    async with contextlib.AsyncExitStack() as stack:
        evidence = await stack.enter_async_context(
            EvidenceCollector(
                infra.endpoint, infra.store, topics=infra.topics, timeout=evidence_timeout
            )
        )
        engine = await stack.enter_async_context(
            AlertsEngine(
                infra.endpoint,
                infra.store,
                infra.province,
                topics=infra.topics,
                rules=book,
                wifi_group=wifi_group,
                evidence=evidence,
                time_window=time_window,
            )
        )
        if delivery:
            await stack.enter_async_context(DeliveryWorker(infra.store, book))
        yield engine


def run_alerts(settings: Settings) -> None:
    own = AlertsSettings()

    async def run() -> None:
        async with infrastructure(settings) as infra:
            book = RuleBook(own.alert_rules, infra.province)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            uninstall = book.install_sighup()
            try:
                async with alerts_service(
                    infra,
                    book,
                    delivery=own.alerts_delivery,
                    wifi_group=own.alerts_wifi_group,
                    evidence_timeout=own.alerts_evidence_timeout,
                    time_window=time_window(settings),
                ) as engine:
                    # "running" is reported once the subscriptions exist (benchmarks wait
                    # for it before anything publishes events).
                    waits = [
                        asyncio.create_task(engine.wait_until_subscribed()),
                        asyncio.create_task(stop.wait()),
                    ]
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                    await stop_tasks(waits)
                    async with StatusReporter(
                        infra.endpoint,
                        infra.topics,
                        "alerts-1",
                        "alerts",
                        lambda: counters_of(engine.stats),
                    ):
                        logger.info("alerts service running (rules %s)", own.alert_rules)
                        await stop.wait()
                        logger.info("alerts service stopping")
            finally:
                uninstall()
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(signum)

    asyncio.run(run())


def check_rules(settings: Settings, path: Path | None) -> int:
    """0 when the file would be taken, 2 (with every problem on stderr) when not."""
    path = path or AlertsSettings().alert_rules
    try:
        rules = load_rules(path, load_province(settings.province))
    except RulesError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    sys.stdout.write(
        f"{path}: ok ({len(rules.spec.rules)} rules, {len(rules.spec.maintenance)} maintenance "
        f"windows, {len(rules.endpoints)} police endpoints)\n"
    )
    return 0


def enable(settings: Settings, endpoint_id: str) -> None:
    async def run() -> None:
        async with infrastructure(settings, prepare=False) as infra:
            conn = await connect(infra.store)
            try:
                await enable_endpoint(conn, endpoint_id)
            finally:
                await conn.close()

    asyncio.run(run())


@dataclass(frozen=True, slots=True)
class SendTestResult:
    delivered: list[tuple[str, int | None]]
    """(CAP msgType, HTTP status) of each message delivered, in order."""
    failures: list[str]


def _police_profile(path: Path) -> dict[str, Any]:
    """Sender, name and circle radius from the rules file if it has them (best effort: the
    test does not need the file's endpoints or their secrets)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        police = raw.get("police") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        return {}
    keys = ("sender", "sender_name", "circle_radius_km")
    return {k: police[k] for k in keys if isinstance(police, dict) and k in police}


def send_test_rules(
    province: Province, to: str, secret: str, profile: dict[str, Any], max_failures: int
) -> Rules:
    return parse_rules(
        {
            "routes": {"police": {"min_severity": "info"}},
            "police": {
                **profile,
                "failures_before_alert": max_failures,
                "backoff_base_seconds": 0.5,
                "backoff_max_seconds": 5,
                "retry_after_max_seconds": 30,
                "endpoints": [
                    {
                        "id": SEND_TEST_ENDPOINT,
                        "url": to,
                        "allow_plain_http": True,
                        "secret_env": "IOC_SEND_TEST_SECRET",
                        "timeout_seconds": 10,
                    }
                ],
            },
        },
        province,
        "send-test",
        environ={"IOC_SEND_TEST_SECRET": secret},
    )


async def _stage_sample_incident(store: StoreConfig, rules: Rules, province: Province) -> str:
    """Alert, Update, Cancel of one sample intrusion, staged through the real outbox."""
    camera = province.cameras[0] if province.cameras else None
    conn = await connect(store)
    try:
        routing = routing_from(rules)
        await publish_routing(conn, routing)
        obs = Observation(
            event_id=f"send-test:{time.time():.3f}",
            kind=EventKind.INTRUSION,
            source_id=camera.id if camera else "send-test",
            zone_id="send-test",
            phase="start",
            at=time.time(),
        )
        district = province.district_id(camera.district) if camera else "province"
        async with conn.transaction():
            result = await observe(conn, obs, district, Severity.MAJOR, rule="send-test")
            if result is None:
                raise RuntimeError("the sample incident did not open an alert")
            await notify(conn, *result, routing, status="Test", actor="send-test")
        alert_id = result[0].id
        await transition(conn, alert_id, "acknowledge", actor="send-test", cap_status="Test")
        await transition(
            conn, alert_id, "resolve", actor="send-test", note="test only", cap_status="Test"
        )
        return alert_id
    finally:
        await conn.close()


async def send_test(
    store: StoreConfig, rules: Rules, province: Province, *, give_up_after: float
) -> SendTestResult:
    alert_id = await _stage_sample_incident(store, rules, province)
    policy = rules.spec.police
    async with DeliveryWorker(store, RuleBook.fixed(rules)) as worker:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                worker.wait_for(
                    lambda s: (
                        s.delivered >= 3
                        or s.endpoints_disabled > 0
                        or s.failures >= policy.failures_before_alert
                    )
                ),
                give_up_after,
            )
    conn = await connect(store)
    try:
        rows = await conn.fetch(
            """SELECT m.msg_type, d.status, d.last_status, d.last_error, d.attempts
               FROM police_deliveries d JOIN cap_messages m USING (identifier)
               WHERE m.alert_id = $1 ORDER BY d.seq""",
            uuid.UUID(alert_id),
        )
    finally:
        await conn.close()
    delivered = [(r["msg_type"], r["last_status"]) for r in rows if r["status"] == "delivered"]
    failures = [
        f"{r['msg_type']}: not delivered after {r['attempts']} attempt(s)"
        + (f" (last: {r['last_error']})" if r["last_error"] else "")
        for r in rows
        if r["status"] != "delivered"
    ]
    return SendTestResult(delivered, failures)


@contextlib.asynccontextmanager
async def _store_for_test(settings: Settings, province: Province) -> AsyncIterator[StoreConfig]:
    """The configured store, or a private throw-away cluster when none is configured."""
    if settings.database_url is not None:
        store = store_config(settings, settings.database_url.get_secret_value())
        await prepare_store(store, province)
        yield store
        return
    with tempfile.TemporaryDirectory(prefix="ioc-send-test-") as root:
        cluster = PostgresCluster(Path(root) / "postgres", durable=False)
        await asyncio.to_thread(cluster.start)
        try:
            store = store_config(settings, cluster.url)
            await prepare_store(store, province)
            yield store
        finally:
            await asyncio.to_thread(cluster.stop, "immediate")


def run_send_test(
    settings: Settings,
    to: str,
    secret: str,
    *,
    timeout: float,
    max_failures: int,
) -> int:
    """Exit status: 0 when Alert, Update and Cancel were all delivered."""
    problem = check_secret(secret)
    if problem:
        sys.stderr.write(f"error: the secret {problem}\n")
        return 2
    province = load_province(settings.province)
    profile = _police_profile(AlertsSettings().alert_rules)
    try:
        rules = send_test_rules(province, to, secret, profile, max_failures)
    except RulesError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2

    async def run() -> SendTestResult:
        async with _store_for_test(settings, province) as store:
            return await send_test(store, rules, province, give_up_after=timeout)

    result = asyncio.run(run())
    for msg_type, status in result.delivered:
        sys.stdout.write(f"{msg_type}: delivered (HTTP {status})\n")
    for failure in result.failures:
        sys.stdout.write(f"{failure}\n")
    ok = len(result.delivered) == 3 and not result.failures
    sys.stdout.write("all three messages delivered\n" if ok else "send-test FAILED\n")
    return 0 if ok else 1

"""Police delivery through the outbox to a real local HTTP receiver that fails, hangs,
answers garbage, says 410 or Retry-After, and recovers: every CAP message arrives signed,
valid against the CAP 1.2 schema, in order, and is processed once per webhook-id."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from email.utils import formatdate
from typing import Any

import asyncpg
import pytest
from conftest import DATA
from lxml import etree
from police_receiver import ENDLESS_CAP, Receiver, police_receiver

from alerts import (
    CAP_NS,
    DeliveryWorker,
    Observation,
    RuleBook,
    Rules,
    enable_endpoint,
    list_alerts,
    notify,
    parse_rules,
    publish_routing,
    routing_from,
    transition,
)
from alerts._repository import observe
from alerts._retry import backoff, retry_after_seconds
from protocol import EventKind, Province, Severity
from store import StoreConfig, sync_registry

pytestmark = pytest.mark.postgres
SECRET = "whsec_" + base64.b64encode(b"police-dispatch-shared-secret-32").decode()
SCHEMA = etree.XMLSchema(etree.parse(str(DATA / "cap" / "CAP-v1.2.xsd")))
NS = {"cap": CAP_NS}


def _rules(
    province: Province, receiver: Receiver, endpoints: dict[str, float], concurrency: int = 4
) -> Rules:
    return parse_rules(
        {
            "routes": {"police": {"kinds": ["intrusion"], "min_severity": "major"}},
            "police": {
                "sender": "ioc.test.invalid",
                "failures_before_alert": 2,
                "backoff_base_seconds": 0.01,
                "backoff_max_seconds": 0.05,
                "retry_after_max_seconds": 600,
                "endpoints": [
                    {
                        "id": name,
                        "url": receiver.url(f"/{name}"),
                        "allow_plain_http": True,
                        "secret_env": "IOC_POLICE_SECRET",
                        "timeout_seconds": timeout,
                        "concurrency": concurrency,
                    }
                    for name, timeout in endpoints.items()
                ],
            },
        },
        province,
        environ={"IOC_POLICE_SECRET": SECRET},
    )


async def _incident(
    db: asyncpg.Connection, rules: Rules, *, resolve: bool = True, zone: str = "floor"
) -> str:
    """One intrusion: opened (Alert), acknowledged (Update), resolved (Cancel)."""
    routing = routing_from(rules)
    await publish_routing(db, routing)
    obs = Observation(
        event_id=f"room:intrusion:{zone}",
        kind=EventKind.INTRUSION,
        source_id="indoor-room",
        zone_id=zone,
        phase="start",
        at=time.time(),
    )
    async with db.transaction():
        result = await observe(db, obs, "my-tho", Severity.MAJOR)
        assert result is not None
        await notify(db, *result, routing)
    alert_id = result[0].id
    await transition(db, alert_id, "acknowledge", actor="op1")
    if resolve:
        await transition(db, alert_id, "resolve", actor="op1", note="patrol found nothing")
    return alert_id


def _cap(body: bytes) -> Any:
    doc = etree.fromstring(body)
    SCHEMA.assertValid(doc)
    return doc


def _text(doc: Any, path: str) -> str:
    return str(doc.findtext(path, namespaces=NS))


async def test_every_message_arrives_signed_once_though_one_endpoint_hangs_and_fails(
    database: StoreConfig, db: asyncpg.Connection, clips_province: Province
) -> None:
    await sync_registry(db, clips_province)
    async with police_receiver(SECRET) as receiver:
        receiver.scripts["/flaky"] = ["hang", "garbage", "fail"]
        rules = _rules(clips_province, receiver, {"steady": 5.0, "flaky": 30.0})
        alert_id = await _incident(db, rules)
        async with DeliveryWorker(database, RuleBook.fixed(rules)) as worker:
            # The flaky endpoint holds its first request open; the steady one is not held up.
            await asyncio.wait_for(
                receiver.wait_until(lambda r: len(r.processed["/steady"]) == 3), 15
            )
            assert [r.path for r in receiver.requests].count("/flaky") == 1
            receiver.release_hung.set()
            await asyncio.wait_for(
                receiver.wait_until(lambda r: len(r.processed["/flaky"]) == 3), 15
            )
            await asyncio.wait_for(worker.wait_for(lambda s: s.delivered == 6), 5)
            assert worker.stats.failures == 3
            assert worker.stats.failure_alerts == 1

    assert all(r.signature_valid for r in receiver.requests)
    rows = await db.fetch(
        """SELECT d.webhook_id, d.endpoint_id, d.status, d.attempts, m.msg_type, m.identifier
           FROM police_deliveries d JOIN cap_messages m USING (identifier) ORDER BY d.seq"""
    )
    assert {r["status"] for r in rows} == {"delivered"}
    for endpoint in ("steady", "flaky"):
        ids = [r["webhook_id"] for r in rows if r["endpoint_id"] == endpoint]
        # Processed once each, in staging order; repeats only as retries of the same id.
        assert receiver.processed[f"/{endpoint}"] == ids
        received = [r.headers["webhook-id"] for r in receiver.requests if r.path == f"/{endpoint}"]
        assert set(received) == set(ids)
    flaky_first = next(r for r in rows if r["endpoint_id"] == "flaky")
    assert flaky_first["attempts"] == 4

    docs = [_cap(receiver.bodies[r["webhook_id"]]) for r in rows if r["endpoint_id"] == "steady"]
    assert [_text(d, "cap:msgType") for d in docs] == ["Alert", "Update", "Cancel"]
    alert_msg, update, cancel = docs
    triple = ",".join(
        [
            _text(alert_msg, "cap:sender"),
            _text(alert_msg, "cap:identifier"),
            _text(alert_msg, "cap:sent"),
        ]
    )
    assert _text(update, "cap:references") == triple
    assert _text(cancel, "cap:references").split(" ")[0] == triple
    assert len(_text(cancel, "cap:references").split(" ")) == 2
    assert {_text(d, "cap:incidents") for d in docs} == {alert_id}
    assert _text(cancel, "cap:note") == "resolved by op1: patrol found nothing"
    assert _text(alert_msg, "cap:sent").endswith("+07:00")
    infos = alert_msg.findall("cap:info", NS)
    assert [i.findtext("cap:language", namespaces=NS) for i in infos] == ["vi-VN", "en-US"]
    assert infos[0].findtext("cap:event", namespaces=NS) == "Xâm nhập khu vực cấm"
    assert infos[1].findtext("cap:area/cap:areaDesc", namespaces=NS) == "my-tho"
    assert infos[1].findtext("cap:area/cap:circle", namespaces=NS) == "10.36000,106.36000 0.3"

    # The operators heard about the failing endpoint, and that it recovered.
    [failed] = await list_alerts(db, kinds=["delivery_failed"])
    assert (failed.source_id, failed.severity) == ("flaky", "critical")
    assert failed.cleared_at is not None


async def test_a_hanging_request_holds_only_its_own_incident(
    database: StoreConfig, db: asyncpg.Connection, clips_province: Province
) -> None:
    await sync_registry(db, clips_province)
    async with police_receiver(SECRET) as receiver:
        receiver.scripts["/dispatch"] = ["hang"]
        rules = _rules(clips_province, receiver, {"dispatch": 30.0}, concurrency=2)
        first = await _incident(db, rules, zone="floor")
        async with DeliveryWorker(database, RuleBook.fixed(rules)) as worker:
            # The first incident's Alert hangs; then a second incident comes in.
            await asyncio.wait_for(receiver.wait_until(lambda r: len(r.requests) == 1), 15)
            second = await _incident(db, rules, zone="door")
            await asyncio.wait_for(
                receiver.wait_until(lambda r: len(r.processed["/dispatch"]) == 3), 15
            )
            receiver.release_hung.set()
            await asyncio.wait_for(worker.wait_for(lambda s: s.delivered == 6), 15)
    rows = await db.fetch(
        """SELECT webhook_id, alert_id::text AS alert_id FROM police_deliveries ORDER BY seq"""
    )
    by_incident = {
        a: [r["webhook_id"] for r in rows if r["alert_id"] == a] for a in (first, second)
    }
    processed = receiver.processed["/dispatch"]
    # The second incident went through while the first one's Alert hung ...
    assert processed[:3] == by_incident[second]
    # ... and each incident's messages arrived in order.
    assert processed[3:] == by_incident[first]


async def test_gone_disables_an_endpoint_and_retry_after_is_honoured(
    database: StoreConfig, db: asyncpg.Connection, clips_province: Province
) -> None:
    await sync_registry(db, clips_province)
    async with police_receiver(SECRET) as receiver:
        receiver.scripts["/closing"] = ["gone"]
        receiver.scripts["/busy"] = ["retry:500"]
        rules = _rules(clips_province, receiver, {"closing": 5.0, "busy": 5.0})
        await _incident(db, rules, resolve=False)
        async with DeliveryWorker(database, RuleBook.fixed(rules)) as worker:
            await asyncio.wait_for(
                worker.wait_for(lambda s: s.endpoints_disabled == 1 and s.failures == 2), 10
            )
            disabled = await db.fetchrow(
                "SELECT disabled_at, disabled_reason FROM police_endpoints WHERE id = 'closing'"
            )
            assert disabled is not None
            assert disabled["disabled_reason"] == "HTTP 410 Gone"
            [failed] = await list_alerts(db, kinds=["delivery_failed"])
            assert (failed.source_id, failed.cleared_at) == ("closing", None)
            wait = await db.fetchval(
                """SELECT extract(epoch FROM next_attempt_at - now())::float8
                   FROM police_deliveries WHERE endpoint_id = 'busy' ORDER BY seq LIMIT 1"""
            )
            assert 400 < wait <= 500  # Retry-After, not the 0.05 s backoff
            assert receiver.processed == {}

            await enable_endpoint(db, "closing")
            await db.execute("UPDATE police_deliveries SET next_attempt_at = now()")
            await db.execute("SELECT pg_notify('police_deliveries', '')")
            await asyncio.wait_for(worker.wait_for(lambda s: s.delivered == 4), 10)
    assert [len(receiver.processed[p]) for p in ("/closing", "/busy")] == [2, 2]
    assert all(r.signature_valid for r in receiver.requests)


async def test_a_never_ending_response_body_is_not_read(
    database: StoreConfig, db: asyncpg.Connection, clips_province: Province
) -> None:
    """A receiver that answers 200 and then streams a body for ever (issue 17, item 8):
    each message is delivered at the first attempt and the worker hangs up at once."""
    await sync_registry(db, clips_province)
    async with police_receiver(SECRET) as receiver:
        receiver.scripts["/endless"] = ["endless"] * 3
        rules = _rules(clips_province, receiver, {"endless": 5.0})
        await _incident(db, rules)
        async with DeliveryWorker(database, RuleBook.fixed(rules)) as worker:
            await asyncio.wait_for(worker.wait_for(lambda s: s.delivered == 3), 30)
            await asyncio.wait_for(receiver.wait_until(lambda r: len(r.endless_sent) == 3), 10)
            assert worker.stats.failures == 0
    attempts = await db.fetch("SELECT status, attempts FROM police_deliveries")
    assert {(r["status"], r["attempts"]) for r in attempts} == {("delivered", 1)}
    # Cut off long before the cap: the worker read at most what its socket buffered.
    assert max(receiver.endless_sent) < ENDLESS_CAP // 4, receiver.endless_sent


async def test_a_worker_stopped_mid_send_loses_nothing(
    database: StoreConfig, db: asyncpg.Connection, clips_province: Province
) -> None:
    await sync_registry(db, clips_province)
    async with police_receiver(SECRET) as receiver:
        receiver.scripts["/slow"] = ["hang"]
        rules = _rules(clips_province, receiver, {"slow": 30.0})
        await _incident(db, rules)
        book = RuleBook.fixed(rules)
        async with DeliveryWorker(database, book):
            await asyncio.wait_for(receiver.wait_until(lambda r: len(r.requests) == 1), 10)
        # Stopped while the receiver held the request: the delivery is still pending.
        pending = await db.fetch("SELECT attempts FROM police_deliveries WHERE status = 'pending'")
        assert [r["attempts"] for r in pending] == [0, 0, 0]
        async with DeliveryWorker(database, book) as worker:
            await asyncio.wait_for(worker.wait_for(lambda s: s.delivered == 3), 10)
        with contextlib.suppress(Exception):
            receiver.release_hung.set()
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert ids[0] == ids[1]  # sent again with the same id ...
    assert len(receiver.processed["/slow"]) == 3  # ... and processed once
    assert len(set(receiver.processed["/slow"])) == 3


def test_backoff_grows_with_jitter_and_retry_after_reads_both_forms() -> None:
    policy = _rules(Province(), Receiver(SECRET), {}).spec.police  # base 0.01, max 0.05
    for attempts, step in [(1, 0.01), (2, 0.02), (3, 0.04), (4, 0.05), (40, 0.05)]:
        delays = [backoff(attempts, policy) for _ in range(50)]
        assert all(step / 2 <= d <= step for d in delays), (attempts, delays)
    assert len({backoff(3, policy) for _ in range(20)}) > 1  # jittered
    now = 1_764_000_000.0
    assert retry_after_seconds("120", now) == 120.0
    assert retry_after_seconds(formatdate(now + 30, usegmt=True), now) == 30.0
    assert retry_after_seconds(formatdate(now - 30, usegmt=True), now) == 0.0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None

"""Wi-Fi collectors against a real HTTP controller: good answers, garbage, errors, hangs."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import msgspec
import pytest
from edge_support import ap_entry, controller_server, running

from edge import (
    CollectorError,
    ControllerCollector,
    NewVisitors,
    SimulatedCollector,
    Spool,
    WifiFleet,
    WifiPipeline,
    redact_url,
)
from protocol import TELEMETRY, AccessPoint, Topics

MACS = ["a4:5e:60:12:34:56", "A4-5E-60-12-34-57", "02:00:00:00:00:01"]
HEX16 = re.compile(r"^[0-9a-f]{16}$")


def _collector(url: str, **kwargs: object) -> ControllerCollector:
    return ControllerCollector(
        url,
        ["ap-one", "ap-two"],
        NewVisitors(b"secret-for-tests", "Asia/Ho_Chi_Minh"),
        **kwargs,  # type: ignore[arg-type]  # keyword options of the constructor
    )


async def test_controller_samples_count_clients_and_hash_visitors() -> None:
    with controller_server() as controller:
        controller.access_points = [
            ap_entry("ctl-1", MACS),
            ap_entry("ap-two", MACS[:1], up=False),
            ap_entry("ap-of-someone-else", MACS),
        ]
        collector = _collector(controller.url, token="tok-123", id_map={"ctl-1": "ap-one"})
        try:
            now = time.time()
            first = {r.ap_id: r.sample for r in await collector.collect(now)}
            assert set(first) == {"ap-one", "ap-two"}
            assert first["ap-one"].clients == 3
            assert (first["ap-two"].up, first["ap-two"].clients) == (False, 1)
            assert first["ap-one"].channel_util == 0.25
            visitors = first["ap-one"].visitors
            assert len(visitors) == 3
            assert all(HEX16.fullmatch(v) for v in visitors)
            # The same phone on another AP hashes the same (same day), but counts there too.
            assert first["ap-two"].visitors == visitors[:1]
            wire = msgspec.json.encode(first["ap-one"]).lower()
            for mac in MACS:
                assert mac.lower().replace("-", ":").encode() not in wire
                assert mac.lower().replace(":", "").replace("-", "").encode() not in wire
            # A phone seen already today is not a new visitor.
            controller.access_points[0] = ap_entry("ctl-1", [*MACS, "02:00:00:00:00:09"])
            second = {r.ap_id: r.sample for r in await collector.collect(now + 5)}
            assert second["ap-one"].clients == 4
            assert len(second["ap-one"].visitors) == 1
            assert controller.authorization[-1] == "Bearer tok-123"
        finally:
            await collector.aclose()


def test_visitor_hashes_rotate_daily() -> None:
    visitors = NewVisitors(b"secret-for-tests", "Asia/Ho_Chi_Minh")
    today = visitors.new("ap-one", MACS[:1], 1_700_000_000.0)
    tomorrow = visitors.new("ap-one", MACS[:1], 1_700_000_000.0 + 86_400)
    assert today
    assert tomorrow
    assert today != tomorrow  # new salt: yesterday's hash says nothing about today's


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("garbage", "answer is not JSON"),
        ("schema", "unexpected JSON"),
        ("error", "answered HTTP 500"),
        ("hang", "no answer in time"),
    ],
)
async def test_controller_failures_name_the_source(mode: str, reason: str) -> None:
    with controller_server() as controller:
        controller.mode = mode
        url = controller.url.replace("http://", "http://admin:hunter2@")
        collector = _collector(url, timeout=0.3)
        try:
            with pytest.raises(CollectorError) as caught:
                await collector.collect(time.time())
        finally:
            await collector.aclose()
    assert reason in caught.value.reason
    assert "hunter2" not in str(caught.value)
    assert redact_url(url) in str(caught.value)


async def test_a_never_ending_controller_answer_is_cut_at_the_cap() -> None:
    """A controller streaming for ever (broken, or hostile): the collector stops reading at
    its cap and says so; it does not hold the stream in memory until the edge dies."""
    with controller_server() as controller:
        controller.mode = "endless"
        collector = _collector(controller.url, max_bytes=1 << 20, timeout=30)
        try:
            with pytest.raises(CollectorError, match="answer over 1048576 bytes"):
                await collector.collect(time.time())
        finally:
            await collector.aclose()
        assert controller.endless_sent < 64 << 20  # cut off, not read to the end


async def test_unreachable_controller_is_a_collector_error() -> None:
    collector = _collector("http://127.0.0.1:9/api", timeout=0.5)  # discard port: refused
    try:
        with pytest.raises(CollectorError, match="request failed"):
            await collector.collect(time.time())
    finally:
        await collector.aclose()


async def test_pipeline_reports_a_failing_controller_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Garbage from the controller is logged with the source, retried with backoff and shown
    in the collector's state; good answers afterwards are batched with growing numbers."""
    topics = Topics("pipe/v1")
    with controller_server() as controller, Spool(tmp_path / "spool.sqlite") as spool:
        controller.mode = "garbage"
        controller.access_points = [ap_entry("ap-one", MACS), ap_entry("ap-two", [])]
        collector = _collector(controller.url, timeout=0.5)
        pipeline = WifiPipeline(
            [collector], spool, topics, "edge-x", poll_period=0.02, max_backoff=0.05
        )
        try:
            with caplog.at_level(logging.WARNING):
                async with running(pipeline.run()):
                    await pipeline.wait_for(lambda: pipeline.collector_states[0].failures >= 2)
                    state = pipeline.collector_states[0]
                    assert state.status == "failing"
                    assert state.detail is not None
                    assert "not JSON" in state.detail
                    controller.mode = "ok"
                    await pipeline.wait_for(lambda: pipeline.stats.samples >= 4)
                    assert pipeline.collector_states[0].status == "ok"
            assert f"controller {controller.url}" in caplog.text
            assert await pipeline.flush() == 2
        finally:
            await collector.aclose()
        batches = [TELEMETRY.decode(m.payload) for m in spool.peek(10)]
    assert {b.ap_id for b in batches} == {"ap-one", "ap-two"}
    assert all(b.agent_id == "edge-x" and b.seq > 1_600_000_000_000 for b in batches)
    assert all(len(b.samples) >= 2 for b in batches)


async def test_simulated_collector_reads_the_fleet() -> None:
    aps = [
        AccessPoint(id=f"ap-{i}", name="x", site="s", district="d", lat=0, lon=0) for i in range(3)
    ]
    fleet = WifiFleet(aps, secret=b"s", timezone="Asia/Ho_Chi_Minh")
    collector = SimulatedCollector(fleet, period=1.0)
    fleet.down.add("ap-1")
    readings = await collector.collect(time.time())
    assert [r.ap_id for r in readings] == ["ap-0", "ap-1", "ap-2"]
    assert readings[1].sample.up is False
    assert list(collector.access_points) == ["ap-0", "ap-1", "ap-2"]

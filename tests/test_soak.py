"""Two minutes of ``ioc soak`` as an operator runs it: the province under load (a smaller one
than the benchmark's, 60 cameras at 5 fps and 150 access points, to keep the suite short)
while ingest and the alerts service are killed, the vision shards, the API and the alerts
service restart, then Mosquitto and PostgreSQL restart. Nothing may be lost or acted on
twice: telemetry samples, vision events, police messages, MQTT alert changes, operators'
change streams."""

from __future__ import annotations

import json

import pytest
from conftest import run_ioc

pytestmark = [pytest.mark.slow, pytest.mark.mosquitto, pytest.mark.postgres]


@pytest.mark.timeout(900)
def test_two_minutes_of_faults_lose_nothing() -> None:
    result = run_ioc(
        *("soak", "--minutes", "2", "--cameras", "60", "--aps", "150", "--drain", "120"),
        timeout=840,
    )
    assert result.stdout.strip(), result.stderr[-4000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.returncode == 0, (summary, result.stderr[-4000:])
    assert summary["soak"] == "ok"
    assert summary["losses"] == {}
    assert summary["unexpected_exits"] == []
    assert [f["fault"] for f in summary["faults"]] == [
        "ingest crash (SIGKILL)",
        "alerts crash (SIGKILL)",
        "vision-1 restart",
        "api restart",
        "vision-2 restart",
        "alerts restart",
        "mosquitto restart",
        "postgresql restart",
    ]
    assert all(f["recovered_s"] is not None for f in summary["faults"])
    # Work flowed through every path, and all of it arrived once.
    assert summary["samples_sent"] > 10_000
    assert summary["samples_stored"] == summary["samples_sent"]
    assert summary["batches_stored"] == summary["batches_sent"]
    assert summary["duplicate_sample_rows"] == 0
    assert summary["events_sent"] > 0
    assert summary["lost_events"] == 0
    assert summary["police_messages_staged"] > 0
    assert summary["police_messages_received"] == summary["police_messages_staged"]
    assert summary["police_duplicates"] == 0
    assert summary["police_bad_signatures"] == 0
    assert summary["mqtt_outbox_pending"] == 0
    assert summary["changes"] > 0
    assert summary["ws_missed_changes"] == 0
    assert summary["ws_repeated_changes"] == 0

"""``ioc bench e2e`` at a small size, through the real command: every service a process,
Mosquitto and PostgreSQL started by the command itself. Its accounting must hold whatever
the machine's speed: every alert the database says frames of the window opened reached each
operator (counted after the drain), and no telemetry sample was lost. Latencies are
measured by the command, never asserted here."""

from __future__ import annotations

import json

import pytest
from conftest import run_ioc

pytestmark = [pytest.mark.slow, pytest.mark.mosquitto, pytest.mark.postgres]


@pytest.mark.timeout(600)
def test_small_bench_e2e_accounts_for_every_alert_and_sample() -> None:
    result = run_ioc(
        *("bench", "e2e", "--cameras", "20", "--aps", "50", "--seconds", "10", "--warmup", "10"),
        timeout=540,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    numbers = json.loads(result.stdout.strip().splitlines()[-1])
    assert numbers["bench"] == "e2e"
    assert numbers["new_alerts"] > 0  # the clips' people and cars open alerts in 10 s
    assert numbers["new_alerts_received_by_each_operator"] == numbers["new_alerts"]
    assert numbers["latency_samples"] >= numbers["new_alerts"]
    assert numbers["samples_sent"] > 0
    assert numbers["lost_samples"] == 0
    assert numbers["duplicate_sample_rows"] == 0

"""Agent configuration files: the shipped examples, and every problem named at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge import build_collectors, incident_targets, load_agent, load_incidents, parse_agent_config
from edge._config import resolve
from protocol import ConfigError, load_province

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config"
ENV = {
    "IOC_MQTT_URL": "mqtts://broker.example:8883",
    "IOC_MQTT_USERNAME": "edge-my-tho",
    "IOC_MQTT_PASSWORD": "pw-from-env",
    "IOC_EDGE_HASH_SECRET": "0123456789abcdef-secret",
    "IOC_WIFI_CONTROLLER_TOKEN": "token",
}


def test_district_agent_example_takes_what_it_owns() -> None:
    plan = load_agent(CONFIG / "edge" / "edge-my-tho.yaml", ENV)
    province = load_province(CONFIG / "province.yaml")
    owned_cameras, owned_aps = province.agents()["edge-my-tho"]
    assert [c.id for c in plan.cameras] == [c.id for c in owned_cameras]
    assert len(plan.access_points) == len(owned_aps) > 0
    assert (plan.endpoint.host, plan.endpoint.port, plan.endpoint.tls) == (
        "broker.example",
        8883,
        True,
    )
    assert (plan.endpoint.username, plan.endpoint.password) == ("edge-my-tho", "pw-from-env")
    assert plan.endpoint.ca_file == "/etc/ioc/ca.pem"
    assert "pw-from-env" not in repr(plan.endpoint)
    assert plan.timezone == "Asia/Ho_Chi_Minh"
    collectors = build_collectors(plan)
    assert [c.name for c in collectors] == ["controller https://wlc.my-tho.example/api/aps"]
    assert len(collectors[0].access_points) == len(owned_aps)


def test_local_simulated_example_resolves() -> None:
    plan = load_agent(CONFIG / "edge" / "edge-sim-local.yaml", {"IOC_MQTT_URL": "mqtt://h:1"})
    assert [c.id for c in plan.cameras] == [
        "site-vinh-trang-01",
        "site-vinh-trang-03",
        "ql1a-my-tho-01",
    ]
    assert plan.endpoint.username is None
    assert [c.name for c in build_collectors(plan)] == ["simulated fleet"]


def test_demo_incident_script_names_real_devices() -> None:
    province = load_province(CONFIG / "province.yaml")
    incidents = load_incidents(CONFIG / "incidents-demo.yaml", incident_targets(province))
    assert len(incidents) == 8


def test_problems_are_named_together(tmp_path: Path) -> None:
    raw = {
        "agent_id": "edge-x",
        "province": str(CONFIG / "province.yaml"),
        "cameras": ["no-such-camera"],
        "access_points": ["ap-vinh-trang-01"],
        "wifi": {
            "collectors": [
                {"kind": "controller", "url": "http://c/", "token_env": "MISSING_TOKEN"},
                {"kind": "simulated", "access_points": ["ap-not-mine"]},
            ]
        },
    }
    with pytest.raises(ConfigError) as caught:
        resolve(parse_agent_config(raw), tmp_path, {})
    problems = "\n".join(caught.value.problems)
    assert "cameras: 'no-such-camera' is not in the province file" in problems
    assert "wifi.collectors[1]: 'ap-not-mine' is not one of this agent's APs" in problems
    assert "$MISSING_TOKEN is not set" in problems
    assert "$IOC_EDGE_HASH_SECRET must hold a secret" in problems
    assert "$IOC_MQTT_URL (the broker URL) is not set" in problems


def test_bad_fields_are_refused_with_their_place() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_agent_config(
            {
                "agent_id": "Edge X",
                "mqtt": {"reconnect_max": -1},
                "spool": {"when_full": "panic"},
                "evidence": {"api_url": "https://ioc.example", "width": 641},
                "surprise": 1,
            }
        )
    problems = "\n".join(caught.value.problems)
    for where in (
        "agent_id",
        "mqtt.reconnect_max",
        "spool.when_full",
        "evidence.width",
        "surprise",
    ):
        assert where in problems

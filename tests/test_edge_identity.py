"""Broker identities: the generated password file and ACL, enforced by a real Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
import yaml
from edge_support import Recorder, agent_plan

from edge import EdgeAgent, PublishRefusals, hash_password, write_mosquitto_config
from edge._identity import MESSAGE_SIZE_LIMIT, check_password
from ioc.servers import MosquittoBroker
from protocol import (
    TELEMETRY,
    ConfigError,
    MqttEndpoint,
    Province,
    TelemetryBatch,
    Topics,
    WifiSample,
    parse_province,
    request_snapshot,
)

ROOT = Path(__file__).resolve().parent.parent
PARKING = "data/video/parking_lot_overhead_768x432.mp4"
PREFIX = "acl/v1"


def _province() -> Province:
    def camera(camera_id: str, agent: str) -> dict[str, object]:
        return {
            "id": camera_id,
            "name": camera_id,
            "kind": "traffic",
            "district": "d",
            "lat": 0,
            "lon": 0,
            "source": PARKING,
            "agent": agent,
        }

    def ap(ap_id: str, agent: str | None) -> dict[str, object]:
        return {
            "id": ap_id,
            "name": ap_id,
            "site": "s",
            "district": "d",
            "lat": 0,
            "lon": 0,
            "agent": agent,
        }

    return parse_province(
        {
            "cameras": [camera("cam-a", "edge-a"), camera("cam-b", "edge-b")],
            "access_points": [ap("ap-a", "edge-a"), ap("ap-b", "edge-b"), ap("ap-free", None)],
        }
    )


def test_password_hash_is_mosquittos_format() -> None:
    encoded = hash_password("s3cret", salt=bytes(range(12)))
    assert encoded.startswith("$7$101$AAECAwQFBgcICQoL$")
    assert check_password("s3cret", encoded)
    assert not check_password("wrong", encoded)


def test_reads_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.skip("mosquitto_passwd is not installed")
    subprocess.run([tool, "-c", "-b", str(tmp_path / "pw"), "alice", "s3cret"], check=True)
    encoded = (tmp_path / "pw").read_text().strip().split(":", 1)[1]
    assert check_password("s3cret", encoded)


def test_acl_names_each_agents_own_topics(tmp_path: Path) -> None:
    written = write_mosquitto_config(_province(), tmp_path, prefix=PREFIX, environ={})
    acl = (tmp_path / "acl").read_text()
    block_a = acl.split("user edge-a\n")[1].split("\n\n")[0].splitlines()
    assert block_a == [
        "topic write acl/v1/edges/edge-a/state",
        "topic read acl/v1/edges/edge-a/stored",
        "topic write acl/v1/cameras/cam-a/frames",
        "topic write acl/v1/cameras/cam-a/state",
        "topic read acl/v1/cameras/cam-a/snapshot/request",
        "topic write acl/v1/cameras/cam-a/snapshot/+",
        "topic write acl/v1/wifi/ap-a/telemetry",
    ]
    assert "ap-free" not in acl
    assert {p.name for p in written} >= {"passwd", "acl", "edge-a.env", "ingest.env"}
    assert (tmp_path / "credentials" / "edge-a.env").stat().st_mode & 0o077 == 0
    # A second run keeps the passwords (deployed agents keep working) with fresh salts.
    first = (tmp_path / "credentials" / "edge-a.env").read_text()
    write_mosquitto_config(_province(), tmp_path, prefix=PREFIX, environ={})
    assert (tmp_path / "credentials" / "edge-a.env").read_text() == first
    # A password from the environment wins.
    write_mosquitto_config(
        _province(), tmp_path, prefix=PREFIX, environ={"IOC_MQTT_PASSWORD_EDGE_A": "from-env"}
    )
    assert "IOC_MQTT_PASSWORD=from-env" in (tmp_path / "credentials" / "edge-a.env").read_text()


def test_refuses_a_registry_without_owners_or_with_clashing_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="names its agent"):
        write_mosquitto_config(Province(), tmp_path, environ={})
    with pytest.raises(ConfigError, match="not one of"):
        write_mosquitto_config(_province(), tmp_path, services=["billing"], environ={})


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MosquittoBroker, Path]]:
    root = tmp_path_factory.mktemp("secured-broker")
    auth = root / "auth"
    write_mosquitto_config(_province(), auth, prefix=PREFIX, environ={})
    # The generated mosquitto-auth.conf as production includes it (its message size limit too).
    broker = MosquittoBroker(root, auth_config=auth / "mosquitto-auth.conf")
    broker.start()
    yield broker, auth
    broker.stop()


def _login(broker: MosquittoBroker, auth: Path, user: str, *, mqtt5: bool = True) -> MqttEndpoint:
    values = dict(
        line.split("=", 1) for line in (auth / "credentials" / f"{user}.env").read_text().split()
    )
    return MqttEndpoint(
        "127.0.0.1",
        broker.port,
        values["IOC_MQTT_USERNAME"],
        values["IOC_MQTT_PASSWORD"],
        mqtt5=mqtt5,
    )


def _batch(ap_id: str) -> bytes:
    sample = WifiSample(ts=1.0, clients=1, rx_bytes=0, tx_bytes=0, channel_util=0.0, up=True)
    return TELEMETRY.encode(TelemetryBatch(ap_id=ap_id, seq=1, samples=[sample]))


@pytest.mark.mosquitto
async def test_wrong_or_missing_credentials_are_refused(
    secured: tuple[MosquittoBroker, Path],
) -> None:
    broker, auth = secured
    good = _login(broker, auth, "edge-a")
    with pytest.raises(aiomqtt.MqttError):
        async with good.with_credentials("edge-a", "not-the-password").client("x"):
            pass
    with pytest.raises(aiomqtt.MqttError):
        async with good.with_credentials(None, None).client("anonymous"):
            pass


@pytest.mark.mosquitto
async def test_an_agent_is_refused_on_another_agents_topics(
    secured: tuple[MosquittoBroker, Path],
) -> None:
    broker, auth = secured
    topics = Topics(PREFIX)
    async with Recorder(_login(broker, auth, "ingest"), [f"{PREFIX}/#"], "ingest-watch") as seen:
        # MQTT 5: the broker answers the QoS 1 publish with 0x87 "Not authorized".
        async with _login(broker, auth, "edge-a").client("edge-a-5") as client:
            refusals = PublishRefusals()
            refusals.attach(client)
            await client.publish(topics.telemetry("ap-b"), _batch("ap-b"), qos=1)
            await client.publish(topics.telemetry("ap-free"), _batch("ap-free"), qos=1)
            assert refusals.count == 2
            assert refusals.last_reason == "Not authorized"
            await client.publish(topics.telemetry("ap-a"), _batch("ap-a"), qos=1)
            assert refusals.count == 2
        # MQTT 3.1.1: refused messages are dropped silently, frames (QoS 0) too.
        async with _login(broker, auth, "edge-a", mqtt5=False).client("edge-a-3") as client:
            await client.publish(topics.frames("cam-b"), b"forged", qos=0)
            await client.publish(topics.camera_state("cam-b"), b"forged", qos=1)
            await client.publish(topics.edge_state("edge-b"), b"forged", qos=1)
            await client.publish(topics.frames("cam-a"), b"own frame", qos=0)
        # One connection's packets are handled in order: once the own frame is here, any
        # forged message the broker had let through would be here too.
        await seen.wait_for(lambda: bool(seen.on(topics.frames("cam-a"))))
    received = {m.topic for m in seen.messages}
    assert topics.telemetry("ap-a") in received
    assert received.isdisjoint(
        {
            topics.telemetry("ap-b"),
            topics.telemetry("ap-free"),
            topics.frames("cam-b"),
            topics.camera_state("cam-b"),
            topics.edge_state("edge-b"),
        }
    )


@pytest.mark.mosquitto
async def test_the_generated_config_refuses_a_message_over_its_size_limit(
    secured: tuple[MosquittoBroker, Path],
) -> None:
    """One byte over MESSAGE_SIZE_LIMIT and the broker refuses it, so no consumer ever
    holds it: an MQTT 5 sender is disconnected (the limit was in its CONNACK), a 3.1.1
    sender's message is dropped; the broker and everyone else go on."""
    broker, auth = secured
    topics = Topics(PREFIX)
    ap = topics.telemetry("ap-a")
    limit = int(_setting(auth / "mosquitto-auth.conf", "message_size_limit"))
    assert limit == MESSAGE_SIZE_LIMIT
    async with Recorder(_login(broker, auth, "ingest"), [f"{PREFIX}/#"], "size-watch") as seen:
        async with _login(broker, auth, "edge-a").client("edge-a-big5") as client:
            publishing = asyncio.create_task(client.publish(ap, b"x" * (limit + 1), qos=1))
            with pytest.raises(aiomqtt.MqttError, match="Disconnected"):
                await anext(client.messages)  # no message comes: the broker hangs up
            publishing.cancel()  # its PUBACK will never come
            with contextlib.suppress(asyncio.CancelledError):
                await publishing
        async with _login(broker, auth, "edge-a", mqtt5=False).client("edge-a-big3") as client:
            await client.publish(ap, b"y" * (limit + 1), qos=1)
            await client.publish(ap, b"z" * limit, qos=1)
        async with _login(broker, auth, "edge-a").client("edge-a-after") as client:
            await client.publish(ap, b"last", qos=1)
        await seen.wait_for(lambda: b"last" in seen.on(ap))
    assert [len(payload) for payload in seen.on(ap)] == [limit, 4]


def _setting(conf: Path, key: str) -> str:
    for line in conf.read_text().splitlines():
        if line.startswith(f"{key} "):
            return line.split(" ", 1)[1]
    raise AssertionError(f"{conf} sets no {key}")


@pytest.mark.mosquitto
async def test_an_agent_runs_fully_within_its_acl(
    secured: tuple[MosquittoBroker, Path], tmp_path: Path
) -> None:
    """Birth, last will, frames, states, telemetry and snapshot answers all pass the ACL."""
    broker, auth = secured
    topics = Topics(PREFIX)
    endpoint = _login(broker, auth, "edge-a")
    _write_province(tmp_path)
    plan = agent_plan(
        tmp_path,
        endpoint,
        topics,
        {
            "agent_id": "edge-a",
            "cameras": ["cam-a"],
            "access_points": ["ap-a"],
            "province": str(tmp_path / "province.yaml"),
            "wifi": {
                "collectors": [{"kind": "simulated"}],
                "poll_period": 0.02,
                "batch_period": 0.1,
            },
            "state_period": 0.2,
        },
    )
    console = _login(broker, auth, "console")
    async with (
        Recorder(_login(broker, auth, "ingest"), [f"{PREFIX}/#"], "ingest-watch") as seen,
        Recorder(console, [f"{PREFIX}/#"], "console-watch") as console_sees,
        EdgeAgent(plan) as agent,
    ):
        await seen.wait_for(
            lambda: (
                bool(seen.on(topics.frames("cam-a")))
                and bool(seen.on(topics.telemetry("ap-a")))
                and bool(seen.on(topics.camera_state("cam-a")))
                and bool(seen.on(topics.edge_state("edge-a")))
            )
        )
        header, _ = await request_snapshot(console, topics, "cam-a", max_width=320)
        assert header.camera_id == "cam-a"
        # Least privilege: the console reads snapshot answers, never frames or telemetry.
        await console_sees.wait_for(
            lambda: any("/snapshot/" in m.topic for m in console_sees.messages)
        )
        assert all("/snapshot/" in m.topic for m in console_sees.messages)
        assert agent.forwarder.stats.refused == 0
        assert agent.stats.connects == 1


def _write_province(tmp_path: Path) -> None:
    province = _province().model_dump(mode="json", exclude_none=True)
    for camera in province["cameras"]:
        camera["source"] = str(ROOT / PARKING)
    (tmp_path / "province.yaml").write_text(yaml.safe_dump(province))


@pytest.mark.mosquitto
async def test_receipts_are_written_by_ingest_and_read_only_by_their_agent(
    secured: tuple[MosquittoBroker, Path],
) -> None:
    broker, auth = secured
    topics = Topics(PREFIX)
    own, other = topics.edge_stored("edge-a"), topics.edge_stored("edge-b")
    async with _login(broker, auth, "edge-a").client("edge-a-receipts") as edge:
        # Mosquitto grants a subscription the ACL forbids, and then delivers nothing on it.
        await edge.subscribe([(own, 1), (other, 1)])
        refusals = PublishRefusals()
        refusals.attach(edge)
        await edge.publish(own, b"forged receipt", qos=1)  # an agent cannot vouch for itself
        assert refusals.count == 1
        async with _login(broker, auth, "ingest").client("ingest-receipts") as ingest:
            await ingest.publish(other, b"not yours", qos=1)
            await ingest.publish(own, b"receipt", qos=1)
        async with asyncio.timeout(10):
            # In order from one connection: the other agent's receipt would come first.
            message = await anext(aiter(edge.messages))
        assert (message.topic.value, message.payload) == (own, b"receipt")

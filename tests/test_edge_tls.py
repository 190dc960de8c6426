"""TLS to the broker: an agent configured with mqtts://, the CA and its client certificate
reaches a Mosquitto that requires certificates; without its certificate it is refused."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
from edge_support import Recorder, agent_plan

from edge import EdgeAgent
from ioc.servers import MosquittoBroker
from protocol import EDGE_STATE, MqttEndpoint, Topics

pytestmark = [
    pytest.mark.mosquitto,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command"),
]


EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _certificates(folder: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it."""
    folder.mkdir(parents=True)
    ca_key, ca = folder / "ca.key", folder / "ca.pem"
    _openssl("req", "-x509", *EC_KEY, "-nodes", "-days", "2",
             "-subj", "/CN=test-ca", "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    for name, extra in (("server", "subjectAltName=IP:127.0.0.1"), ("client", None)):
        key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.pem"
        _openssl("req", *EC_KEY, "-nodes", "-subj", f"/CN={name}",
                 "-keyout", str(key), "-out", str(csr))  # fmt: skip
        signing = ["x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
                   "-CAcreateserial", "-days", "2", "-out", str(cert)]  # fmt: skip
        if extra:
            ext = folder / f"{name}.ext"
            ext.write_text(extra + "\n")
            signing += ["-extfile", str(ext)]
        _openssl(*signing)
    for key in folder.glob("*.key"):
        key.chmod(0o644)  # the broker runs as its own user and must read its key


class _TlsBroker(MosquittoBroker):
    """Mosquitto whose listener speaks TLS only and requires client certificates."""

    def _write_config(self) -> None:
        super()._write_config()
        certs = self.root / "certs"
        with self.config.open("a") as conf:
            conf.write(
                f"cafile {self.readable(certs / 'ca.pem')}\n"
                f"certfile {self.readable(certs / 'server.pem')}\n"
                f"keyfile {self.readable(certs / 'server.key')}\n"
                "require_certificate true\n"
            )


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_TlsBroker]:
    root = tmp_path_factory.mktemp("tls-broker")
    _certificates(root / "certs")
    broker = _TlsBroker(root)
    broker.start()
    yield broker
    broker.stop()


async def test_agent_connects_over_tls_with_its_certificate(
    tls_broker: _TlsBroker, tmp_path: Path
) -> None:
    certs = tls_broker.root / "certs"
    topics = Topics("tls/v1")
    endpoint = MqttEndpoint(
        "127.0.0.1",
        tls_broker.port,
        tls=True,
        ca_file=str(certs / "ca.pem"),
        cert_file=str(certs / "client.pem"),
        key_file=str(certs / "client.key"),
    )
    plan = agent_plan(
        tmp_path,
        endpoint,
        topics,
        {
            "mqtt": {
                "topic_prefix": topics.prefix,
                "tls": {
                    "ca_file": str(certs / "ca.pem"),
                    "cert_file": str(certs / "client.pem"),
                    "key_file": str(certs / "client.key"),
                },
            }
        },
        environ={"IOC_MQTT_URL": f"mqtts://127.0.0.1:{tls_broker.port}"},
    )
    assert plan.endpoint.tls
    assert plan.endpoint.cert_file == str(certs / "client.pem")
    async with Recorder(endpoint, [topics.all_edge_states()], "tls-watch") as seen:
        async with EdgeAgent(plan) as agent:
            await agent.connected.wait()
            await seen.wait_for(lambda: bool(seen.messages))
        assert EDGE_STATE.decode(seen.messages[0].payload).status == "online"

    # Without a certificate: TLS 1.3 reports the refusal after the handshake, so the client
    # only sees its CONNACK never come (a short timeout keeps the test quick).
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    client = aiomqtt.Client("127.0.0.1", tls_broker.port, tls_context=context, timeout=1.0)
    with pytest.raises(aiomqtt.MqttError):
        async with client:
            pass

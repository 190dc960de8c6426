"""Where the broker is and how to log in: parsed once from ``mqtt://user:pass@host:port``,
or from a comma-separated list of such URLs naming independent brokers to fail over between
(``mqtt://user:pass@a:1883,mqtt://b:1883``; see ``_failover.py``)."""

from __future__ import annotations

import dataclasses
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ._failover import Broker, FailoverClient


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: str | None = None
    mqtt5: bool = True
    """MQTT 5 for Mosquitto and EMQX; the embedded amqtt broker speaks 3.1.1 only."""
    cert_file: str | None = None
    """Client certificate (PEM) for brokers that authenticate clients by TLS certificate."""
    key_file: str | None = None
    """Private key (PEM) of ``cert_file``."""
    fallbacks: tuple[Broker, ...] = ()
    """Further brokers (host, port), tried in order when the ones before are unreachable;
    they take the same credentials and TLS settings."""

    @classmethod
    def from_url(cls, url: str, *, mqtt5: bool = True, ca_file: str | None = None) -> MqttEndpoint:
        """One URL, or several separated by commas: the first gives the credentials (a later
        one may repeat them), all must agree on TLS."""
        parsed = [_parse_url(part.strip()) for part in url.split(",") if part.strip()]
        if not parsed:
            raise ValueError("the MQTT URL is empty")
        first = parsed[0]
        for other in parsed[1:]:
            if other.tls != first.tls:
                raise ValueError(
                    f"MQTT URLs mix mqtt:// and mqtts:// ({first.redacted()}, {other.redacted()})"
                )
            if other.username is not None and (other.username, other.password) != (
                first.username,
                first.password,
            ):
                raise ValueError(
                    f"MQTT URL {other.redacted()} has other credentials than the first; "
                    "the brokers of a list share them"
                )
        return dataclasses.replace(
            first,
            ca_file=ca_file,
            mqtt5=mqtt5,
            fallbacks=tuple((p.host, p.port) for p in parsed[1:]),
        )

    @property
    def brokers(self) -> tuple[Broker, ...]:
        """Every broker, in the order a client tries them."""
        return ((self.host, self.port), *self.fallbacks)

    def with_credentials(self, username: str | None, password: str | None) -> MqttEndpoint:
        return dataclasses.replace(self, username=username, password=password)

    def redacted(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        scheme = "mqtts" if self.tls else "mqtt"
        return ",".join(f"{scheme}://{user}{host}:{port}" for host, port in self.brokers)

    def client(
        self,
        identifier: str,
        *,
        persistent: bool = False,
        will: aiomqtt.Will | None = None,
        max_queued_incoming: int = 0,
        keepalive: int = 30,
        max_inflight: int | None = None,
        receive_maximum: int | None = None,
    ) -> FailoverClient:
        """An aiomqtt client over every broker of the list (:class:`FailoverClient`).

        ``persistent`` keeps the session (and QoS 1 backlog) across reconnects, as
        consumers that must not lose messages need. ``receive_maximum``
        (MQTT 5) caps the QoS 1 messages the broker sends before they are acknowledged: a
        consumer that acknowledges after storing then holds at most that many, and the
        broker keeps the rest."""
        kwargs: dict[str, Any] = {}
        if self.tls:
            context = ssl.create_default_context(cafile=self.ca_file)
            if self.cert_file is not None:
                context.load_cert_chain(self.cert_file, self.key_file)
            kwargs["tls_context"] = context
        if self.mqtt5:
            kwargs["protocol"] = aiomqtt.ProtocolVersion.V5
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho
            if persistent:
                # Keep the session a day while the consumer is away.
                props.SessionExpiryInterval = 86_400
                kwargs["clean_start"] = False
            if receive_maximum is not None:
                props.ReceiveMaximum = receive_maximum
            if persistent or receive_maximum is not None:
                kwargs["properties"] = props
        else:
            kwargs["protocol"] = aiomqtt.ProtocolVersion.V311
            kwargs["clean_session"] = not persistent
        return FailoverClient(
            self.brokers,
            identifier=identifier,
            username=self.username,
            password=self.password,
            will=will,
            keepalive=keepalive,
            max_queued_incoming_messages=max_queued_incoming,
            max_inflight_messages=max_inflight,
            **kwargs,
        )


def _parse_url(url: str) -> MqttEndpoint:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"MQTT URL scheme {parts.scheme!r} is not mqtt:// or mqtts://")
    tls = parts.scheme in ("mqtts", "ssl")
    return MqttEndpoint(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
    )

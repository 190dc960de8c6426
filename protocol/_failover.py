"""One MQTT client over a list of independent brokers: connect to the first that answers.

``IOC_MQTT_URL=mqtt://a:1883,mqtt://b:1883`` names a failover pair (or more). Every client
of ours is made by :meth:`MqttEndpoint.client`, which returns a :class:`FailoverClient`;
its ``async with`` tries the brokers in their listed order and stays on the one that took
the connection. When that broker dies the connection fails as before, the caller's loop
backs off (capped and jittered, ``backoff_delay``) and enters again: the dead broker refuses
at once (or its connect times out), and the client moves to the next one, saying so in the
log.

Listed order, not "the last that worked", on purpose: independent brokers do not share
messages, so every client must be on the same one, and trying them in one fixed order makes
all clients meet on the first broker that is alive. A broker that comes back does not pull
connected clients back; restart it only as the last of the list (or restart the clients in
turn) -- the clustered broker in docs/production.md has no such seam.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Self

import aiomqtt

logger = logging.getLogger(__name__)

Broker = tuple[str, int]
"""Host and port of one broker of the list."""


class NoBrokerError(aiomqtt.MqttError):
    """Every broker of the list refused or did not answer; ``failures`` says why, per broker."""

    def __init__(self, failures: Sequence[tuple[Broker, str]]) -> None:
        self.failures = list(failures)
        detail = "; ".join(f"{host}:{port}: {reason}" for (host, port), reason in failures)
        super().__init__(f"no broker reachable ({detail})")


class FailoverClient(aiomqtt.Client):
    """An :class:`aiomqtt.Client` whose connect tries ``brokers`` in order.

    Everything else (publish, subscribe, ``messages``, manual acknowledgement through the
    paho client underneath) is aiomqtt's own: the brokers share credentials and TLS
    settings, so the same client object serves any of them."""

    def __init__(self, brokers: Sequence[Broker], **kwargs: Any) -> None:
        if not brokers:
            raise ValueError("a failover client needs at least one broker")
        host, port = brokers[0]
        super().__init__(host, port, **kwargs)
        self.brokers = tuple(brokers)
        self.broker: Broker = brokers[0]
        """The broker of the current (or last) connection."""

    async def __aenter__(self) -> Self:
        failures: list[tuple[Broker, str]] = []
        for broker in self.brokers:
            self._hostname, self._port = broker
            try:
                await super().__aenter__()
            except aiomqtt.MqttReentrantError:
                raise
            except aiomqtt.MqttError as exc:
                if len(self.brokers) == 1:
                    raise  # one broker: the caller sees aiomqtt's own error, as ever
                failures.append((broker, str(exc) or type(exc).__name__))
                logger.warning(
                    "%s: broker %s:%d unreachable (%s)",
                    self.identifier,
                    *broker,
                    failures[-1][1],
                )
                continue
            if failures:
                logger.warning(
                    "%s moved to broker %s:%d (%d before it unreachable)",
                    self.identifier,
                    *broker,
                    len(failures),
                )
            self.broker = broker
            return self
        raise NoBrokerError(failures)

"""The in-process MQTT broker of the embedded demo (amqtt, MQTT 3.1.1 only)."""

from __future__ import annotations

import logging
from _collections_abc import dict_items
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self

from amqtt.broker import Broker

from edge import MESSAGE_SIZE_LIMIT

from .servers import free_port

logger = logging.getLogger(__name__)


class _Subscriptions(dict[str, list[Any]]):
    """amqtt 0.12's subscription table, iterated over a snapshot.

    The broker loops over this table across awaits (retained messages for a client that
    connects, broadcasts); a client subscribing meanwhile changed the table under the loop,
    the connecting client's handler died with "dictionary changed size during iteration",
    and that client hung until its timeout (seen at the demo's start, when every service
    connects and subscribes at once)."""

    def _snapshot(self) -> dict[str, list[Any]]:
        return dict(dict.items(self))  # the plain dict's own view: no override called

    def __iter__(self) -> Iterator[str]:
        return iter(self._snapshot())

    def items(self) -> dict_items[str, list[Any]]:
        return self._snapshot().items()


def _retained_to_holders_only(broker: Any) -> None:
    """Patch amqtt 0.12's broker against a flood: on every CONNECT it replayed each retained
    message matching ANY session's subscription (``for topic in self._subscriptions``) to the
    new client, whatever that client subscribed to. So each service met hundreds of camera
    and service states it never asked for ("matches none of its subscriptions"), the
    simulator's snapshot session took them for requests ("unknown field `instance`"), and a
    console asking for a snapshot waited behind the flood until its 504. Now a retained
    message goes only to a session that holds the subscription (a reconnecting persistent
    session, or one that just subscribed), as MQTT says."""
    replay = broker._publish_retained_messages_for_subscription

    async def to_holders(subscription: tuple[str, int], session: Any) -> None:
        holders = dict.get(broker._subscriptions, subscription[0], [])
        if any(holder is session for holder, _ in holders):
            await replay(subscription, session)

    broker._publish_retained_messages_for_subscription = to_holders


def _drop_large_messages(broker: Any, limit: int) -> None:
    """Patch amqtt 0.12, which has no message size limit, with Mosquitto's
    ``message_size_limit``: a message larger than ``limit`` bytes goes to no subscriber and
    is not retained (logged). amqtt has read it by then (it cannot refuse one unread); a
    loopback broker of the demo's own processes needs no more."""
    broadcast, retain = broker._broadcast_message, broker.retain_message

    def fits(topic: str | None, data: bytes | bytearray | None) -> bool:
        if data is None or len(data) <= limit:
            return True
        logger.warning("dropped a %d-byte message on %s: over %d bytes", len(data), topic, limit)
        return False

    async def broadcast_fitting(
        session: Any, topic: str | None, data: bytes | bytearray | None, qos: int | None = None
    ) -> None:
        if fits(topic, data):
            await broadcast(session, topic, data, qos)

    async def retain_fitting(
        session: Any, topic: str | None, data: bytes | bytearray | None, qos: int | None = None
    ) -> None:
        if data is None or len(data) <= limit:  # logged once, by the broadcast
            await retain(session, topic, data, qos)

    broker._broadcast_message = broadcast_fitting
    broker.retain_message = retain_fitting


class EmbeddedBroker:
    """amqtt on 127.0.0.1; anonymous, because it listens only on loopback for this process
    and its children. Production uses Mosquitto with passwords and ACLs."""

    def __init__(
        self, port: int | None = None, *, message_size_limit: int = MESSAGE_SIZE_LIMIT
    ) -> None:
        self.port = port or free_port()
        self.message_size_limit = message_size_limit
        """Largest message passed on (bytes), as the generated Mosquitto configuration's."""
        self._broker: Broker | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        config: dict[str, Any] = {
            "listeners": {
                "default": {
                    "type": "tcp",
                    "bind": f"127.0.0.1:{self.port}",
                    "max_connections": 1000,
                }
            },
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._broker = Broker(config)
        self._broker._subscriptions = _Subscriptions()  # see the class
        _retained_to_holders_only(self._broker)
        _drop_large_messages(self._broker, self.message_size_limit)
        await self._broker.start()
        logger.info("embedded MQTT broker on %s", self.url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._broker is not None:
            await self._broker.shutdown()

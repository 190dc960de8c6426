"""The demo's fallback broker (amqtt): a retained message reaches its subscribers only."""

from __future__ import annotations

import asyncio

from ioc.embedded import EmbeddedBroker
from protocol import MqttEndpoint


async def test_amqtt_replays_retained_messages_only_to_their_subscribers() -> None:
    """amqtt 0.12 sent each new client every retained message matching ANY session's
    subscription, before the client subscribed to anything (the snapshot 504s and the
    "matches none of its subscriptions" floods of the demo)."""
    async with EmbeddedBroker() as broker:
        endpoint = MqttEndpoint.from_url(broker.url, mqtt5=False)
        async with endpoint.client("status-watcher") as watcher:
            await watcher.subscribe("ioc/v1/services/+/status", 1)
            await watcher.publish("ioc/v1/services/a/status", b"{}", qos=1, retain=True)
            async with asyncio.timeout(10):
                async for message in watcher.messages:
                    assert message.topic.value == "ioc/v1/services/a/status"
                    break
            async with endpoint.client("snapshots") as snapshots:
                await snapshots.subscribe("ioc/v1/cameras/+/snapshot/request", 1)
                await snapshots.publish("ioc/v1/cameras/c1/snapshot/request", b"r", qos=1)
                async with asyncio.timeout(10):
                    async for message in snapshots.messages:
                        # With the flood, the watcher's retained status came first.
                        assert message.topic.value == "ioc/v1/cameras/c1/snapshot/request"
                        break
            # A new subscriber of the retained topic still gets it.
            async with endpoint.client("late-watcher") as late:
                await late.subscribe("ioc/v1/services/+/status", 1)
                async with asyncio.timeout(10):
                    async for message in late.messages:
                        assert message.topic.value == "ioc/v1/services/a/status"
                        assert message.retain
                        break

"""MQTT sessions against a real Mosquitto: a message that matches none of the consumer's
subscriptions is acknowledged and ignored, never handed to the handler."""

from __future__ import annotations

import asyncio
import contextlib

import aiomqtt
import pytest

from protocol import MqttEndpoint, Topics, run_subscriber

pytestmark = pytest.mark.mosquitto


async def test_a_message_outside_the_subscriptions_is_not_handled(
    mqtt: MqttEndpoint, topics: Topics
) -> None:
    identifier = f"consumer-{topics.prefix.split('/')[0]}"
    # An earlier version of this consumer subscribed to telemetry on a persistent session;
    # the broker keeps that subscription and queues what matches it while the consumer is
    # away. The new version subscribes to events only.
    async with mqtt.client(identifier, persistent=True) as earlier:
        await earlier.subscribe(topics.all_telemetry(), qos=1)
    async with mqtt.client(f"pub-{identifier}") as publisher:
        await publisher.publish(topics.telemetry("ap-1"), b"for the old subscription", qos=1)

        handled: list[str] = []
        arrived = asyncio.Event()
        connected = asyncio.Event()

        async def handle(client: aiomqtt.Client, message: aiomqtt.Message) -> None:
            handled.append(message.topic.value)
            arrived.set()

        async def on_connect(client: aiomqtt.Client) -> None:
            connected.set()

        consumer = asyncio.create_task(
            run_subscriber(
                mqtt,
                identifier,
                [(topics.all_events(), 1)],
                handle,
                manual_ack=True,
                on_connect=on_connect,
            )
        )
        try:
            await asyncio.wait_for(connected.wait(), 10)
            await publisher.publish(topics.events("cam-1"), b"an event", qos=1)
            await asyncio.wait_for(arrived.wait(), 10)
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
    # The queued telemetry came first (the broker sends a session's backlog on connect).
    assert handled == [topics.events("cam-1")]

"""The embedded demo's broker (amqtt) when many clients connect and subscribe at once, as
every service does when ``ioc demo`` starts: amqtt 0.12 walked its subscription table
across awaits, a subscription added meanwhile broke the walk, and the connecting client's
session died (it hung until its own timeout)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiomqtt

from ioc.embedded import EmbeddedBroker, _Subscriptions

CLIENTS = 40


def test_the_subscription_table_can_change_while_it_is_walked() -> None:
    table = _Subscriptions({"a": [], "b": []})
    for topic in table:
        table[f"{topic}/new"] = []  # a plain dict raises RuntimeError here
    for topic, _ in table.items():
        if "/" not in topic:
            del table[topic]  # and so does this
    assert table == {"a/new": [], "b/new": []}


async def test_clients_connecting_while_others_subscribe_all_get_their_retained_message() -> None:
    errors: list[Any] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: errors.append(context.get("exception")))
    async with EmbeddedBroker() as broker:

        def client(name: str) -> aiomqtt.Client:
            return aiomqtt.Client(
                "127.0.0.1",
                broker.port,
                identifier=name,
                protocol=aiomqtt.ProtocolVersion.V311,
                timeout=10,
            )

        async with client("seed") as seed:
            for i in range(CLIENTS):
                await seed.publish(f"retained/{i}", f"{i}".encode(), qos=1, retain=True)

        async def follower(i: int) -> str:
            # Connections spread over 0.4 s, so that clients connect while others
            # subscribe (pacing the race, not waiting for a result).
            await asyncio.sleep(i * 0.01)
            async with client(f"follower-{i}") as c:
                for j in range(5):
                    await c.subscribe(f"other/{i}/{j}", qos=1)
                await c.subscribe(f"retained/{i}", qos=1)
                async with asyncio.timeout(15):
                    async for message in c.messages:
                        if str(message.topic) == f"retained/{i}":
                            return bytes(message.payload).decode()
            return "no message"

        got = await asyncio.gather(*(follower(i) for i in range(CLIENTS)))
    assert got == [str(i) for i in range(CLIENTS)]
    assert errors == []


async def test_a_message_over_the_size_limit_reaches_no_one() -> None:
    """amqtt has no message_size_limit of its own; the embedded broker adds Mosquitto's: a
    larger message is neither passed on nor retained."""
    async with EmbeddedBroker(message_size_limit=1000) as broker:

        def client(name: str) -> aiomqtt.Client:
            return aiomqtt.Client(
                "127.0.0.1", broker.port, identifier=name, protocol=aiomqtt.ProtocolVersion.V311
            )

        async with client("watch") as watch:
            await watch.subscribe("size/#", qos=1)
            async with client("sender") as sender:
                await sender.publish("size/big", b"x" * 1001, qos=1, retain=True)
                await sender.publish("size/fits", b"y" * 1000, qos=1, retain=True)
                await sender.publish("size/last", b"last", qos=1)
            got = []
            async with asyncio.timeout(10):
                async for message in watch.messages:
                    got.append((str(message.topic), len(bytes(message.payload))))
                    if str(message.topic) == "size/last":
                        break
        async with client("late") as late:  # retained messages: only the one that fits
            await late.subscribe("size/big", qos=1)
            await late.subscribe("size/fits", qos=1)
            async with asyncio.timeout(10):
                first = await anext(late.messages)
    assert got == [("size/fits", 1000), ("size/last", 4)]
    assert str(first.topic) == "size/fits"

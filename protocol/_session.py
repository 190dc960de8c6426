"""Long-lived MQTT sessions: reconnect with capped, jittered backoff, acknowledge on commit."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

import aiomqtt

from ._endpoint import MqttEndpoint
from ._failover import FailoverClient

logger = logging.getLogger(__name__)

MessageHandler = Callable[[aiomqtt.Client, aiomqtt.Message], Awaitable[None]]
ConnectHook = Callable[[FailoverClient], Awaitable[None]]


def backoff_delay(attempt: int) -> float:
    return random.uniform(0, 1.5 ** min(10, attempt))


def enable_manual_ack(client: aiomqtt.Client) -> None:
    """Acknowledge QoS 1 messages only when :func:`acknowledge` is called.

    aiomqtt 2.5 has no public switch for this; paho's client underneath has. A message the
    process dies holding is then redelivered by the broker instead of being lost."""
    client._client.manual_ack_set(True)


UNSOLICITED: Counter[str] = Counter()
"""Messages per session identifier that matched none of its subscriptions."""


def unsolicited(identifier: str, message: aiomqtt.Message) -> None:
    """Count (and log at DEBUG) a message that matches none of the session's subscriptions.
    A broker bug, not a bad payload: amqtt 0.12 replayed retained messages to sessions that
    never asked (ioc/embedded.py now stops that). It is dropped (acknowledged), not judged as
    a dead letter."""
    UNSOLICITED[identifier] += 1
    logger.debug("%s: %s matches none of its subscriptions; ignored", identifier, message.topic)


def acknowledge(client: aiomqtt.Client, message: aiomqtt.Message) -> None:
    if message.qos > 0:
        client._client.ack(message.mid, message.qos)


async def run_subscriber(
    endpoint: MqttEndpoint,
    identifier: str,
    subscriptions: Sequence[tuple[str, int]],
    handle: MessageHandler,
    *,
    persistent: bool = True,
    manual_ack: bool = False,
    on_connect: ConnectHook | None = None,
    max_queued: int = 0,
    receive_maximum: int | None = None,
) -> None:
    """Subscribe and hand every message to ``handle`` until cancelled, reconnecting as needed.

    With ``manual_ack`` the handler (or whoever it hands the message to) must call
    :func:`acknowledge` once the message's effect is durable."""
    attempt = 0
    wanted = [aiomqtt.Wildcard(topic) for topic, _ in subscriptions]  # parsed once
    if persistent and endpoint.fallbacks:
        await register_with_fallbacks(endpoint, identifier, subscriptions)
    while True:
        try:
            client = endpoint.client(
                identifier,
                persistent=persistent,
                max_queued_incoming=max_queued,
                receive_maximum=receive_maximum,
            )
            if manual_ack:
                enable_manual_ack(client)
            async with client:
                if attempt:
                    logger.info("%s reconnected to %s:%d", identifier, *client.broker)
                attempt = 0
                for topic, qos in subscriptions:
                    await client.subscribe(topic, qos=qos)
                if on_connect is not None:
                    await on_connect(client)
                async for message in client.messages:
                    if not any(message.topic.matches(w) for w in wanted):
                        unsolicited(identifier, message)
                        acknowledge(client, message)
                        continue
                    await _handle_one(identifier, handle, client, message, manual_ack)
        except aiomqtt.MqttError as exc:
            attempt += 1
            delay = backoff_delay(attempt)
            logger.warning(
                "%s lost the broker (%s); reconnecting in %.2f seconds", identifier, exc, delay
            )
            await asyncio.sleep(delay)


async def register_with_fallbacks(
    endpoint: MqttEndpoint, identifier: str, subscriptions: Sequence[tuple[str, int]]
) -> None:
    """Leave this persistent session, subscribed, on every broker after the first.

    Independent brokers share no sessions: without this, what clients publish to the next
    broker after the first died is dropped until this subscriber has moved there too. With
    it, that broker queues it for the session from the first moment. (A broker that cannot
    be reached now is skipped; the session is made when the subscriber moves there.)"""
    for host, port in endpoint.fallbacks:
        only = dataclasses.replace(endpoint, host=host, port=port, fallbacks=())
        client = only.client(identifier, persistent=True)
        # What that broker may hold for the session already (from an earlier failover) is
        # not acknowledged here: it stays in the session and comes again.
        enable_manual_ack(client)
        try:
            async with client:
                for topic, qos in subscriptions:
                    await client.subscribe(topic, qos=qos)
        except aiomqtt.MqttError as exc:
            logger.warning(
                "%s: no session left on broker %s:%d (%s); it is made on moving there",
                identifier,
                host,
                port,
                exc,
            )
        else:
            logger.info(
                "%s: session and subscriptions left on broker %s:%d", identifier, host, port
            )


async def _handle_one(
    identifier: str,
    handle: MessageHandler,
    client: aiomqtt.Client,
    message: aiomqtt.Message,
    manual_ack: bool,
) -> None:
    """``handle`` the message; an exception it lets out (a bug, or a payload nobody
    foresaw) is poison: logged with the message's topic and acknowledged, so one message can
    neither end the consumer nor come back after a restart. Handlers retry what is
    transient (the store away) themselves; losing the broker still reconnects."""
    try:
        await handle(client, message)
    except aiomqtt.MqttError:
        raise
    except Exception:
        logger.exception("%s could not handle a message on %s; dropped", identifier, message.topic)
        if manual_ack:
            acknowledge(client, message)


async def stop_tasks(tasks: Sequence[asyncio.Task[object]], *, retry_every: float = 0.5) -> None:
    """Cancel ``tasks`` and wait for them, cancelling again any that swallowed the request.

    On Python 3.11 ``asyncio.wait_for`` (inside aiomqtt's publish) can lose a cancellation
    that arrives just as the awaited operation completes; a loop that publishes would then
    run on and hang its TaskGroup's exit."""
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=retry_every)

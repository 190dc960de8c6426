"""Receipts: once a flush has committed, each edge hears which of its telemetry batches the
centre now keeps, on ``{prefix}/edges/{agent_id}/stored`` (QoS 1, not retained).

An edge keeps a batch in its spool until the receipt names it. The broker's acknowledgement
is not enough: a broker that dies after acknowledging a batch and before delivering it to
ingest takes the batch with it (``ioc bench broker`` measures how many). A batch that became
a dead letter is kept too (as the dead letter), so it is receipted as well: sending it again
could not help.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Annotated

import aiomqtt
import msgspec

from protocol import (
    STORED_RECEIPT,
    BatchRef,
    StoredReceipt,
    Stream,
    TelemetryBatch,
    TopicError,
    Topics,
)

from ._decode import Decoded

logger = logging.getLogger(__name__)


class _BatchIdentity(msgspec.Struct):
    """What a telemetry payload that failed validation may still say about itself."""

    ap_id: str
    seq: Annotated[int, msgspec.Meta(ge=0)]
    agent_id: str | None = None


_IDENTITY = msgspec.json.Decoder(_BatchIdentity)


def _receipted(topics: Topics, item: Decoded) -> tuple[str, BatchRef] | None:
    """(agent id, batch) for a telemetry message of a known agent, stored or dead."""
    payload = item.payload
    if isinstance(payload, TelemetryBatch):
        if payload.agent_id is None:
            return None
        return payload.agent_id, BatchRef(payload.ap_id, payload.seq)
    return _dead_batch(topics, item.topic, item.dead.payload) if item.dead is not None else None


def _dead_batch(topics: Topics, topic: str, raw: bytes) -> tuple[str, BatchRef] | None:
    """The identity a refused telemetry payload still carries, if it names its agent and
    the access point of its topic."""
    try:
        parsed = topics.parse(topic)
        if parsed.stream is not Stream.TELEMETRY:
            return None
        identity = _IDENTITY.decode(raw)
    except (TopicError, msgspec.DecodeError):
        return None
    if identity.agent_id is None or identity.ap_id != parsed.source_id:
        return None
    return identity.agent_id, BatchRef(identity.ap_id, identity.seq)


def receipts_for(topics: Topics, committed: Sequence[Decoded]) -> list[StoredReceipt]:
    """One receipt per agent for the telemetry batches of a committed flush."""
    by_agent: dict[str, list[BatchRef]] = {}
    for item in committed:
        found = _receipted(topics, item)
        if found is None:
            continue
        agent_id, batch = found
        try:
            topics.edge_stored(agent_id)
        except TopicError:
            continue  # not an identifier a topic can carry: nobody to tell
        by_agent.setdefault(agent_id, []).append(batch)
    now = time.time()
    return [
        StoredReceipt(agent_id=agent, batches=batches, stored_at=now)
        for agent, batches in by_agent.items()
    ]


async def send_receipts(
    client: aiomqtt.Client, topics: Topics, receipts: Sequence[StoredReceipt]
) -> bool:
    """Publish the receipts (QoS 1, in flight together); False when the broker went away
    meanwhile. A lost receipt costs a repeat of its batches, which the store ignores."""
    # One receipt per agent in flight together is the design, not a leak worth a warning.
    client.pending_calls_threshold = max(client.pending_calls_threshold, 2 * len(receipts))
    outcomes = await asyncio.gather(
        *(
            client.publish(topics.edge_stored(r.agent_id), STORED_RECEIPT.encode(r), qos=1)
            for r in receipts
        ),
        return_exceptions=True,
    )
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    for outcome in failed:
        if not isinstance(outcome, aiomqtt.MqttError):
            raise outcome  # a bug or a cancellation, not the broker
    if failed:
        logger.warning(
            "could not send %d of %d telemetry receipts (%s)", len(failed), len(receipts), failed[0]
        )
    return not failed

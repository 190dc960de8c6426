"""Which telemetry a receipt names: stored batches and refused ones that still say whose
they are, one receipt per agent; nothing for messages that name no agent."""

from __future__ import annotations

from ingest._decode import Decoded
from ingest._receipts import receipts_for
from protocol import TELEMETRY, BatchRef, TelemetryBatch, Topics, WifiSample
from store import DeadLetter

TOPICS = Topics("r/v1")
SAMPLE = WifiSample(ts=1.0, clients=1, rx_bytes=0, tx_bytes=0, channel_util=0.0, up=True)


def _stored(ap: str, seq: int, agent: str | None) -> Decoded:
    batch = TelemetryBatch(ap_id=ap, seq=seq, samples=[SAMPLE], agent_id=agent)
    return Decoded(TOPICS.telemetry(ap), batch, None)


def _dead(ap: str, raw: bytes, topic: str | None = None) -> Decoded:
    where = topic or TOPICS.telemetry(ap)
    return Decoded(where, None, DeadLetter("ingest", where, "refused", raw))


def test_one_receipt_per_agent_for_stored_and_refused_batches() -> None:
    too_old = TelemetryBatch(ap_id="ap-2", seq=9, samples=[SAMPLE], agent_id="edge-b")
    receipts = receipts_for(
        TOPICS,
        [
            _stored("ap-1", 1, "edge-a"),
            _stored("ap-1", 2, "edge-a"),
            _stored("ap-3", 1, None),  # from before agents named themselves: nobody to tell
            _dead("ap-2", TELEMETRY.encode(too_old)),  # e.g. its times out of the window
            _dead("ap-4", b"not json"),
            _dead("ap-5", TELEMETRY.encode(too_old)),  # names another AP than its topic
            _dead("ap-2", TELEMETRY.encode(too_old), topic=TOPICS.dead_letters("vision")),
        ],
    )
    named = {r.agent_id: r.batches for r in receipts}
    assert named == {
        "edge-a": [BatchRef("ap-1", 1), BatchRef("ap-1", 2)],
        "edge-b": [BatchRef("ap-2", 9)],
    }

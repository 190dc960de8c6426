"""A Wi-Fi fleet publishing telemetry at a fixed rate, in its own process, for the ingest
benchmark: ``python -m ioc.bench._publisher URL PREFIX RATE SECONDS BATCH APS``.

Each sample's ``ts`` is the moment its message is published, so the ingest side can tell
publish-to-commit latency from the wall clock alone. Prints one JSON line when done.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass

from protocol import TELEMETRY, MqttEndpoint, TelemetryBatch, Topics, WifiSample


@dataclass(frozen=True, slots=True)
class Fleet:
    rate: float
    """Samples per second."""
    seconds: float
    batch: int
    """Samples per message."""
    aps: int

    def argv(self, url: str, prefix: str) -> list[str]:
        return [url, prefix, *(str(v) for v in (self.rate, self.seconds, self.batch, self.aps))]


def _batch(ap: str, seq: int, size: int, now: float) -> TelemetryBatch:
    # Distinct timestamps within a batch (10 µs apart: a float epoch holds ~0.2 µs);
    # a visitor hash on every tenth sample.
    return TelemetryBatch(
        ap_id=ap,
        seq=seq,
        samples=[
            WifiSample(
                ts=round(now, 3) + k * 1e-5,
                clients=(seq + k) % 150,
                rx_bytes=seq * 1000 + k,
                tx_bytes=seq * 3000 + k,
                channel_util=((seq + k) % 100) / 100,
                up=True,
                visitors=[f"{(seq * 7919 + k) % 4096:016x}"] if k % 10 == 0 else [],
            )
            for k in range(size)
        ],
    )


async def publish(url: str, prefix: str, fleet: Fleet) -> dict[str, float]:
    rate, seconds, batch, aps = fleet.rate, fleet.seconds, fleet.batch, fleet.aps
    topics = Topics(prefix)
    endpoint = MqttEndpoint.from_url(url)
    names = [f"ap-{i:04d}" for i in range(aps)]
    per_second = rate / batch
    published = samples = 0
    async with endpoint.client(f"bench-publisher-{prefix}", max_inflight=1000) as client:
        start, started_at = time.monotonic(), time.time()
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(elapsed * per_second) + 1
            while published < due:
                ap = names[published % aps]
                seq = published // aps
                payload = TELEMETRY.encode(_batch(ap, seq, batch, time.time()))
                await client.publish(topics.telemetry(ap), payload, qos=1)
                published += 1
                samples += batch
            ahead = due / per_second - (time.monotonic() - start)
            if ahead > 0:
                await asyncio.sleep(ahead)  # pacing the publisher, not synchronising a test
        took = time.monotonic() - start
    return {"messages": published, "samples": samples, "seconds": took, "started_at": started_at}


def main() -> None:
    url, prefix, rate, seconds, batch, aps = sys.argv[1:7]
    fleet = Fleet(float(rate), float(seconds), int(batch), int(aps))
    result = asyncio.run(publish(url, prefix, fleet))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()

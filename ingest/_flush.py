"""One flush: the decoded messages of a batch, written to the store by kind.

Every write is idempotent (batch ids, state keys), so a flush retried after a failure
stores nothing twice. A database refusal that is not transient is narrowed down to the
messages causing it, which become dead letters with the database's reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import msgspec

from protocol import CameraState, EdgeState, TelemetryBatch, TrafficMetrics
from store import (
    Connection,
    DeadLetter,
    WriteMode,
    record_dead_letters,
    write_camera_states,
    write_edge_states,
    write_telemetry,
    write_traffic,
)

from ._decode import CONSUMER, Decoded

TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # a connection dropped in the middle of an operation
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,  # admin shutdown, cannot connect now
    asyncpg.TransactionRollbackError,  # serialization failure, deadlock
    asyncpg.InsufficientResourcesError,  # too many connections, disk full
)


REFUSED: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.DataError,  # a value the driver cannot encode (client side)
    OverflowError,
    ValueError,
    TypeError,
)
STORE_ERRORS = TRANSIENT + REFUSED


def is_transient(exc: BaseException) -> bool:
    """Worth retrying as is (the database or the network), rather than a refusal of data."""
    return isinstance(exc, TRANSIENT) and not isinstance(exc, asyncpg.DataError)


@dataclass(frozen=True, slots=True)
class FlushResult:
    samples: int = 0
    traffic_rows: int = 0
    states: int = 0
    duplicate_batches: int = 0
    dead_letters: int = 0

    def __add__(self, other: FlushResult) -> FlushResult:
        return FlushResult(
            self.samples + other.samples,
            self.traffic_rows + other.traffic_rows,
            self.states + other.states,
            self.duplicate_batches + other.duplicate_batches,
            self.dead_letters + other.dead_letters,
        )


async def store_decoded(
    conn: Connection,
    decoded: Sequence[Decoded],
    mode: WriteMode,
    extra_letters: Sequence[DeadLetter] = (),
) -> FlushResult:
    payloads = [d.payload for d in decoded if d.payload is not None]
    telemetry = [p for p in payloads if isinstance(p, TelemetryBatch)]
    traffic = [p for p in payloads if isinstance(p, TrafficMetrics)]
    cameras = [p for p in payloads if isinstance(p, CameraState)]
    edges = [p for p in payloads if isinstance(p, EdgeState)]
    letters = [d.dead for d in decoded if d.dead is not None] + list(extra_letters)
    wifi = await write_telemetry(conn, telemetry, mode)
    counts = await write_traffic(conn, traffic, mode)
    await write_camera_states(conn, cameras)
    await write_edge_states(conn, edges)
    await record_dead_letters(conn, letters)
    return FlushResult(
        wifi.rows,
        counts.rows,
        len(cameras) + len(edges),
        wifi.duplicate_batches + counts.duplicate_batches,
        len(letters),
    )


async def store_isolating_bad(
    conn: Connection, decoded: Sequence[Decoded], mode: WriteMode
) -> FlushResult:
    """Store each message alone; one the database refuses becomes a dead letter."""
    result = FlushResult()
    refused: list[DeadLetter] = []
    for item in decoded:
        if item.payload is None:
            continue
        try:
            result += await store_decoded(conn, [item], mode)
        except STORE_ERRORS as exc:
            if is_transient(exc):
                raise
            payload = msgspec.json.encode(item.payload)
            refused.append(DeadLetter(CONSUMER, item.topic, f"store refused: {exc}", payload))
    letters = [d for d in decoded if d.payload is None]
    return result + await store_decoded(conn, letters, mode, refused)

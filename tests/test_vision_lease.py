"""The vision shard lease against a real PostgreSQL: one holder per shard, a standby that
takes the shard when the holder's session ends, a hung holder dropped by the server, and a
holder that lost its session stopping its work."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from store import StoreConfig
from vision import LeaseLost, ShardLease

pytestmark = [pytest.mark.postgres]


@pytest.fixture
async def leases(database: StoreConfig) -> AsyncIterator[list[ShardLease]]:
    made: list[ShardLease] = []
    yield made
    for lease in made:
        await lease.__aexit__(None, None, None)


def _lease(
    made: list[ShardLease], url: str, shard: tuple[int, int], name: str, timeout: float = 10.0
) -> ShardLease:
    lease = ShardLease(url, shard, instance=name, timeout=timeout, retry=0.1)
    made.append(lease)
    return lease


async def test_one_holder_per_shard_and_the_standby_takes_over_when_its_session_ends(
    database: StoreConfig, leases: list[ShardLease]
) -> None:
    holder = _lease(leases, database.url, (1, 2), "vision-a")
    standby = _lease(leases, database.url, (1, 2), "vision-b")
    other_shard = _lease(leases, database.url, (2, 2), "vision-c")
    assert not await holder.still_held()
    assert await holder.try_acquire()
    assert await holder.still_held()  # what its heartbeats check
    assert not await standby.try_acquire()
    assert not await standby.still_held()
    assert await other_shard.try_acquire()
    waiting = asyncio.create_task(standby.acquire())
    await holder.__aexit__(None, None, None)  # the holder's process dies: its session ends
    await asyncio.wait_for(waiting, 10)
    assert standby.takeovers == 1


async def test_a_hung_holder_is_dropped_by_the_server_and_then_knows_it(
    database: StoreConfig, leases: list[ShardLease]
) -> None:
    hung = _lease(leases, database.url, (1, 1), "vision-hung", timeout=1.0)
    standby = _lease(leases, database.url, (1, 1), "vision-b", timeout=1.0)
    assert await hung.try_acquire()
    # No heartbeat from the hung holder: PostgreSQL ends its idle session after 1 s.
    await asyncio.wait_for(standby.acquire(), 15)
    with pytest.raises(LeaseLost):
        await asyncio.wait_for(hung.hold(), 15)


async def test_a_holder_that_loses_its_session_stops_its_work_and_waits_again(
    database: StoreConfig, leases: list[ShardLease], db: asyncpg.Connection
) -> None:
    lease = _lease(leases, database.url, (1, 1), "vision-a", timeout=2.0)
    starts: list[int] = []
    stopped = asyncio.Event()
    changed = asyncio.Condition()

    async def work() -> None:
        async with changed:
            starts.append(len(starts) + 1)
            changed.notify_all()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopped.set()
            raise

    running = asyncio.create_task(lease.run_while_held(work))
    try:
        async with asyncio.timeout(20), changed:
            await changed.wait_for(lambda: len(starts) == 1)
        # A database failover or an administrator ends the holder's session.
        ended = await db.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'ioc-vision-lease vision-a'"
        )
        assert ended == 1
        await asyncio.wait_for(stopped.wait(), 20)
        async with asyncio.timeout(20), changed:
            await changed.wait_for(lambda: len(starts) == 2)  # nobody else: it holds it again
        assert lease.takeovers == 2
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

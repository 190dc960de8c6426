"""The change log is read as "every seq after the last one seen", which is only safe if a
change with a lower seq can never commit after one with a higher seq (migration 301)."""

from __future__ import annotations

import asyncpg
import pytest
from console_support import raise_alert, seed_registry

from alerts import changes_since
from alerts._repository import record_change
from store import StoreConfig

pytestmark = pytest.mark.postgres


async def test_a_later_change_waits_for_the_earlier_one_to_commit(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    _, before = await raise_alert(db)
    alert = (await changes_since(db, 0))[0].alert
    first = await asyncpg.connect(database.url)
    second = await asyncpg.connect(database.url)
    try:
        earlier = first.transaction()
        await earlier.start()
        seq_first = await record_change(first, alert)
        # A second writer must wait for the first to commit: with a lock timeout it gives
        # up instead of waiting, which shows that it had to wait.
        await second.execute("SET lock_timeout = '200ms'")
        with pytest.raises(asyncpg.LockNotAvailableError):
            async with second.transaction():
                await record_change(second, alert)
        # Nothing after `before` is visible: a reader cannot skip the uncommitted one.
        assert await changes_since(db, before) == []
        await earlier.commit()
        async with second.transaction():
            seq_second = await record_change(second, alert)
    finally:
        await first.close()
        await second.close()
    assert seq_first == before + 1
    assert seq_second == seq_first + 1  # the lock costs no gaps
    assert [c.seq for c in await changes_since(db, before)] == [seq_first, seq_second]


async def test_a_rolled_back_change_leaves_a_gap_that_readers_step_over(
    database: StoreConfig, db: asyncpg.Connection
) -> None:
    await seed_registry(db)
    _, before = await raise_alert(db)
    alert = (await changes_since(db, 0))[0].alert
    rolled_back = db.transaction()
    await rolled_back.start()
    await record_change(db, alert)
    await rolled_back.rollback()
    _, after = await raise_alert(db)
    assert [c.seq for c in await changes_since(db, before)] == [after]
    assert after == before + 2

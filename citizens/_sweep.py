"""The citizens' sweep: camera alerts that opened near open reports join them, and reports
past their target time escalate."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from protocol import Background, Work
from store import DB_ERRORS

from ._catalogue import Catalogue
from ._intake import escalate_overdue, join_new_alerts

logger = logging.getLogger(__name__)


class ReportSweep(Background):
    def __init__(self, pool: asyncpg.Pool, catalogue: Catalogue, interval: float = 2.0) -> None:
        self.pool, self.catalogue, self.interval = pool, catalogue, interval

    async def _start(self, stack: contextlib.AsyncExitStack) -> Work:
        return {"open311-sweep": self._loop()}

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                joined, escalated = await self.sweep()
            except DB_ERRORS as exc:
                logger.warning("open311 sweep failed: %s", exc)
            else:
                if joined or escalated:
                    logger.info("open311: %d reports joined, %d escalated", joined, escalated)
            await asyncio.sleep(self.interval)

    async def sweep(self) -> tuple[int, int]:
        async with self.pool.acquire() as conn:
            joined = await join_new_alerts(conn, self.catalogue)
            escalated = await escalate_overdue(conn)
        return joined, len(escalated)

"""``ioc store ...``: upkeep of the time-series store."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict

from store import connect, maintain

from .runtime import infrastructure, retention
from .settings import Settings


def run_maintenance(settings: Settings) -> None:
    """Create the coming partitions, apply retention, forget old batch ids; print a JSON
    summary (``null`` when another process is doing the same right now)."""

    async def run() -> None:
        async with infrastructure(settings) as infra:
            conn = await connect(infra.store)
            try:
                report = await maintain(conn, retention=retention(settings))
            finally:
                await conn.close()
        sys.stdout.write(json.dumps(asdict(report) if report else None) + "\n")

    asyncio.run(run())

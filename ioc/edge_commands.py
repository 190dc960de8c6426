"""``ioc edge`` (one edge agent) and ``ioc mosquitto-config`` (broker users and ACLs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

import cv2

from edge import MESSAGE_SIZE_LIMIT, SERVICES, EdgeAgent, load_agent, write_mosquitto_config
from protocol import load_province

logger = logging.getLogger(__name__)


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # OpenCV repeats every failed open on stderr; our own log already says it, once.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


async def _run_agent(config: Path) -> None:
    plan = load_agent(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with EdgeAgent(plan) as agent:
        stopped = asyncio.create_task(stop.wait())
        failed = asyncio.create_task(agent.run_until_failure())
        done, _ = await asyncio.wait({stopped, failed}, return_when=asyncio.FIRST_COMPLETED)
        for task in (stopped, failed):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if failed in done:
            failed.result()  # a loop died: say why (sources and brokers are retried inside)
        logger.info("edge %s stopping", plan.config.agent_id)
    logger.info("edge %s stopped", plan.config.agent_id)


def run_edge(config: Path) -> None:
    """Run one agent until SIGTERM/SIGINT, then stop in order (spool, goodbye, disconnect)."""
    _logging(os.environ.get("IOC_LOG_LEVEL", "INFO"))
    asyncio.run(_run_agent(config))


def mosquitto_config(
    province: Path,
    out: Path,
    prefix: str,
    services: list[str] | None,
    message_size_limit: int | None = None,
) -> None:
    """Write ``passwd`` and ``acl`` for Mosquitto, and one credentials file per user."""
    written = write_mosquitto_config(
        load_province(province),
        out,
        prefix=prefix,
        services=services or list(SERVICES),
        message_size_limit=message_size_limit or MESSAGE_SIZE_LIMIT,
    )
    for path in written:
        print(path)  # the command's output: the files it wrote

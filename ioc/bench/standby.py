"""``ioc bench standby``: how long a shard goes unwatched when its vision worker dies.

PostgreSQL and Mosquitto start here; two ``ioc vision run --shard 1/1 --lease`` processes
run, with the settings production uses (``IOC_VISION_LEASE_TIMEOUT``,
``IOC_VISION_LEASE_RETRY``). The one holding the shard is then, in two rounds:
- killed (SIGKILL: its process or machine died and the kernel closed its connection);
- frozen (SIGSTOP: it hangs, or its machine is gone without closing anything), which only
  PostgreSQL's ``idle_session_timeout`` ends; afterwards it is let go on (SIGCONT) and must
  see that it lost the shard and stand by.
``vision_takeover_s`` is from the fault until the standby reports ``running`` (subscribed to
the shard's frames); its background models then warm up in half a second (docs/vision.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from protocol import MqttEndpoint, Topics

from ..servers import MosquittoBroker, PostgresCluster
from ..supervisor import ServiceProcess
from ._meter import StatusLog
from ._province import progress

say = progress("bench standby")
DEADLINE_S = 120.0


async def _round(
    fault: str, env: dict[str, str], root: Path, statuses: StatusLog
) -> dict[str, Any]:
    holder_name, standby_name = f"vision-{fault}-a", f"vision-{fault}-b"
    args = ["vision", "run", "--shard", "1/1", "--lease", "--instance"]
    holder = ServiceProcess(holder_name, [*args, holder_name], env, root)
    standby = ServiceProcess(standby_name, [*args, standby_name], env, root)
    try:
        async with asyncio.timeout(DEADLINE_S):
            await holder.start()
            await statuses.wait_status(holder_name, "running")
            await standby.start()
            await statuses.wait_status(standby_name, "standby")
            pid = holder.pid
            if pid is None:
                raise RuntimeError(f"{holder_name} has no process (see {holder.log})")
            at = time.time()
            if fault == "kill":
                await holder.kill()
            else:
                os.kill(pid, signal.SIGSTOP)
            took = await statuses.wait_status(standby_name, "running", after=at)
            takeover = took.reported_at - at
            say(f"{fault}: the standby runs the shard {takeover:.2f} s after the fault")
            result: dict[str, Any] = {"vision_takeover_s": round(takeover, 2)}
            if fault == "hang":
                thawed = time.time()
                os.kill(pid, signal.SIGCONT)
                stood = await statuses.wait_status(holder_name, "standby", after=thawed)
                result["thawed_holder_stood_down_s"] = round(stood.reported_at - thawed, 2)
            return result
    finally:
        await standby.stop()
        with contextlib.suppress(ProcessLookupError):
            if holder.pid is not None and holder.running:
                os.kill(holder.pid, signal.SIGCONT)
        await holder.stop()


async def run(lease_timeout: float, retry: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ioc-bench-standby-") as tmp:
        root = Path(tmp)
        cluster = PostgresCluster(root / "postgres")
        broker = MosquittoBroker(root / "mosquitto")
        say("starting PostgreSQL and Mosquitto")
        await asyncio.to_thread(cluster.start)
        try:
            broker.start()
            try:
                topics = Topics("bench-standby/v1")
                env = {
                    "IOC_MQTT_URL": broker.url,
                    "IOC_DATABASE_URL": cluster.url,
                    "IOC_TOPIC_PREFIX": topics.prefix,
                    "IOC_VISION_LEASE_TIMEOUT": str(lease_timeout),
                    "IOC_VISION_LEASE_RETRY": str(retry),
                }
                async with StatusLog(MqttEndpoint.from_url(broker.url), topics) as statuses:
                    kill = await _round("kill", env, root, statuses)
                    hang = await _round("hang", env, root, statuses)
            finally:
                broker.stop()
        finally:
            await asyncio.to_thread(cluster.stop)
    return {
        "killed": kill,
        "hung": hang,
        "vision_lease_timeout_s": lease_timeout,
        "vision_lease_retry_s": retry,
        "bound_s": 15.0,
    }


def main(timeout: float, retry: float) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        result = asyncio.run(run(timeout, retry))
        sys.stdout.write(json.dumps(result) + "\n")

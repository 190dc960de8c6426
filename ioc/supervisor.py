"""Services as child processes (`python -m ioc <command>`), the way production runs them:
the demo, the end-to-end benchmark and the soak test start, stop, kill and restart them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

logger = logging.getLogger(__name__)


class ServiceProcess:
    """One service process with its log file; ``stop`` is graceful (SIGTERM, then SIGKILL
    after ``grace`` seconds), ``kill`` is a crash."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        env: Mapping[str, str],
        log_dir: Path,
        *,
        grace: float = 15.0,
    ) -> None:
        self.name = name
        self.args = list(args)
        self.env = dict(env)
        self.log = log_dir / f"{name}.log"
        self.grace = grace
        self.starts = 0
        self._process: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        if self.running:
            return
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "ioc",
                *self.args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, **self.env},
            )
        self.starts += 1
        logger.info(
            "started %s (pid %d): ioc %s", self.name, self._process.pid, " ".join(self.args)
        )

    async def stop(self) -> int | None:
        process = self._process
        if process is None or process.returncode is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(process.wait(), self.grace)
        except TimeoutError:
            logger.warning("%s did not stop in %.0f s; killing it", self.name, self.grace)
            process.kill()
            return await process.wait()

    async def kill(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def wait(self) -> int:
        if self._process is None:
            raise RuntimeError(f"{self.name} was never started")
        return await self._process.wait()


class Supervisor:
    """Starts services in order and stops them in reverse order on exit."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.env = dict(env)
        self.log_dir = log_dir
        self.services: dict[str, ServiceProcess] = {}

    async def add(
        self, name: str, *args: str, env: Mapping[str, str] | None = None
    ) -> ServiceProcess:
        """Start ``ioc ARGS`` as ``name``, with ``env`` over the common environment."""
        service = ServiceProcess(name, args, {**self.env, **(env or {})}, self.log_dir)
        self.services[name] = service
        await service.start()
        return service

    def dead(self) -> list[ServiceProcess]:
        """Services that have exited on their own."""
        return [s for s in self.services.values() if not s.running]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for service in reversed(list(self.services.values())):
            with contextlib.suppress(ProcessLookupError):
                await service.stop()

"""What the services of a whole-province run did and cost: every ``ServiceStatus`` report
they published (counters, from each process's own clock), and CPU and memory of each
process (services, broker, database) measured from outside with psutil."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import psutil

from protocol import (
    MqttEndpoint,
    ServiceStatus,
    Topics,
)

from ..board import StatusFollower

logger = logging.getLogger(__name__)


class StatusLog(StatusFollower):
    """Every status report of every service instance, kept for the run."""

    follower = "status-log"

    def __init__(self, endpoint: MqttEndpoint, topics: Topics) -> None:
        super().__init__(endpoint, topics)
        self.reports: dict[str, list[ServiceStatus]] = {}
        self.arrivals: list[tuple[float, ServiceStatus]] = []
        """Every report with the time (epoch s) it arrived here, in arrival order: a last
        will carries the time its client connected, its arrival is when the client died."""
        self._changed = asyncio.Condition()

    async def _took(self, status: ServiceStatus) -> None:
        async with self._changed:
            self.reports.setdefault(status.instance, []).append(status)
            self.arrivals.append((time.time(), status))
            self._changed.notify_all()

    def latest(self, instance: str) -> ServiceStatus | None:
        reports = self.reports.get(instance)
        return reports[-1] if reports else None

    async def wait_running(self, instances: Iterable[str], *, pid_not: dict[str, int]) -> None:
        """Return once each instance reports ``running`` from a process other than the one
        in ``pid_not`` (a restarted service's new process)."""
        wanted = list(instances)

        def ready() -> bool:
            for name in wanted:
                latest = self.latest(name)
                if latest is None or latest.status != "running":
                    return False
                if latest.pid == pid_not.get(name):
                    return False
            return True

        async with self._changed:
            await self._changed.wait_for(ready)

    async def wait_status(self, instance: str, status: str, *, after: float = 0.0) -> ServiceStatus:
        """The first report of ``status`` by ``instance`` made after ``after`` (epoch s)."""

        def found() -> ServiceStatus | None:
            return next(
                (
                    r
                    for r in self.reports.get(instance, [])
                    if r.status == status and r.reported_at > after
                ),
                None,
            )

        async with self._changed:
            report = await self._changed.wait_for(found)
        if report is None:  # wait_for returns only once found() is truthy
            raise RuntimeError(f"no {status} report of {instance}")
        return report

    def silent_since(self, instances: Iterable[str], moment: float) -> list[str]:
        """Instances that have not reported running (or standing by) after ``moment``."""
        silent = []
        for name in instances:
            latest = self.latest(name)
            if latest is None or latest.status == "stopped" or latest.reported_at <= moment:
                silent.append(name)
        return silent

    async def wait_reported_after(self, instances: Iterable[str], moment: float) -> None:
        """Return once each instance has reported running (or standing by) after ``moment``:
        after a broker restart, every service is connected again."""
        wanted = list(instances)
        async with self._changed:
            await self._changed.wait_for(lambda: not self.silent_since(wanted, moment))

    def total(self, service: str, counter: str) -> float:
        """All the work of ``service`` in the run: each process's counts summed (a killed
        process's as of its last report). A count that falls within a process started
        again from zero (a vision worker counts per hold of its lease)."""
        total = 0.0
        for reports in self.reports.values():
            peak: dict[int, float] = {}
            for r in reports:
                if r.service != service or counter not in r.counters:
                    continue
                value = r.counters[counter]
                if value < peak.get(r.pid, 0.0):
                    total += peak[r.pid]
                peak[r.pid] = value
            total += sum(peak.values())
        return total

    def longest_unwatched(
        self, shards: Mapping[str, Sequence[str]], start: float, end: float
    ) -> dict[str, float]:
        """For each shard (the instances of its workers): the longest stretch of
        [``start``, ``end``] (epoch s) in which none of them was running, by arrival."""
        longest: dict[str, float] = {}
        for shard, names in shards.items():
            mine = [(at, r) for at, r in self.arrivals if r.instance in names and at <= end]
            state = {r.instance: r.status for at, r in mine if at < start}
            gap_from = None if "running" in state.values() else start
            worst = 0.0
            for at, report in mine:
                if at < start:
                    continue
                state[report.instance] = report.status
                watched = "running" in state.values()
                if gap_from is None and not watched:
                    gap_from = at
                elif gap_from is not None and watched:
                    worst = max(worst, at - gap_from)
                    gap_from = None
            if gap_from is not None:
                worst = max(worst, end - gap_from)
            longest[shard] = worst
        return longest

    def rate(self, service: str, counter: str, since: float, until: float) -> float:
        """Sum over the service's instances of the counter's growth per second between
        their first and last reports in [since, until] (each process's own clock)."""
        total = 0.0
        for reports in self.reports.values():
            inside = [
                r
                for r in reports
                if r.service == service
                and r.status == "running"
                and since <= r.reported_at <= until
            ]
            if len(inside) < 2 or inside[0].pid != inside[-1].pid:
                continue
            first, last = inside[0], inside[-1]
            span = last.reported_at - first.reported_at
            total += (last.counters.get(counter, 0.0) - first.counters.get(counter, 0.0)) / span
        return total


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_seconds: float
    rss_mb: float


def _usage(pids: list[int]) -> Usage:
    cpu, memory = 0.0, 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            process = psutil.Process(pid)
            times = process.cpu_times()
            cpu += times.user + times.system
            # Proportional memory: PostgreSQL's backends share their buffers.
            memory += getattr(process.memory_full_info(), "pss", process.memory_info().rss)
    return Usage(cpu, memory / 2**20)


class ProcessMeter:
    """CPU per wall second and memory of named process groups between two readings."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups

    def read(self) -> tuple[float, dict[str, Usage]]:
        return time.monotonic(), {name: _usage(pids()) for name, pids in self.groups.items()}

    @staticmethod
    def usage(
        start: tuple[float, dict[str, Usage]], end: tuple[float, dict[str, Usage]]
    ) -> dict[str, dict[str, float]]:
        wall = end[0] - start[0]
        return {
            name: {
                "cpu_percent": round(
                    100 * (used.cpu_seconds - start[1][name].cpu_seconds) / wall, 1
                ),
                "rss_mb": round(used.rss_mb, 1),
            }
            for name, used in end[1].items()
            if name in start[1]
        }


def process_tree(pid: int | None) -> list[int]:
    """``pid`` and its descendants (PostgreSQL's postmaster and backends)."""
    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [pid, *(child.pid for child in root.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []

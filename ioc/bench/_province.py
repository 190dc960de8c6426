"""A whole province on this machine, every service in its own process, for the end-to-end
benchmark and the soak.

On enter: a durable private PostgreSQL and a Mosquitto, the schema and registry, an
operator, the police receiver, the witness of what the broker accepted, then ingest, alerts,
the vision shards and the console API as processes (each waited for until it reports
running, that is until its subscriptions exist), then the simulator with its incident
script, and operator websocket clients. On exit everything stops in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from console_api import Role, add_user, issue_token
from protocol import MqttEndpoint, Topics
from store import StoreConfig, connect

from ..cluster import PatroniCluster
from ..haproxy import Backend, HAProxy, Server
from ..runtime import prepare_store
from ..servers import MosquittoBroker, PostgresCluster, free_port
from ..supervisor import ServiceProcess, Supervisor
from ._files import (
    POLICE_SECRET_ENV,
    Size,
    police_secret,
    write_incidents,
    write_province,
    write_rules,
)
from ._meter import ProcessMeter, StatusLog, process_tree
from ._operators import Operators
from ._police import PoliceReceiver
from ._witness import Witness

logger = logging.getLogger(__name__)
STARTUP_DEADLINE = 180.0
"""Seconds a service may take to report running (the simulator encodes its clips first)."""


def progress(tag: str) -> Callable[[str], None]:
    def say(message: str) -> None:
        sys.stderr.write(f"[{tag}] {message}\n")
        sys.stderr.flush()

    return say


class ProvinceRun:
    def __init__(
        self,
        root: Path,
        size: Size,
        *,
        seconds: float,
        auto_resolve: float = 5.0,
        say: Callable[[str], None],
        second_broker: bool = False,
        patroni: bool = False,
        api_processes: int = 1,
        vision_standby: bool = False,
    ) -> None:
        self.root = root
        self.size = size
        self.seconds = seconds
        self.auto_resolve = auto_resolve
        self.say = say
        self.topics = Topics("ioc/v1")
        self.cluster = PostgresCluster(root / "postgres", durable=True)
        self.patroni = PatroniCluster(root / "patroni") if patroni else None
        """With it, the database is a Patroni cluster (primary, synchronous replica, etcd)
        that services reach through HAProxy; ``cluster`` is then unused."""
        self.broker = MosquittoBroker(root / "mosquitto")
        self.second_broker = MosquittoBroker(root / "mosquitto-2") if second_broker else None
        """An independent Mosquitto every client fails over to (``ioc soak --broker-failover``)."""
        self.endpoint = MqttEndpoint.from_url(self.broker_urls)
        self.api_port = free_port()
        self.api_ports = [self.api_port, *(free_port() for _ in range(api_processes - 1))]
        """With several, each ``ioc api`` process (``api``, ``api-2`` ...) has one, and the
        operators connect through HAProxy (``proxy``) on ``api_port``."""
        if api_processes > 1:
            self.api_port = free_port()
        self.proxy: HAProxy | None = None
        self.vision_standby = vision_standby
        """With it, each shard has two ``ioc vision run --lease`` workers (``vision-i`` and
        ``vision-ib``): the one holding the shard's lease analyses, the other stands by."""
        self.db_failover_s: float | None = None
        """Set by the soak's database fault: kill to the first write on the new primary."""
        self.api_failover_s: float | None = None
        """Set by the soak's API fault: kill to an operator subscribed again via the proxy."""
        self.vision_takeover_s: float | None = None
        """Set by the soak's vision fault: kill to the other worker running the shard."""
        self.broker_failover_s: float | None = None
        """Set by the soak's broker fault: kill to every service reporting via the second."""
        self._stack = contextlib.AsyncExitStack()

    @property
    def broker_urls(self) -> str:
        """IOC_MQTT_URL: the broker, or both in the order clients try them."""
        second = self.second_broker
        return self.broker.url if second is None else f"{self.broker.url},{second.url}"

    @property
    def database_url(self) -> str:
        return self.cluster.url if self.patroni is None else self.patroni.url

    @property
    def store(self) -> StoreConfig:
        return StoreConfig(url=self.database_url)

    @property
    def instances(self) -> dict[str, str]:
        """Service process name -> the instance name it reports status under (the API
        reports none: its readiness is its operators' subscription)."""
        n = self.size.vision_shards
        names = {"ingest": "ingest-1", "alerts": "alerts-1", "simulator": "sim-1"}
        names.update({f"vision-{i}": f"vision-{i}-of-{n}" for i in range(1, n + 1)})
        names.update({f"vision-{i}b": f"vision-{i}-of-{n}-b" for i in self._standby_shards})
        return names

    @property
    def _standby_shards(self) -> range:
        return range(1, self.size.vision_shards + 1 if self.vision_standby else 1)

    @property
    def shards(self) -> dict[str, list[str]]:
        """Shard "i/n" -> the service names of its vision workers."""
        n = self.size.vision_shards
        return {
            f"{i}/{n}": [f"vision-{i}", *([f"vision-{i}b"] if self.vision_standby else [])]
            for i in range(1, n + 1)
        }

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.say("stopping the services and servers")
        await self._stack.__aexit__(exc_type, exc, tb)

    async def _start(self) -> None:
        stack, size = self._stack, self.size
        if self.patroni is None:
            self.say("starting PostgreSQL (durable) and Mosquitto")
            await asyncio.to_thread(self.cluster.start)
            stack.callback(self.cluster.stop, "fast")
        else:
            self.say("starting etcd, Patroni (primary, synchronous replica), HAProxy, Mosquitto")
            await stack.enter_async_context(self.patroni)
        await asyncio.to_thread(self.broker.start)
        stack.callback(self.broker.stop)
        if self.second_broker is not None:
            await asyncio.to_thread(self.second_broker.start)
            stack.callback(self.second_broker.stop)
        province_file = self.root / "province.yaml"
        self.province = write_province(province_file, size)
        secret = police_secret()
        self.police = await stack.enter_async_context(PoliceReceiver(secret))
        rules_file = self.root / "alert-rules.yaml"
        self.routes = write_rules(
            rules_file, self.province, self.police.url, secret, self.auto_resolve
        )
        incidents_file = self.root / "incidents.yaml"
        write_incidents(incidents_file, self.province, self.seconds)
        await prepare_store(self.store, self.province)
        token = await self._operator_token()
        self.witness = await stack.enter_async_context(
            Witness(self.endpoint, self.topics, "bench-witness")
        )
        self.statuses = await stack.enter_async_context(StatusLog(self.endpoint, self.topics))
        env = {
            "IOC_MQTT_URL": self.broker_urls,
            "IOC_MQTT_V5": "true",
            "IOC_DATABASE_URL": self.database_url,
            "IOC_PROVINCE": str(province_file),
            "IOC_TOPIC_PREFIX": self.topics.prefix,
            "IOC_STATE_DIR": str(self.root / "state"),
            "IOC_API_HOST": "127.0.0.1",
            "IOC_API_PORT": str(self.api_port),
            "IOC_LOG_LEVEL": "WARNING",
            "IOC_ALERT_RULES": str(rules_file),
            POLICE_SECRET_ENV: secret,
        }
        if self.patroni is not None:  # planners' reads on the replica, as production may
            env["IOC_DATABASE_READ_URL"] = self.patroni.read_url
        self.supervisor = await stack.enter_async_context(Supervisor(env, self.root / "logs"))
        self.say(
            f"starting ingest, alerts, {size.vision_shards} vision shards and the API "
            f"(logs in {self.supervisor.log_dir})"
        )
        await self.supervisor.add("ingest", "ingest", "--identifier", "ingest-1")
        await self.supervisor.add("alerts", "alerts", "run")
        for i in range(1, size.vision_shards + 1):
            await self._add_vision(f"vision-{i}", i)
        await self._start_api()
        standbys = [f"vision-{i}b" for i in self._standby_shards]
        await self.wait_running([n for n in self.instances if n not in ("simulator", *standbys)])
        for name, i in zip(standbys, self._standby_shards, strict=True):
            await self._add_vision(name, i)  # once the first holds the lease: it stands by
            await self._deadline(self.statuses.wait_status(self.instances[name], "standby"), name)
        self.operators = await stack.enter_async_context(
            Operators(f"127.0.0.1:{self.api_port}", token, size.operators)
        )
        await self._deadline(self.operators.wait_until_subscribed(), "the operators' websockets")
        self.say(
            f"starting the simulator: {len(self.province.cameras)} cameras at {size.fps:g} fps, "
            f"{len(self.province.access_points)} access points, scripted incidents"
        )
        await self.supervisor.add("simulator", "simulate", "--incidents", str(incidents_file))
        await self.wait_running(["simulator"])
        self.meter = ProcessMeter(
            {
                **{name: self._pid_of(name) for name in self.supervisor.services},
                "mosquitto": self._broker_pid,
                "postgres": self._postgres_pids,
            }
        )

    async def _add_vision(self, name: str, i: int) -> None:
        args = ["vision", "run", "--shard", f"{i}/{self.size.vision_shards}"]
        if self.vision_standby:
            args += ["--lease", "--instance", self.instances[name]]
        await self.supervisor.add(name, *args)

    @property
    def api_names(self) -> list[str]:
        return ["api", *(f"api-{i}" for i in range(2, len(self.api_ports) + 1))]

    async def _start_api(self) -> None:
        for name, port in zip(self.api_names, self.api_ports, strict=True):
            await self.supervisor.add(name, "api", env={"IOC_API_PORT": str(port)})
        if len(self.api_ports) == 1:
            return
        servers = tuple(
            Server(name, "127.0.0.1", port)
            for name, port in zip(self.api_names, self.api_ports, strict=True)
        )
        self.proxy = HAProxy(
            self.root / "haproxy-api", [Backend("console_api", servers, "http-api", self.api_port)]
        )
        # The operators reach the API through it once the checks admit a process; until
        # then they connect again with backoff (the proxy answers 503).
        await asyncio.to_thread(self.proxy.start)
        self._stack.callback(self.proxy.stop)

    async def _deadline(self, waiting: Awaitable[object], what: str) -> None:
        try:
            await asyncio.wait_for(waiting, STARTUP_DEADLINE)
        except TimeoutError as exc:
            raise RuntimeError(
                f"{what} not ready in {STARTUP_DEADLINE:.0f} s; see {self.root / 'logs'}"
            ) from exc

    async def wait_running(
        self, names: list[str], *, pid_not: dict[str, int] | None = None
    ) -> None:
        """Wait (with a deadline) until these services report running (from a process
        other than ``pid_not``'s, after a restart)."""
        instances = [self.instances[n] for n in names]
        waiting = self.statuses.wait_running(instances, pid_not=pid_not or {})
        await self._deadline(waiting, ", ".join(names))

    def service(self, name: str) -> ServiceProcess:
        return self.supervisor.services[name]

    def _pid_of(self, name: str) -> Callable[[], list[int]]:
        return lambda: [pid] if (pid := self.supervisor.services[name].pid) else []

    def _broker_pid(self) -> list[int]:
        process = self.broker._process  # the broker's CPU, which servers.py does not expose
        return [process.pid] if process is not None else []

    def _postgres_pids(self) -> list[int]:
        primary = None if self.patroni is None else self.patroni.primary()
        data = self.cluster.data if primary is None else primary.data
        pid_file = data / "postmaster.pid"
        try:
            return process_tree(int(pid_file.read_text().splitlines()[0]))
        except (OSError, ValueError, IndexError):
            return []

    async def _operator_token(self) -> str:
        conn = await connect(self.store)
        try:
            await add_user(conn, "bench-operator", Role.OPERATOR, "bench password, not a secret")
            return (await issue_token(conn, "bench-operator")).token
        finally:
            await conn.close()

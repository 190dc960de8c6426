"""HAProxy in front of a tier of servers: the PostgreSQL nodes (the primary found through
Patroni's REST API) or the console API processes (their ``/healthz``).

One module for both tiers: :class:`Backend` names the servers and the health check,
:func:`render_config` writes the configuration that production uses as well (docs/production.md
prints it), and :class:`HAProxy` runs it on 127.0.0.1 for the tests, the benchmarks and the soak.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from .servers import ServerError, free_port, stop_process, wait_for_port


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    host: str
    port: int
    check_port: int | None = None
    """Where the health check goes when it is not ``port`` (Patroni's REST API)."""


@dataclass(frozen=True, slots=True)
class Backend:
    """A frontend port and the servers behind it, with the check that admits a server."""

    name: str
    servers: tuple[Server, ...]
    kind: Literal["patroni-primary", "patroni-replica", "http-api"]
    bind_port: int = field(default_factory=free_port)
    bind_host: str = "127.0.0.1"

    def lines(self) -> list[str]:
        head = [f"listen {self.name}", f"    bind {self.bind_host}:{self.bind_port}"]
        if self.kind == "http-api":
            body = [
                "    mode http",
                "    balance leastconn",
                "    option forwardfor",
                # A connection refused by a process that died before its check failed is
                # sent to another server rather than answered 503.
                "    option redispatch",
                "    option httpchk GET /healthz",
                "    http-check expect status 200",
                # A websocket is a tunnel once upgraded: it may be quiet for long.
                "    timeout tunnel 1h",
                "    default-server inter 500ms fall 2 rise 2 on-marked-down shutdown-sessions",
            ]
        else:
            role = "primary" if self.kind == "patroni-primary" else "replica"
            body = [
                "    mode tcp",
                "    balance roundrobin" if role == "replica" else "    balance first",
                # Patroni answers 200 on /primary only on the leader, /replica only on a
                # streaming replica; HAProxy sends each client to the node that says 200.
                f"    option httpchk OPTIONS /{role}",
                "    http-check expect status 200",
                # A demoted or dead primary: its open sessions are cut at once, so no client
                # goes on writing into a node that is no longer the leader.
                "    default-server inter 500ms fall 2 rise 2 on-marked-down shutdown-sessions",
            ]
        servers = []
        for s in self.servers:
            check = "check" if s.check_port is None else f"check port {s.check_port}"
            servers.append(f"    server {s.name} {s.host}:{s.port} {check}")
        return head + body + servers


def render_config(backends: list[Backend], *, pid_file: Path | None = None) -> str:
    """The whole haproxy.cfg for these backends."""
    lines = ["global", "    maxconn 4000"]
    if pid_file is not None:
        lines.append(f"    pidfile {pid_file}")
    lines += [
        "",
        "defaults",
        "    timeout connect 2s",
        # Database sessions and API requests may idle; the checks, not timeouts, find the dead.
        "    timeout client 30m",
        "    timeout server 30m",
        "    timeout check 2s",
        "    retries 2",
        "",
    ]
    for backend in backends:
        lines += [*backend.lines(), ""]
    return "\n".join(lines)


def haproxy_binary() -> str | None:
    found = shutil.which("haproxy") or "/usr/sbin/haproxy"
    return found if Path(found).exists() else None


class HAProxy:
    """haproxy in the foreground on a generated config under ``root``; stopped on exit."""

    def __init__(self, root: Path, backends: list[Backend]) -> None:
        self.root = root.resolve()
        self.backends = backends
        self.config = self.root / "haproxy.cfg"
        self.log = self.root / "haproxy.log"
        self._process: subprocess.Popen[bytes] | None = None

    def port(self, name: str) -> int:
        for backend in self.backends:
            if backend.name == name:
                return backend.bind_port
        raise KeyError(name)

    def start(self, timeout: float = 10.0) -> None:
        binary = haproxy_binary()
        if binary is None:
            raise ServerError("haproxy is not installed (apt-get install haproxy)")
        self.root.mkdir(parents=True, exist_ok=True)
        self.config.write_text(render_config(self.backends))
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603
                [binary, "-db", "-f", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        for backend in self.backends:
            wait_for_port(backend.bind_port, self._process, timeout, self.log)

    def stop(self) -> None:
        process, self._process = self._process, None
        stop_process(process)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

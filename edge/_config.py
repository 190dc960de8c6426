"""The edge agent's configuration file (YAML), and what it resolves to at start-up.

Secrets never sit in the file: the broker URL, MQTT credentials, the visitor-hash secret and
controller tokens are read from environment variables the file names. Relative paths in the
file are relative to the file's folder. A file that is wrong is refused as a whole, with
every problem named (:class:`protocol.ConfigError`).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocol import (
    AccessPoint,
    Camera,
    ConfigError,
    MqttEndpoint,
    Province,
    Topics,
    load_province,
)

from ._camera import CameraSettings
from ._spool import SpoolPolicy


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Identifier = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Seconds = Annotated[float, Field(gt=0.0, le=86_400.0)]


class TlsOptions(_Strict):
    ca_file: Path | None = Field(None, description="CA bundle that signed the broker's cert")
    cert_file: Path | None = Field(None, description="Client certificate (PEM), if required")
    key_file: Path | None = Field(None, description="Private key of cert_file (PEM)")


class MqttOptions(_Strict):
    url_env: EnvName = Field("IOC_MQTT_URL", description="Variable with mqtt(s)://host:port")
    username_env: EnvName = Field("IOC_MQTT_USERNAME", description="Variable with the user")
    password_env: EnvName = Field("IOC_MQTT_PASSWORD", description="Variable with the password")
    topic_prefix: str = "ioc/v1"
    mqtt5: bool = Field(True, description="False for MQTT 3.1.1 brokers (the embedded amqtt)")
    tls: TlsOptions = TlsOptions()
    reconnect_max: Seconds = Field(30.0, description="Longest wait between reconnect attempts")


class CameraOptions(_Strict):
    width: Annotated[int, Field(ge=16, le=3840)] = 320
    height: Annotated[int, Field(ge=16, le=2160)] = 180
    jpeg_quality: Annotated[int, Field(ge=10, le=100)] = 80
    snapshot_quality: Annotated[int, Field(ge=10, le=100)] = 90
    open_timeout: Seconds = 10.0
    read_timeout: Seconds = 10.0
    file_speed: Annotated[float, Field(gt=0.0, le=100.0)] = 1.0
    max_backoff: Seconds = Field(60.0, description="Longest wait before reopening a source")
    media_dir: Path = Field(Path("."), description="Where relative file sources are found")

    def settings(self) -> CameraSettings:
        return CameraSettings(
            width=self.width,
            height=self.height,
            jpeg_quality=self.jpeg_quality,
            snapshot_quality=self.snapshot_quality,
            open_timeout=self.open_timeout,
            read_timeout=self.read_timeout,
            file_speed=self.file_speed,
            max_backoff=self.max_backoff,
        )


class ControllerSource(_Strict):
    kind: Literal["controller"]
    url: str = Field(description="GET returns the JSON in docs/edge.md; ${VAR} is expanded")
    token_env: EnvName | None = Field(None, description="Variable with a bearer token")
    access_points: list[Identifier] | None = Field(None, description="Default: all of ours")
    id_map: dict[str, Identifier] = Field({}, description="Controller AP name -> our AP id")
    timeout: Seconds = 5.0
    ca_file: Path | None = None


class SimulatedSource(_Strict):
    kind: Literal["simulated"]
    access_points: list[Identifier] | None = None
    seed: int = 7


class WifiOptions(_Strict):
    collectors: list[Annotated[ControllerSource | SimulatedSource, Field(discriminator="kind")]]
    poll_period: Seconds = 5.0
    batch_period: Seconds = 30.0
    hash_secret_env: EnvName = Field(
        "IOC_EDGE_HASH_SECRET", description="Variable with the visitor-hash secret"
    )


class SpoolOptions(_Strict):
    path: Path = Path("edge-spool.sqlite")
    max_megabytes: Annotated[float, Field(gt=0.0, le=1_000_000.0)] = 256.0
    when_full: SpoolPolicy = SpoolPolicy.DROP_OLDEST
    resend_after: Seconds = Field(
        30.0, description="Publish a batch again when ingest's receipt has not come by then"
    )


class EvidenceOptions(_Strict):
    """Evidence clips: a ring buffer per camera and uploads to the centre's API."""

    api_url: str = Field(description="The console API, e.g. https://ioc.example")
    token_env: EnvName = Field(
        "IOC_EVIDENCE_TOKEN", description="Variable with <agent>:<token> (ioc evidence agent-token)"
    )
    ca_file: Path | None = None
    dir: Path = Field(Path("evidence"), description="Clips waiting for the centre")
    # Even: H.264 in 4:2:0 halves both sides for colour.
    width: Annotated[int, Field(ge=64, le=3840, multiple_of=2)] = 640
    height: Annotated[int, Field(ge=64, le=2160, multiple_of=2)] = 360
    fps: Annotated[float, Field(gt=0.0, le=30.0)] = 10.0
    seconds: Annotated[float, Field(ge=5.0, le=120.0)] = 30.0
    crf: Annotated[int, Field(ge=18, le=40)] = 30


class AgentConfig(_Strict):
    agent_id: Identifier
    province: Path | None = Field(None, description="Registry the cameras/APs are taken from")
    timezone: str | None = Field(None, description="Default: the province's")
    cameras: Literal["owned"] | list[Identifier | Camera] = Field(
        [], description="'owned': the province's cameras with agent: <agent_id>"
    )
    access_points: Literal["owned"] | list[Identifier | AccessPoint] = []
    mqtt: MqttOptions = MqttOptions()
    camera_options: CameraOptions = CameraOptions()
    wifi: WifiOptions | None = None
    spool: SpoolOptions = SpoolOptions()
    evidence: EvidenceOptions | None = None
    state_period: Seconds = Field(10.0, description="Seconds between camera/edge state reports")


@dataclass(frozen=True)
class AgentPlan:
    """An :class:`AgentConfig` with its province, paths and environment resolved."""

    config: AgentConfig
    endpoint: MqttEndpoint
    topics: Topics
    cameras: list[Camera]
    access_points: list[AccessPoint]
    timezone: str
    hash_secret: bytes
    base_dir: Path
    controller_urls: dict[str, str]
    """Controller URL as configured -> with ``${VAR}`` expanded (never logged)."""
    controller_tokens: dict[str, str | None]
    evidence_credential: str | None = None
    """``<agent>:<token>`` for clip uploads, from ``evidence.token_env``."""


def _pick(
    what: str, wanted: Any, owned: list[Any], registry: Mapping[str, Any], problems: list[str]
) -> list[Any]:
    if wanted == "owned":
        return owned
    picked = []
    for item in wanted:
        if isinstance(item, str):
            if item not in registry:
                problems.append(f"{what}: {item!r} is not in the province file")
                continue
            picked.append(registry[item])
        else:
            picked.append(item)
    return picked


def _evidence_credential(
    config: AgentConfig, environ: Mapping[str, str], problems: list[str]
) -> str | None:
    if config.evidence is None:
        return None
    credential = environ.get(config.evidence.token_env)
    if not credential:
        problems.append(f"evidence: ${config.evidence.token_env} (the upload token) is not set")
    return credential


def resolve(config: AgentConfig, base_dir: Path, environ: Mapping[str, str]) -> AgentPlan:
    """Read the province and the environment the config names; refuse it with every problem."""
    source = f"agent {config.agent_id}"
    problems: list[str] = []
    province = Province()
    if config.province is not None:
        province = load_province(base_dir / config.province)
    owned_cameras, owned_aps = province.agents().get(config.agent_id, ([], []))
    cameras = _pick(
        "cameras", config.cameras, owned_cameras, {c.id: c for c in province.cameras}, problems
    )
    aps = _pick(
        "access_points",
        config.access_points,
        owned_aps,
        {a.id: a for a in province.access_points},
        problems,
    )
    ap_ids = {ap.id for ap in aps}
    tokens: dict[str, str | None] = {}
    urls: dict[str, str] = {}
    needs_secret = False
    for i, collector in enumerate(config.wifi.collectors if config.wifi else []):
        for ap_id in collector.access_points or []:
            if ap_id not in ap_ids:
                problems.append(f"wifi.collectors[{i}]: {ap_id!r} is not one of this agent's APs")
        if isinstance(collector, ControllerSource):
            needs_secret = True
            urls[collector.url] = expand_env(collector.url, environ)
            if collector.token_env is not None:
                tokens[collector.url] = environ.get(collector.token_env)
                if not tokens[collector.url]:
                    problems.append(f"wifi.collectors[{i}]: ${collector.token_env} is not set")
    secret_env = config.wifi.hash_secret_env if config.wifi else "IOC_EDGE_HASH_SECRET"
    secret = environ.get(secret_env, "")
    if needs_secret and len(secret) < 16:
        problems.append(f"wifi: ${secret_env} must hold a secret of 16+ characters")
    url = environ.get(config.mqtt.url_env, "")
    if not url:
        problems.append(f"mqtt: ${config.mqtt.url_env} (the broker URL) is not set")
        url = "mqtt://127.0.0.1"
    try:
        endpoint = MqttEndpoint.from_url(url, mqtt5=config.mqtt.mqtt5)
    except ValueError as exc:
        problems.append(f"mqtt: ${config.mqtt.url_env}: {exc}")
        endpoint = MqttEndpoint()
    credential = _evidence_credential(config, environ, problems)
    if problems:
        raise ConfigError(source, problems)
    tls = config.mqtt.tls
    endpoint = endpoint.with_credentials(
        environ.get(config.mqtt.username_env) or endpoint.username,
        environ.get(config.mqtt.password_env) or endpoint.password,
    )
    if endpoint.tls:
        endpoint = _with_tls(endpoint, tls, base_dir)
    return AgentPlan(
        config=config,
        endpoint=endpoint,
        topics=Topics(config.mqtt.topic_prefix),
        cameras=cameras,
        access_points=aps,
        timezone=config.timezone or province.timezone,
        hash_secret=(secret or f"unset-{config.agent_id}").encode(),
        base_dir=base_dir,
        evidence_credential=credential,
        controller_urls=urls,
        controller_tokens=tokens,
    )


def _with_tls(endpoint: MqttEndpoint, tls: TlsOptions, base_dir: Path) -> MqttEndpoint:
    def path(p: Path | None) -> str | None:
        return str(base_dir / p) if p is not None else None

    return dataclasses.replace(
        endpoint,
        ca_file=path(tls.ca_file),
        cert_file=path(tls.cert_file),
        key_file=path(tls.key_file),
    )


def _where(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_agent_config(raw: Any, source: str = "<agent config>") -> AgentConfig:
    if not isinstance(raw, dict):
        raise ConfigError(source, ["the document must be a mapping with an 'agent_id'"])
    try:
        return AgentConfig.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{_where(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
        ]
        raise ConfigError(source, problems) from exc


def load_agent(path: Path, environ: Mapping[str, str] | None = None) -> AgentPlan:
    """Read, validate and resolve an agent configuration file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror}"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from exc
    config = parse_agent_config(raw, str(path))
    return resolve(config, path.resolve().parent, os.environ if environ is None else environ)


_ENV_REFERENCE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


def expand_env(text: str, environ: Mapping[str, str]) -> str:
    """``${VAR}`` replaced from the environment (for URLs that carry a secret)."""
    return _ENV_REFERENCE.sub(lambda m: environ.get(m.group(1), ""), text)

"""Settings, read once from the environment (``IOC_*``) and never changed afterwards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROVINCE = PROJECT_ROOT / "config" / "province.yaml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IOC_", extra="forbid", frozen=True)

    mqtt_url: SecretStr | None = Field(
        None, description="mqtt://user:pass@host:port of the broker; unset: embedded broker"
    )
    database_url: SecretStr | None = Field(
        None, description="postgresql:// URL of PostgreSQL/TimescaleDB; unset: private cluster"
    )
    mqtt_username: str | None = Field(None, description="Broker user (overrides the URL's)")
    mqtt_password: SecretStr | None = Field(None, description="Broker password")
    mqtt_ca_file: Path | None = Field(None, description="CA bundle for mqtts:// brokers")
    mqtt_v5: bool = Field(
        True, description="MQTT 5 (Mosquitto, EMQX); false for 3.1.1-only brokers such as amqtt"
    )
    topic_prefix: str = Field("ioc/v1", description="Root of the MQTT topic tree")
    province: Path = Field(DEFAULT_PROVINCE, description="Province configuration (YAML)")
    state_dir: Path = Field(Path("state"), description="Embedded broker/database and spools")
    api_host: str = Field("127.0.0.1", description="Console API listen address")
    api_port: Annotated[int, Field(ge=0, le=65535)] = 8080
    db_statement_cache_size: Annotated[int, Field(ge=0, le=10_000)] = Field(
        100, description="asyncpg prepared-statement cache; 0 behind PgBouncer (transaction mode)"
    )
    db_use_copy: bool = Field(
        True, description="Bulk writes through COPY; off for engines that cannot take COPY"
    )
    map_tiles: str | None = Field(
        None,
        description="Raster tile URL ({z}/{x}/{y}) for the page's map; none: drawn from the"
        " province's reference data",
    )
    log_level: str = Field("INFO", description="Python logging level")
    demo_broker: Literal["auto", "mosquitto", "amqtt"] = Field(
        "auto",
        description="Broker the demo starts without IOC_MQTT_URL: auto = Mosquitto when "
        "installed, else the in-process amqtt",
    )
    edge_time_past: Annotated[float, Field(ge=0)] = Field(
        86_400.0,
        description="Seconds before the receiver's clock an edge's time may lie; older "
        "messages become dead letters (raise it when edges may spool longer outages)",
    )
    edge_time_future: Annotated[float, Field(ge=0)] = Field(
        300.0, description="Seconds of edge clock skew into the future accepted"
    )
    retain_dead_letters_days: Annotated[int, Field(ge=1)] = Field(
        30, description="Days dead letters are kept"
    )
    retain_alert_changes_days: Annotated[int, Field(ge=1)] = Field(
        30, description="Days the change log of a resolved alert is kept"
    )
    retain_alert_evidence_days: Annotated[int, Field(ge=1)] = Field(
        90, description="Days the evidence snapshot of a resolved alert is kept"
    )
    retain_cap_messages_days: Annotated[int, Field(ge=1)] = Field(
        365, description="Days CAP messages (and done deliveries) of a resolved alert are kept"
    )
    retain_login_audit_days: Annotated[int, Field(ge=1)] = Field(
        90, description="Days the login audit is kept"
    )
    api_internals: Literal["open", "admin", "off"] = Field(
        "open",
        description="Who may read the API's /metrics, /docs and /openapi.json: open (the "
        "demo), admin (an administrator's token) or off; production: admin or off",
    )
    db_acquire_timeout: Annotated[float, Field(gt=0, le=300)] = Field(
        10.0, description="Seconds to wait for a pooled database connection before giving up"
    )
    login_failures_per_address: Annotated[int, Field(ge=1)] = Field(
        20, description="Failed logins one client address may make per window, then 429"
    )
    login_failures_per_user: Annotated[int, Field(ge=1)] = Field(
        5, description="Failed logins for one username (from anywhere) per window, then 429"
    )
    login_window: Annotated[float, Field(gt=0, le=86_400)] = Field(
        300.0, description="Seconds from a key's first failed login over which failures count"
    )
    password_workers: Annotated[int, Field(ge=1, le=16)] = Field(
        2, description="Threads hashing passwords in the API (Argon2id, 64 MiB each)"
    )
    vision_max_frame_bytes: Annotated[int, Field(ge=1024)] = Field(
        1024 * 1024,
        description="Largest frame payload (JPEG and header) a vision worker decodes; larger: "
        "a dead letter",
    )
    ws_send_timeout: Annotated[float, Field(gt=0, le=300)] = Field(
        5.0,
        description="Seconds one websocket message may take to leave; a slower client is "
        "closed with 4429 and resumes",
    )
    vision_lease_timeout: Annotated[float, Field(ge=1, le=300)] = Field(
        10.0,
        description="Seconds after its last heartbeat that PostgreSQL ends a vision lease "
        "holder's session (idle_session_timeout; TCP keepalives alike), freeing its shard",
    )
    vision_lease_retry: Annotated[float, Field(gt=0, le=60)] = Field(
        1.0, description="Seconds between a standby vision worker's attempts to take its shard"
    )
    database_read_url: SecretStr | None = Field(
        None,
        description="postgresql:// URL of a streaming replica (e.g. HAProxy's replica port) for "
        "planners' history and forecast reads; unset: the primary (IOC_DATABASE_URL). Either "
        "URL may list several hosts (host1:5432,host2:5432) with target_session_attrs",
    )
    api_forwarded_allow_ips: str = Field(
        "127.0.0.1",
        description="Comma-separated proxy addresses (or *) whose X-Forwarded-For the API "
        "trusts as the client's address (login limits, audit): the HAProxy machines",
    )

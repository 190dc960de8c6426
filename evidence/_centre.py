"""The centre's evidence settings (``IOC_EVIDENCE_*``) and what the API holds from them."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ._intake import ClipIntake
from ._links import ClipLinks
from ._storage import ClipStore, DirectoryClipStore, S3ClipStore


class EvidenceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IOC_EVIDENCE_", frozen=True)

    secret: SecretStr | None = Field(
        None,
        description="Signs agents' upload tokens and police links (32+ characters); "
        "unset: the evidence endpoints answer 404",
    )
    dir: Path = Field(Path("state/evidence"), description="Clip store and upload staging")
    public_url: str = Field(
        "http://127.0.0.1:8080", description="The console API as police receivers reach it"
    )
    fleet_agents: str = Field(
        "", description="Comma-separated agents that may upload for any camera (the simulator)"
    )
    max_megabytes: Annotated[float, Field(gt=0, le=1024)] = 64
    link_hours: Annotated[float, Field(gt=0, le=24 * 30)] = Field(
        72, description="How long a police link to a clip stays valid"
    )
    retention_days: dict[str, float] = Field(
        default_factory=dict, description='Per kind, as JSON: {"intrusion": 90}'
    )
    default_retention_days: Annotated[float, Field(gt=0)] = 30
    s3_bucket: str | None = Field(
        None, description="Keep clips in this bucket of an S3-compatible store, not in dir/clips"
    )
    s3_endpoint_url: str | None = Field(
        None, description="The store's URL (MinIO, Ceph RGW ...); unset: AWS S3"
    )
    s3_region: str | None = Field(None, description="The bucket's region, when the store needs one")
    s3_prefix: str = Field("", description="Put in front of every clip's key in the bucket")

    def clip_store(self) -> ClipStore:
        """Where clips are kept: the S3 bucket when one is set, else ``dir/clips``."""
        if self.s3_bucket:
            return S3ClipStore(
                self.s3_bucket,
                endpoint_url=self.s3_endpoint_url,
                region=self.s3_region,
                prefix=self.s3_prefix,
            )
        return DirectoryClipStore(self.dir / "clips")


@dataclass(frozen=True, slots=True)
class EvidenceCentre:
    """The API's evidence services: intake, store, links and the upload secret."""

    secret: bytes
    store: ClipStore
    intake: ClipIntake
    links: ClipLinks
    link_ttl: float

    @classmethod
    def create(
        cls,
        settings: EvidenceSettings,
        owned: Mapping[str, Collection[str]],
    ) -> EvidenceCentre | None:
        """None without a secret. ``owned``: each agent's cameras from the registry."""
        if settings.secret is None:
            return None
        secret = settings.secret.get_secret_value().encode()
        if len(secret) < 32:
            raise ValueError("IOC_EVIDENCE_SECRET must be at least 32 characters")
        fleet = {a.strip() for a in settings.fleet_agents.split(",") if a.strip()}

        def owners(agent_id: str) -> Collection[str] | None:
            return None if agent_id in fleet else owned.get(agent_id, ())

        store = settings.clip_store()
        intake = ClipIntake(
            settings.dir / "uploads",
            store,
            owners,
            max_bytes=int(settings.max_megabytes * (1 << 20)),
        )
        links = ClipLinks(secret, settings.public_url)
        return cls(secret, store, intake, links, settings.link_hours * 3600)

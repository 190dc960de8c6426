"""`ioc evidence ...`: verify every clip and custody chain, agents' upload tokens, retention."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from datetime import UTC, datetime

import typer

from edge import ClipOutbox, ClipUploader
from evidence import (
    EvidenceCentre,
    EvidenceSettings,
    agent_token,
    apply_retention,
    verify_evidence,
)
from protocol import Province, load_province
from store import connect

from .runtime import NotConfigured, store_config
from .settings import Settings


def evidence_centre(settings: Settings, province: Province | None = None) -> EvidenceCentre | None:
    """The API's evidence services from ``IOC_EVIDENCE_*`` (None without a secret)."""
    province = province or load_province(settings.province)
    owned = {
        agent: {camera.id for camera in cameras}
        for agent, (cameras, _) in province.agents().items()
    }
    return EvidenceCentre.create(EvidenceSettings(), owned)


def simulator_uploader(settings: Settings, agent_id: str) -> ClipUploader | None:
    """The simulator's clip uploader when ``IOC_EVIDENCE_API_URL`` and a token (or the
    secret, in the demo) are in the environment; None otherwise (no clips)."""
    api_url = os.environ.get("IOC_EVIDENCE_API_URL")
    credential = os.environ.get("IOC_EVIDENCE_TOKEN")
    secret = EvidenceSettings().secret
    if credential is None and secret is not None:
        credential = f"{agent_id}:{agent_token(secret.get_secret_value().encode(), agent_id)}"
    if not api_url or not credential:
        return None
    return ClipUploader(
        ClipOutbox(settings.state_dir / f"evidence-{agent_id}"), api_url, credential
    )


def demo_environment(settings: Settings) -> dict[str, str]:
    """Evidence settings for the demo's processes: a fresh secret per run, clips under the
    state folder, the simulator allowed every camera."""
    api = f"http://{settings.api_host}:{settings.api_port}"
    return {
        "IOC_EVIDENCE_SECRET": os.environ.get("IOC_EVIDENCE_SECRET") or secrets.token_urlsafe(32),
        "IOC_EVIDENCE_DIR": str((settings.state_dir / "evidence").resolve()),
        "IOC_EVIDENCE_PUBLIC_URL": os.environ.get("IOC_EVIDENCE_PUBLIC_URL", api),
        "IOC_EVIDENCE_API_URL": api,
        "IOC_EVIDENCE_FLEET_AGENTS": "sim-1",
    }


def _store_url(settings: Settings) -> str:
    if settings.database_url is None:
        raise NotConfigured("IOC_DATABASE_URL is not set")
    return settings.database_url.get_secret_value()


def run_verify(settings: Settings) -> int:
    """Print one line per problem and a JSON summary; 0 when every clip and chain holds."""
    store = EvidenceSettings().clip_store()

    async def main() -> int:
        conn = await connect(store_config(settings, _store_url(settings)))
        try:
            report = await verify_evidence(conn, store)
        finally:
            await conn.close()
        for finding in report.findings:
            print(f"BROKEN {finding.clip_id}: {finding.problem}", file=sys.stderr)
        summary = {
            "clips": report.clips,
            "custody_entries": report.entries,
            "problems": len(report.findings),
            "ok": report.ok,
        }
        typer.echo(json.dumps(summary))
        return 0 if report.ok else 1

    return asyncio.run(main())


def run_retention(settings: Settings) -> None:
    evidence = EvidenceSettings()
    store = evidence.clip_store()

    async def main() -> None:
        conn = await connect(store_config(settings, _store_url(settings)))
        try:
            deleted = await apply_retention(
                conn,
                store,
                now=datetime.now(UTC),
                days=evidence.retention_days,
                default_days=evidence.default_retention_days,
            )
        finally:
            await conn.close()
        typer.echo(json.dumps({"deleted": deleted}))

    asyncio.run(main())


def print_agent_token(agent_id: str) -> None:
    secret = EvidenceSettings().secret
    if secret is None:
        raise NotConfigured("IOC_EVIDENCE_SECRET is not set")
    typer.echo(f"{agent_id}:{agent_token(secret.get_secret_value().encode(), agent_id)}")

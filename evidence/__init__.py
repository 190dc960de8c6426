"""Evidence clips at the centre: intake of uploads, storage, the chain of custody, signed
links, retention and verification (docs/evidence.md)."""

from ._centre import EvidenceCentre, EvidenceSettings
from ._clips import (
    CLIP_ID,
    ClipNotFoundError,
    ClipTamperedError,
    ClipView,
    alert_clips,
    get_clip,
    hold_incident,
    read_clip,
    release_incident,
)
from ._custody import CustodyAction, CustodyEntry, append_custody, chain_breaks, custody_log
from ._intake import (
    ClipIntake,
    ClipRecord,
    UploadRefusedError,
    agent_token,
    check_agent,
    record_refusal,
)
from ._links import ClipLinks, LinkError
from ._mp4 import ClipFacts, NotAClipError, probe_mp4
from ._retention import apply_retention
from ._storage import ClipStore, DirectoryClipStore, S3ClipStore
from ._verify import Finding, VerifyReport, verify_evidence

__all__ = [
    "CLIP_ID",
    "ClipFacts",
    "ClipIntake",
    "ClipLinks",
    "ClipNotFoundError",
    "ClipRecord",
    "ClipStore",
    "ClipTamperedError",
    "ClipView",
    "CustodyAction",
    "CustodyEntry",
    "DirectoryClipStore",
    "EvidenceCentre",
    "EvidenceSettings",
    "Finding",
    "LinkError",
    "NotAClipError",
    "S3ClipStore",
    "UploadRefusedError",
    "VerifyReport",
    "agent_token",
    "alert_clips",
    "append_custody",
    "apply_retention",
    "chain_breaks",
    "check_agent",
    "custody_log",
    "get_clip",
    "hold_incident",
    "probe_mp4",
    "read_clip",
    "record_refusal",
    "release_incident",
    "verify_evidence",
]

"""Edge agents: camera sources, frame encoding, Wi-Fi collectors, the spool, agent health,
and the city simulator."""

from protocol import redact_url

from ._agent import AgentStats, EdgeAgent, build_collectors
from ._camera import CameraReader, CameraSettings, EncodedFrame, FrameSlot
from ._clip_upload import ClipOutbox, ClipUploader, UploadStats
from ._clips import ClipError, ClipLibrary, EncodedClip, encode_clip
from ._collectors import (
    ApReading,
    CollectorError,
    ControllerCollector,
    NewVisitors,
    SimulatedCollector,
    WifiCollector,
)
from ._config import AgentConfig, AgentPlan, load_agent, parse_agent_config, resolve
from ._identity import (
    MESSAGE_SIZE_LIMIT,
    SERVICES,
    ServiceAccess,
    hash_password,
    write_mosquitto_config,
)
from ._incidents import Incident, IncidentBoard, IncidentKind, incident_targets, load_incidents
from ._ring import Clip, ClipRing, CutError, RingSettings
from ._sim_clips import cut_replayed
from ._simulator import CitySimulator, SimulatorStats
from ._spool import Spool, SpooledMessage, SpoolEntry, SpoolPolicy
from ._telemetry import PublishRefusals, SpoolForwarder, WifiPipeline
from ._wifi import VisitorHasher, WifiFleet, busyness

__all__ = [
    "MESSAGE_SIZE_LIMIT",
    "SERVICES",
    "AgentConfig",
    "AgentPlan",
    "AgentStats",
    "ApReading",
    "CameraReader",
    "CameraSettings",
    "CitySimulator",
    "Clip",
    "ClipError",
    "ClipLibrary",
    "ClipOutbox",
    "ClipRing",
    "ClipUploader",
    "CollectorError",
    "ControllerCollector",
    "CutError",
    "EdgeAgent",
    "EncodedClip",
    "EncodedFrame",
    "FrameSlot",
    "Incident",
    "IncidentBoard",
    "IncidentKind",
    "NewVisitors",
    "PublishRefusals",
    "RingSettings",
    "ServiceAccess",
    "SimulatedCollector",
    "SimulatorStats",
    "Spool",
    "SpoolEntry",
    "SpoolForwarder",
    "SpoolPolicy",
    "SpooledMessage",
    "UploadStats",
    "VisitorHasher",
    "WifiCollector",
    "WifiFleet",
    "WifiPipeline",
    "build_collectors",
    "busyness",
    "cut_replayed",
    "encode_clip",
    "hash_password",
    "incident_targets",
    "load_agent",
    "load_incidents",
    "parse_agent_config",
    "redact_url",
    "resolve",
    "write_mosquitto_config",
]

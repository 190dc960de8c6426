"""Alert rules: the file's model (severity, auto-resolve, routing, maintenance, escalation,
police endpoints, Wi-Fi thresholds) and the rules in force, resolved against the province.

Reading and checking a file is :mod:`._rules_file`; holding and reloading, :mod:`._rulebook`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from protocol import PROFILES, ConfigError, EventKind, Province, Schedule, Severity

from ._grouping import IncidentGrouping

Identifier = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
# CAP `sender` and `identifier` may not hold spaces, commas, '<' or '&'.
CapToken = Annotated[str, Field(pattern=r"^[^\s,<&]{1,128}$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]
Seconds = Annotated[float, Field(ge=0.0, le=7 * 86_400.0)]
INFRA_KINDS = frozenset({EventKind.CAMERA_OFFLINE, EventKind.CAMERA_TAMPER})
"""An open alert of these kinds mutes the other alerts of the same camera (inhibition)."""


class RulesError(ConfigError):
    """A rules file refused as a whole; ``problems`` names each one."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_hours(value: str) -> str:
    Schedule.parse(value)
    return value


class Match(_Strict):
    """What a rule applies to; an empty list admits everything."""

    kinds: list[EventKind] = []
    sources: list[Identifier] = []
    """Camera or access-point ids."""
    zones: list[Identifier] = []
    districts: list[str] = []
    """District ids or names."""
    hours: str = "always"
    """Local-time windows (province time zone) such as "22:00-05:00"; "always" by default."""

    _hours = field_validator("hours")(_check_hours)


ClipSeconds = Annotated[float, Field(ge=0.0, le=60.0)]
"""What a clip order may ask for (``protocol.ClipOrder``); the edge's ring must hold ``pre``."""


class ClipWindow(_Strict):
    """The evidence clip an opening alert orders from its camera's edge: ``pre`` seconds
    before the event to ``post`` seconds after it."""

    pre: ClipSeconds = 10.0
    post: ClipSeconds = 10.0

    @model_validator(mode="after")
    def _not_empty(self) -> ClipWindow:
        if self.pre + self.post <= 0:
            raise ValueError("a clip needs 'pre' or 'post' above 0 seconds")
        return self


class SeverityRule(_Strict):
    name: str = ""
    match: Match = Match()
    severity: Severity | None = None
    auto_resolve_seconds: Seconds | None = None
    """How long the condition must stay clear before the alert resolves itself."""
    clip: ClipWindow | None = None
    """The evidence clip its alerts order; None: the file's ``clip``."""


class Route(_Strict):
    """Which alerts a channel carries (console carries every alert)."""

    kinds: list[EventKind] = []
    min_severity: Severity = Severity.INFO
    districts: list[str] = []


def _default_police_route() -> Route:
    return Route(
        kinds=[
            EventKind.INTRUSION,
            EventKind.WRONG_WAY,
            EventKind.STOPPED_VEHICLE,
            EventKind.CROWD,
            EventKind.SPEEDING,
        ],
        min_severity=Severity.MAJOR,
    )


class Routes(_Strict):
    mqtt: Route = Route()
    police: Route = Field(default_factory=_default_police_route)


class MaintenanceWindow(_Strict):
    """While a window is on, alerts of its cameras/zones are opened muted."""

    id: Identifier
    sources: list[Identifier] = []
    zones: list[Identifier] = []
    starts: datetime | None = None
    """Naive times are province-local."""
    ends: datetime | None = None
    hours: str = "always"
    reason: str = ""

    _hours = field_validator("hours")(_check_hours)

    @model_validator(mode="after")
    def _bounded(self) -> MaintenanceWindow:
        if not self.sources and not self.zones:
            raise ValueError("a maintenance window needs 'sources' or 'zones'")
        if self.starts and self.ends and _comparable(self.starts) >= _comparable(self.ends):
            raise ValueError("'starts' must be before 'ends'")
        return self


def _comparable(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Escalation(_Strict):
    """An alert of these severities still unacknowledged after ``after_minutes`` is raised one
    level and notified again, every ``after_minutes``, up to ``max_level``."""

    severities: list[Severity] = [Severity.CRITICAL]
    after_minutes: Annotated[float, Field(gt=0.0, le=24 * 60.0)] = 5.0
    max_level: Annotated[int, Field(ge=0, le=10)] = 3


class PoliceEndpoint(_Strict):
    id: Identifier
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")]
    allow_plain_http: bool = False
    """A test endpoint (a local receiver) may take plain http://; every real one is https."""
    secret_env: EnvName
    """Environment variable holding the Standard Webhooks secret (``whsec_`` + base64)."""
    districts: list[str] = []
    """Only incidents in these districts (ids or names); empty: all."""
    timeout_seconds: Annotated[float, Field(gt=0.0, le=120.0)] = 10.0
    concurrency: Annotated[int, Field(ge=1, le=32)] = 4
    """Requests in flight at once, each for a different incident (an incident's messages
    always go one after the other)."""

    @model_validator(mode="after")
    def _https_unless_allowed(self) -> PoliceEndpoint:
        if self.url.startswith("http://") and not self.allow_plain_http:
            raise ValueError(
                "url must be https:// (signed CAP alerts must not cross a network in clear; "
                "set allow_plain_http: true only for a test endpoint)"
            )
        return self


class Police(_Strict):
    sender: CapToken = "ioc.province.invalid"
    sender_name: str = "Trung tâm Điều hành thông minh (IOC)"
    circle_radius_km: Annotated[float, Field(gt=0.0, le=50.0)] = 0.3
    endpoints: list[PoliceEndpoint] = []
    failures_before_alert: Annotated[int, Field(ge=1, le=1000)] = 5
    """Consecutive failed attempts to one endpoint that raise a delivery_failed alert."""
    backoff_base_seconds: Annotated[float, Field(gt=0.0, le=60.0)] = 1.0
    backoff_max_seconds: Annotated[float, Field(gt=0.0, le=3600.0)] = 300.0
    retry_after_max_seconds: Annotated[float, Field(gt=0.0, le=86_400.0)] = 3600.0


class SpeedingRules(_Strict):
    """A speeding vehicle (an estimate from a camera's speed gate) is ``major``, and so goes
    to the police, when it is at least ``police_margin_kmh`` over the limit; ``minor`` (the
    console and MQTT only) below that. A rule in ``rules`` matching it decides instead."""

    police_margin_kmh: Annotated[float, Field(ge=0.0, le=200.0)] = 10.0


class AccessPointRules(_Strict):
    overload_ratio: Annotated[float, Field(gt=0.0, le=10.0)] = 1.0
    """An AP is overloaded when its clients exceed capacity x this."""
    clear_ratio: Annotated[float, Field(gt=0.0, le=10.0)] = 0.9
    """... and clear again at or below capacity x this (hysteresis)."""

    @model_validator(mode="after")
    def _hysteresis(self) -> AccessPointRules:
        if self.clear_ratio > self.overload_ratio:
            raise ValueError("'clear_ratio' must not exceed 'overload_ratio'")
        return self


class RulesFile(_Strict):
    version: Literal[1] = 1
    auto_resolve_seconds: Seconds = 60.0
    clip: ClipWindow = ClipWindow()
    """The evidence clip of alerts whose rule names none."""
    rules: list[SeverityRule] = []
    routes: Routes = Routes()
    maintenance: list[MaintenanceWindow] = []
    escalation: Escalation = Escalation()
    police: Police = Police()
    speeding: SpeedingRules = SpeedingRules()
    access_points: AccessPointRules = AccessPointRules()
    incidents: IncidentGrouping = IncidentGrouping()


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A :class:`Match` with its names resolved and its hours parsed, for the per-event path."""

    kinds: frozenset[str]
    sources: frozenset[str]
    zones: frozenset[str]
    districts: frozenset[str]
    hours: Schedule

    def admits(self, kind: str, source: str, zone: str | None, district: str, local: time) -> bool:
        return (
            (not self.kinds or kind in self.kinds)
            and (not self.sources or source in self.sources)
            and (not self.zones or zone in self.zones)
            and (not self.districts or district in self.districts)
            and self.hours.active_at(local)
        )


@dataclass(frozen=True, slots=True)
class Decision:
    severity: Severity
    auto_resolve_seconds: float
    rule: str
    clip: ClipWindow


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A police endpoint with its secret resolved from the environment."""

    id: str
    url: str
    secret: str = field(repr=False)
    districts: frozenset[str]
    timeout_seconds: float
    concurrency: int = 1


class Rules:
    """The rules in force, resolved against the province; every method is pure and cheap."""

    def __init__(
        self, spec: RulesFile, province: Province, secrets: Mapping[str, str], source: str
    ) -> None:
        self.spec = spec
        self.source = source
        self.tz = ZoneInfo(province.timezone)
        self._district = province.district_id
        self.endpoints = [
            Endpoint(
                e.id,
                e.url,
                secrets[e.id],
                frozenset(self._district(d) for d in e.districts),
                e.timeout_seconds,
                e.concurrency,
            )
            for e in spec.police.endpoints
        ]
        self._rules = [(rule, self._compile(rule.match)) for rule in spec.rules]
        self._windows = [(w, Schedule.parse(w.hours)) for w in spec.maintenance]

    def district_id(self, district: str) -> str:
        return self._district(district)

    def _compile(self, match: Match) -> _Compiled:
        return _Compiled(
            frozenset(match.kinds),
            frozenset(match.sources),
            frozenset(match.zones),
            frozenset(self._district(d) for d in match.districts),
            Schedule.parse(match.hours),
        )

    def _local(self, at: float) -> time:
        return datetime.fromtimestamp(at, self.tz).time()

    def decide(
        self,
        kind: EventKind,
        source: str,
        zone: str | None,
        district: str,
        at: float,
        *,
        over_limit_kmh: float | None = None,
    ) -> Decision:
        """Severity, auto-resolve time and evidence clip: from the first matching rule, else
        the defaults (for speeding, by how far ``over_limit_kmh`` the vehicle was: see
        :class:`SpeedingRules`)."""
        local = self._local(at)
        spec = self.spec
        for i, (rule, match) in enumerate(self._rules):
            if match.admits(kind, source, zone, district, local):
                return Decision(
                    rule.severity or PROFILES[kind].default_severity,
                    spec.auto_resolve_seconds
                    if rule.auto_resolve_seconds is None
                    else rule.auto_resolve_seconds,
                    rule.name or f"rules[{i}]",
                    rule.clip or spec.clip,
                )
        if kind is EventKind.SPEEDING and over_limit_kmh is not None:
            margin = spec.speeding.police_margin_kmh
            severity = Severity.MAJOR if over_limit_kmh >= margin else Severity.MINOR
            return Decision(severity, spec.auto_resolve_seconds, "speeding-margin", spec.clip)
        severity = PROFILES[kind].default_severity
        return Decision(severity, spec.auto_resolve_seconds, "default", spec.clip)

    def maintenance(self, source: str, zone: str | None, at: float) -> str | None:
        """The id of a maintenance window covering this camera/zone at ``at``, if any."""
        moment = datetime.fromtimestamp(at, UTC)
        for window, schedule in self._windows:
            if window.sources and source not in window.sources:
                continue
            if window.zones and zone not in window.zones:
                continue
            if window.starts and moment < self._aware(window.starts):
                continue
            if window.ends and moment >= self._aware(window.ends):
                continue
            if schedule.active_at(self._local(at)):
                return window.id
        return None

    def _aware(self, moment: datetime) -> datetime:
        return moment if moment.tzinfo else moment.replace(tzinfo=self.tz)

    def escalates(self, severity: str) -> bool:
        return Severity(severity) in self.spec.escalation.severities

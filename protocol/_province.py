"""The province configuration: districts, cameras with zones and lines, access points.

Coordinates in zones and lines are fractions of the frame (0..1, x right, y down), so one
file serves any source resolution and analysis size. A file that is wrong is refused as a
whole, with every problem named by file, camera and field (:class:`ConfigError`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from datetime import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._redact import redact_url
from ._topics import IDENTIFIER

Identifier = Annotated[str, Field(pattern=IDENTIFIER.pattern)]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]
Point = tuple[Unit, Unit]
_SCHEDULE_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
_ENV_REFERENCE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


class ConfigError(ValueError):
    """A configuration refused as a whole; ``problems`` lists each one, already located."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s)\n{lines}")


class ZoneKind(StrEnum):
    RESTRICTED = "restricted"
    LANE = "lane"
    NO_STOPPING = "no_stopping"
    CROWD = "crowd"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Schedule(_Strict):
    """Local-time windows during which a zone is watched; empty means always."""

    windows: tuple[tuple[time, time], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Schedule:
        if text.strip() == "always":
            return cls()
        windows = []
        for part in text.split(","):
            match = _SCHEDULE_WINDOW.fullmatch(part.strip())
            if not match:
                raise ValueError(
                    f"schedule {text!r} must be 'always' or windows like '22:00-05:00'"
                )
            h1, m1, h2, m2 = (int(g) for g in match.groups())
            end = time(23, 59, 59) if h2 == 24 else time(h2, m2)
            windows.append((time(h1, m1), end))
        return cls(windows=tuple(windows))

    def active_at(self, local: time) -> bool:
        if not self.windows:
            return True
        for start, end in self.windows:
            if start <= end:
                if start <= local < end:
                    return True
            elif local >= start or local < end:  # window across midnight
                return True
        return False


class Zone(_Strict):
    id: Identifier
    kind: ZoneKind
    polygon: Annotated[list[Point], Field(min_length=3, max_length=64)]
    schedule: str = "always"
    direction: tuple[float, float] | None = None
    """Expected travel direction in the image (lanes), for wrong-way detection."""
    min_area: Annotated[float, Field(gt=0.0, le=1.0)] = 0.01
    """Smallest foreground fraction of the zone that counts as an object."""
    min_seconds: Annotated[float, Field(ge=0.0, le=3600.0)] = 0.5
    """How long a finding must persist before it becomes an event."""
    clear_seconds: Annotated[float, Field(ge=0.0, le=3600.0)] = 1.5
    """How long a finding must be absent before its event ends."""
    high_occupancy: Annotated[float, Field(gt=0.0, le=1.0)] = 0.35
    """Foreground share of the zone that is high: a crowd (crowd zones), or, with slow traffic,
    congestion (lanes)."""
    congestion_seconds: Annotated[float, Field(ge=0.0, le=3600.0)] = 60.0
    """Lanes: how long occupancy must stay high and traffic slow to raise congestion."""
    low_speed: Annotated[float, Field(ge=0.0, le=10.0)] = 0.04
    """Frame sizes per second (x in widths, y in heights). Lanes: congestion when tracked objects
    are slower on average; no_stopping: an object slower is stopped; wrong_way needs faster."""

    @field_validator("schedule")
    @classmethod
    def _schedule_parses(cls, value: str) -> str:
        Schedule.parse(value)
        return value

    @field_validator("polygon")
    @classmethod
    def _polygon_simple(cls, value: list[Point]) -> list[Point]:
        crossing = first_self_intersection(value)
        if crossing is not None:
            raise ValueError(
                f"polygon is self-intersecting (edges {crossing[0]} and {crossing[1]})"
            )
        if abs(polygon_area(value)) < 1e-6:
            raise ValueError("polygon has no area")
        return value

    @field_validator("direction")
    @classmethod
    def _direction_nonzero(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and value[0] == 0 and value[1] == 0:
            raise ValueError("direction must not be the zero vector")
        return value

    @property
    def parsed_schedule(self) -> Schedule:
        return Schedule.parse(self.schedule)


class Line(_Strict):
    id: Identifier
    points: tuple[Point, Point]
    """Crossing from the left of points[0]->points[1] to its right counts as forward ("left" as
    seen on the image: for a line drawn left to right, forward is downwards)."""

    @field_validator("points")
    @classmethod
    def _distinct(cls, value: tuple[Point, Point]) -> tuple[Point, Point]:
        if value[0] == value[1]:
            raise ValueError("line points must differ")
        return value


class SpeedGate(_Strict):
    """Two counting lines of a camera a known distance apart on the road: a vehicle's time
    from one to the other gives its speed (either way; ``direction`` says which)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: Identifier
    from_line: Identifier = Field(alias="from")
    """The line vehicles cross first when going ``forward``."""
    to_line: Identifier = Field(alias="to")
    distance_m: Annotated[float, Field(gt=0.0, le=2000.0)]
    """Distance between the two lines along the road, in metres (from lane markings)."""
    limit_kmh: Annotated[float, Field(gt=0.0, le=300.0)]
    """Speed limit; a vehicle measured faster raises ``speeding``."""


class Analytics(_Strict):
    """How one camera's frames are analysed. The defaults suit a fixed camera analysed at
    320x180; durations are in seconds so they mean the same at any frame rate."""

    background_seconds: Annotated[float, Field(ge=0.2, le=3600.0)] = 2.0
    """Time constant of the background model (its learning rate): how fast it follows gradual
    change where nothing is moving. Foreground never leaks into it."""
    threshold: Annotated[int, Field(ge=4, le=128)] = 25
    """Gray-level difference from the background that makes a pixel foreground."""
    min_object_area: Annotated[float, Field(gt=0.0, le=0.5)] = 0.001
    """Smallest blob, as a share of the frame, that is tracked as an object."""
    track_seconds: Annotated[float, Field(ge=0.1, le=60.0)] = 2.0
    """How long an object that is no longer seen is remembered (occlusion, fading contrast)."""
    absorb_seconds: Annotated[float, Field(ge=1.0, le=86_400.0)] = 900.0
    """An object that has not moved for this long becomes background (a parked car)."""
    offline_seconds: Annotated[float, Field(ge=1.0, le=86_400.0)] = 30.0
    """No frame for this long raises camera_offline."""
    tamper_seconds: Annotated[float, Field(ge=0.5, le=3600.0)] = 10.0
    """A blurred, covered or moved view must last this long to raise camera_tamper."""
    blur_ratio: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.35
    """Blurred when the image's sharpness falls below this share of its usual sharpness."""
    metrics_seconds: Annotated[float, Field(ge=1.0, le=3600.0)] = 60.0
    """Length of the intervals of the traffic metrics (counts per line, mean occupancy)."""


class Camera(_Strict):
    id: Identifier
    name: str
    kind: Literal["traffic", "security"]
    district: str
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]
    source: str
    """RTSP/HTTP URL or a video file path; ``${VAR}`` is replaced from the environment."""
    fps: Annotated[float, Field(gt=0.0, le=30.0)] = 5.0
    road: str | None = None
    agent: Identifier | None = None
    """The edge agent that reads this camera; it alone may publish under its topics."""
    site: Identifier | None = None
    """The tourist site the camera watches, if any: its alerts and the site's Wi-Fi alerts
    are grouped into one incident."""
    zones: list[Zone] = []
    lines: list[Line] = []
    speed_gates: list[SpeedGate] = []
    analytics: Analytics = Analytics()

    def resolved_source(self) -> str:
        return _ENV_REFERENCE.sub(lambda m: os.environ.get(m.group(1), ""), self.source)

    def redacted_source(self) -> str:
        """The source with any password or query secret hidden, for logs and APIs."""
        return redact_url(self.source)


class District(_Strict):
    id: Identifier
    name: str
    kind: str = "district"
    lat: float
    lon: float


class Site(_Strict):
    id: Identifier
    name: str
    district: str
    lat: float
    lon: float


class AccessPoint(_Strict):
    id: Identifier
    name: str
    site: Identifier
    district: str
    lat: float
    lon: float
    capacity: Annotated[int, Field(gt=0, le=10_000)] = 120
    """Clients the AP serves comfortably; above it the AP is overloaded."""
    agent: Identifier | None = None
    """The edge agent that collects this AP's telemetry; it alone may publish it."""


class Province(_Strict):
    name: str = "province"
    timezone: str = "Asia/Ho_Chi_Minh"
    districts: list[District] = []
    sites: list[Site] = []
    cameras: list[Camera] = []
    access_points: list[AccessPoint] = []

    def camera(self, camera_id: str) -> Camera:
        for camera in self.cameras:
            if camera.id == camera_id:
                return camera
        raise KeyError(f"camera {camera_id!r} is not in the configuration")

    def agents(self) -> dict[str, tuple[list[Camera], list[AccessPoint]]]:
        """Each edge agent named in the file with the cameras and access points it owns."""
        owned: dict[str, tuple[list[Camera], list[AccessPoint]]] = {}
        for camera in self.cameras:
            if camera.agent is not None:
                owned.setdefault(camera.agent, ([], []))[0].append(camera)
        for ap in self.access_points:
            if ap.agent is not None:
                owned.setdefault(ap.agent, ([], []))[1].append(ap)
        return dict(sorted(owned.items()))

    def district_id(self, district: str) -> str:
        """The district's id, given its id or its name (as cameras may give either)."""
        for d in self.districts:
            if district in (d.id, d.name):
                return d.id
        return district


def polygon_area(points: Sequence[Point]) -> float:
    total = 0.0
    for (x1, y1), (x2, y2) in zip(points, [*points[1:], points[0]], strict=True):
        total += x1 * y2 - x2 * y1
    return total / 2


def _segments_cross(p1: Point, p2: Point, q1: Point, q2: Point) -> bool:
    def orient(a: Point, b: Point, c: Point) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    d1, d2 = orient(q1, q2, p1), orient(q1, q2, p2)
    d3, d4 = orient(p1, p2, q1), orient(p1, p2, q2)
    return (d1 * d2 < 0) and (d3 * d4 < 0)


def first_self_intersection(points: Sequence[Point]) -> tuple[int, int] | None:
    n = len(points)
    edges = [(points[i], points[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # adjacent through the closing edge
            if _segments_cross(*edges[i], *edges[j]):
                return (i, j)
    return None


def config_location(loc: Iterable[int | str], raw: Any, key: str = "id") -> str:
    """Turn a pydantic location into 'cameras[3] (mt-ql1a-01).zones[0].polygon': list items
    are named by their ``key`` field where they have one (any YAML file of ours)."""
    out = ""
    node = raw
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get(key), str):
                out += f" ({node[key]})"
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out


def _cross_checks(province: Province) -> list[str]:
    problems: list[str] = []
    district_keys = {d.id for d in province.districts} | {d.name for d in province.districts}

    def unique(kind: str, ids: list[str]) -> None:
        seen: set[str] = set()
        for i in ids:
            if i in seen:
                problems.append(f"{kind}: id {i!r} is used more than once")
            seen.add(i)

    unique("districts", [d.id for d in province.districts])
    unique("sites", [s.id for s in province.sites])
    unique("cameras", [c.id for c in province.cameras])
    unique("access_points", [a.id for a in province.access_points])
    for i, cam in enumerate(province.cameras):
        here = f"cameras[{i}] ({cam.id})"
        unique(f"{here}.zones", [z.id for z in cam.zones])
        unique(f"{here}.lines", [ln.id for ln in cam.lines])
        if province.districts and cam.district not in district_keys:
            problems.append(f"{here}.district: {cam.district!r} is not a known district")
        if cam.site is not None and cam.site not in {s.id for s in province.sites}:
            problems.append(f"{here}.site: {cam.site!r} is not a known site")
        for j, zone in enumerate(cam.zones):
            if zone.kind is ZoneKind.LANE and zone.direction is None:
                problems.append(f"{here}.zones[{j}] ({zone.id}).direction: a lane needs one")
        unique(f"{here}.speed_gates", [g.id for g in cam.speed_gates])
        line_ids = {ln.id for ln in cam.lines}
        for j, gate in enumerate(cam.speed_gates):
            at = f"{here}.speed_gates[{j}] ({gate.id})"
            for field, line in (("from", gate.from_line), ("to", gate.to_line)):
                if line not in line_ids:
                    problems.append(f"{at}.{field}: {line!r} is not a line of this camera")
            if gate.from_line == gate.to_line:
                problems.append(f"{at}.to: must be another line than 'from'")
    site_ids = {s.id for s in province.sites}
    for i, ap in enumerate(province.access_points):
        here = f"access_points[{i}] ({ap.id})"
        if province.districts and ap.district not in district_keys:
            problems.append(f"{here}.district: {ap.district!r} is not a known district")
        if province.sites and ap.site not in site_ids:
            problems.append(f"{here}.site: {ap.site!r} is not a known site")
    return problems


def parse_province(raw: Any, source: str = "<config>") -> Province:
    """Validate a parsed YAML document; raise :class:`ConfigError` naming every problem."""
    if not isinstance(raw, dict):
        raise ConfigError(source, ["the document must be a mapping with a 'cameras' list"])
    try:
        province = Province.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{config_location(e['loc'], raw)}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        raise ConfigError(source, problems) from exc
    problems = _cross_checks(province)
    if problems:
        raise ConfigError(source, problems)
    return province


def load_province(path: str | Path) -> Province:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror}"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from exc
    return parse_province(raw, str(path))

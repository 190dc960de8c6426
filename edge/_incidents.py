"""Scripted incidents for the simulated province, for demos and tests.

A script is a YAML list; times are seconds after the simulator starts::

    incidents:
      - {kind: camera_covered, target: ql1-my-tho-01, at: 30, duration: 60}
      - {kind: camera_offline, target: site-vinh-trang-03, at: 45}        # until cleared
      - {kind: ap_down, target: ap-vinh-trang-02, at: 10, duration: 120}
      - {kind: crowd, target: vinh-trang, at: 20, duration: 300, factor: 4}  # a site id

``camera_covered`` sends dark frames in place of the clip; ``camera_offline`` stops the
camera's frames and marks it offline; ``ap_down`` reports the AP down with no clients;
``crowd`` multiplies the clients of the APs at the site (the first ``spread`` of them by id,
or all), at least as many as half-way through a busy day. Incidents can also be started and
cleared at run time through :class:`IncidentBoard` (``board.start(...)``, ``board.clear(...)``).

The video incidents paint an object into the camera's frames, over the real clip:
``stalled_vehicle``, ``wrong_way``, ``intrusion`` and ``congestion`` each take a ``box``
(x, y, width, height as fractions of the frame) where the object stands, and with ``to``
(x, y) it travels there in ``travel`` seconds, again and again::

      - {kind: stalled_vehicle, target: ql1a-my-tho-01, at: 10, box: [0.80, 0.62, 0.07, 0.12]}
      - {kind: wrong_way, target: ql1a-cai-be-01, at: 20, box: [0.35, 0.30, 0.05, 0.08],
         to: [0.20, 0.85], travel: 6}

The object is drawn bright on a dark background and dark on a bright one, so the cameras'
own detectors see it as they would a real one: which events it raises (and when) is theirs.
A ``congestion`` also holds the camera's clip still while it lasts (a queue: nothing moves).
"""

from __future__ import annotations

import itertools
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Self

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from protocol import ConfigError, Province


class IncidentKind(StrEnum):
    CAMERA_COVERED = "camera_covered"
    CAMERA_OFFLINE = "camera_offline"
    AP_DOWN = "ap_down"
    CROWD = "crowd"
    STALLED_VEHICLE = "stalled_vehicle"
    WRONG_WAY = "wrong_way"
    INTRUSION = "intrusion"
    CONGESTION = "congestion"


VIDEO_KINDS = frozenset(
    {
        IncidentKind.STALLED_VEHICLE,
        IncidentKind.WRONG_WAY,
        IncidentKind.INTRUSION,
        IncidentKind.CONGESTION,
    }
)
"""Incidents that paint an object into a camera's frames."""

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class Incident(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: IncidentKind
    target: str = Field(description="Camera id, AP id, or for a crowd the site id")
    at: Annotated[float, Field(ge=0.0)] = 0.0
    duration: Annotated[float, Field(gt=0.0)] | None = None
    """None: until cleared."""
    factor: Annotated[float, Field(gt=0.0, le=100.0)] = 3.0
    """For crowds: how many times the usual clients."""
    spread: Annotated[int, Field(ge=1)] | None = None
    """For crowds: how many of the site's APs (the first by id) the crowd reaches; None: all."""
    box: tuple[Fraction, Fraction, Fraction, Fraction] | None = None
    """Video incidents: the object's x, y, width, height (fractions of the frame)."""
    to: tuple[Fraction, Fraction] | None = None
    """Video incidents: where the object's top-left corner travels to; None: it stands."""
    travel: Annotated[float, Field(gt=0.0, le=3600.0)] = 10.0
    """Video incidents: seconds from ``box`` to ``to``; then it starts over."""

    @model_validator(mode="after")
    def _video_needs_a_box(self) -> Self:
        if self.kind in VIDEO_KINDS and self.box is None:
            raise ValueError(f"a {self.kind} incident needs a box: [x, y, width, height]")
        if self.kind not in VIDEO_KINDS and (self.box is not None or self.to is not None):
            raise ValueError(f"a {self.kind} incident takes no box or to")
        return self

    def paint(self, image: np.ndarray, elapsed: float) -> None:
        """Draw this incident's object into a gray ``image`` (in place), ``elapsed`` seconds
        after the simulator started."""
        if self.box is None:
            return
        height, width = image.shape[:2]
        x, y, w, h = self.box
        if self.to is not None:
            share = ((elapsed - self.at) % self.travel) / self.travel
            x, y = x + (self.to[0] - x) * share, y + (self.to[1] - y) * share
        x0, y0 = int(x * width), int(y * height)
        x1, y1 = min(width, x0 + max(2, int(w * width))), min(height, y0 + max(2, int(h * height)))
        region = image[y0:y1, x0:x1]
        if region.size:
            region[...] = 235 if float(region.mean()) < 110 else 15


class IncidentScript(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    incidents: list[Incident] = []


def incident_targets(province: Province) -> dict[IncidentKind, set[str]]:
    """What each kind of incident may target in ``province`` (to validate a script)."""
    cameras = {c.id for c in province.cameras}
    return {
        IncidentKind.CAMERA_COVERED: cameras,
        IncidentKind.CAMERA_OFFLINE: cameras,
        IncidentKind.AP_DOWN: {a.id for a in province.access_points},
        IncidentKind.CROWD: {s.id for s in province.sites}
        | {a.site for a in province.access_points},
        **dict.fromkeys(VIDEO_KINDS, cameras),
    }


def load_incidents(path: Path, known: dict[IncidentKind, set[str]] | None = None) -> list[Incident]:
    """Read a script; with ``known`` (valid targets per kind), unknown targets are refused."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        script = IncidentScript.model_validate(raw)
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror}"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from exc
    except ValidationError as exc:
        problems = [".".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in exc.errors()]
        raise ConfigError(str(path), problems) from exc
    if known is not None:
        problems = [
            f"incidents[{i}]: {incident.kind} target {incident.target!r} is not in the province"
            for i, incident in enumerate(script.incidents)
            if incident.target not in known.get(incident.kind, set())
        ]
        if problems:
            raise ConfigError(str(path), problems)
    return script.incidents


class IncidentBoard:
    """Which incidents are active now: the script's, by the clock, and those started by hand."""

    def __init__(self, scripted: list[Incident] | None = None) -> None:
        self._scripted = list(scripted or [])
        self._manual: dict[int, Incident] = {}
        self._ids = itertools.count(1)
        self._active: list[Incident] = []
        self.elapsed = 0.0

    def start(self, kind: IncidentKind | str, target: str, *, factor: float = 3.0) -> int:
        """Start an incident now, until :meth:`clear`; returns its handle."""
        handle = next(self._ids)
        self._manual[handle] = Incident(kind=IncidentKind(kind), target=target, factor=factor)
        self._refresh()
        return handle

    def clear(self, handle: int) -> None:
        self._manual.pop(handle, None)
        self._refresh()

    def advance(self, elapsed: float) -> None:
        """Bring the scripted incidents to ``elapsed`` seconds after the start."""
        self.elapsed = elapsed
        self._refresh()

    def _refresh(self) -> None:
        now = self.elapsed
        scripted = [
            i
            for i in self._scripted
            if i.at <= now and (i.duration is None or now < i.at + i.duration)
        ]
        self._active = scripted + list(self._manual.values())

    @property
    def active(self) -> list[Incident]:
        return list(self._active)

    def targets(self, kind: IncidentKind) -> set[str]:
        return {i.target for i in self._active if i.kind is kind}

    def crowds(self, access_points: dict[str, list[str]] | None = None) -> dict[str, float]:
        """Load factor by site id, or by AP id for a crowd with a ``spread`` (``access_points``
        lists each site's AP ids)."""
        factors: dict[str, float] = {}
        for incident in self._active:
            if incident.kind is IncidentKind.CROWD:
                keys = [incident.target]
                if incident.spread is not None and access_points is not None:
                    keys = sorted(access_points.get(incident.target, []))[: incident.spread]
                for key in keys:
                    factors[key] = max(factors.get(key, 0.0), incident.factor)
        return factors

    def painters(self, camera_id: str) -> list[Incident]:
        """The active video incidents of a camera."""
        return [i for i in self._active if i.kind in VIDEO_KINDS and i.target == camera_id]

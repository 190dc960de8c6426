"""Scripted incidents for the simulated province, for demos and tests.

A script is a YAML list; times are seconds after the simulator starts::

    incidents:
      - {kind: camera_covered, target: ql1-my-tho-01, at: 30, duration: 60}
      - {kind: camera_offline, target: site-vinh-trang-03, at: 45}        # until cleared
      - {kind: ap_down, target: ap-vinh-trang-02, at: 10, duration: 120}
      - {kind: crowd, target: vinh-trang, at: 20, duration: 300, factor: 4}  # a site id

``camera_covered`` sends dark frames in place of the clip; ``camera_offline`` stops the
camera's frames and marks it offline; ``ap_down`` reports the AP down with no clients;
``crowd`` multiplies the clients of every AP at the site. Incidents can also be started and
cleared at run time through :class:`IncidentBoard` (``board.start(...)``, ``board.clear(...)``).
"""

from __future__ import annotations

import itertools
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocol import ConfigError, Province


class IncidentKind(StrEnum):
    CAMERA_COVERED = "camera_covered"
    CAMERA_OFFLINE = "camera_offline"
    AP_DOWN = "ap_down"
    CROWD = "crowd"


class Incident(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: IncidentKind
    target: str = Field(description="Camera id, AP id, or for a crowd the site id")
    at: Annotated[float, Field(ge=0.0)] = 0.0
    duration: Annotated[float, Field(gt=0.0)] | None = None
    """None: until cleared."""
    factor: Annotated[float, Field(gt=0.0, le=100.0)] = 3.0
    """For crowds: how many times the usual clients."""


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

    def crowds(self) -> dict[str, float]:
        factors: dict[str, float] = {}
        for incident in self._active:
            if incident.kind is IncidentKind.CROWD:
                factors[incident.target] = max(factors.get(incident.target, 0.0), incident.factor)
        return factors

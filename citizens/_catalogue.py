"""The services catalogue: the province's report categories, as Open311 services, from YAML.

Each service has its attributes (the spec's service definition), the severity of the alert
a report opens, its target time to close (the request's ``expected_datetime``), whether the
police hear of it, and the alert kinds of cameras and Wi-Fi that a report of it joins.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from protocol import ConfigError, EventKind, Severity, config_location

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "config" / "open311-services.yaml"
CODE = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Datatype(StrEnum):
    """The spec's attribute datatypes."""

    STRING = "string"
    NUMBER = "number"
    DATETIME = "datetime"
    TEXT = "text"
    SINGLEVALUELIST = "singlevaluelist"
    MULTIVALUELIST = "multivaluelist"


class AttributeValue(_Strict):
    key: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=200)


class Attribute(_Strict):
    code: str = Field(pattern=CODE)
    datatype: Datatype
    required: bool = False
    variable: bool = True
    """False: an informational text shown to the citizen, not a question."""
    description: str = Field(min_length=1, max_length=500)
    datatype_description: str | None = None
    values: list[AttributeValue] = []

    @model_validator(mode="after")
    def _lists_have_values(self) -> Attribute:
        listed = self.datatype in (Datatype.SINGLEVALUELIST, Datatype.MULTIVALUELIST)
        if listed and not self.values:
            raise ValueError(f"a {self.datatype} attribute needs values")
        if not listed and self.values:
            raise ValueError(f"a {self.datatype} attribute takes no values")
        keys = [v.key for v in self.values]
        if len(set(keys)) != len(keys):
            raise ValueError("value keys must be unique")
        return self


class Service(_Strict):
    code: str = Field(pattern=CODE)
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=1000)
    group: str = Field(min_length=1, max_length=100)
    keywords: list[str] = []
    severity: Severity
    target_minutes: float = Field(gt=0, le=60 * 24 * 90, description="Time to close")
    police: bool = False
    """Reports of this service go to the police over CAP (marked citizen-reported)."""
    agency_responsible: str = Field(min_length=1, max_length=200)
    joins: list[EventKind] = []
    """Camera and Wi-Fi alert kinds that a report of this service joins (and the reverse)."""
    attributes: list[Attribute] = []

    @model_validator(mode="after")
    def _unique_codes(self) -> Service:
        codes = [a.code for a in self.attributes]
        if len(set(codes)) != len(codes):
            raise ValueError("attribute codes must be unique")
        if EventKind.CITIZEN_REPORT in self.joins:
            raise ValueError("joins lists camera and Wi-Fi kinds; reports group as duplicates")
        return self


class Joining(_Strict):
    radius_m: float = Field(250.0, gt=0, le=5000, description="How near a report and an alert")
    window_s: float = Field(1800.0, gt=0, le=86400, description="How close in time")


class Limits(_Strict):
    per_key_per_minute: int = Field(60, ge=1, le=100_000)
    per_device_per_minute: int = Field(5, ge=1, le=10_000)
    """Per device id, or per client IP when the request names no device."""
    max_photo_bytes: int = Field(2_000_000, ge=1024, le=50_000_000)
    max_district_km: float = Field(20.0, gt=0, le=200)
    """A location further than this from every district's centre is outside the province."""


class Catalogue(_Strict):
    jurisdiction_id: str = Field(min_length=1, max_length=100)
    contact: str = Field(min_length=1, max_length=300)
    joining: Joining = Joining()
    limits: Limits = Limits()
    services: list[Service] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_services(self) -> Catalogue:
        codes = [s.code for s in self.services]
        if len(set(codes)) != len(codes):
            raise ValueError("service codes must be unique")
        return self

    def service(self, code: str) -> Service | None:
        return next((s for s in self.services if s.code == code), None)


def parse_catalogue(raw: Any, source: str = "<services>") -> Catalogue:
    """Validate a parsed YAML document; raise :class:`ConfigError` naming every problem."""
    if not isinstance(raw, dict):
        raise ConfigError(source, ["the document must be a mapping with a 'services' list"])
    try:
        return Catalogue.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{config_location(e['loc'], raw, key='code')}: "
            + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        ]
        raise ConfigError(source, problems) from exc


def load_catalogue(path: str | Path = DEFAULT_PATH) -> Catalogue:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror}"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from exc
    return parse_catalogue(raw, str(path))

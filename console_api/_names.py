"""Human names for what the registry knows by id: zones (by id where the province uses a
common one, else by kind), so the page shows "Lề đường" rather than "shoulder"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

KIND_LABELS: dict[str, tuple[str, str]] = {
    "restricted": ("Vùng cấm", "Restricted area"),
    "lane": ("Làn xe", "Lane"),
    "no_stopping": ("Vùng cấm dừng", "No-stopping zone"),
    "crowd": ("Khu vực đông người", "Crowd area"),
}
"""(vi, en) of each zone kind (protocol's ZoneKind)."""
ZONE_LABELS: dict[str, tuple[str, str]] = {
    "shoulder": ("Lề đường", "Road shoulder"),
    "toward": ("Làn chiều tới", "Lane toward the camera"),
    "away": ("Làn chiều đi", "Lane away from the camera"),
    "northbound": ("Làn hướng bắc", "Northbound lane"),
    "southbound": ("Làn hướng nam", "Southbound lane"),
    "floor": ("Sảnh", "Hall floor"),
    "lot": ("Bãi xe", "Car park"),
    "door": ("Cửa", "Door"),
    "inner": ("Khu vực bên trong", "Inner area"),
}
"""(vi, en) of the zone ids the sample province uses on many cameras."""


class ZoneName(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: str
    label_vi: str
    label_en: str


def zone_name(zone: Mapping[str, Any]) -> ZoneName:
    """A zone (as the registry stores it: id, kind, ...) with its labels in both languages."""
    zone_id, kind = str(zone.get("id", "")), str(zone.get("kind", ""))
    known = ZONE_LABELS.get(zone_id)
    if known is None:
        vi, en = KIND_LABELS.get(kind, ("Vùng", "Zone"))
        known = (f"{vi} {zone_id}", f"{en} {zone_id}")
    return ZoneName(id=zone_id, kind=kind, label_vi=known[0], label_en=known[1])

"""Writes config/province.yaml: the sample province of the demo and benchmarks.

Deterministic: districts, roads and tourist sites come from province-reference.yaml (Tiền
Giang at the platform's launch); cameras stand along the roads and at the sites and replay
the real clips in data/video, with zones drawn on those clips; access points stand at the
sites. Run: python config/make_province.py
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent

# Zones drawn on each clip (fractions of the frame). Lines are drawn so that the expected
# traffic crosses them forward (from the left of points[0]->points[1] to its right).
# Every zone has a purpose and the parameters of its kind (docs/vision.md): the clips never
# stop, so a zone where the clip's own traffic belongs must not raise an alert for it.
HIGHWAY: dict[str, Any] = {
    "source": "data/video/highway_cctv_osd_320x240.avi",
    "zones": [
        {
            # The hard shoulder: cars and cyclists pass; one standing 20 s is a breakdown (not
            # 30: the clip is 30 s long, and its loop makes the tracker meet every object anew).
            "id": "shoulder",
            "kind": "no_stopping",
            "polygon": [[0.89, 0.30], [0.95, 0.30], [0.90, 1.0], [0.745, 1.0]],
            "min_area": 0.05,
            "min_seconds": 20.0,
            "clear_seconds": 5.0,
            "low_speed": 0.02,
        },
        # Lanes: wrong way must last 4 s; a vision worker that falls behind (frames dropped:
        # 40% in the 5-minute demo on a loaded machine) or the clip's loop makes the tracker
        # pair two cars going opposite ways for a second or three, not four.
        {
            "id": "away",
            "kind": "lane",
            "direction": [0.3, -1.0],
            "polygon": [[0.74, 0.15], [0.88, 0.15], [0.73, 1.0], [0.06, 1.0]],
            "min_seconds": 4.0,
        },
        {
            "id": "toward",
            "kind": "lane",
            "direction": [-0.8, 0.6],
            "polygon": [[0.0, 0.30], [0.55, 0.09], [0.70, 0.11], [0.0, 0.62]],
            "min_seconds": 4.0,
        },
    ],
    "lines": [
        {"id": "count-away", "points": [[0.80, 0.71], [0.26, 0.71]]},
        {"id": "count-toward", "points": [[0.30, 0.17], [0.30, 0.46]]},
    ],
}
# An approach where queues form (the Rạch Miễu bridge): congestion after 45 s of a full,
# slow lane rather than the default minute.
APPROACH: dict[str, Any] = {
    **HIGHWAY,
    "zones": [
        {**zone, "congestion_seconds": 45.0} if zone["kind"] == "lane" else zone
        for zone in HIGHWAY["zones"]
    ],
}
# A hall of a tourist site or an office: visitors walk through the right half of the room
# (the clip's people); a crowd is a floor more than 40% full for 10 s. The left part (a
# shrine, an archive: nobody walks there in the clip) is restricted while the site is closed.
INDOOR: dict[str, Any] = {
    "source": "data/video/indoor_people_walkby_768x432.mp4",
    "zones": [
        {
            "id": "floor",
            "kind": "crowd",
            "polygon": [[0.45, 0.40], [1.0, 0.40], [1.0, 1.0], [0.45, 1.0]],
            "high_occupancy": 0.4,
            "min_seconds": 10.0,
            "clear_seconds": 10.0,
        },
        {
            "id": "inner",
            "kind": "restricted",
            "schedule": "always",
            # Where the clip has no one: its people never come within 0.2 of the left edge
            # (foreground share above 1% of this zone in 2 of its 1,394 frames).
            "polygon": [[0.02, 0.30], [0.25, 0.30], [0.25, 0.80], [0.02, 0.80]],
            "min_area": 0.04,
            "min_seconds": 2.0,
            "clear_seconds": 3.0,
        },
    ],
    "lines": [],
}
# A car park seen from above: cars come and go; counted, never an alert by themselves.
PARKING: dict[str, Any] = {
    "source": "data/video/parking_lot_overhead_768x432.mp4",
    "zones": [],
    "lines": [{"id": "count-in", "points": [[0.0, 0.5], [1.0, 0.5]]}],
}


def _restricted(template: dict[str, Any], schedule: str) -> dict[str, Any]:
    """The template with its restricted zones watched only in ``schedule`` (local time)."""
    zones = [
        {**zone, "schedule": schedule} if zone["kind"] == "restricted" else zone
        for zone in template["zones"]
    ]
    return {**template, "zones": zones}


class _PlainDumper(yaml.SafeDumper):
    """Writes every zone out in full: anchors and aliases (&id003) confuse human editors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _jitter(rnd: random.Random, value: float, spread: float = 0.02) -> float:
    return round(value + rnd.uniform(-spread, spread), 5)


def _agent(district_id: str) -> str:
    """One edge agent per district (in its police station) reads that district's devices."""
    return f"edge-{district_id}"


def build() -> dict[str, Any]:
    reference = yaml.safe_load((HERE / "province-reference.yaml").read_text(encoding="utf-8"))
    rnd = random.Random(2021)
    districts = {d["id"]: d for d in reference["districts"]}
    cameras: list[dict[str, Any]] = []
    # Traffic cameras along the roads, spread over the districts each road passes.
    for road in reference["roads"]:
        per_district = 30 // len(road["through"]) + 1
        for district_id in road["through"]:
            d = districts[district_id]
            for k in range(per_district):
                n = len([c for c in cameras if c["road"] == road["id"]]) + 1
                cameras.append(
                    {
                        "id": f"{road['id']}-{district_id}-{k + 1:02d}",
                        "name": f"{road['name']} - {d['name']} #{n}",
                        "kind": "traffic",
                        "district": district_id,
                        "road": road["id"],
                        "lat": _jitter(rnd, d["lat"]),
                        "lon": _jitter(rnd, d["lon"]),
                        "fps": 5,
                        "agent": _agent(district_id),
                        **(APPROACH if road.get("approach") == district_id else HIGHWAY),
                    }
                )
    # Security cameras at tourist sites (rooms and car parks) and district offices.
    for site in reference["tourist_sites"]:
        for k in range(4):
            template = _restricted(INDOOR, site["closed"]) if k < 2 else PARKING
            cameras.append(
                {
                    "id": f"site-{site['id']}-{k + 1:02d}",
                    "name": f"{site['name']} - {'sảnh' if k < 2 else 'bãi xe'} {k % 2 + 1}",
                    "kind": "security",
                    "district": site["district"],
                    "lat": _jitter(rnd, site["lat"], 0.002),
                    "lon": _jitter(rnd, site["lon"], 0.002),
                    "fps": 5,
                    "agent": _agent(site["district"]),
                    "site": site["id"],
                    **template,
                }
            )
    for d in reference["districts"]:
        for k in range(2):
            cameras.append(
                {
                    "id": f"office-{d['id']}-{k + 1:02d}",
                    "name": f"UBND {d['name']} - {'sảnh' if k == 0 else 'bãi xe'}",
                    "kind": "security",
                    "district": d["id"],
                    "lat": _jitter(rnd, d["lat"], 0.003),
                    "lon": _jitter(rnd, d["lon"], 0.003),
                    "fps": 5,
                    "agent": _agent(d["id"]),
                    **(_restricted(INDOOR, "19:00-06:30") if k == 0 else PARKING),
                }
            )
    # Places watched for intruders: restricted by schedule (a school yard at night, a site
    # closed after hours) or always (a sluice gate, a site closed for works).
    for place in reference["restricted_places"]:
        d = districts[place["district"]]
        cameras.append(
            {
                "id": place["id"],
                "name": place["name"],
                "kind": "security",
                "district": place["district"],
                "lat": _jitter(rnd, d["lat"], 0.01),
                "lon": _jitter(rnd, d["lon"], 0.01),
                "fps": 5,
                "agent": _agent(place["district"]),
                **_restricted(INDOOR, place["schedule"]),
            }
        )
    sites = [
        {k: s[k] for k in ("id", "name", "district", "lat", "lon")}
        for s in reference["tourist_sites"]
    ]
    access_points = []
    for site in reference["tourist_sites"]:
        for k in range(36):
            access_points.append(
                {
                    "id": f"ap-{site['id']}-{k + 1:02d}",
                    "name": f"{site['name']} AP {k + 1}",
                    "site": site["id"],
                    "district": site["district"],
                    "lat": _jitter(rnd, site["lat"], 0.002),
                    "lon": _jitter(rnd, site["lon"], 0.002),
                    "capacity": rnd.choice([60, 80, 120, 150]),
                    "agent": _agent(site["district"]),
                }
            )
    return {
        "name": "Tiền Giang (sample)",
        "timezone": reference["timezone"],
        "districts": [
            {k: d[k] for k in ("id", "name", "kind", "lat", "lon")} for d in reference["districts"]
        ],
        "sites": sites,
        "cameras": cameras,
        "access_points": access_points,
    }


def main() -> None:
    province = build()
    header = (
        "# Generated by config/make_province.py from province-reference.yaml; edit those.\n"
        f"# {len(province['cameras'])} cameras, {len(province['access_points'])} access points,"
        f" {len(province['districts'])} districts.\n"
    )
    text = yaml.dump(province, Dumper=_PlainDumper, allow_unicode=True, sort_keys=False, width=100)
    (HERE / "province.yaml").write_text(header + text, encoding="utf-8")


if __name__ == "__main__":
    main()

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

# Zones drawn on each clip (fractions of the frame); the same as the test cameras in
# tests/data/clips.yaml, whose counts were checked by eye. Lines are drawn so that the
# expected traffic crosses them forward (from the left of points[0]->points[1] to its right).
HIGHWAY: dict[str, Any] = {
    "source": "data/video/highway_cctv_osd_320x240.avi",
    "zones": [
        {
            "id": "shoulder",
            "kind": "restricted",
            "polygon": [[0.89, 0.30], [0.95, 0.30], [0.90, 1.0], [0.745, 1.0]],
        },
        {
            "id": "away",
            "kind": "lane",
            "direction": [0.3, -1.0],
            "polygon": [[0.74, 0.15], [0.88, 0.15], [0.73, 1.0], [0.06, 1.0]],
            "min_seconds": 1.0,
        },
        {
            "id": "toward",
            "kind": "lane",
            "direction": [-0.8, 0.6],
            "polygon": [[0.0, 0.30], [0.55, 0.09], [0.70, 0.11], [0.0, 0.62]],
            "min_seconds": 1.0,
        },
    ],
    "lines": [
        {"id": "count-away", "points": [[0.80, 0.71], [0.26, 0.71]]},
        {"id": "count-toward", "points": [[0.30, 0.17], [0.30, 0.46]]},
    ],
}
INDOOR: dict[str, Any] = {
    "source": "data/video/indoor_people_walkby_768x432.mp4",
    "zones": [
        {
            "id": "floor",
            "kind": "restricted",
            "schedule": "always",
            "polygon": [[0.0, 0.60], [1.0, 0.60], [1.0, 1.0], [0.0, 1.0]],
        },
    ],
    "lines": [],
}
PARKING: dict[str, Any] = {
    "source": "data/video/parking_lot_overhead_768x432.mp4",
    "zones": [
        {
            "id": "lot",
            "kind": "restricted",
            "schedule": "always",
            "polygon": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]],
        },
    ],
    "lines": [],
}


def _after_hours(template: dict[str, Any], schedule: str) -> dict[str, Any]:
    """The template with its restricted zones watched only in ``schedule`` (local time):
    a tourist site's hall is open by day, its car park too; an intruder is one at night."""
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
                        **HIGHWAY,
                    }
                )
    # Security cameras at tourist sites (rooms and car parks) and district offices.
    for site in reference["tourist_sites"]:
        for k in range(4):
            template = (
                _after_hours(INDOOR, "18:00-07:00")
                if k < 2
                else _after_hours(PARKING, "22:00-05:00")
            )
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
                    **(INDOOR if k == 0 else PARKING),
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

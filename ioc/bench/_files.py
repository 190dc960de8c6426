"""The files a whole-province run hands its service processes: the province cut or grown to
the size asked for, alert rules that route incidents to the run's police receiver, and an
incident script that keeps alerts coming for as long as the run lasts."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from alerts import load_rules
from edge import incident_targets, load_incidents
from protocol import Province, load_province

from ..settings import DEFAULT_PROVINCE, PROJECT_ROOT

POLICE_SECRET_ENV = "IOC_POLICE_SECRET_BENCH"  # noqa: S105  # a variable's name


@dataclass(frozen=True, slots=True)
class Size:
    cameras: int = 200
    fps: float = 5.0
    access_points: int = 500
    vision_shards: int = 2
    operators: int = 3


def _grown(items: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """``count`` items: an even spread of ``items`` when there are enough (every clip and
    zone kind keeps its share), else all of them and numbered copies."""
    if count <= len(items):
        return [items[i * len(items) // count] for i in range(count)]
    out = list(items)
    copy = 1
    while len(out) < count:
        out += [{**item, "id": f"{item['id']}-x{copy}"} for item in items[: count - len(out)]]
        copy += 1
    return out


def write_province(path: Path, size: Size) -> Province:
    """The sample province with ``size.cameras`` cameras at ``size.fps`` and
    ``size.access_points`` access points, written to ``path`` (clip paths made absolute)."""
    raw = yaml.safe_load(DEFAULT_PROVINCE.read_text(encoding="utf-8"))
    cameras = _grown(raw["cameras"], size.cameras)
    for camera in cameras:
        camera["fps"] = size.fps
        source = Path(camera["source"])
        if not source.is_absolute() and (PROJECT_ROOT / source).exists():
            camera["source"] = str(PROJECT_ROOT / source)
    raw["cameras"] = cameras
    raw["access_points"] = _grown(raw["access_points"], size.access_points)
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return load_province(path)


def police_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def write_rules(
    path: Path, province: Province, police_url: str, secret: str, auto_resolve: float
) -> dict[str, Any]:
    """The shipped rules with one police endpoint (the run's receiver, its secret in
    ``IOC_POLICE_SECRET_BENCH``) and every alert resolving ``auto_resolve`` seconds after its
    condition cleared: the clips' intrusions then keep opening new alerts, where the shipped
    two minutes would keep one alert per camera open for the whole run."""
    raw = yaml.safe_load((PROJECT_ROOT / "config" / "alert-rules.yaml").read_text("utf-8"))
    raw["auto_resolve_seconds"] = auto_resolve
    for rule in raw.get("rules", []):
        rule["auto_resolve_seconds"] = auto_resolve
    raw["police"]["endpoints"] = [
        {
            "id": "bench-police",
            "url": police_url,
            "allow_plain_http": True,
            "secret_env": POLICE_SECRET_ENV,
            "timeout_seconds": 10,
            "concurrency": 4,
        }
    ]
    # Faults in a soak last seconds: retry within seconds, as a dispatch link would want.
    raw["police"]["backoff_max_seconds"] = 5
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    load_rules(path, province, environ={POLICE_SECRET_ENV: secret})  # refuse a bad file now
    police_route: dict[str, Any] = raw["routes"]["police"]
    return police_route


def write_incidents(path: Path, province: Province, seconds: float) -> None:
    """Incidents from start to ``seconds``: a camera covered every 6 s for 15 s (a tamper
    alert after 10 s), an access point down every 20 s for 30 s, a crowd at a site every
    60 s for 40 s, a wrong-way motorbike every 30 s. Targets rotate so that each incident
    opens a new alert."""
    cameras = [c.id for c in reversed(province.cameras)]
    aps = [a.id for a in province.access_points]
    sites = sorted({a.site for a in province.access_points})
    incidents: list[dict[str, Any]] = []
    for i, at in enumerate(range(10, int(seconds), 6)):
        target = cameras[i % len(cameras)]
        incidents.append({"kind": "camera_covered", "target": target, "at": at, "duration": 15})
    for i, at in enumerate(range(5, int(seconds), 20)):
        incidents.append({"kind": "ap_down", "target": aps[i % len(aps)], "at": at, "duration": 30})
    for i, at in enumerate(range(15, int(seconds), 60)):
        site = sites[i % len(sites)]
        incidents.append({"kind": "crowd", "target": site, "at": at, "duration": 40, "factor": 4})
    # A wrong-way motorbike every 30 s on a camera with a lane (critical, a police kind): the
    # run's police receiver gets CAP messages to account for.
    lanes = [c.id for c in province.cameras if any(z.kind == "lane" for z in c.zones)]
    for i, at in enumerate(range(20, int(seconds), 30) if lanes else ()):
        incidents.append(
            {
                "kind": "wrong_way",
                "target": lanes[i % len(lanes)],
                "at": at,
                "duration": 25,
                "box": [0.55, 0.40, 0.05, 0.10],
                "to": [0.15, 0.88],
                "travel": 8,
            }
        )
    path.write_text(yaml.safe_dump({"incidents": incidents}, sort_keys=False), encoding="utf-8")
    load_incidents(path, incident_targets(province))  # refuse a bad script now

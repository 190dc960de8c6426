"""Speed gates on synthetic footage: vehicles of known speed rendered onto a textured road
with sensor noise, in both directions and overlapping in time, replayed through the real
``ioc vision replay`` at the clip's 25 fps and at ``--fps 5``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from conftest import DATA, ROOT, run_ioc
from lxml import etree

from alerts import CAP_NS, AlertView, load_rules, render_cap, routing_from
from alerts._cap import CapHeader
from alerts._speeding import speeding_titles
from protocol import (
    PROFILES,
    Analytics,
    ConfigError,
    EventKind,
    Severity,
    load_province,
    parse_province,
)
from vision import ANALYSIS_SIZE, FrameBatch, VisionPipeline, to_analysis_gray

WIDTH, HEIGHT, FPS, SECONDS = 320, 180, 25.0, 9.0
ENTRY, EXIT = 0.25, 0.92
DISTANCE_M, LIMIT_KMH = 20.0, 60.0
PX_PER_M = (EXIT - ENTRY) * HEIGHT / DISTANCE_M
CAR_W, CAR_H = 24, 38


@dataclass(frozen=True)
class Vehicle:
    lane_x: int
    """Centre of its lane, pixels."""
    down: bool
    kmh: float
    t0: float
    """When its leading edge reaches the frame's edge."""
    shade: int

    def top(self, t: float) -> float:
        travelled = self.kmh / 3.6 * PX_PER_M * (t - self.t0)
        return travelled - CAR_H if self.down else HEIGHT - travelled

    def crosses_entry(self) -> float:
        """When its ground point (bottom of its box) crosses the entry line."""
        speed = self.kmh / 3.6 * PX_PER_M
        bottom_at_t0 = 0.0 if self.down else HEIGHT + CAR_H
        return self.t0 + abs(ENTRY * HEIGHT - bottom_at_t0) / speed


# Four lanes, two each way; neighbours in time overlap on the image. Speeds stay 10% or
# more away from the limit, so the 5 fps tolerance cannot flip a verdict.
VEHICLES = [
    Vehicle(64, True, 40.0, 1.0, 40),
    Vehicle(64, True, 95.0, 4.6, 200),
    Vehicle(128, True, 75.0, 1.6, 35),
    Vehicle(128, True, 52.0, 3.9, 210),
    Vehicle(192, False, 50.0, 1.2, 30),
    Vehicle(192, False, 110.0, 4.8, 205),
    Vehicle(256, False, 120.0, 2.0, 45),
    Vehicle(256, False, 45.0, 3.4, 215),
]


def _road(rng: np.random.Generator) -> np.ndarray:
    texture = rng.normal(0, 18, (HEIGHT, WIDTH)).astype(np.float32)
    road = 110 + cv2.GaussianBlur(texture, (0, 0), 1.5)
    for x in (96, 160, 224):  # lane markings, dashed
        for y in range(0, HEIGHT, 24):
            road[y : y + 12, x - 1 : x + 1] = 200 if x != 160 else 230
    return road


def _render(path: Path) -> None:
    rng = np.random.default_rng(15)
    road = _road(rng)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for n in range(int(SECONDS * FPS)):
        t = n / FPS
        frame = road.copy()
        for v in VEHICLES:
            top = v.top(t)
            # Drawn at sub-pixel positions (area-weighted rows) so speeds are exact.
            for row in range(max(int(np.floor(top)), 0), min(int(np.ceil(top + CAR_H)), HEIGHT)):
                cover = min(row + 1, top + CAR_H) - max(row, top)
                if cover <= 0:
                    continue
                x0 = v.lane_x - CAR_W // 2
                inside = row - top
                shade = v.shade + (25 if 8 <= inside <= 14 else 0)  # a windscreen band
                frame[row, x0 : x0 + CAR_W] += cover * (shade - frame[row, x0 : x0 + CAR_W])
        frame += rng.normal(0, 3, frame.shape).astype(np.float32)  # sensor noise
        gray = np.clip(frame, 0, 255).astype(np.uint8)
        writer.write(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    writer.release()


CONFIG = {
    "cameras": [
        {
            "id": "gate-cam",
            "name": "Synthetic road with a speed gate",
            "kind": "traffic",
            "district": "my-tho",
            "lat": 10.36,
            "lon": 106.37,
            "source": "synthetic.avi",
            "fps": 25,
            "lines": [
                {"id": "entry", "points": [[0.0, ENTRY], [1.0, ENTRY]]},
                {"id": "exit", "points": [[0.0, EXIT], [1.0, EXIT]]},
            ],
            "speed_gates": [
                {
                    "id": "gate",
                    "from": "entry",
                    "to": "exit",
                    "distance_m": DISTANCE_M,
                    "limit_kmh": LIMIT_KMH,
                }
            ],
        }
    ]
}


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("speed")
    video = folder / "synthetic.avi"
    _render(video)
    config = folder / "cameras.yaml"
    config.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    return video, config


@pytest.mark.parametrize(("fps", "tolerance"), [(None, 0.05), (5.0, 0.10)])
def test_one_speed_per_vehicle_within_tolerance(
    footage: tuple[Path, Path], fps: float | None, tolerance: float
) -> None:
    video, config = footage
    options = ["--fps", str(fps)] if fps else []
    result = run_ioc(
        *("vision", "replay", str(video), "--config", str(config), "--camera", "gate-cam"),
        *("--start-time", "1764000000", *options),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in result.stdout.splitlines()]
    speeds = [r for r in records if r["kind"] == "speed"]
    speeding = [r for r in records if r["kind"] == "speeding"]
    assert records[-1]["kind"] == "summary"
    for r in speeds:
        assert list(r) == [
            "kind",
            "camera_id",
            "gate_id",
            "started_at",
            "ended_at",
            "speed_kmh",
            "direction",
        ]
        assert r["camera_id"] == "gate-cam"
        assert r["gate_id"] == "gate"
        assert r["started_at"] < r["ended_at"]
    # Exactly one speed line per vehicle: the one of its direction, at its time across the
    # entry line, within the tolerance of its speed (two vehicles may cross 50 ms apart).
    assert len(speeds) == len(VEHICLES), speeds
    unmatched = list(speeds)
    for v in VEHICLES:
        direction = "forward" if v.down else "backward"
        at_entry = v.crosses_entry()
        found = [
            r
            for r in unmatched
            if r["direction"] == direction
            and abs((r["started_at"] if v.down else r["ended_at"]) - at_entry) < 0.15
            and abs(r["speed_kmh"] - v.kmh) <= tolerance * v.kmh
        ]
        assert len(found) == 1, (v, speeds)
        unmatched.remove(found[0])
        same = (found[0]["started_at"], direction)
        over = [s for s in speeding if (s["started_at"], s["direction"]) == same]
        if v.kmh > LIMIT_KMH:
            assert over == [{**found[0], "kind": "speeding", "limit_kmh": LIMIT_KMH}]
        else:
            assert over == []
    assert len(speeding) == sum(v.kmh > LIMIT_KMH for v in VEHICLES)


def test_speed_gates_are_validated_with_every_problem_named() -> None:
    raw = json.loads(json.dumps(CONFIG))
    camera = raw["cameras"][0]
    camera["speed_gates"] = [
        {"id": "gate", "from": "entry", "to": "nowhere", "distance_m": 20, "limit_kmh": 60},
        {"id": "gate", "from": "exit", "to": "exit", "distance_m": 20, "limit_kmh": 60},
        {"id": "bad", "from": "entry", "to": "exit", "distance_m": 0, "limit_kmh": 60},
    ]
    with pytest.raises(ConfigError) as caught:
        parse_province(raw, "cams.yaml")
    problems = caught.value.problems
    assert any("speed_gates[2] (bad).distance_m" in p for p in problems), problems
    with pytest.raises(ConfigError) as caught:
        parse_province({**raw, "cameras": [{**camera, "speed_gates": camera["speed_gates"][:2]}]})
    problems = caught.value.problems
    assert "cameras[0] (gate-cam).speed_gates: id 'gate' is used more than once" in problems
    assert (
        "cameras[0] (gate-cam).speed_gates[0] (gate).to: 'nowhere' is not a line of this camera"
        in problems
    )
    assert "cameras[0] (gate-cam).speed_gates[1] (gate).to: must be another line than 'from'" in (
        problems
    )


def test_live_pipeline_raises_speeding_and_reports_mean_and_p85(
    footage: tuple[Path, Path],
) -> None:
    """The worker's path: speeding events carry the gate, speed and limit; the traffic
    metrics of the interval carry the mean and 85th-percentile speed."""
    video, config = footage
    camera = parse_province(yaml.safe_load(config.read_text(encoding="utf-8"))).cameras[0]
    camera = camera.model_copy(update={"analytics": Analytics(metrics_seconds=3600)})
    pipeline = VisionPipeline([camera], fps={camera.id: FPS})
    capture = cv2.VideoCapture(str(video))
    events, speeds, n = [], [], 0
    t0 = 1_764_000_000.0 - 1_764_000_000.0 % 3600
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        batch = FrameBatch(
            to_analysis_gray(frame, ANALYSIS_SIZE)[None],
            np.zeros(1, np.intp),
            np.array([t0 + n / FPS]),
            np.array([n], np.int64),
        )
        result = pipeline.process(batch)
        events += result.events
        speeds += [s.speed_kmh for s in result.speeds]
        n += 1
    (metrics,) = pipeline.finish(t0 + n / FPS).metrics
    speeding = [e for e in events if e.kind is EventKind.SPEEDING]
    over = [v for v in VEHICLES if v.kmh > LIMIT_KMH]
    assert [e.phase for e in speeding] == ["start", "end"] * len(over)
    assert {e.gate_id for e in speeding} == {"gate"}
    assert all(e.limit_kmh == LIMIT_KMH and (e.speed_kmh or 0) > LIMIT_KMH for e in speeding)
    assert metrics.speeds == len(VEHICLES)
    assert metrics.speed_mean_kmh == pytest.approx(np.mean(speeds), abs=0.05)
    assert metrics.speed_p85_kmh == pytest.approx(np.percentile(speeds, 85), abs=0.05)
    truth = np.percentile([v.kmh for v in VEHICLES], 85)
    assert abs(metrics.speed_p85_kmh - truth) <= 0.05 * truth


def test_speeding_goes_to_police_over_the_margin_with_speed_and_limit_in_cap() -> None:
    province = load_province(ROOT / "config" / "province.yaml")
    rules = load_rules(ROOT / "config" / "alert-rules.yaml", province, environ={})
    at = 1_764_000_000.0
    near = rules.decide(EventKind.SPEEDING, "c", "gate", "my-tho", at, over_limit_kmh=6.0)
    far = rules.decide(EventKind.SPEEDING, "c", "gate", "my-tho", at, over_limit_kmh=12.5)
    assert (near.severity, far.severity) == (Severity.MINOR, Severity.MAJOR)
    routing = routing_from(rules)
    assert routing.police is not None
    assert "speeding" in routing.police.kinds
    assert routing.police.min_severity == "major"
    moment = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)
    alert = AlertView(
        id="0b6f4a4e-8f7c-4d59-9d1e-2c3f6b1a0e11",
        incident_id="5c0e2d7b-9a4f-4b1e-8c3d-7e6f5a4b3c2d",
        kind="speeding",
        source_id="gate-cam",
        zone_id="gate",
        district_id="my-tho",
        severity="major",
        state="open",
        # Titles written without the figures: the CAP parameters come from the fields.
        title_vi=PROFILES[EventKind.SPEEDING].title_vi,
        title_en=PROFILES[EventKind.SPEEDING].title_en,
        count=1,
        opened_at=moment,
        last_seen_at=moment,
        cleared_at=None,
        acknowledged_by=None,
        assigned_to=None,
        resolved_at=None,
        first_frame_captured_at=None,
        updated_at=moment,
        speed_kmh=87.3,
        limit_kmh=60.0,
    )
    header = CapHeader(
        identifier="0b6f.1", sender="ioc.test", sender_name="IOC", sent=moment, msg_type="Alert"
    )
    doc = etree.fromstring(render_cap(alert, None, header, radius_km=0.3))
    etree.XMLSchema(etree.parse(str(DATA / "cap" / "CAP-v1.2.xsd"))).assertValid(doc)
    ns = {"cap": CAP_NS}
    for info in doc.findall("cap:info", ns):
        values = {
            p.findtext("cap:valueName", namespaces=ns): p.findtext("cap:value", namespaces=ns)
            for p in info.findall("cap:parameter", ns)
        }
        assert (values["speedKmh"], values["limitKmh"]) == ("87.3", "60")
    title_vi, title_en = speeding_titles(PROFILES[EventKind.SPEEDING], 87.3, 60.0)
    assert title_en.endswith("87.3 km/h (limit 60 km/h)")
    assert title_vi.endswith("87.3 km/h (giới hạn 60 km/h)")

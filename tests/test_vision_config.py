"""The camera YAML's vision settings: per-zone detector parameters and per-camera analytics,
refused with the camera and field named; the sample province and test cameras load."""

from __future__ import annotations

import pytest
from conftest import DATA, ROOT

from protocol import ConfigError, load_province, parse_province
from vision import VisionPipeline


def _camera(**extra: object) -> dict[str, object]:
    return {
        "id": "cam-1",
        "name": "c",
        "kind": "traffic",
        "district": "d",
        "lat": 10.0,
        "lon": 106.0,
        "source": "x.mp4",
        **extra,
    }


def test_detector_and_analytics_fields_are_bounded_and_named() -> None:
    raw = {
        "cameras": [
            _camera(
                zones=[
                    {
                        "id": "lane",
                        "kind": "lane",
                        "direction": [1, 0],
                        "polygon": [[0, 0], [1, 0], [1, 1]],
                        "high_occupancy": 1.5,
                        "congestion_seconds": -1,
                    }
                ],
                analytics={"threshold": 1, "background_seconds": 0, "colour": "red"},
            )
        ]
    }
    with pytest.raises(ConfigError) as refused:
        parse_province(raw, "cams.yaml")
    problems = refused.value.problems
    for field in ("zones[0] (lane).high_occupancy", "zones[0] (lane).congestion_seconds"):
        assert any(f"cameras[0] (cam-1).{field}" in p for p in problems), field
    for field in ("threshold", "background_seconds", "colour"):
        assert any(f"cameras[0] (cam-1).analytics.{field}" in p for p in problems), field


def test_line_points_outside_the_frame_are_refused() -> None:
    raw = {"cameras": [_camera(lines=[{"id": "l", "points": [[0, 0.5], [1.2, 0.5]]}])]}
    with pytest.raises(ConfigError) as refused:
        parse_province(raw)
    assert any("cameras[0] (cam-1).lines[0] (l).points" in p for p in refused.value.problems)


@pytest.mark.parametrize("path", [DATA / "clips.yaml", ROOT / "config" / "province.yaml"])
def test_shipped_configurations_load_into_a_pipeline(path: object) -> None:
    province = load_province(str(path))
    pipeline = VisionPipeline(province.cameras, timezone=province.timezone)
    assert len(pipeline.cameras) == len(province.cameras)
    assert len(pipeline.layout.zones) == sum(len(c.zones) for c in province.cameras)


def test_analysis_size_must_be_a_multiple_of_four() -> None:
    province = load_province(DATA / "clips.yaml")
    with pytest.raises(ValueError, match="multiple of 4"):
        VisionPipeline(province.cameras, size=(322, 180))

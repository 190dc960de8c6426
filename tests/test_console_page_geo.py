"""The province drawn for the page's map with no tile server (``/api/v1/geo/province``):
roads as segments between the centres of their cameras per district, at the worst traffic
level of those cameras; a road within one district as one stretch between its end cameras."""

from __future__ import annotations

import pytest

from console_api import ConsoleConfig
from console_api._geo import road_segments, traffic_level
from console_api._page import content_security_policy


@pytest.mark.parametrize(
    ("share", "level"),
    [(None, "unknown"), (0.0, "free"), (0.09, "free"), (0.1, "busy"), (0.5, "congested")],
)
def test_traffic_levels(share: float | None, level: str) -> None:
    assert traffic_level(share) == level


def test_a_road_through_districts_joins_their_camera_centres_in_order() -> None:
    cameras = [
        ("east-1", "east", 10.0, 106.6),
        ("west-1", "west", 10.0, 106.0),
        ("mid-1", "mid", 10.1, 106.3),
        ("mid-2", "mid", 10.3, 106.3),
    ]
    segments = road_segments(cameras, {"mid-2": 0.6, "west-1": 0.0})
    assert [s.coordinates for s in segments] == [
        ((10.0, 106.0), (10.2, 106.3)),
        ((10.2, 106.3), (10.0, 106.6)),
    ]
    assert [s.level for s in segments] == ["congested", "congested"]
    assert segments[0].cameras == ("west-1", "mid-1", "mid-2")
    assert road_segments(cameras[:2], {"west-1": 0.2})[0].level == "busy"


def test_a_road_within_one_district_is_one_stretch_between_its_ends() -> None:
    cameras = [
        ("a", "d", 10.0, 106.2),
        ("b", "d", 10.01, 106.0),
        ("c", "d", 10.02, 106.1),
    ]
    (segment,) = road_segments(cameras, {})
    assert segment.coordinates == ((10.01, 106.0), (10.0, 106.2))
    assert segment.level == "unknown"


def test_a_tile_server_is_checked_and_joins_the_pages_image_sources() -> None:
    config = ConsoleConfig(map_tiles="https://tiles.example:8443/osm/{z}/{x}/{y}.png")
    assert config.map_tiles_origin == "https://tiles.example:8443"
    policy = content_security_policy(config.map_tiles_origin)
    assert "img-src 'self' https://tiles.example:8443 data: blob:" in policy
    assert "connect-src 'self';" in policy  # nothing else may be fetched
    assert "img-src 'self' data: blob:" in content_security_policy(None)
    for wrong in (
        "ftp://tiles.example/{z}/{x}/{y}",
        "https://tiles.example/tile.png",
        "/{z}/{x}/{y}",
    ):
        with pytest.raises(ValueError, match="map_tiles"):
            ConsoleConfig(map_tiles=wrong)

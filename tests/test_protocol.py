from __future__ import annotations

import msgspec
import pytest

from protocol import (
    EVENT,
    TELEMETRY,
    ConfigError,
    EventKind,
    FrameDecodeError,
    FrameHeader,
    PayloadError,
    Stream,
    TelemetryBatch,
    TopicError,
    Topics,
    WifiSample,
    decode_frame,
    encode_frame,
    parse_province,
)

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 20


def test_frame_round_trip() -> None:
    header = FrameHeader("cam-1", 42, 1_700_000_000.25, 320, 180)
    decoded, body = decode_frame(encode_frame(header, JPEG))
    assert decoded == header
    assert bytes(body) == JPEG


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"short", "shorter than the header"),
        (b"XXXX" + b"\x00" * 40, "magic"),
        (encode_frame(FrameHeader("cam-1", 1, 1.0, 320, 180), b"not a jpeg"), "not a JPEG"),
        (encode_frame(FrameHeader("cam-1", 1, 1.0, 0, 180), JPEG), "empty"),
        (encode_frame(FrameHeader("CAM 1", 1, 1.0, 320, 180), JPEG), "not a valid identifier"),
    ],
)
def test_frame_errors_name_the_problem(payload: bytes, reason: str) -> None:
    with pytest.raises(FrameDecodeError, match=reason):
        decode_frame(payload)


def test_telemetry_round_trip_and_field_errors() -> None:
    batch = TelemetryBatch(
        ap_id="ap-1",
        seq=7,
        samples=[
            WifiSample(
                ts=1.0,
                clients=3,
                rx_bytes=10,
                tx_bytes=20,
                channel_util=0.5,
                up=True,
                visitors=["0123456789abcdef"],
            ),
        ],
    )
    assert TELEMETRY.decode(TELEMETRY.encode(batch)) == batch
    bad = msgspec.json.encode(
        {
            "ap_id": "ap-1",
            "seq": 1,
            "samples": [
                {
                    "ts": 1.0,
                    "clients": "many",
                    "rx_bytes": 0,
                    "tx_bytes": 0,
                    "channel_util": 0.1,
                    "up": True,
                }
            ],
        }
    )
    with pytest.raises(PayloadError, match=r"\$\.samples\[0\]\.clients"):
        TELEMETRY.decode(bad)
    with pytest.raises(PayloadError, match="not valid JSON"):
        TELEMETRY.decode(b"{not json")
    raw_mac = msgspec.json.encode(
        {
            "ap_id": "ap-1",
            "seq": 1,
            "samples": [
                {
                    "ts": 1.0,
                    "clients": 1,
                    "rx_bytes": 0,
                    "tx_bytes": 0,
                    "channel_util": 0.1,
                    "up": True,
                    "visitors": ["aa:bb:cc:dd:ee:ff"],
                }
            ],
        }
    )
    with pytest.raises(PayloadError, match="visitors"):
        TELEMETRY.decode(raw_mac)


def test_schema_version_is_checked() -> None:
    payload = msgspec.json.encode(
        {
            "v": 2,
            "event_id": "e",
            "kind": "intrusion",
            "camera_id": "c",
            "phase": "start",
            "started_at": 1.0,
        }
    )
    with pytest.raises(PayloadError, match=r"\$\.v"):
        EVENT.decode(payload)


def test_topics_build_and_parse() -> None:
    topics = Topics("ioc/v1")
    assert topics.frames("mt-01") == "ioc/v1/cameras/mt-01/frames"
    parsed = topics.parse("ioc/v1/wifi/ap-3/telemetry")
    assert (parsed.stream, parsed.source_id) == (Stream.TELEMETRY, "ap-3")
    assert topics.parse("ioc/v1/alerts/my-tho/critical").extra == "critical"
    with pytest.raises(TopicError):
        topics.parse("ioc/v1/unknown/x")
    with pytest.raises(TopicError):
        topics.frames("Bad Id")
    assert EventKind("wrong_way") is EventKind.WRONG_WAY


def test_invalid_province_names_every_problem() -> None:
    raw = {
        "districts": [{"id": "my-tho", "name": "TP. Mỹ Tho", "lat": 10.3, "lon": 106.3}],
        "cameras": [
            {
                "id": "cam-1",
                "name": "a",
                "kind": "traffic",
                "district": "my-tho",
                "lat": 10.0,
                "lon": 106.0,
                "source": "x.mp4",
                "zones": [
                    {"id": "z", "kind": "restricted", "polygon": [[0, 0], [1, 1], [1, 0], [0, 1]]}
                ],
            },
            {
                "id": "cam-2",
                "name": "b",
                "kind": "traffic",
                "district": "nowhere",
                "lat": 10.0,
                "lon": 106.0,
                "source": "x.mp4",
                "zones": [{"id": "z", "kind": "restricted", "polygon": [[0, 0], [1.5, 0], [1, 1]]}],
            },
            {
                "id": "cam-3",
                "name": "c",
                "kind": "traffic",
                "district": "nowhere",
                "lat": 10.0,
                "lon": 106.0,
                "source": "x.mp4",
                "fps": 0,
            },
        ],
    }
    with pytest.raises(ConfigError) as caught:
        parse_province(raw, "province.yaml")
    problems = caught.value.problems
    text = str(caught.value)
    assert text.startswith("province.yaml:")
    assert any(
        "cameras[0] (cam-1).zones[0] (z).polygon" in p and "self-intersecting" in p
        for p in problems
    )
    assert any("cameras[1] (cam-2).zones[0] (z).polygon" in p for p in problems)
    assert any("cameras[2] (cam-3).fps" in p for p in problems)


def test_cross_checks_after_fields_are_valid() -> None:
    raw = {
        "districts": [{"id": "my-tho", "name": "TP. Mỹ Tho", "lat": 10.3, "lon": 106.3}],
        "cameras": [
            {
                "id": "cam-1",
                "name": "a",
                "kind": "traffic",
                "district": "TP. Mỹ Tho",
                "lat": 10.0,
                "lon": 106.0,
                "source": "x.mp4",
                "zones": [{"id": "lane", "kind": "lane", "polygon": [[0, 0], [1, 0], [1, 1]]}],
            },
            {
                "id": "cam-1",
                "name": "b",
                "kind": "traffic",
                "district": "elsewhere",
                "lat": 10.0,
                "lon": 106.0,
                "source": "x.mp4",
            },
        ],
    }
    with pytest.raises(ConfigError) as caught:
        parse_province(raw)
    problems = caught.value.problems
    assert any("used more than once" in p for p in problems)
    assert any("'elsewhere' is not a known district" in p for p in problems)
    assert any("direction: a lane needs one" in p for p in problems)


def test_schedule_windows_cross_midnight() -> None:
    from datetime import time

    from protocol import Schedule

    night = Schedule.parse("22:00-05:00")
    assert night.active_at(time(23, 0))
    assert night.active_at(time(4, 59))
    assert not night.active_at(time(12, 0))
    assert Schedule.parse("always").active_at(time(12, 0))
    with pytest.raises(ValueError, match="must be 'always'"):
        Schedule.parse("late evening")

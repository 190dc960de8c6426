"""``ioc vision replay`` on the shipped clips, through the real command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import DATA, VIDEO


def _replay(video: Path, camera: str) -> list[dict[str, object]]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ioc",
            "vision",
            "replay",
            str(video),
            "--config",
            str(DATA / "clips.yaml"),
            "--camera",
            camera,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_indoor_walkby_one_intrusion_per_person() -> None:
    records = _replay(VIDEO / "indoor_people_walkby_768x432.mp4", "indoor-room")
    *events, summary = records
    assert summary == {"kind": "summary", "frames": 1394, "line_counts": {}}
    intrusions = [e for e in events if e["kind"] == "intrusion"]
    # Six people walk in, one at a time (counted by eye on the clip).
    assert len(intrusions) == 6
    assert all(e["zone_id"] == "floor" and e["camera_id"] == "indoor-room" for e in intrusions)
    # The room is empty for the first six seconds: nothing may start before the first person.
    starts = [float(str(e["started_at"])) for e in intrusions]
    assert starts[0] >= 5.5
    assert starts == sorted(starts)
    for event in intrusions:
        assert float(str(event["ended_at"])) > float(str(event["started_at"]))


def test_replay_refuses_unknown_camera() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ioc",
            "vision",
            "replay",
            str(VIDEO / "indoor_people_walkby_768x432.mp4"),
            "--config",
            str(DATA / "clips.yaml"),
            "--camera",
            "no-such-camera",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "no-such-camera" in result.stderr

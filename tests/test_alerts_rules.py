"""The rules file: decisions by kind, zone, district and local time; every problem named;
reloads on SIGHUP and on a changed file, keeping the previous rules when the new ones fail."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from conftest import ROOT

from alerts import RuleBook, RulesError, load_rules, parse_rules, routing_from
from ioc.alerts_commands import check_rules
from ioc.settings import Settings
from protocol import EventKind, Province, Severity, load_province

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def at(hhmm: str, day: str = "2026-11-25") -> float:
    """Epoch seconds of a local (UTC+7) wall-clock time."""
    return datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=LOCAL).timestamp()


@pytest.fixture(scope="module")
def province() -> Province:
    return load_province(ROOT / "config" / "province.yaml")


def test_the_shipped_rules_decide_by_kind_district_and_local_time(province: Province) -> None:
    rules = load_rules(ROOT / "config" / "alert-rules.yaml", province, environ={})
    night = rules.decide(EventKind.INTRUSION, "any-cam", "shoulder", "cai-be", at("23:30"))
    assert (night.severity, night.auto_resolve_seconds, night.rule) == (
        Severity.CRITICAL,
        300.0,
        "night-intrusion",
    )
    # 16:30 UTC is 23:30 in Vietnam: the window is local time, not UTC.
    day = rules.decide(EventKind.INTRUSION, "any-cam", None, "cai-be", at("09:00"))
    assert (day.severity, day.auto_resolve_seconds, day.rule) == (Severity.MAJOR, 120.0, "default")
    assert ((night.clip.pre, night.clip.post), (day.clip.pre, day.clip.post)) == (
        (20.0, 10.0),
        (10.0, 10.0),
    )
    rush = rules.decide(EventKind.CONGESTION, "c", None, "go-cong", at("07:15"))
    calm = rules.decide(EventKind.CONGESTION, "c", None, "go-cong", at("11:00"))
    assert (rush.severity, calm.severity) == (Severity.MAJOR, Severity.MINOR)
    # District by id; the file may name it by id or by name.
    assert rules.decide(EventKind.CROWD, "c", None, "my-tho", at("12:00")).rule == "city-crowds"
    assert rules.decide(EventKind.CROWD, "c", None, "cai-be", at("12:00")).rule == "default"
    routing = routing_from(rules)
    assert routing.police is not None
    assert routing.police.kinds == [
        "intrusion",
        "wrong_way",
        "stopped_vehicle",
        "crowd",
        "speeding",
    ]


def test_first_matching_rule_wins_and_zone_and_source_narrow_it(province: Province) -> None:
    camera = province.cameras[0].id
    rules = parse_rules(
        {
            "rules": [
                {"match": {"sources": [camera], "zones": ["dock"]}, "severity": "info"},
                {"match": {"districts": ["TP. Mỹ Tho"]}, "auto_resolve_seconds": 5},
                {
                    "match": {"kinds": ["crowd"]},
                    "severity": "critical",
                    "clip": {"pre": 30, "post": 5},
                },
            ],
            "clip": {"pre": 15},
        },
        province.model_copy(update={"cameras": [_with_zone(province, camera, "dock")]}),
    )
    noon = at("12:00")
    assert rules.decide(EventKind.CROWD, camera, "dock", "cai-be", noon).severity == "info"
    other_zone = rules.decide(EventKind.CROWD, camera, "gate", "cai-be", noon)
    assert other_zone.severity == Severity.CRITICAL
    assert (other_zone.clip.pre, other_zone.clip.post) == (30.0, 5.0)  # the rule's clip
    in_city = rules.decide(EventKind.CROWD, camera, None, "my-tho", noon)
    # The district rule matched first: its auto-resolve, the kind's default severity.
    assert (in_city.severity, in_city.auto_resolve_seconds) == (Severity.MAJOR, 5.0)
    assert (in_city.clip.pre, in_city.clip.post) == (15.0, 10.0)  # the file's, post default


def _with_zone(province: Province, camera_id: str, zone_id: str) -> Any:
    camera = province.camera(camera_id)
    zone = {"id": zone_id, "kind": "restricted", "polygon": [[0, 0], [1, 0], [1, 1]]}
    return camera.model_validate({**camera.model_dump(), "zones": [zone]})


def test_maintenance_windows_by_source_zone_dates_and_hours(province: Province) -> None:
    camera = province.cameras[0].id
    rules = parse_rules(
        {
            "maintenance": [
                {
                    "id": "lens-cleaning",
                    "sources": [camera],
                    "starts": "2026-11-25T08:00:00",
                    "ends": "2026-11-25T10:00:00",
                },
                {"id": "nightly-reboot", "sources": [camera], "hours": "02:00-02:30"},
            ]
        },
        province,
    )
    assert rules.maintenance(camera, None, at("09:00")) == "lens-cleaning"
    assert rules.maintenance(camera, None, at("10:00")) is None
    assert rules.maintenance(camera, None, at("02:10", "2026-12-01")) == "nightly-reboot"
    assert rules.maintenance(province.cameras[1].id, None, at("09:00")) is None


def test_an_invalid_file_is_refused_with_every_problem_named(province: Province) -> None:
    raw = {
        "auto_resolve_seconds": -1,
        "rules": [
            {"name": "bad-kind", "match": {"kinds": ["alien_landing"]}, "severity": "major"},
            {"name": "no-effect", "match": {"kinds": ["crowd"]}},
            {"name": "odd-hours", "match": {"hours": "25:00-26:00"}, "severity": "info"},
            {
                "name": "ghosts",
                "match": {"sources": ["no-such-cam"], "districts": ["Atlantis"]},
                "severity": "loud",
            },
            {"name": "long-clip", "clip": {"pre": 90}},
            {"name": "no-clip", "clip": {"pre": 0, "post": 0}},
        ],
        "routes": {"police": {"min_severity": "urgent"}},
        "maintenance": [
            {"id": "w", "starts": "2026-01-02T00:00:00", "ends": "2026-01-01T00:00:00"}
        ],
        "police": {
            "sender": "has space",
            "endpoints": [
                {
                    "id": "dispatch",
                    "url": "ftp://x",
                    "allow_plain_http": True,
                    "secret_env": "IOC_TEST_UNSET_SECRET",
                },
                {
                    "id": "dispatch",
                    "url": "http://127.0.0.1:9/cap",
                    "allow_plain_http": True,
                    "secret_env": "IOC_WEAK",
                },
            ],
        },
        "access_points": {"overload_ratio": 1.0, "clear_ratio": 1.5},
        "surprise": True,
    }
    with pytest.raises(RulesError) as caught:
        parse_rules(raw, province, "rules.yaml", environ={"IOC_WEAK": "whsec_c2hvcnQ="})
    problems = "\n".join(caught.value.problems)
    for expected in (
        "auto_resolve_seconds: Input should be greater than or equal to 0",
        "rules[0] (bad-kind).match.kinds[0]: Input should be 'intrusion'",
        "rules[1] (no-effect): a rule needs 'severity', 'auto_resolve_seconds' or 'clip'",
        "rules[4] (long-clip).clip.pre: Input should be less than or equal to 60",
        "rules[5] (no-clip).clip: a clip needs 'pre' or 'post' above 0 seconds",
        "rules[2] (odd-hours).match.hours",
        "rules[3] (ghosts).severity",
        "routes.police.min_severity",
        "maintenance[0] (w): a maintenance window needs 'sources' or 'zones'",
        "police.sender",
        "police.endpoints[0] (dispatch).url",
        "access_points: 'clear_ratio' must not exceed 'overload_ratio'",
        "surprise: Extra inputs are not permitted",
        # Named even though the file's shape is wrong too:
        "rules[3] (ghosts).match.sources: source 'no-such-cam' is not in the province",
        "rules[3] (ghosts).match.districts: district 'Atlantis' is not in the province",
        "police.endpoints[1] (dispatch).id: 'dispatch' is used more than once",
        "police.endpoints[0] (dispatch).secret_env: the environment variable "
        "IOC_TEST_UNSET_SECRET is not set",
        "police.endpoints[1] (dispatch).secret_env: the secret in IOC_WEAK decodes to 5 bytes",
    ):
        assert expected in problems, f"{expected!r} not named in:\n{problems}"
    assert str(caught.value).startswith("rules.yaml: ")

    # With the shape right, the names are checked against the province and the environment.
    raw = {
        "rules": [
            {
                "name": "ghosts",
                "match": {"sources": ["no-such-cam"], "districts": ["Atlantis"]},
                "severity": "info",
            }
        ],
        "police": {
            "endpoints": [
                {
                    "id": "dispatch",
                    "url": "http://127.0.0.1:9/a",
                    "allow_plain_http": True,
                    "secret_env": "IOC_UNSET_X",
                },
                {
                    "id": "dispatch",
                    "url": "http://127.0.0.1:9/b",
                    "allow_plain_http": True,
                    "secret_env": "IOC_WEAK",
                },
            ]
        },
    }
    with pytest.raises(RulesError) as caught:
        parse_rules(raw, province, "rules.yaml", environ={"IOC_WEAK": "whsec_c2hvcnQ="})
    assert caught.value.problems == [
        "rules[0] (ghosts).match.sources: source 'no-such-cam' is not in the province",
        "rules[0] (ghosts).match.districts: district 'Atlantis' is not in the province",
        "police.endpoints[1] (dispatch).id: 'dispatch' is used more than once",
        "police.endpoints[0] (dispatch).secret_env: the environment variable IOC_UNSET_X is "
        "not set",
        "police.endpoints[1] (dispatch).secret_env: the secret in IOC_WEAK decodes to 5 bytes; "
        "use at least 16 (24-64 recommended)",
    ]


def _write(path: Path, doc: dict[str, Any]) -> None:
    # Write then rename, as editors and config management do: the watcher sees a new inode.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    os.replace(tmp, path)


def test_a_bad_reload_keeps_the_rules_in_force(tmp_path: Path, province: Province) -> None:
    path = tmp_path / "rules.yaml"
    _write(path, {"rules": [{"match": {"kinds": ["crowd"]}, "severity": "critical"}]})
    book = RuleBook(path, province, environ={})
    heard: list[str] = []
    book.add_listener(lambda rules: heard.append(rules.spec.rules[0].severity or ""))
    assert book.reload_if_changed() is None  # nothing changed yet

    path.write_text("rules: [ {match: {kinds: [crowd]}, severity: critical", encoding="utf-8")
    assert book.reload() is False
    assert book.last_error is not None
    assert "not valid YAML" in book.last_error.problems[0]
    assert book.rules.decide(EventKind.CROWD, "c", None, "my-tho", at("12:00")).severity == (
        Severity.CRITICAL
    )

    _write(path, {"rules": [{"match": {"kinds": ["crowd"]}, "severity": "minor"}]})
    assert book.reload_if_changed() is True
    assert book.last_error is None
    assert book.rules.decide(EventKind.CROWD, "c", None, "my-tho", at("12:00")).severity == (
        Severity.MINOR
    )
    assert heard == ["minor"]
    assert (book.loads, book.attempts) == (2, 3)


async def test_sighup_reloads_the_rules(tmp_path: Path, province: Province) -> None:
    path = tmp_path / "rules.yaml"
    _write(path, {"auto_resolve_seconds": 10})
    book = RuleBook(path, province, environ={"IOC_SECRET_A": SECRET})
    uninstall = book.install_sighup()
    try:
        _write(
            path,
            {
                "auto_resolve_seconds": 20,
                "police": {
                    "endpoints": [
                        {
                            "id": "a",
                            "url": "http://127.0.0.1:9/",
                            "allow_plain_http": True,
                            "secret_env": "IOC_SECRET_A",
                        }
                    ]
                },
            },
        )
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.wait_for(book.wait_for_attempt(2), 10)
    finally:
        uninstall()
    assert book.rules.spec.auto_resolve_seconds == 20
    assert [(e.id, e.secret) for e in book.rules.endpoints] == [("a", SECRET)]
    assert "whsec" not in repr(book.rules.endpoints[0])


def test_check_rules_command_names_the_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    _write(good, {"rules": [{"match": {"kinds": ["crowd"]}, "severity": "major"}]})
    _write(bad, {"rules": [{"match": {"kinds": ["crowd"]}}, {"severity": "huge"}]})
    settings = Settings(province=ROOT / "config" / "province.yaml")
    assert check_rules(settings, good) == 0
    assert "ok (1 rules" in capsys.readouterr().out
    assert check_rules(settings, bad) == 2
    err = capsys.readouterr().err
    assert "rules[1].severity: Input should be" in err
    assert "rules[0]: a rule needs 'severity', 'auto_resolve_seconds' or 'clip'" in err

"""How the soak reads its status log: how long a vision shard went unwatched while its
workers failed over, and how much work a service did across restarts and lease holds."""

from __future__ import annotations

from ioc.bench._meter import StatusLog
from protocol import MqttEndpoint, ServiceStatus, Topics


def _log(*reports: tuple[float, str, str, int, float | None]) -> StatusLog:
    """(arrival, instance, status, pid, events_published or None) in arrival order."""
    log = StatusLog(MqttEndpoint.from_url("mqtt://127.0.0.1:1"), Topics("t/v1"))
    for at, instance, status, pid, events in reports:
        report = ServiceStatus(
            instance=instance,
            service="vision",
            status=status,  # type: ignore[arg-type]  # one of the three, by the tests below
            pid=pid,
            started_at=0.0,
            reported_at=at,
            counters={} if events is None else {"events_published": events},
        )
        log.reports.setdefault(instance, []).append(report)
        log.arrivals.append((at, report))
    return log


def test_a_shard_is_unwatched_from_its_holders_end_until_another_runs_it() -> None:
    log = _log(
        (1.0, "a", "running", 10, 0),
        (2.0, "b", "standby", 11, None),
        (10.0, "a", "stopped", 10, None),  # killed: its will arrives
        (10.5, "b", "running", 11, 0),  # the standby takes over
        (20.0, "b", "standby", 11, None),  # database failover: the lease is lost ...
        (23.0, "a", "running", 12, 0),  # ... and the restarted worker takes it
    )
    assert log.longest_unwatched({"1/1": ["a", "b"]}, 5.0, 30.0) == {"1/1": 3.0}
    assert log.longest_unwatched({"1/1": ["a", "b"]}, 5.0, 15.0) == {"1/1": 0.5}
    # Unwatched when the window opens, and still at its end.
    assert log.longest_unwatched({"1/1": ["a", "b"]}, 21.0, 22.0) == {"1/1": 1.0}
    assert log.longest_unwatched({"1/1": ["a", "b"]}, 10.25, 12.0) == {"1/1": 0.25}
    # Another shard's reports change nothing.
    assert log.longest_unwatched({"1/1": ["a", "b"], "x": ["c"]}, 0.0, 5.0) == {
        "1/1": 1.0,
        "x": 5.0,
    }


def test_work_is_summed_over_processes_and_over_lease_holds() -> None:
    log = _log(
        (1.0, "a", "running", 10, 4),
        (2.0, "a", "running", 10, 7),
        (3.0, "a", "stopped", 10, None),  # killed after counting 7
        (4.0, "b", "running", 11, 2),
        (5.0, "b", "standby", 11, None),  # lost its lease; counts again from zero next hold
        (6.0, "b", "running", 11, 1),
        (7.0, "b", "stopped", 11, 5),  # graceful stop: the final count
        (8.0, "a", "running", 12, 3),  # the killed worker's new process
    )
    assert log.total("vision", "events_published") == 7 + 2 + 5 + 3
    assert log.total("ingest", "events_published") == 0

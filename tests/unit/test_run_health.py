"""Run health as data: which run status.lastRun shows, and when a Warning is due."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect_flow_operator.desired.run_health import last_run_update, newest_runs, newly_failed, next_run_due, run_summary


def run(rid: str, state: str, start: str | None, end: str | None = None, dep: str = "d1") -> dict[str, object]:
    return {"id": rid, "name": f"run-{rid}", "deployment_id": dep, "state_type": state.upper(), "state_name": state,
            "start_time": start, "end_time": end}


def test_the_latest_started_run_of_each_deployment_is_chosen() -> None:
    runs = [run("a", "Completed", "2026-12-01T10:00:00Z", "2026-12-01T10:05:00Z"),
            run("b", "Running", "2026-12-01T11:00:00.5+00:00"),
            run("c", "Failed", "2026-12-01T09:00:00Z", dep="d2")]
    latest = newest_runs(runs)
    assert latest["d1"]["id"] == "b" and latest["d2"]["id"] == "c"


def test_an_older_run_never_replaces_the_one_shown() -> None:
    shown = run_summary(run("b", "Running", "2026-12-01T11:00:00Z"))
    assert last_run_update(shown, run("a", "Completed", "2026-12-01T10:00:00Z", "2026-12-01T11:30:00Z")) is None
    assert last_run_update(shown, run("b", "Running", "2026-12-01T11:00:00Z")) is None  # nothing changed
    done = last_run_update(shown, run("b", "Completed", "2026-12-01T11:00:00Z", "2026-12-01T11:10:00Z"))
    assert done is not None and done["state"] == "Completed" and done["endTime"] == "2026-12-01T11:10:00Z"
    newer = last_run_update(shown, run("c", "Running", "2026-12-01T12:00:00Z"))
    assert newer is not None and newer["id"] == "c"


def test_one_warning_per_failure() -> None:
    running = run_summary(run("b", "Running", "2026-12-01T11:00:00Z"))
    failed = run_summary(run("b", "Failed", "2026-12-01T11:00:00Z", "2026-12-01T11:01:00Z"))
    crashed = run_summary(run("c", "Crashed", "2026-12-01T12:00:00Z", "2026-12-01T12:01:00Z"))
    assert newly_failed(running, failed) and newly_failed(failed, crashed) and newly_failed(None, crashed)
    assert not newly_failed(failed, failed)
    assert not newly_failed(running, run_summary(run("b", "Completed", "2026-12-01T11:00:00Z", "2026-12-01T11:01:00Z")))


def test_next_run_is_reread_once_it_has_passed() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert next_run_due({}, now)
    assert next_run_due({"nextRunTime": "2026-12-01T11:59:59Z"}, now)
    assert not next_run_due({"nextRunTime": "2026-12-01T12:00:01.000001Z"}, now)

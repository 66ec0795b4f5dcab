"""schedule_problem: a schedule the Prefect server would refuse is caught before anything is written.

The unit tests pin the rules down with readable examples. The cross-check at the end
does not trust them: it asks the real Prefect server schemas (in the Prefect venv that
hack/test.sh provides, PFO_PREFECT_VENV) about a corpus of cases and requires the same
verdict for every one, except a short, listed set where the operator is stricter on
purpose; for those it requires that Prefect still accepts them, so the list cannot go stale.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from prefect_flow_operator.api.flow_deployment import Schedule
from prefect_flow_operator.desired.schedules import MAX_RRULE_LENGTH, schedule_problem

REPO = Path(__file__).resolve().parents[2]
# What the server prepends to a rule without DTSTART, and so takes off its length budget.
INJECTED = len("DTSTART:20200101T000000\n")


def problem(**fields: Any) -> tuple[str, str] | None:
    return schedule_problem(Schedule(slug="s", **fields))


def refused_field(**fields: Any) -> str:
    found = problem(**fields)
    assert found is not None, f"accepted: {fields}"
    return found[0]


def rrule_of_length(n: int, *, dtstart: bool = False) -> str:
    """A valid rule of exactly n characters (BYMINUTE=0,0,...)."""
    head = ("DTSTART:20260101T000000\n" if dtstart else "") + "FREQ=DAILY;BYMINUTE=0"
    rule = head + ",0" * ((n - len(head)) // 2)
    return rule if len(rule) == n else rule + "0"  # "00" is 0 as well


# -- cron ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cron",
    [
        "0 6 * * *",
        "*/15 * * * *",
        "@daily",
        "@hourly",
        "@weekly",
        "@yearly",
        "0 6 * * MON-FRI",
        "0 0 1 JAN,JUL *",
        "0 0 * * sun",
        "0 0 * * 7",  # Sunday, as in Vixie cron
        "0 0 L * *",  # last day of the month
        "0 0 * * 1#2",  # second Monday
        "0 6 * * * 30",  # six fields: croniter reads the sixth as seconds
        "0 6 * * * 0 2030",  # seven: seconds, then a year
    ],
)
def test_cron_prefect_accepts(cron: str) -> None:
    assert problem(cron=cron) is None


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("61 * * * *", "out of range"),
        ("* * 32 * *", "out of range"),
        ("0 24 * * *", "out of range"),
        ("0 0 * 13 *", "out of range"),
        ("0 0 * * 8", "out of range"),
        ("0 6 * *", "4 fields"),
        ("0 6 * * * * * *", "8 fields"),
        ("@reboot", "1 fields"),
        ("@every 5m", "2 fields"),
        ("0 0 6 * * ?", "Question mark"),  # Quartz style, seconds first
        ("*/0 * * * *", "range"),
        ("0 0 * * 5L", "cron expression"),
        ("0 0 15W * *", "cron expression"),
    ],
)
def test_cron_prefect_refuses(cron: str, says: str) -> None:
    found = problem(cron=cron)
    assert found is not None
    field, message = found
    assert field == "cron"
    assert says in message
    assert "e.g. '0 6 * * MON-FRI'" in message  # says how to fix it


@pytest.mark.parametrize("cron", ["H * * * *", "R * * * *", "0 h * * *", "H/5 * * * *"])
def test_cron_random_and_hashed_fields_are_refused(cron: str) -> None:
    found = problem(cron=cron)
    assert found is not None and found[0] == "cron"
    assert "(H)" in found[1]


# -- timezone ------------------------------------------------------------------------------


@pytest.mark.parametrize("tz", ["Europe/Berlin", "UTC", "America/New_York", "Etc/GMT+5", "Asia/Kolkata", None])
@pytest.mark.parametrize("kind", [{"cron": "0 6 * * *"}, {"rrule": "FREQ=DAILY"}, {"interval": "1h"}])
def test_timezone_prefect_accepts(tz: str | None, kind: dict[str, str]) -> None:
    assert problem(timezone=tz, **kind) is None


@pytest.mark.parametrize(
    ("tz", "hint"),
    [
        ("posix/Europe/Berlin", "use 'Europe/Berlin'"),
        ("right/UTC", "use 'UTC'"),
        ("utc", "use 'UTC'"),
        ("europe/berlin", "use 'Europe/Berlin'"),
        ("Mars/Olympus_Mons", "such as Europe/Berlin"),
        ("localtime", "such as Europe/Berlin"),  # the server's own zone, whatever that is
        ("+01:00", "such as Europe/Berlin"),
    ],
)
@pytest.mark.parametrize("kind", [{"cron": "0 6 * * *"}, {"rrule": "FREQ=DAILY"}, {"interval": "1h"}])
def test_timezone_unknown_to_prefect_is_refused(tz: str, hint: str, kind: dict[str, str]) -> None:
    found = problem(timezone=tz, **kind)
    assert found is not None
    assert found[0] == "timezone"
    assert hint in found[1]


def test_empty_timezone_means_utc_except_for_rrule() -> None:
    assert problem(cron="0 6 * * *", timezone="") is None
    assert problem(interval="1h", timezone="") is None
    assert refused_field(rrule="FREQ=DAILY", timezone="") == "timezone"


def test_a_bad_expression_is_named_before_a_bad_zone() -> None:
    assert refused_field(cron="61 * * * *", timezone="posix/Europe/Berlin") == "cron"
    assert refused_field(cron="0 6 * * *", timezone="posix/Europe/Berlin") == "timezone"


# -- rrule ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=DAILY;BYHOUR=6",
        "RRULE:FREQ=WEEKLY;BYDAY=MO,FR;BYHOUR=9;BYMINUTE=30",
        "freq=monthly;bymonthday=-1",
        "DTSTART:20260101T060000\nRRULE:FREQ=DAILY",
        "DTSTART:20260101T060000Z\nRRULE:FREQ=DAILY;UNTIL=20301231T000000Z",
        "DTSTART;TZID=Europe/Berlin:20260101T060000\nRRULE:FREQ=DAILY",
        "RRULE:FREQ=DAILY\nEXDATE:20260102T000000",
        "FREQ=DAILY;UNTIL=20301231T000000",
        "FREQ=YEARLY;BYEASTER=0",
    ],
)
def test_rrule_prefect_accepts(rule: str) -> None:
    assert problem(rrule=rule) is None


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        ("FREQ=DAILLY", "invalid 'FREQ'"),
        ("BYHOUR=6", "no FREQ"),
        ("FREQ=DAILY;BYHOUR=25", "hour must be in 0..23"),
        ("FREQ=DAILY;FOO=1", "unknown parameter 'FOO'"),
        ("FREQ=WEEKLY;BYDAY=XX", "invalid 'BYDAY'"),
        ("FREQ=DAILY;BYHOUR=6;", "';' at the end"),
        ("X-FOO:bar\nRRULE:FREQ=DAILY", "unsupported property"),
        ("FREQ=HOURLY;BYSETPOS=400", "bysetpos"),
    ],
)
def test_rrule_prefect_refuses(rule: str, says: str) -> None:
    found = problem(rrule=rule)
    assert found is not None and found[0] == "rrule"
    assert says in found[1]
    assert "e.g. FREQ=" in found[1]


def test_rrule_until_in_utc_without_dtstart_is_refused_with_the_fix() -> None:
    # The server starts such a rule at a local (floating) DTSTART; dateutil refuses the mix.
    found = problem(rrule="FREQ=DAILY;UNTIL=20301231T000000Z")
    assert found is not None and found[0] == "rrule"
    assert "UNTIL=20301231T000000" in found[1]


def test_rrule_length_counts_the_dtstart_line_the_server_adds() -> None:
    limit = MAX_RRULE_LENGTH - INJECTED
    assert problem(rrule=rrule_of_length(limit)) is None
    found = problem(rrule=rrule_of_length(limit + 1))
    assert found is not None and found[0] == "rrule"
    assert f"at most {limit}" in found[1]
    assert len(found[1]) < 400  # the rule itself is not pasted into the condition


def test_rrule_with_dtstart_may_use_the_whole_length() -> None:
    assert problem(rrule=rrule_of_length(MAX_RRULE_LENGTH, dtstart=True)) is None
    # The CRD's maxLength stops a longer one at the API server; check the function anyway.
    too_long = Schedule.model_construct(slug="s", rrule=rrule_of_length(MAX_RRULE_LENGTH + 1, dtstart=True))
    found = schedule_problem(too_long)
    assert found is not None and found[0] == "rrule"
    assert f"at most {MAX_RRULE_LENGTH}" in found[1]


def test_a_long_invalid_rule_is_shortened_in_the_message() -> None:
    found = problem(rrule="FREQ=DAILLY;BYMINUTE=" + ",".join(["0"] * 1000))
    assert found is not None and found[0] == "rrule"
    assert len(found[1]) < 600


# -- anchorDate ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "anchor",
    [
        "2026-01-01T00:00:00Z",
        "2026-01-01T06:00:00+01:00",
        "2026-01-01T06:00:00.250Z",
        "2026-01-01 06:00:00Z",
        "2026-01-01T06:00:00",  # naive: Prefect reads it in the schedule's zone
    ],
)
def test_anchor_prefect_accepts(anchor: str) -> None:
    assert problem(interval="1h", anchor_date=anchor) is None


@pytest.mark.parametrize(
    "anchor",
    [
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "tomorrow",
        "20260101T000000Z",
        "2026-01-01T00:00:00 Z",
    ],
)
def test_anchor_refused(anchor: str) -> None:
    found = problem(interval="1h", anchor_date=anchor)
    assert found is not None
    assert found[0] == "anchorDate"
    assert "2026-01-01T06:00:00Z" in found[1]


def test_interval_itself_is_left_to_the_caller() -> None:
    assert problem(interval="90s") is None


# -- the cross-check against the real Prefect server ---------------------------------------

# (kind, expression, timezone, anchor date); the interval is 1h for every interval case.
Case = tuple[str, str, str | None, str | None]

CORPUS: list[Case] = [
    ("cron", "0 6 * * *", None, None),
    ("cron", "0 6 * * *", "Europe/Berlin", None),
    ("cron", "0 6 * * *", "UTC", None),
    ("cron", "0 6 * * *", "", None),
    ("cron", "61 * * * *", None, None),
    ("cron", "* * 32 * *", None, None),
    ("cron", "0 24 * * *", None, None),
    ("cron", "0 0 * 13 *", None, None),
    ("cron", "0 0 0 * *", None, None),
    ("cron", "@daily", None, None),
    ("cron", "@hourly", "America/New_York", None),
    ("cron", "@DAILY", None, None),
    ("cron", "@reboot", None, None),
    ("cron", "@every 5m", None, None),
    ("cron", "0 6 * * MON-FRI", None, None),
    ("cron", "0 0 * jan-mar *", None, None),
    ("cron", "0 0 * * MON-XYZ", None, None),
    ("cron", "0 6 * * * 30", None, None),
    ("cron", "0 6 * * * * 2030", None, None),
    ("cron", "0 6 * * * * 1969", None, None),
    ("cron", "0 0 6 * * ?", None, None),
    ("cron", "0 6 * *", None, None),
    ("cron", "0 6 * * * * * *", None, None),
    ("cron", "H * * * *", None, None),
    ("cron", "R * * * *", None, None),
    ("cron", "H/5 * * * *", None, None),
    ("cron", "R(0-30) * * * *", None, None),  # random within a range: Prefect takes it
    ("cron", "0 0 L * *", None, None),
    ("cron", "0 0 * * 5L", None, None),
    ("cron", "0 0 * * 1#2", None, None),
    ("cron", "*/0 * * * *", None, None),
    ("cron", "0,,5 * * * *", None, None),
    ("cron", "0 0 31 2 *", None, None),  # never fires, but is valid
    ("cron", "0 6 * * *", "posix/Europe/Berlin", None),
    ("cron", "0 6 * * *", "right/UTC", None),
    ("cron", "0 6 * * *", "utc", None),
    ("cron", "0 6 * * *", "Etc/GMT+5", None),
    ("cron", "0 6 * * *", "Mars/Olympus_Mons", None),
    ("cron", "0 6 * * *", "localtime", None),
    ("rrule", "FREQ=DAILY;BYHOUR=6", None, None),
    ("rrule", "FREQ=DAILY;BYHOUR=6", "Europe/Berlin", None),
    ("rrule", "FREQ=DAILY;BYHOUR=6", "", None),
    ("rrule", "FREQ=DAILY;BYHOUR=6", "Mars/Olympus_Mons", None),
    ("rrule", "FREQ=DAILY;BYHOUR=6", "utc", None),
    ("rrule", "FREQ=DAILY;BYHOUR=6", "posix/Europe/Berlin", None),
    ("rrule", "RRULE:FREQ=WEEKLY;BYDAY=MO,FR", None, None),
    ("rrule", "DTSTART:20260101T060000\nRRULE:FREQ=DAILY", "Europe/Berlin", None),
    ("rrule", "DTSTART;TZID=Europe/Berlin:20260101T060000\nRRULE:FREQ=DAILY", None, None),
    ("rrule", "DTSTART:20260101T060000Z\nRRULE:FREQ=DAILY;UNTIL=20301231T000000Z", None, None),
    ("rrule", "FREQ=DAILY;UNTIL=20301231T000000Z", None, None),
    ("rrule", "FREQ=DAILY;UNTIL=20301231T000000", None, None),
    ("rrule", "RRULE:FREQ=DAILY\nEXDATE:20260102T000000", None, None),
    ("rrule", "FREQ=DAILLY", None, None),
    ("rrule", "BYHOUR=6", None, None),
    ("rrule", "FREQ=DAILY;BYHOUR=25", None, None),
    ("rrule", "FREQ=DAILY;FOO=1", None, None),
    ("rrule", "FREQ=DAILY;BYHOUR=6;", None, None),
    ("rrule", "X-FOO:bar\nRRULE:FREQ=DAILY", None, None),
    ("rrule", rrule_of_length(MAX_RRULE_LENGTH - INJECTED), None, None),
    ("rrule", rrule_of_length(MAX_RRULE_LENGTH - INJECTED + 1), None, None),
    ("rrule", rrule_of_length(MAX_RRULE_LENGTH, dtstart=True), None, None),
    ("rrule", rrule_of_length(MAX_RRULE_LENGTH + 1, dtstart=True), None, None),
    ("interval", "1h", None, None),
    ("interval", "1h", "Europe/Berlin", None),
    ("interval", "1h", "posix/Europe/Berlin", None),
    ("interval", "1h", None, "2026-01-01T00:00:00Z"),
    ("interval", "1h", "Europe/Berlin", "2026-01-01T06:00:00+01:00"),
    ("interval", "1h", None, "2026-01-01T06:00:00.250Z"),
    ("interval", "1h", None, "2026-01-01T06:00:00"),
    ("interval", "1h", None, "2026-13-01T00:00:00Z"),
    ("interval", "1h", None, "2026-02-30T00:00:00Z"),
    ("interval", "1h", None, "tomorrow"),
    ("interval", "1h", None, "20260101T000000Z"),
    ("interval", "1h", None, "2026-01-01"),
]

UNSCHEDULABLE = "accepted, but the server cannot compute a single run from it"
# Cases the server takes that the operator refuses on purpose, each with its reason.
STRICTER: dict[Case, str] = {
    # The rrule zone pattern is not anchored: any text containing a zone name matches.
    # The cron/interval list refuses it, so one zone rule serves every kind.
    ("rrule", "FREQ=DAILY;BYHOUR=6", "posix/Europe/Berlin", None): "unanchored rrule zone pattern",
    # Whatever zone the server machine happens to run in; the rrule pattern refuses it.
    ("cron", "0 6 * * *", "localtime", None): "server-local zone",
    # Only an RFC 3339 date-time, as the CRD documents, is the same instant for everyone.
    ("interval", "1h", None, "2026-01-01"): "date without a time",
    # Accepted, but the scheduler starts the rule at a floating 2020-01-01 DTSTART, which
    # dateutil refuses next to a UTC UNTIL: it never makes a run (checked below).
    ("rrule", "FREQ=DAILY;UNTIL=20301231T000000Z", None, None): UNSCHEDULABLE,
}

# The server side of the check, run by the Prefect venv's interpreter. It builds the
# API's own action schemas (what POST /deployments and the schedule endpoints validate)
# from the body the operator sends, and, since servers on Python 3.13+ parse anchor_date
# with pydantic instead of pendulum, also requires pydantic to parse the anchor.
SERVER_SIDE = r"""
import asyncio, datetime, importlib.util, json, sys
import prefect
from pydantic import TypeAdapter
from prefect.server.schemas.actions import DeploymentScheduleCreate, DeploymentScheduleUpdate

plain_datetime = TypeAdapter(datetime.datetime)

def body(kind, expr, tz, anchor):
    if kind == "cron":
        return {"cron": expr, "timezone": tz, "day_or": True}
    if kind == "rrule":
        return {"rrule": expr, "timezone": tz}
    sched = {"interval": 3600.0, "timezone": tz or "UTC"}
    if anchor is not None:
        sched["anchor_date"] = anchor
    return sched

def accepts(case):
    try:
        DeploymentScheduleCreate(schedule=body(*case))
        DeploymentScheduleUpdate(schedule=body(*case))
        if case[3] is not None:
            plain_datetime.validate_python(case[3])
    except Exception:
        return False
    return True

def schedules_runs(case):
    # What the scheduler service calls to make runs from the stored schedule.
    try:
        stored = DeploymentScheduleCreate(schedule=body(*case)).schedule
        return len(asyncio.run(stored.get_dates(n=1))) == 1
    except Exception:
        return False

cases = [tuple(c) for c in json.load(sys.stdin)]
vendored = importlib.util.find_spec("prefect._vendor.croniter.croniter").origin
json.dump({"version": prefect.__version__, "croniter": vendored,
           "verdicts": [accepts(c) for c in cases],
           "runs": [accepts(c) and schedules_runs(c) for c in cases]}, sys.stdout)
"""


def prefect_python() -> Path:
    venv = os.environ.get("PFO_PREFECT_VENV")
    python = Path(venv or REPO / ".venv-prefect") / "bin" / "python"
    if not python.exists():
        if venv:
            pytest.fail(f"PFO_PREFECT_VENV={venv} has no bin/python")
        pytest.skip(f"no Prefect venv at {python.parent.parent} (hack/test.sh installs it)")
    return python


@pytest.fixture(scope="module")
def prefect_says(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("prefect-home")
    env = {"PATH": os.environ.get("PATH", ""), "PREFECT_HOME": str(home), "HOME": str(home)}
    done = subprocess.run(
        [str(prefect_python()), "-I", "-c", SERVER_SIDE],
        input=json.dumps(CORPUS),
        capture_output=True,
        text=True,
        cwd=home,  # not the repo: nothing there may shadow a module Prefect imports
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def ours(case: Case) -> bool:
    kind, expr, tz, anchor = case
    # Unvalidated, so that cases past the CRD's own limits (maxLength) reach the function.
    return schedule_problem(Schedule.model_construct(slug="s", **{kind: expr}, timezone=tz, anchor_date=anchor)) is None


def test_verdicts_match_the_prefect_server(prefect_says: dict[str, Any]) -> None:
    assert prefect_says["version"].startswith("3.")
    verdicts = prefect_says["verdicts"]
    assert len(verdicts) == len(CORPUS)
    wrong = [
        (case[:2] if len(case[1]) < 60 else (case[0], f"<{len(case[1])} chars>"), case[2], case[3], "prefect", prefect)
        for case, prefect in zip(CORPUS, verdicts, strict=True)
        if case not in STRICTER and ours(case) != prefect
    ]
    assert not wrong, f"verdicts differ from Prefect {prefect_says['version']}: {wrong}"
    # Both outcomes occur: a checker that accepts or refuses everything cannot pass.
    assert True in verdicts and False in verdicts


def test_stricter_cases_are_still_accepted_by_prefect(prefect_says: dict[str, Any]) -> None:
    verdicts = dict(zip(CORPUS, prefect_says["verdicts"], strict=True))
    runs = dict(zip(CORPUS, prefect_says["runs"], strict=True))
    for case, why in STRICTER.items():
        assert verdicts[case] is True, f"Prefect now refuses {case} ({why}); move it to the plain corpus"
        assert not ours(case), f"the operator accepts {case}, which STRICTER says it refuses ({why})"
        if why == UNSCHEDULABLE:
            assert runs[case] is False, f"Prefect now schedules {case}; the operator may accept it"


def test_our_croniter_is_the_code_prefect_vendors(prefect_says: dict[str, Any]) -> None:
    # Same syntax tree: only formatting and comments may differ, so both parse alike.
    spec = importlib.util.find_spec("croniter.croniter")
    assert spec is not None and spec.origin is not None
    mine = ast.dump(ast.parse(Path(spec.origin).read_text()))
    theirs = ast.dump(ast.parse(Path(prefect_says["croniter"]).read_text()))
    assert mine == theirs, "croniter differs from prefect._vendor.croniter: re-pin croniter in pyproject.toml"

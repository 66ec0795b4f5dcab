"""Would the Prefect server accept this schedule? Decided before anything is written.

The server checks a schedule when a deployment or one of its schedules is created or
updated (prefect/server/schemas/schedules.py with the validators in
prefect/_internal/schemas/validators.py, the same from 3.6.0 to 3.9.1). It refuses,
and so does this module:

- cron: what `croniter.is_valid` of the croniter copy Prefect vendors refuses (that
  copy is croniter 6.0.0, the version pyproject.toml pins, so both parse alike), and
  any field that is just R or H (random / hashed). Accepted are five fields, six (the
  sixth is seconds) or seven (then a year), and @hourly @daily @midnight @weekly
  @monthly @yearly @annually.
- timezone: for cron and interval schedules a name outside the server's
  `zoneinfo.available_timezones()`; for rrule schedules one that does not match a
  pattern made of the same names without "localtime", and the empty string.
- rrule: what `dateutil.rrule.rrulestr` cannot parse, and more than 6500 characters.
  A rule without DTSTART gets a DTSTART line put in front (PrefectHQ/prefect#21362,
  3.9 and the later 3.6.x) and is checked again, which leaves it 24 characters less.
- anchorDate: what pendulum (servers on Python <= 3.12) or pydantic (3.13+) cannot parse.

Stricter than the server, on purpose:

- timezone: the rrule pattern is not anchored ("posix/Europe/Berlin" or any text
  containing a zone name matches), so the name list decides for every kind, and
  "localtime" (the server machine's own zone) is refused for cron too;
- rrule: a UTC UNTIL in a rule without DTSTART is refused. The server stores it
  unchanged but then starts it at a floating DTSTART, which dateutil refuses next to
  a UTC UNTIL, so it never makes a run;
- anchorDate: only an RFC 3339 date-time, with or without an offset, not the other
  forms one of the two parsers also takes (a bare date, a Unix time, a week date).

Interval durations are parsed and checked by the caller (desired/deployment.py).
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache, lru_cache
from zoneinfo import available_timezones

import dateutil.rrule  # type: ignore[import-untyped,unused-ignore]
from croniter import CroniterError, croniter  # type: ignore[import-untyped,unused-ignore]

from ..api.flow_deployment import Schedule

Problem = tuple[str, str]

MAX_RRULE_LENGTH = 6500
# What the server prepends to a rule without DTSTART; the date varies, the length not.
_INJECTED_DTSTART = "DTSTART:20200101T000000\n"
_HASHED_OR_RANDOM = ("r", "h")
_CRONITER_ECHO = re.compile(r"^\[[^\]]*\] is not acceptable[,.]?\s*")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})?")

_CRON_HELP = (
    "write five fields 'minute hour day-of-month month day-of-week' within range "
    "(minute 0-59, hour 0-23, day 1-31, month 1-12 or JAN-DEC, weekday 0-7 or SUN-SAT), "
    "e.g. '0 6 * * MON-FRI', or a shortcut such as @daily"
)
_RRULE_EXAMPLE = "e.g. FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=6;BYMINUTE=0"


def schedule_problem(s: Schedule) -> tuple[str, str] | None:
    """None if Prefect (3.6 and 3.9) would accept the schedule, else (field, problem).

    The field is the schedule's sub-field as the CRD spells it (cron, rrule, timezone,
    anchorDate); the problem says what is wrong and shows a form that works.
    """
    if s.cron is not None:
        problem = _cron_problem(s.cron)
    elif s.rrule is not None:
        problem = _rrule_problem(s.rrule)
    else:
        problem = None
    return problem or _timezone_problem(s.timezone, rrule=s.rrule is not None) or _anchor_problem(s.anchor_date)


def _cron_problem(cron: str) -> Problem | None:
    fields = cron.split()
    if any(f.casefold() in _HASHED_OR_RANDOM for f in fields):
        return "cron", f"{cron!r}: Prefect refuses random (R) and hashed (H) fields; write the value out, e.g. '17 * * * *'"
    reason = _croniter_error(cron)
    if reason is None:
        return None
    if "hash_id" in reason:
        return "cron", f"{cron!r}: Prefect refuses hashed (H) fields; write the value out, e.g. '17 * * * *'"
    if "columns" in reason:
        reason = f"{len(fields)} fields; cron has 5, or 6 with seconds last, or 7 with a year after that"
    return "cron", f"{cron!r} is not a cron expression Prefect accepts ({reason}); {_CRON_HELP}"


@lru_cache(maxsize=4096)  # every reconcile and every sweep pass asks again about the same few expressions
def _croniter_error(cron: str) -> str | None:
    """Why croniter.is_valid (what the server calls) refuses the expression, or None."""
    try:
        croniter.expand(cron)
    except CroniterError as exc:
        # croniter repeats the expression ("[61 * * * *] is not acceptable, out of range").
        return _CRONITER_ECHO.sub("", str(exc)) or "a field has a value or form cron does not allow"
    except Exception:  # the server fails on these too, with a 500 instead of a 422
        return "a field has a value or form cron does not allow"
    return None


def _rrule_problem(rule: str) -> Problem | None:
    stored = rule if "DTSTART" in rule.upper() else _INJECTED_DTSTART + rule
    if len(stored) > MAX_RRULE_LENGTH:
        limit = MAX_RRULE_LENGTH - (len(stored) - len(rule))
        return "rrule", (
            f"is {len(rule)} characters; Prefect takes at most {limit} here "
            f"({MAX_RRULE_LENGTH} including a DTSTART line, which it adds when the rule has none): "
            "split it into several schedules or use BY* parts instead of long RDATE lists"
        )
    # The rule as sent and the rule as normalised are both validated by the server.
    for text in dict.fromkeys((rule, stored)):
        reason = _rrule_error(text)
        if reason is not None and "UNTIL" in reason:
            return "rrule", (
                f"{_short(rule)}: UNTIL and DTSTART must both end in Z (UTC) or both not, and a rule without "
                "DTSTART starts at a time without Z; write e.g. FREQ=DAILY;UNTIL=20301231T000000"
            )
        if reason is not None:
            return "rrule", f"{_short(rule)} is not an RRULE Prefect accepts ({reason}); write {_RRULE_EXAMPLE}"
    return None


def _short(rule: str) -> str:
    # A rule may be thousands of characters long; the condition message need not be.
    return repr(rule) if len(rule) <= 80 else repr(rule[:77] + "...")


@lru_cache(maxsize=4096)
def _rrule_error(text: str) -> str | None:
    try:
        dateutil.rrule.rrulestr(text, cache=True)
    except Exception as exc:  # ValueError is a 422 from the server, anything else a 500
        reason = str(exc) or type(exc).__name__
    else:
        return None
    # dateutil's words for the two commonest slips say little to someone writing YAML.
    if "argument: 'freq'" in reason:
        return "it has no FREQ"
    if "values to unpack" in reason:
        return "a part is not NAME=VALUE; look for ';;' or a ';' at the end"
    return reason[:200]


@cache
def _zones() -> frozenset[str]:
    # Cron and interval zones are checked against available_timezones(), rrule zones
    # against a pattern of the same names without "localtime": these work for all kinds.
    return frozenset(z for z in available_timezones() if "localtime" not in z)


def _timezone_problem(tz: str | None, *, rrule: bool) -> Problem | None:
    if tz is None or tz in _zones():
        return None
    if tz == "":
        # Cron and interval schedules read an empty zone as UTC; the rrule pattern does not match it.
        return None if not rrule else ("timezone", "is empty; leave it out for UTC or name a zone such as Europe/Berlin")
    suggestion = _similar_zone(tz)
    hint = f"use {suggestion!r}" if suggestion else "use an IANA name such as Europe/Berlin, America/New_York or UTC"
    return "timezone", f"{tz!r} is not a time zone Prefect accepts; {hint}"


def _similar_zone(tz: str) -> str | None:
    zones = _zones()
    # posix/ and right/ copies of the database are left out of the list Prefect checks.
    for prefix in ("posix/", "right/"):
        if tz.startswith(prefix) and tz[len(prefix):] in zones:
            return tz[len(prefix):]
    by_case = {z.casefold(): z for z in zones}
    return by_case.get(tz.casefold())


def _anchor_problem(anchor: str | None) -> Problem | None:
    if anchor is None:
        return None
    if _RFC3339.fullmatch(anchor):
        try:
            # fromisoformat checks the values (month 13, Feb 30, offset +24:00).
            datetime.fromisoformat(anchor.upper())
            return None
        except ValueError:
            pass
    return "anchorDate", f"{anchor!r} is not an RFC 3339 time; write e.g. 2026-01-01T06:00:00Z or 2026-01-01T06:00:00+01:00"

"""`pfo diff`'s output for people: one block per resource, terraform-like markers
(+ create/add, ~ change, - delete/remove, ! refused or conflict), colour only on a terminal."""

from __future__ import annotations

import json
from typing import Any

from .diff_report import Report, ResourcePlan

COLOURS = {"+": "32", "~": "33", "-": "31", "!": "35"}
MARK = {"create": "+", "update": "~", "relabel": "~", "delete": "-", "refused": "!"}


class _Out:
    def __init__(self, colour: bool) -> None:
        self.colour = colour
        self.lines: list[str] = []

    def line(self, mark: str, text: str, indent: int = 0) -> None:
        body = f"{'  ' * indent}{mark} {text}" if mark else f"{'  ' * indent}{text}"
        if self.colour and mark in COLOURS:
            body = f"\x1b[{COLOURS[mark]}m{body}\x1b[0m"
        self.lines.append(body)


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _resource(out: _Out, r: ResourcePlan) -> None:
    head = f"{r.kind} {r.key} ({r.target}): {r.action}"
    if r.reason:
        head += f" ({r.reason})"
    out.line(MARK.get(r.action, " "), head)
    if r.message:
        out.line("", r.message, 2)
    for f in r.fields:
        out.line("~", f"{f.field}: {_show(f.old)} -> {_show(f.new)}", 1)
    for s in r.schedules:
        mark = {"add": "+", "change": "~", "remove": "-"}[s.action]
        detail = {"add": _show(s.new), "change": f"{_show(s.old)} -> {_show(s.new)}", "remove": _show(s.old)}[s.action]
        out.line(mark, f"schedule {s.slug}: {detail}", 1)
    for w in r.warnings:
        out.line("!", f"LimitConflict: {w}", 1)


def render(report: Report, *, colour: bool) -> str:
    out = _Out(colour)
    shown = [r for r in report.resources if r.changes or r.warnings or r.message]
    for r in shown:
        _resource(out, r)
    if report.tag_limits:
        out.line("", "Tag limits:")
        for t in report.tag_limits:
            mark = {"create": "+", "update": "~", "delete": "-", "restore": "~"}[t.action]
            who = f" (declared by {', '.join(f'{o}={v}' for o, v in sorted(t.declared_by.items()))})" if t.declared_by else ""
            out.line(mark, f"{t.tag}: {t.action} {_show(t.old)} -> {_show(t.new)}{who}", 1)
    for note in report.notes:
        out.line("!", note)
    c = report.counts()
    unchanged = c["unchanged"]
    if not report.changes:
        out.line("", f"No changes: Prefect matches these manifests ({unchanged} resource(s) in sync).")
    else:
        out.line(
            "",
            f"Plan: {c['create']} to create, {c['update']} to update, {c['delete']} to delete, {c['refused']} refused, "
            f"{len(report.tag_limits)} tag limit(s) to change; {len(report.writes)} write(s) to Prefect.",
        )
    return "\n".join(out.lines) + "\n"

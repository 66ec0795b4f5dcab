"""CPU seconds of a phase by process, from /proc: where a converge's time went on 2 cores.

A cold converge on SQLite is bound by the Prefect server's one busy process; whatever
else runs (the operator, the API server and etcd, the bench's own watch and polls) takes
CPU from it. The floor is measured the same way, so the two can be set side by side.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import defaultdict
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
COMMANDS = {"kube-apiserver", "etcd", "postgres"}  # counted by command, whatever their session


def _stat(pid: str) -> tuple[str, int, float] | None:
    """(command, session id, CPU seconds so far) of one process; None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm, rest = raw[raw.index("(") + 1 : raw.rindex(")")], raw[raw.rindex(")") + 2 :].split()
    # After the command: state ppid pgrp session ... utime stime cutime cstime (fields 14-17:
    # the reaped children's too, such as the bench's kubectl runs).
    return comm, int(rest[3]), sum(int(x) for x in rest[11:15]) / TICK


def session(proc: subprocess.Popen[bytes] | None) -> int:
    """The session a process started with start_new_session leads: its own pid."""
    assert proc is not None, "not started"
    return proc.pid


def snapshot(sessions: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far per name: the processes of the named sessions (a process started
    with start_new_session leads its own; the bench's own is `bench`), the API server, etcd,
    PostgreSQL, and the rest of the machine."""
    by_session = {sid: name for name, sid in sessions.items()}
    out: defaultdict[str, float] = defaultdict(float)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        st = _stat(pid)
        if st is None:
            continue
        comm, sid, secs = st
        name = by_session.get(sid) or (comm if comm in COMMANDS else "other")
        out[name] += secs
    return dict(out)


class CpuClock:
    """CPU seconds per process from now until `stop()`, and how busy the machine was."""

    def __init__(self, **sessions: int) -> None:
        self.sessions = {"bench": os.getsid(0), **sessions}
        self.before = snapshot(self.sessions)
        self.t0 = time.monotonic()

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self.t0
        now = snapshot(self.sessions)
        used = {k: v - self.before.get(k, 0.0) for k, v in sorted(now.items())}
        out = {k: round(v, 1) for k, v in used.items() if round(v, 1) > 0}
        out["wall"] = round(wall, 1)
        out["busy_cores"] = round(sum(used.values()) / wall, 2)  # of os.cpu_count()
        return out
